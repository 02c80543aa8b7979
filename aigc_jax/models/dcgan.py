"""DCGAN generator and discriminator (Radford et al. 2016) for 32x32 and 64x64 images.

Both networks are plain `flax.linen` modules. BatchNorm's cross-device axis is a field because
it must name the pmap axis under `jax.pmap` (statistics over the global batch) and must be None
under `jax.jit` with a sharded batch, where XLA already sees the global batch. The 4x4 / stride-2
convolutions are made by the `conv` / `conv_transpose` fields (as in flax's ResNet example):
`nn.Conv` / `nn.ConvTranspose` by default, or any module with their fields and parameters, such as
the XLA:CPU forms that `aigc_jax.models.create` passes on the CPU backend (`cpu_convs.py`).

Class-conditional form (`num_classes` > 0): G's BatchNorms become conditional BatchNorms (a per-class
scale and offset, conditioning.py); with `embed_dim` > 0 a learned class embedding of that size
(unit-norm vectors at init, like a one-hot label) is also concatenated to z (the input
conditioning of Mirza & Osindero 2014). D adds a projection term <embed(y), h> on its last feature
map (`cond_mode='projection'`, Miyato & Koyama 2018) or returns class logits from it ('acgan').
With num_classes=0 the networks and their parameter names are the unconditional DCGAN's.
"""

import functools
import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.conditioning import ConditionalBatchNorm, ProjectionHead

ModuleDef = Any

SUPPORTED_RESOLUTIONS = (32, 64)
dcgan_init = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
  """DCGAN initialises BatchNorm scales from N(1, 0.02)."""
  return 1.0 + dcgan_init(key, shape, dtype)


def _num_doublings(resolution: int) -> int:
  if resolution not in SUPPORTED_RESOLUTIONS:
    raise ValueError(f"DCGAN resolution {resolution} is not supported; use one of {SUPPORTED_RESOLUTIONS}")
  return int(math.log2(resolution // 4))


class Generator(nn.Module):
  """z -> 4x4 feature map -> transposed-conv doublings -> tanh image in [-1, 1]."""

  resolution: int = 32
  channels: int = 3
  features: int = 64
  bn_axis_name: str | None = None
  conv_transpose: ModuleDef = nn.ConvTranspose
  dtype: Any = jnp.float32
  num_classes: int = 0  # > 0: conditional BatchNorm on `labels`
  embed_dim: int = 0  # > 0 (conditional): a class embedding of this size concatenated to z

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    n = _num_doublings(self.resolution)
    width = self.features * 2 ** (n - 1)
    if self.num_classes and self.embed_dim:
      # Unit-norm class vectors, as a one-hot label would be, next to z's norm of about sqrt(z_dim):
      # the projection turns them into a class layout at 4x4 that training can grow.
      embed = nn.Embed(self.num_classes, self.embed_dim,
                       embedding_init=nn.initializers.normal(self.embed_dim ** -0.5), name="class_embed")(labels)
      z = jnp.concatenate([z, embed.astype(z.dtype)], axis=-1)

    def norm(name):
      if self.num_classes:
        cbn = ConditionalBatchNorm(self.num_classes, self.bn_axis_name, dtype=self.dtype, name=f"c{name}")
        return lambda x: cbn(x, labels, train)
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                          scale_init=_bn_scale_init, dtype=self.dtype, name=name)
    up = functools.partial(self.conv_transpose, kernel_size=(4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                           kernel_init=dcgan_init, dtype=self.dtype)
    x = nn.Dense(4 * 4 * width, use_bias=False, kernel_init=dcgan_init, dtype=self.dtype, name="project")(z)
    x = x.reshape(z.shape[0], 4, 4, width)
    x = nn.relu(norm("bn0")(x))
    for i in range(1, n):
      width //= 2
      x = up(width, name=f"up{i}")(x)
      x = nn.relu(norm(f"bn{i}")(x))
    x = up(self.channels, name=f"up{n}")(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """Image -> stride-2 convolutions down to 4x4 -> one real/fake logit per image.

  Conditional (`num_classes` > 0): 'projection' adds <embed(y), h> on the flattened 4x4 features h,
  the embedding initialised like the logit layer (N(0, 0.02)) so that the class term starts as
  small as the unconditional one; 'acgan' also returns class logits [N, num_classes]. Without
  `labels` (the feature probe) the projection term is left out.
  """

  resolution: int = 32
  channels: int = 3
  features: int = 64
  bn_axis_name: str | None = None
  conv: ModuleDef = nn.Conv
  dtype: Any = jnp.float32
  num_classes: int = 0
  cond_mode: str = "none"  # none | projection | acgan

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, return_features: bool = False):
    n = _num_doublings(self.resolution)
    down = functools.partial(self.conv, kernel_size=(4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                             kernel_init=dcgan_init, dtype=self.dtype)
    features = []
    x = x.astype(self.dtype)
    for i in range(n):
      x = down(self.features * 2**i, name=f"conv{i}")(x)
      if i > 0:  # DCGAN: no normalisation on the first layer.
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                         scale_init=_bn_scale_init, dtype=self.dtype, name=f"bn{i}")(x)
      x = nn.leaky_relu(x, 0.2)
      features.append(x)
    h = x.reshape(x.shape[0], -1)
    logits = nn.Dense(1, kernel_init=dcgan_init, dtype=self.dtype, name="logit")(h)[:, 0]
    if self.cond_mode == "projection" and labels is not None:
      logits = logits + ProjectionHead(self.num_classes, False, self.dtype, embedding_init=dcgan_init,
                                       name="projection")(h, labels, train)
    logits = logits.astype(jnp.float32)
    if self.cond_mode == "acgan":
      class_logits = nn.Dense(self.num_classes, kernel_init=dcgan_init, dtype=self.dtype, name="classes")(h)
      logits = (logits, class_logits.astype(jnp.float32))
    return (logits, features) if return_features else logits
