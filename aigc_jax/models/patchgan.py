"""PatchGAN discriminator (Isola et al. 2017): one real/fake logit per overlapping patch.

Judging local patches rather than whole images makes it fully convolutional (any size) and
pushes the generator towards sharp local texture, which an L1 loss alone blurs away. It is
conditional when the caller concatenates the damaged input to the image it scores.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class PatchDiscriminator(nn.Module):
  """[N, H, W, C] -> logits [N, H / 2**layers, W / 2**layers] (rounded up)."""

  features: int = 32
  layers: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)
    for i in range(self.layers):
      x = nn.Conv(self.features * 2**i, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype, name=f"conv{i}")(x)
      if i > 0:
        x = nn.LayerNorm(reduction_axes=(-3, -2, -1), dtype=self.dtype, name=f"norm{i}")(x)
      x = nn.leaky_relu(x, 0.2)
    x = nn.Conv(self.features * 2**self.layers, (3, 3), padding="SAME", dtype=self.dtype, name="conv_last")(x)
    x = nn.leaky_relu(x, 0.2)
    return nn.Conv(1, (3, 3), padding="SAME", dtype=self.dtype, name="logit")(x)[..., 0].astype(jnp.float32)
