"""The pure step functions on CPU: they learn, they are deterministic, they touch only their own net."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from helpers import assert_trees_equal, smoke_config

from aigc_jax.tasks.gan import losses, steps, train


def _setup(**overrides):
  config = smoke_config(**overrides)
  state = train.build_state(config)
  real = jax.random.uniform(jax.random.PRNGKey(7), (16, 32, 32, 1), minval=-1, maxval=1)
  return config, state, real


def _d_loss(state, real, rng):
  fake, _ = steps.generate(state, steps.noise(rng, real.shape[0], state.z_dim), train=True)
  d = state.discriminator
  v = {"params": state.d_params, "batch_stats": state.d_stats}
  return float(losses.discriminator_loss(d.apply(v, real, mutable=["batch_stats"])[0],
                                         d.apply(v, fake, mutable=["batch_stats"])[0]))


def test_discriminator_step_lowers_its_loss_on_a_fixed_batch():
  _, state, real = _setup()
  rng = jax.random.PRNGKey(3)
  before = _d_loss(state, real, rng)
  step = jax.jit(steps.discriminator_step)
  for _ in range(5):
    state, _ = step(state, real, rng)
  assert _d_loss(state, real, rng) < before - 0.05


def test_generator_step_lowers_its_loss_against_a_fixed_discriminator():
  _, state, _ = _setup()
  step = jax.jit(functools.partial(steps.generator_step, batch_size=16))
  rng = jax.random.PRNGKey(4)
  _, first = step(state, rng=rng)
  for _ in range(5):
    state, metrics = step(state, rng=rng)
  assert metrics["g_loss"] < first["g_loss"]


def test_each_step_changes_only_its_own_network():
  _, state, real = _setup()
  d_state, _ = jax.jit(steps.discriminator_step)(state, real, jax.random.PRNGKey(0))
  assert_trees_equal(d_state.g_params, state.g_params)
  assert_trees_equal(d_state.g_opt, state.g_opt)
  assert not np.allclose(d_state.d_params["conv0"]["kernel"], state.d_params["conv0"]["kernel"])

  g_state, _ = jax.jit(functools.partial(steps.generator_step, batch_size=16))(state, rng=jax.random.PRNGKey(0))
  assert_trees_equal(g_state.d_params, state.d_params)
  assert_trees_equal(g_state.d_stats, state.d_stats)
  assert_trees_equal(g_state.d_opt, state.d_opt)
  assert not np.allclose(g_state.g_params["project"]["kernel"], state.g_params["project"]["kernel"])


def test_train_step_is_bit_identical_for_identical_inputs():
  _, state, real = _setup()
  step = jax.jit(steps.train_step)
  a_state, a_metrics = step(state, {"image": real})
  b_state, b_metrics = step(state, {"image": real})
  assert_trees_equal(a_state.arrays, b_state.arrays)
  assert_trees_equal(a_metrics, b_metrics)
  assert int(a_state.step) == 1
  assert set(a_metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"}
  # Randomness comes from fold_in(rng, step): the next step draws different noise.
  c_state, c_metrics = step(a_state, {"image": real})
  assert c_metrics["d_fake"] != a_metrics["d_fake"]


def test_minimax_loss_is_selectable():
  _, state, real = _setup()
  _, ns = jax.jit(steps.train_step)(state, {"image": real})
  _, mm = jax.jit(functools.partial(steps.train_step, loss="minimax"))(state, {"image": real})
  assert float(mm["g_loss"]) < 0 < float(ns["g_loss"])


def test_optimizer_options():
  config, _, _ = _setup()
  config.optim.grad_clip = 1.0
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 2
  state = train.build_state(config)
  real = jnp.zeros((16, 32, 32, 1))
  new, metrics = jax.jit(steps.train_step)(state, {"image": real})
  assert np.isfinite(metrics["d_loss"])
  # Warm-up starts at learning rate 0: the first update leaves the parameters unchanged.
  assert_trees_equal(new.g_params, state.g_params)
