"""ADA's probability controller and gated augmentation as pure functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import smoke_config

from aigc_jax.core.errors import UserError
from aigc_jax.tasks.gan import ada, augment, train


def _run(signs, **kw):
  state, ps = ada.init(), []
  for s in signs:
    state = ada.update(state, jnp.float32(s), 64, **kw)
    ps.append(float(state["p"]))
  return state, ps


def test_p_moves_by_the_sign_of_the_interval_mean_minus_target():
  # Interval 4, batch 64, kimg 2.56: each adjustment is 64 * 4 / 2560 = 0.1.
  kw = {"target": 0.6, "interval": 4, "kimg": 2.56}
  _, ps = _run([1.0, 1.0, 0.0, 1.0] * 3, **kw)  # interval means 0.75 > 0.6: p rises at every 4th step
  np.testing.assert_allclose(ps, [0, 0, 0, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.3], atol=1e-6)
  state, ps = _run([1.0, 1.0, 0.0, 1.0] * 2 + [0.5] * 8, **kw)  # then 0.5 < 0.6: back down, clamped at 0
  np.testing.assert_allclose(ps[-1], 0.0, atol=1e-6)
  np.testing.assert_allclose(ps[11], 0.1, atol=1e-6)
  assert int(state["count"]) == 0 and float(state["signs"]) == 0.0
  _, ps = _run([1.0] * 40, target=0.6, interval=1, kimg=0.032)  # 64 / 32 = 2 per step: clamped at 1
  assert max(ps) == 1.0


def test_update_is_jittable_and_keeps_its_structure():
  state = jax.jit(lambda s: ada.update(s, jnp.float32(0.9), 32, target=0.6, interval=2, kimg=1.0))(ada.init())
  assert jax.tree.structure(state) == jax.tree.structure(ada.init())
  assert int(state["count"]) == 1 and float(state["p"]) == 0.0


def test_gated_augmentation_p0_is_identity_p1_transforms_every_image():
  x = jax.random.uniform(jax.random.PRNGKey(0), (8, 16, 16, 1), minval=-1, maxval=1)
  rng = jax.random.PRNGKey(1)
  np.testing.assert_array_equal(ada.augment(rng, x, 0.0, ("translation", "cutout")), x)
  y = ada.augment(rng, x, 1.0, ("cutout",))
  # Cutout at p=1: every image loses a square (zeros where x had none).
  assert all(int(jnp.sum(y[i] == 0)) >= 16 for i in range(8))
  half = ada.augment(rng, x, 0.5, ("color",))
  changed = [not np.allclose(half[i], x[i]) for i in range(8)]
  assert 0 < sum(changed) < 8
  g = jax.grad(lambda x: jnp.sum(ada.augment(rng, x, 0.5, ("color", "translation")) ** 2))(x)
  assert np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).sum()) > 0
  assert set(augment.TRANSFORMS) == set(augment.POLICIES)


def test_sign_statistic():
  r, f = jnp.array([1.0, -2.0, 3.0, 0.5]), jnp.array([2.0, -3.0, 1.0, 1.0])
  assert float(ada.sign_statistic(r, f, relativistic=False)) == 0.5
  assert float(ada.sign_statistic(r, f, relativistic=True)) == 0.0


@pytest.mark.parametrize("overrides,message", [
    ({"augment.ada_target": 0.6}, "config.augment.ada_target=0.6 needs transforms to apply"),
    ({"augment.ada_target": 1.5, "augment.policy": "cutout"}, "config.augment.ada_target=1.5 must be in [0, 1)"),
    ({"augment.ada_target": 0.6, "augment.policy": "cutout", "augment.ada_interval": 0},
     "config.augment.ada_interval=0 must be a positive"),
    ({"augment.ada_kimg": 0.0}, "config.augment.ada_kimg=0.0 must be a positive"),
    ({"train.r2_gamma": -1.0}, "config.train.r2_gamma=-1.0 must be >= 0"),
])
def test_bad_ada_and_r2_settings_are_user_errors(overrides, message):
  with pytest.raises(UserError, match=message.replace("[", r"\[").replace(")", r"\)").replace("(", r"\(")):
    train.validate(smoke_config(**overrides), 1)
