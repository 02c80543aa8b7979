"""Penalties added to the GAN losses: WGAN-GP, R1 (optionally lazy), R2 and BigGAN's orthogonal regulariser.

`fn` maps images to logits [N]; the penalties differentiate through it twice (once for the input
gradient, once for the parameter update), which is why they take a function, not logits.
"""

import jax
import jax.numpy as jnp


def input_gradients(fn, x):
  """d sum(fn(x)) / dx: each row is the gradient of that example's logit (D acts per example)."""
  return jax.grad(lambda x: jnp.sum(fn(x).astype(jnp.float32)))(x)


def gradient_penalty(fn, real, fake, eps):
  """E[(||grad D(x_hat)|| - 1)^2] on x_hat = eps real + (1 - eps) fake (Gulrajani et al. 2017)."""
  eps = eps.reshape(-1, *([1] * (real.ndim - 1)))
  x_hat = eps * real + (1.0 - eps) * fake
  g = input_gradients(fn, x_hat)
  norm = jnp.sqrt(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) + 1e-12)
  return jnp.mean((norm - 1.0) ** 2)


def zero_centred_penalty(fn, x):
  """E[||grad D(x)||^2] (R3GAN's ZeroCenteredGradientPenalty: squared gradient summed per image, batch mean)."""
  g = input_gradients(fn, x)
  return jnp.mean(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))


def r1_penalty(fn, real):
  """The zero-centred penalty on real images (Mescheder et al. 2018); the loss adds gamma / 2 times this."""
  return zero_centred_penalty(fn, real)


def r2_penalty(fn, fake):
  """The zero-centred penalty on generated images (Roth et al. 2017; R3GAN adds gamma / 2 (R1 + R2))."""
  return zero_centred_penalty(fn, fake)


def orthogonal(params, skip=("embed", "bias", "scale", "gamma", "beta")):
  """BigGAN's sum over weight matrices W [fan_in, out] of ||W^T W * (1 - I)||_F^2.

  Only off-diagonal terms are penalised, so filters may keep any norm (Brock et al. 2019). Vectors
  and leaves whose path names one of `skip` (embeddings, biases, normalisation scales) are left out.
  """
  total = jnp.zeros((), jnp.float32)
  for path, w in jax.tree_util.tree_leaves_with_path(params):
    name = jax.tree_util.keystr(path).lower()
    if w.ndim < 2 or any(s in name for s in skip):
      continue
    m = w.reshape(-1, w.shape[-1]).astype(jnp.float32)
    gram = m.T @ m
    total = total + jnp.sum((gram * (1.0 - jnp.eye(gram.shape[0]))) ** 2)
  return total
