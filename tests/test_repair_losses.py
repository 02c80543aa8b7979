"""The image-to-image reconstruction losses: train.pixel_loss (l1 | l2 | l1+l2), train.pixel_region
(image | holes), and adv_weight 0 (no discriminator), against their definitions and the old step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.core.errors import UserError
from aigc_jax.tasks.image2image import steps as i2i_steps
from aigc_jax.tasks.image2image import train as i2i_train
from configs import repair as repair_configs


def _images(seed, n=4, size=8):
  return jax.random.uniform(jax.random.PRNGKey(seed), (n, size, size, 1), minval=-1, maxval=1)


def test_pixel_loss_matches_its_definition():
  out, clean = _images(0), _images(1)
  known = (jax.random.uniform(jax.random.PRNGKey(2), out.shape) > 0.6).astype(jnp.float32)
  e = np.asarray(out - clean, np.float64)
  assert float(i2i_steps.pixel_loss(out, clean, known)) == pytest.approx(np.abs(e).mean(), rel=1e-5)
  assert float(i2i_steps.pixel_loss(out, clean, known, "l2")) == pytest.approx((e * e).mean(), rel=1e-5)
  assert float(i2i_steps.pixel_loss(out, clean, known, "l1+l2")) == pytest.approx(
      np.abs(e).mean() + (e * e).mean(), rel=1e-5)
  fix = 1 - np.asarray(known)
  per_image = (e * e * fix).sum((1, 2, 3)) / fix.sum((1, 2, 3))
  assert float(i2i_steps.pixel_loss(out, clean, known, "l2", "holes")) == pytest.approx(per_image.mean(), rel=1e-5)
  # Noise and super-resolution trust no pixel (known = 0): the two regions are the same loss.
  zero = jnp.zeros_like(known)
  assert float(i2i_steps.pixel_loss(out, clean, zero, "l1", "holes")) == pytest.approx(
      float(i2i_steps.pixel_loss(out, clean, zero, "l1", "image")), rel=1e-6)


def test_past_the_range_at_the_targets_end_is_no_error_and_the_other_side_is():
  """Users get outputs clipped to [-1, 1]: below -1 on a -1 target is exact after the clip (0 loss);
  below -1 on a grey target is still an error with a gradient pushing it up."""
  clean = jnp.array([-1.0, -1.0, 0.0, 1.0, 1.0]).reshape(1, 1, 5, 1)
  out = jnp.array([-3.0, -0.5, -2.0, 4.0, 0.5]).reshape(1, 1, 5, 1)
  known = jnp.zeros((1, 1, 5, 1))
  expected = np.array([0.0, 0.5, 2.0, 0.0, 0.5]) ** 2
  assert float(i2i_steps.pixel_loss(out, clean, known, "l2")) == pytest.approx(expected.mean())
  grad = jax.grad(lambda o: i2i_steps.pixel_loss(o, clean, known, "l2"))(out).ravel()
  np.testing.assert_allclose(grad, 2 * np.array([0.0, 0.5, -2.0, 0.0, -0.5]) / 5, rtol=1e-6)


@pytest.mark.parametrize("kind,expected", [("l1", -1.0), ("l2", -0.5)])
def test_l1_fills_an_uncertain_hole_with_the_median_and_l2_with_the_mean(kind, expected):
  """Three of four training images are background (-1) where the hole is, one a stroke (+1): L1's
  best constant fill is the median (background, what the old repair network painted into MNIST's
  centre box), L2's the mean, which is what PSNR rewards."""
  clean = jnp.array([-1.0, -1.0, -1.0, 1.0]).reshape(4, 1, 1, 1)
  known = jnp.zeros_like(clean)
  loss = lambda c: i2i_steps.pixel_loss(jnp.full_like(clean, c), clean, known, kind, "holes")
  c = 0.0
  for _ in range(2000):
    c -= 0.002 * float(jax.grad(loss)(c))
  assert c == pytest.approx(expected, abs=0.02)
  mse = lambda c: float(jnp.mean((c - clean) ** 2))
  assert mse(-0.5) < mse(-1.0)


def _state_and_batch(kinds="center,pixels"):
  config = repair_configs.get_config("smoke")
  config.damage.kinds = kinds
  config.model.fill = False  # the old tanh network: its outputs stay in [-1, 1], so pixel == l1 below
  state = i2i_train.build_state(config)
  return state, {"image": _images(3, n=8, size=32)}


def test_default_step_is_the_old_l1_plus_adversarial_loss():
  state, batch = _state_and_batch()
  _, m = jax.jit(i2i_steps.train_step)(state, batch)
  assert float(m["pixel"]) == pytest.approx(float(m["l1"]), rel=1e-6)
  assert float(m["g_loss"]) == pytest.approx(float(m["l1"]) + 0.01 * float(m["g_adv"]), rel=1e-5)
  assert float(m["d_loss"]) > 0


def test_adv_weight_zero_leaves_the_discriminator_alone_and_trains_g_on_the_pixel_loss():
  state, batch = _state_and_batch()
  step = jax.jit(i2i_steps.train_step, static_argnames=("adv_weight", "pixel_loss_kind", "pixel_region"))
  off, m_off = step(state, batch, adv_weight=0.0, pixel_loss_kind="l2", pixel_region="holes")
  tiny, _ = step(state, batch, adv_weight=1e-12, pixel_loss_kind="l2", pixel_region="holes")
  jax.tree.map(np.testing.assert_array_equal, off.d_params, state.d_params)
  jax.tree.map(np.testing.assert_array_equal, off.d_opt, state.d_opt)
  # G's update is the same as with a discriminator whose loss weighs nothing.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), off.g_params, tiny.g_params)
  assert float(m_off["g_loss"]) == pytest.approx(float(m_off["pixel"]), rel=1e-6)
  assert float(m_off["d_loss"]) == 0 and float(m_off["g_adv"]) == 0


@pytest.mark.parametrize("key,value,match", [("pixel_loss", "l3", "pixel_loss='l3'"),
                                             ("pixel_region", "all", "pixel_region='all'"),
                                             ("adv_weight", -1.0, "adv_weight=-1.0")])
def test_bad_loss_settings_are_one_line_user_errors(key, value, match):
  config = repair_configs.get_config("smoke")
  config.train[key] = value
  with pytest.raises(UserError, match=match) as e:
    i2i_train.validate(config, 1)
  assert "\n" not in str(e.value)

