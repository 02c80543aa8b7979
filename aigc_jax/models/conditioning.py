"""Class conditioning: conditional BatchNorm for generators, projection and AC-GAN heads for discriminators.

Conditional BatchNorm (de Vries et al. 2017; Miyato & Koyama 2018) normalises without its own
scale and offset and takes them from the condition instead: a per-class embedding when the
condition is an integer label, a linear map when it is a vector (BigGAN's shared class embedding
concatenated with a chunk of z). The projection discriminator (Miyato & Koyama 2018) adds
<embed(y), h> to the unconditional logit; the AC-GAN head (Odena et al. 2017) predicts the class.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

COND_MODES = ("none", "projection", "acgan")


def maybe_sn(layer: nn.Module, spectral_norm: bool, name: str | None = None):
  """`layer` wrapped in flax's SpectralNorm (its power-iteration state lives in 'batch_stats')."""
  if not spectral_norm:
    return lambda x, train: layer(x)
  sn = nn.SpectralNorm(layer, name=name)
  return lambda x, train: sn(x, update_stats=train)


class ConditionalBatchNorm(nn.Module):
  """BatchNorm whose scale and offset come from `cond` (int labels [N] or vectors [N, d]); plain BN if None."""

  num_classes: int = 0
  bn_axis_name: str | None = None
  spectral_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cond, train: bool):
    plain = cond is None
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name, use_scale=plain,
                     use_bias=plain, dtype=self.dtype, name="bn")(x)
    if plain:
      return x
    c = x.shape[-1]
    if jnp.issubdtype(cond.dtype, jnp.integer):
      gamma = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones, name="gamma")(cond)
      beta = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros, name="beta")(cond)
    else:
      cond = cond.astype(self.dtype)
      gamma = 1.0 + maybe_sn(nn.Dense(c, use_bias=False, dtype=self.dtype, name="gamma"), self.spectral_norm,
                             "gamma_sn")(cond, train)
      beta = maybe_sn(nn.Dense(c, use_bias=False, dtype=self.dtype, name="beta"), self.spectral_norm,
                      "beta_sn")(cond, train)
    return x * gamma[:, None, None, :].astype(x.dtype) + beta[:, None, None, :].astype(x.dtype)


class ProjectionHead(nn.Module):
  """<embed(y), h>, written as a bias-free (spectrally normalised) Dense on one-hot labels."""

  num_classes: int
  spectral_norm: bool = True
  dtype: Any = jnp.float32
  embedding_init: Any = nn.linear.default_kernel_init

  @nn.compact
  def __call__(self, h, labels, train: bool):
    onehot = jax.nn.one_hot(labels, self.num_classes, dtype=self.dtype)
    embed = maybe_sn(nn.Dense(h.shape[-1], use_bias=False, kernel_init=self.embedding_init, dtype=self.dtype,
                              name="embed"), self.spectral_norm, "embed_sn")(onehot, train)
    return jnp.sum(embed * h, axis=-1)
