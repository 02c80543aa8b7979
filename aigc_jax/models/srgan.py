"""SRGAN-style super-resolution generator (Ledig et al. 2017) with sub-pixel upsampling.

Residual blocks at low resolution, then one (conv -> pixel shuffle) per factor of 2 (Shi et al.
2016). The network predicts a correction to the bicubic upscale of its input (a global skip, as
in VDSR), so an untrained or briefly trained network starts from the classical answer rather than
from noise. Fully convolutional: any input size; large images are processed in tiles by
`aigc_jax.tasks.image2image.enhance.upscale_tiled`.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

SCALES = (2, 4)


def pixel_shuffle(x, r: int):
  """[N, H, W, C * r * r] -> [N, H * r, W * r, C] (depth-to-space)."""
  n, h, w, c = x.shape
  c //= r * r
  return x.reshape(n, h, w, r, r, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c)


def bicubic(x, scale: int):
  n, h, w, c = x.shape
  return jax.image.resize(x, (n, h * scale, w * scale, c), "cubic")


class SRGenerator(nn.Module):
  """[N, h, w, C] in [-1, 1] -> [N, h * scale, w * scale, C], not clipped to [-1, 1]."""

  scale: int = 2
  channels: int = 1
  features: int = 32
  blocks: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.scale not in SCALES:
      raise ValueError(f"scale {self.scale} is not one of {SCALES}")
    conv = lambda f, name: nn.Conv(f, (3, 3), padding="SAME", dtype=self.dtype, name=name)
    skip = bicubic(x.astype(jnp.float32), self.scale)
    h = nn.relu(conv(self.features, "head")(x.astype(self.dtype)))
    y = h
    for i in range(self.blocks):
      r = nn.relu(conv(self.features, f"res{i}_a")(y))
      y = y + conv(self.features, f"res{i}_b")(r)
    y = conv(self.features, "body_out")(y) + h
    for i in range(int(math.log2(self.scale))):
      y = nn.relu(pixel_shuffle(conv(self.features * 4, f"up{i}")(y), 2))
    y = nn.Conv(self.channels, (3, 3), padding="SAME", dtype=self.dtype, kernel_init=nn.initializers.zeros,
                name="out")(y)
    return skip + y.astype(jnp.float32)  # unclipped, as UNet(residual=True); apply_generator clips
