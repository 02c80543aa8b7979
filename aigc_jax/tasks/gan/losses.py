"""GAN objectives on discriminator logits.

The original objective is E[log D(x)] + E[log(1 - D(G(z)))] with D = sigmoid(logit). Written with
softplus so that saturated discriminators give finite losses and gradients:
log D = -softplus(-l) and log(1 - D) = -softplus(l).

`train.loss` picks a pair of (discriminator, generator) losses:
  non_saturating, minimax  the original discriminator loss with either generator loss.
  hinge                    SNGAN/BigGAN's margin loss (Lim & Ye 2017; Miyato et al. 2018).
  wgan                     the Wasserstein critic (Arjovsky et al. 2017); pair it with a gradient
                           penalty (train.gp_weight, Gulrajani et al. 2017), since nothing else
                           keeps the critic Lipschitz here.
  lsgan                    least squares with targets 1 (real) and 0 (fake) (Mao et al. 2017).
  relativistic             the relativistic pairing GAN (RpGAN, Jolicoeur-Martineau 2019) as R3GAN
                           uses it (Huang et al. 2024, brownvc/R3GAN R3GAN/Trainer.py): D minimises
                           E[softplus(-(D(x_i) - D(G(z_i))))] over pairs i of the batch, G the same
                           with the roles swapped. Pair it with zero-centred R1 and R2 penalties
                           (train.r1_gamma = train.r2_gamma) and Adam(b1=0), as R3GAN does.
"""

import jax
import jax.numpy as jnp

GENERATOR_LOSSES = ("non_saturating", "minimax")
LOSSES = GENERATOR_LOSSES + ("hinge", "wgan", "lsgan", "relativistic")
PAIRED = ("relativistic",)  # losses whose generator loss also needs D's logits on real images


def discriminator_loss(real_logits, fake_logits, kind: str = "non_saturating"):
  """The discriminator's (critic's) loss for `kind`; the default is -(E[log D(x)] + E[log(1 - D(G(z)))])."""
  if kind in GENERATOR_LOSSES:
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
  if kind == "hinge":
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
  if kind == "wgan":
    return jnp.mean(fake_logits) - jnp.mean(real_logits)
  if kind == "lsgan":
    return 0.5 * jnp.mean((real_logits - 1.0) ** 2) + 0.5 * jnp.mean(fake_logits**2)
  if kind == "relativistic":
    return jnp.mean(jax.nn.softplus(-(real_logits - fake_logits)))
  raise ValueError(f"unknown GAN loss '{kind}'; use one of {LOSSES}")


def generator_loss(fake_logits, kind: str = "non_saturating", real_logits=None):
  """minimax: E[log(1 - D(G(z)))], the original objective, whose gradient vanishes early on.

  non_saturating: -E[log D(G(z))], the same fixed point with strong early gradients.
  hinge and wgan: -E[D(G(z))]; lsgan: E[(D(G(z)) - 1)^2] / 2.
  relativistic: E[softplus(-(D(G(z_i)) - D(x_i)))], which needs `real_logits` (paired by index).
  """
  if kind == "non_saturating":
    return jnp.mean(jax.nn.softplus(-fake_logits))
  if kind == "minimax":
    return -jnp.mean(jax.nn.softplus(fake_logits))
  if kind in ("hinge", "wgan"):
    return -jnp.mean(fake_logits)
  if kind == "lsgan":
    return 0.5 * jnp.mean((fake_logits - 1.0) ** 2)
  if kind == "relativistic":
    if real_logits is None:
      raise ValueError("the relativistic generator loss needs D's logits on real images (real_logits)")
    return jnp.mean(jax.nn.softplus(-(fake_logits - real_logits)))
  raise ValueError(f"unknown generator loss '{kind}'; use one of {LOSSES}")


def classification_loss(class_logits, labels):
  """AC-GAN's auxiliary cross-entropy of the class head on the given labels."""
  logp = jax.nn.log_softmax(class_logits.astype(jnp.float32))
  return -jnp.mean(jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=1))
