"""GAN objectives on discriminator logits.

The objective is E[log D(x)] + E[log(1 - D(G(z)))] with D = sigmoid(logit). Written with
softplus so that saturated discriminators give finite losses and gradients:
log D = -softplus(-l) and log(1 - D) = -softplus(l).
"""

import jax
import jax.numpy as jnp

GENERATOR_LOSSES = ("non_saturating", "minimax")


def discriminator_loss(real_logits, fake_logits):
  """-(E[log D(x)] + E[log(1 - D(G(z)))]): D ascends the GAN objective."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss(fake_logits, kind: str = "non_saturating"):
  """minimax: E[log(1 - D(G(z)))], the original objective, whose gradient vanishes early on.

  non_saturating: -E[log D(G(z))], the same fixed point with strong early gradients.
  """
  if kind == "non_saturating":
    return jnp.mean(jax.nn.softplus(-fake_logits))
  if kind == "minimax":
    return -jnp.mean(jax.nn.softplus(fake_logits))
  raise ValueError(f"unknown generator loss '{kind}'; use one of {GENERATOR_LOSSES}")
