"""Beyond-DCGAN building blocks as pure functions: losses, penalties, EMA, DiffAugment, subsets, bf16 flow."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import with_overrides

from aigc_jax.data import sources
from aigc_jax.tasks.gan import augment, ema, losses, regularizers, steps, train
from configs import sngan


def test_new_losses_match_their_formulas():
  rng = np.random.default_rng(0)
  r, f = rng.normal(size=64), rng.normal(size=64)
  d = lambda kind: float(losses.discriminator_loss(jnp.array(r), jnp.array(f), kind))
  g = lambda kind: float(losses.generator_loss(jnp.array(f), kind))
  np.testing.assert_allclose(d("hinge"), np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)), rtol=1e-5)
  np.testing.assert_allclose(d("wgan"), np.mean(f) - np.mean(r), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(d("lsgan"), 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f**2), rtol=1e-5)
  np.testing.assert_allclose(g("hinge"), -np.mean(f), rtol=1e-5)
  np.testing.assert_allclose(g("wgan"), -np.mean(f), rtol=1e-5)
  np.testing.assert_allclose(g("lsgan"), 0.5 * np.mean((f - 1) ** 2), rtol=1e-5)
  logits = rng.normal(size=(8, 3))
  labels = np.arange(8) % 3
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  np.testing.assert_allclose(losses.classification_loss(jnp.array(logits), jnp.array(labels)),
                             -logp[np.arange(8), labels].mean(), rtol=1e-5)
  with pytest.raises(ValueError, match="unknown GAN loss 'nope'"):
    losses.discriminator_loss(jnp.zeros(2), jnp.zeros(2), "nope")


def test_penalties_on_a_linear_critic():
  """D(x) = <w, x> has input gradient w everywhere: GP = (|w| - 1)^2 and R1 = |w|^2."""
  w = jax.random.normal(jax.random.PRNGKey(0), (4, 4, 1))
  fn = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real = jax.random.normal(jax.random.PRNGKey(1), (5, 4, 4, 1))
  fake = jax.random.normal(jax.random.PRNGKey(2), (5, 4, 4, 1))
  norm = float(jnp.linalg.norm(w))
  np.testing.assert_allclose(regularizers.gradient_penalty(fn, real, fake, jnp.linspace(0, 1, 5)),
                             (norm - 1) ** 2, rtol=1e-4)
  np.testing.assert_allclose(regularizers.r1_penalty(fn, real), norm**2, rtol=1e-4)


def test_relativistic_pairing_loss_and_r2_as_r3gan():
  """R3GAN/Trainer.py: D minimises softplus(-(D(x_i) - D(G(z_i)))), G softplus(-(D(G(z_i)) - D(x_i))), per pair."""
  rng = np.random.default_rng(1)
  r, f = rng.normal(size=64), rng.normal(size=64)
  softplus = lambda x: np.log1p(np.exp(x))
  np.testing.assert_allclose(losses.discriminator_loss(jnp.array(r), jnp.array(f), "relativistic"),
                             np.mean(softplus(-(r - f))), rtol=1e-5)
  np.testing.assert_allclose(losses.generator_loss(jnp.array(f), "relativistic", jnp.array(r)),
                             np.mean(softplus(-(f - r))), rtol=1e-5)
  # Pairing, not means: permuting the fakes changes the loss.
  assert abs(float(losses.discriminator_loss(jnp.array(r), jnp.array(f[::-1]), "relativistic"))
             - float(losses.discriminator_loss(jnp.array(r), jnp.array(f), "relativistic"))) > 1e-4
  with pytest.raises(ValueError, match="needs D's logits on real images"):
    losses.generator_loss(jnp.array(f), "relativistic")
  w = jax.random.normal(jax.random.PRNGKey(0), (4, 4, 1))
  quad = lambda x: jnp.sum(x * x * w, axis=(1, 2, 3))  # gradient 2 w x
  fake = jax.random.normal(jax.random.PRNGKey(2), (5, 4, 4, 1))
  want = np.mean(np.sum((2 * np.asarray(w) * np.asarray(fake)) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(regularizers.r2_penalty(quad, fake), want, rtol=1e-4)


def test_orthogonal_regulariser():
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
  params = {"conv": {"kernel": jnp.array(q[:, :4] * 3.0), "bias": jnp.ones(4)}, "embed": {"kernel": jnp.ones((3, 3))}}
  # Orthogonal columns of any norm: no penalty; embeddings and biases are skipped.
  assert float(regularizers.orthogonal(params)) < 1e-8
  m = np.array([[1.0, 1.0], [0.0, 1.0]])  # W^T W = [[1, 1], [1, 2]]: off-diagonal 1 twice.
  np.testing.assert_allclose(regularizers.orthogonal({"dense": {"kernel": jnp.array(m)}}), 2.0, rtol=1e-6)


def test_ema_warm_up_then_decay():
  e, p = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
  np.testing.assert_allclose(ema.update(e, p, step=5, decay=0.9, start=5)["w"], 1.0)  # warm-up: copy
  np.testing.assert_allclose(ema.update(e, p, step=6, decay=0.9, start=5)["w"], 0.1, rtol=1e-6)


def _images(n=8, size=16):
  return jax.random.uniform(jax.random.PRNGKey(0), (n, size, size, 3), minval=-1, maxval=1)


def test_translation_shifts_whole_images():
  x = _images()
  y = augment.translation(jax.random.PRNGKey(1), x)
  assert y.shape == x.shape
  s = 2  # 16 * 0.125
  padded = np.pad(np.asarray(x), ((0, 0), (s, s), (s, s), (0, 0)))
  for i in range(len(x)):  # every output is some window of the zero-padded input
    assert any(np.array_equal(np.asarray(y[i]), padded[i, dy:dy + 16, dx:dx + 16])
               for dy in range(2 * s + 1) for dx in range(2 * s + 1))


def test_cutout_zeroes_one_square():
  x = jnp.ones((64, 16, 16, 1))
  y = np.asarray(augment.cutout(jax.random.PRNGKey(2), x))
  zeros = (y == 0).sum(axis=(1, 2, 3))
  assert zeros.max() == 64 and zeros.min() > 0  # an 8x8 square, clipped at the border
  assert set(np.unique(y)) <= {0.0, 1.0}


def test_color_and_policy_are_random_per_image_and_differentiable():
  x = _images()
  policy = augment.parse_policy("color,translation,cutout")
  a = augment.diff_augment(jax.random.PRNGKey(3), x, policy)
  b = augment.diff_augment(jax.random.PRNGKey(3), x, policy)
  c = augment.diff_augment(jax.random.PRNGKey(4), x, policy)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  col = augment.color(jax.random.PRNGKey(5), x)
  assert not np.allclose(col[0] - x[0], col[1] - x[1])
  grad = jax.grad(lambda x: jnp.sum(augment.diff_augment(jax.random.PRNGKey(3), x, policy) ** 2))(x)
  assert float(jnp.abs(grad).sum()) > 0
  assert augment.parse_policy("") == ()
  with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
    augment.parse_policy("color,flip")


def test_augmentation_under_pmap_equals_the_global_batch():
  x = _images(16)
  policy = augment.POLICIES
  ref = augment.diff_augment(jax.random.PRNGKey(6), x, policy)
  fn = jax.pmap(lambda x: augment.diff_augment(jax.random.PRNGKey(6), x, policy, axis_name="b"), axis_name="b")
  out = fn(x.reshape(4, 4, *x.shape[1:])).reshape(x.shape)
  np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_fraction_is_a_deterministic_class_covering_subset():
  a = sources.fraction_indices(1797, 0.1)
  np.testing.assert_array_equal(a, sources.fraction_indices(1797, 0.1))
  assert len(a) == 180 and np.all(np.diff(a) > 0)
  _, labels = sources.digits_arrays()
  assert set(labels[a]) == set(range(10))
  np.testing.assert_array_equal(sources.fraction_indices(5, 1.0), np.arange(5))
  config = with_overrides(sngan.get_config("smoke"), **{"data.fraction": 0.1})
  assert sources.load(config.data, seed=0).num_examples == 180


def test_bfloat16_activations_float32_parameters():
  """model.dtype=bfloat16: every convolution and matmul of the step runs in bf16, parameters,
  optimizer state, EMA and gradients stay float32, and images and losses come out float32."""
  config = with_overrides(sngan.get_config("smoke"), **{"model.dtype": "bfloat16", "model.cond_mode": "projection"})
  state = train.build_state(config)
  for tree in (state.g_params, state.d_params, state.g_opt, state.d_opt, state.ema_params):
    assert {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)} == {jnp.dtype("float32")}
  batch = {"image": jnp.zeros((16, 32, 32, 1)), "label": jnp.zeros(16, jnp.int32)}
  step = functools.partial(steps.train_step, **steps.step_options(config))
  jaxpr = jax.make_jaxpr(step)(state, batch)
  conv_dtypes = set()

  def visit(jpr):
    for eqn in jpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        conv_dtypes.update(str(v.aval.dtype) for v in eqn.invars)
      for value in eqn.params.values():
        for sub in value if isinstance(value, (list, tuple)) else [value]:
          if hasattr(sub, "eqns"):
            visit(sub)
          elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
            visit(sub.jaxpr)
  visit(jaxpr.jaxpr)
  assert conv_dtypes == {"bfloat16"}
  new_state, metrics = jax.eval_shape(step, state, batch)
  assert {x.dtype for x in jax.tree.leaves((new_state.g_params, new_state.d_params, new_state.ema_params,
                                            new_state.g_opt, new_state.d_opt))
          if jnp.issubdtype(x.dtype, jnp.floating)} == {jnp.dtype("float32")}
  assert {m.dtype for m in jax.tree.leaves(metrics)} == {jnp.dtype("float32")}
  sample = jax.eval_shape(steps.sample_step, state, jnp.zeros((4, config.model.z_dim)))
  assert sample.dtype == jnp.float32


@pytest.mark.parametrize("overrides,keys", [
    ({"model.cond_mode": "acgan"}, {"d_acgan", "g_acgan"}),
    ({"train.loss": "wgan", "train.gp_weight": 10.0, "train.d_steps": 3}, {"d_gp"}),
    ({"train.loss": "lsgan", "train.r1_gamma": 0.1}, {"d_r1"}),
    ({"model.name": "biggan", "model.cond_mode": "projection", "model.attention_res": 16,
      "train.ortho_weight": 1e-4}, {"g_ortho"}),
    ({"train.loss": "relativistic", "train.r1_gamma": 0.1, "train.r2_gamma": 0.1, "augment.ada_target": 0.6},
     {"d_r1", "d_r2", "ada_sign", "ada_p"}),
])
def test_each_option_is_wired_into_the_step(overrides, keys):
  """Traced, not compiled: the step builds for every option and reports its extra terms."""
  config = with_overrides(sngan.get_config("smoke"), **overrides)
  state = jax.eval_shape(lambda: train.build_state(config))
  batch = {"image": jnp.zeros((16, 32, 32, 1)), "label": jnp.zeros(16, jnp.int32)}
  _, metrics = jax.eval_shape(functools.partial(steps.train_step, **steps.step_options(config)), state, batch)
  assert keys <= set(metrics)
  assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(metrics)


def test_recalibrated_statistics_belong_to_the_ema_weights():
  """After recalibration, more train-mode passes with the EMA weights barely move the statistics."""
  from helpers import smoke_config

  config = smoke_config(**{"train.ema_decay": 0.9})
  state = train.build_state(config, bn_axis_name="batch")  # as a pmap run returns it: recalibration runs outside
  # EMA weights that differ from G's: what a run leaves after the average lags behind.
  state = state.replace(ema_params=jax.tree.map(lambda p: p * 1.5, state.g_params))
  recal = steps.recalibrate_ema(state, jax.random.PRNGKey(0), num_batches=60, batch_size=32)
  again = steps.recalibrate_ema(recal, jax.random.PRNGKey(1), num_batches=5, batch_size=32)
  drift = lambda a, b: max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert drift(recal.g_stats, state.g_stats) > 10 * drift(again.g_stats, recal.g_stats)
  assert steps.recalibrate_ema(state.replace(ema_params=None), jax.random.PRNGKey(0)).g_stats is state.g_stats
