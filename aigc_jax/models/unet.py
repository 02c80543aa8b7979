"""U-Net encoder-decoder (Ronneberger et al. 2015) for image-to-image repair and denoising.

Fully convolutional: any H x W works; sizes that the downsamplings would not divide are padded
by reflection and cropped back. No BatchNorm, so one image or a thousand give the same result
and there are no running statistics to carry. Upsampling is nearest-neighbour repetition plus a
3x3 convolution, which avoids transposed-convolution checkerboards and XLA:CPU's slow
transposed-convolution gradients (and jax.image.resize's gather, which compiles for minutes).

For hole filling, `fill=True` takes [damaged, known] (the repair step's input: image channels, then
the 1-channel mask with 1 = trusted), replaces the holes with `fill.smooth_fill`'s harmonic and
biharmonic interpolation before the first layer, and predicts a correction to that fill
(zero-initialised, so the untrained network returns the classical fill). The network then sees an
image with plausible values everywhere instead of mid-grey holes, and its loss starts at a classical
method's error, not at the error of grey.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models import fill as classical_fill


class UNet(nn.Module):
  """[N, H, W, C_in] -> [N, H, W, out_channels]: in [-1, 1] (tanh), or unbounded for `residual` and `fill`."""

  out_channels: int = 1
  features: int = 32
  depth: int = 2
  residual: bool = False  # predict a correction to the input image (its first out_channels channels)
  fill: bool = False  # input is [damaged, known]: fill the holes smoothly, then predict a correction
  fill_sweeps: int = 16  # Laplace Jacobi sweeps per pyramid level of that fill
  fill_biharmonic_sweeps: int = 8  # then damped biharmonic sweeps per level
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.fill:
      c = self.out_channels
      if x.shape[-1] != c + 1:
        raise ValueError(f"UNet(fill=True) takes [image ({c} channels), known mask (1)]; got {x.shape[-1]} channels")
      known = x[..., c:].astype(jnp.float32)
      x = jnp.concatenate([classical_fill.smooth_fill(x[..., :c], known, self.fill_sweeps,
                                                               self.fill_biharmonic_sweeps), known], -1)
    inputs = x.astype(jnp.float32)
    n, h, w, _ = x.shape
    m = 2**self.depth
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
      x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
    act = lambda y: nn.leaky_relu(y, 0.2)
    conv = lambda f, name, s=1: nn.Conv(f, (3, 3), strides=(s, s), padding="SAME", dtype=self.dtype, name=name)
    x = x.astype(self.dtype)
    skips = []
    f = self.features
    x = act(conv(f, "in")(x))
    for i in range(self.depth):
      x = act(conv(f, f"enc{i}")(x))
      skips.append(x)
      f *= 2
      x = act(conv(f, f"down{i}", s=2)(x))
    x = act(conv(f, "mid0")(x))
    x = act(conv(f, "mid1")(x))
    for i in reversed(range(self.depth)):
      f //= 2
      skip = skips[i]
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # exact: sizes were padded to multiples of 2**depth
      x = act(conv(f, f"up{i}")(x))
      x = act(conv(f, f"dec{i}")(jnp.concatenate([x, skip], -1)))
    if self.residual or self.fill:  # starts as the identity (or the fill), not from noise
      x = nn.Conv(self.out_channels, (3, 3), padding="SAME", dtype=self.dtype, kernel_init=nn.initializers.zeros,
                  name="out")(x)
      # Not clipped: a clip here has zero gradient outside [-1, 1], and a network pushed past it there
      # stops learning (in runs it painted every hole black). Training's L2 pulls strays back;
      # steps.apply_generator clips what users get.
      return inputs[..., :self.out_channels] + x.astype(jnp.float32)[:, :h, :w]
    x = nn.Conv(self.out_channels, (3, 3), padding="SAME", dtype=self.dtype, name="out")(x)
    return jnp.tanh(x.astype(jnp.float32))[:, :h, :w]
