"""SNGAN ResNet generator and discriminator (Miyato et al. 2018) with BigGAN options (Brock et al. 2019).

One design covers both: `model.name=sngan` is the ResNet pair with spectral normalisation on every
discriminator layer; `model.name=biggan` switches on, at 32x32, what BigGAN adds that fits it: a
shared class embedding feeding every conditional BatchNorm through a linear map, hierarchical
latents (z split into one chunk per generator block), a self-attention block (SAGAN, Zhang et
al. 2019), spectral normalisation in G too, and orthogonal regularisation (regularizers.py).

Conditioning (`cond_mode`): 'projection' or 'acgan' discriminators, with conditional BatchNorm
in the generator for either. Spectral-norm state (power-iteration vectors u and sigma) lives in
the 'batch_stats' collection with BatchNorm's, so it is carried, averaged and checkpointed with it.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aigc_jax.models.conditioning import ConditionalBatchNorm, ProjectionHead, maybe_sn

SUPPORTED_RESOLUTIONS = (32, 64)
_init = nn.initializers.xavier_uniform()
_res_init = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")  # xavier with gain sqrt(2)


def _up(x):
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _down(x):
  return nn.avg_pool(x, (2, 2), (2, 2))


def _conv(features, k, name, dtype, sn, init=_init, use_bias=True):
  return maybe_sn(nn.Conv(features, (k, k), padding="SAME", kernel_init=init, use_bias=use_bias, dtype=dtype,
                          name=name), sn, f"{name}_sn")


class SelfAttention(nn.Module):
  """SAGAN self-attention with 1x1 projections; gamma starts at 0 so the block starts as the identity."""

  spectral_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    n, h, w, c = x.shape
    conv = lambda f, name: _conv(f, 1, name, self.dtype, self.spectral_norm)
    theta = conv(max(c // 8, 1), "theta")(x, train).reshape(n, h * w, -1)
    phi = nn.max_pool(conv(max(c // 8, 1), "phi")(x, train), (2, 2), (2, 2)).reshape(n, h * w // 4, -1)
    g = nn.max_pool(conv(max(c // 2, 1), "g")(x, train), (2, 2), (2, 2)).reshape(n, h * w // 4, -1)
    attn = jax.nn.softmax(jnp.einsum("nqd,nkd->nqk", theta, phi).astype(jnp.float32), axis=-1).astype(g.dtype)
    o = conv(c, "o")(jnp.einsum("nqk,nkd->nqd", attn, g).reshape(n, h, w, -1), train)
    gamma = self.param("gamma", nn.initializers.zeros, ())
    return x + gamma.astype(o.dtype) * o


class GBlock(nn.Module):
  """CBN-ReLU-up-conv3-CBN-ReLU-conv3 plus an upsampled 1x1-conv shortcut."""

  features: int
  num_classes: int = 0
  bn_axis_name: str | None = None
  spectral_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cond, train: bool):
    cbn = lambda name: ConditionalBatchNorm(self.num_classes, self.bn_axis_name, self.spectral_norm, self.dtype,
                                            name=name)
    # No biases: every output here feeds a BatchNorm, which removes them (their gradient is 0).
    conv = lambda k, name, init=_res_init: _conv(self.features, k, name, self.dtype, self.spectral_norm, init,
                                                 use_bias=False)
    h = conv(3, "conv1")(_up(nn.relu(cbn("cbn1")(x, cond, train))), train)
    h = conv(3, "conv2")(nn.relu(cbn("cbn2")(h, cond, train)), train)
    return h + conv(1, "shortcut", _init)(_up(x), train)


class DBlock(nn.Module):
  """ReLU-conv3-ReLU-conv3(-avgpool) plus a 1x1-conv(-avgpool) shortcut; `first` is SNGAN's optimised block."""

  features: int
  down: bool = True
  first: bool = False
  spectral_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda f, k, name, init=_res_init: _conv(f, k, name, self.dtype, self.spectral_norm, init)
    h = x if self.first else nn.relu(x)
    h = conv(self.features, 3, "conv1")(h, train)
    h = conv(self.features, 3, "conv2")(nn.relu(h), train)
    if self.down:
      h = _down(h)
    s = x
    if self.first:
      s = conv(self.features, 1, "shortcut", _init)(_down(x), train)
    elif self.down or x.shape[-1] != self.features:
      s = conv(self.features, 1, "shortcut", _init)(x, train)
      s = _down(s) if self.down else s
    return h + s


def _g_widths(resolution, ch):
  return {32: (4 * ch,) * 4, 64: (16 * ch, 8 * ch, 4 * ch, 2 * ch, ch)}[resolution]


def _d_widths(resolution, ch):
  return {32: (2 * ch,) * 4, 64: (ch, 2 * ch, 4 * ch, 8 * ch, 16 * ch)}[resolution]


class Generator(nn.Module):
  """z (and labels) -> 4x4 map -> residual up-blocks -> BN-ReLU-conv3-tanh image in [-1, 1]."""

  resolution: int = 32
  channels: int = 3
  features: int = 64
  num_classes: int = 0
  shared_dim: int = 0  # BigGAN: labels -> shared embedding -> a linear map per conditional BN
  hierarchical_z: bool = False  # BigGAN: one chunk of z per block, next to the class embedding
  attention_res: int = 0  # self-attention after the block that reaches this resolution (0: none)
  spectral_norm: bool = False
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    widths = _g_widths(self.resolution, self.features)
    num_blocks = len(widths) - 1
    z = z.astype(jnp.float32)
    if self.hierarchical_z:
      chunks = jnp.array_split(z, num_blocks + 1, axis=-1)
      z, block_z = chunks[0], chunks[1:]
    else:
      block_z = [None] * num_blocks
    cond = labels if self.num_classes else None
    if cond is not None and self.shared_dim:
      cond = nn.Embed(self.num_classes, self.shared_dim, name="shared_embed")(labels)
    sn = self.spectral_norm
    x = maybe_sn(nn.Dense(4 * 4 * widths[0], use_bias=False, kernel_init=_init, dtype=self.dtype, name="project"), sn,
                 "project_sn")(z.astype(self.dtype), train)
    x = x.reshape(z.shape[0], 4, 4, widths[0])
    for i in range(num_blocks):
      c = cond
      if block_z[i] is not None:
        c = block_z[i] if cond is None else jnp.concatenate([cond.astype(jnp.float32), block_z[i]], axis=-1)
      x = GBlock(widths[i + 1], self.num_classes, self.bn_axis_name, sn, self.dtype, name=f"block{i}")(x, c, train)
      if x.shape[1] == self.attention_res:
        x = SelfAttention(sn, self.dtype, name="attention")(x, train)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                             dtype=self.dtype, name="bn_out")(x))
    x = _conv(self.channels, 3, "conv_out", self.dtype, sn)(x, train)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """Image (and labels) -> residual down-blocks -> ReLU, sum-pool -> logit [N].

  cond_mode 'projection' adds <embed(y), h>; 'acgan' also returns class logits [N, num_classes].
  """

  resolution: int = 32
  channels: int = 3
  features: int = 64
  num_classes: int = 0
  cond_mode: str = "none"
  attention_res: int = 0
  spectral_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    widths = _d_widths(self.resolution, self.features)
    sn = self.spectral_norm
    x = x.astype(self.dtype)
    attended = False
    for i, w in enumerate(widths):
      down = i < len(widths) - 2 if self.resolution == 32 else i < len(widths) - 1
      x = DBlock(w, down=down, first=i == 0, spectral_norm=sn, dtype=self.dtype, name=f"block{i}")(x, train)
      if x.shape[1] == self.attention_res and not attended:
        x = SelfAttention(sn, self.dtype, name="attention")(x, train)
        attended = True
    h = jnp.sum(nn.relu(x), axis=(1, 2))
    logits = maybe_sn(nn.Dense(1, kernel_init=_init, dtype=self.dtype, name="logit"), sn, "logit_sn")(h, train)[:, 0]
    if self.cond_mode == "projection":
      logits = logits + ProjectionHead(self.num_classes, sn, self.dtype, name="projection")(h, labels, train)
    logits = logits.astype(jnp.float32)
    if self.cond_mode == "acgan":
      class_logits = maybe_sn(nn.Dense(self.num_classes, kernel_init=_init, dtype=self.dtype, name="classes"), sn,
                              "classes_sn")(h, train)
      return logits, class_logits.astype(jnp.float32)
    return logits
