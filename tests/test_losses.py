import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.tasks.gan import losses


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def test_discriminator_loss_is_negative_gan_objective():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=64), rng.normal(size=64)
  objective = np.mean(np.log(_sigmoid(real))) + np.mean(np.log(1 - _sigmoid(fake)))
  np.testing.assert_allclose(losses.discriminator_loss(jnp.array(real), jnp.array(fake)), -objective, rtol=1e-5)


def test_generator_losses_match_their_formulas():
  fake = np.random.default_rng(1).normal(size=64)
  np.testing.assert_allclose(losses.generator_loss(jnp.array(fake), "minimax"),
                             np.mean(np.log(1 - _sigmoid(fake))), rtol=1e-5)
  np.testing.assert_allclose(losses.generator_loss(jnp.array(fake), "non_saturating"),
                             -np.mean(np.log(_sigmoid(fake))), rtol=1e-5)


def test_saturated_logits_stay_finite():
  logits = jnp.array([-100.0, 100.0])
  for kind in losses.GENERATOR_LOSSES:
    value, grad = jax.value_and_grad(lambda l: losses.generator_loss(l, kind))(logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
  # The point of the non-saturating loss: a confident D (logit -100 on fakes) still gives G a gradient.
  g = jax.grad(lambda l: losses.generator_loss(l, "non_saturating"))(jnp.array([-100.0]))
  m = jax.grad(lambda l: losses.generator_loss(l, "minimax"))(jnp.array([-100.0]))
  assert abs(g[0]) > 0.5 and abs(m[0]) < 1e-6


def test_unknown_generator_loss():
  with pytest.raises(ValueError, match="unknown generator loss 'nope'"):
    losses.generator_loss(jnp.zeros(2), "nope")
