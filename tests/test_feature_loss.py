"""The classifier feature loss for super-resolution (aigc_jax/feature_loss.py) and its use in the step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.core.errors import UserError
from aigc_jax.models.classifier import ResidualBlock
from aigc_jax.tasks.classifier import train as cls_train
from aigc_jax.tasks.image2image import feature_loss
from aigc_jax.tasks.image2image import steps as i2i_steps
from aigc_jax.tasks.image2image import train as i2i_train
from configs import classifier as classifier_configs
from configs import enhance as enhance_configs
from tests.helpers import assert_trees_equal, with_overrides


@pytest.fixture(scope="module")
def classifier_workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("cls")
  config = with_overrides(classifier_configs.get_config("smoke"), **{"train.parallel": "jit"})
  cls_train.train_and_evaluate(config, str(workdir))
  return workdir


def _direct_blocks(net, x):
  """Every residual block's output, computed layer by layer from the raw variables."""
  p, s = net.variables["params"]["backbone"], net.variables["batch_stats"]["backbone"]
  m = net.model
  x = nn.Conv(m.widths[0], (3, 3), strides=(m.stem_stride,) * 2, padding="SAME", use_bias=False).apply(
      {"params": p["stem"]}, x)
  x = nn.relu(nn.BatchNorm(use_running_average=True).apply({"params": p["stem_bn"], "batch_stats": s["stem_bn"]}, x))
  out = []
  for i, width in enumerate(m.widths):
    for j in range(m.blocks_per_stage):
      name = f"stage{i}_block{j}"
      x = ResidualBlock(width, strides=2 if i > 0 and j == 0 else 1).apply(
          {"params": p[name], "batch_stats": s[name]}, x, False)
      out.append(x)
  return out


def test_loss_is_the_squared_feature_distance(classifier_workdir):
  net = feature_loss.load(str(classifier_workdir), channels=1)
  a, b = (jax.random.uniform(jax.random.PRNGKey(k), (3, 32, 32, 1), minval=-1, maxval=1) for k in (0, 1))
  fa, fb = _direct_blocks(net, a), _direct_blocks(net, b)
  assert len(fa) == len(net.model.widths) * net.model.blocks_per_stage
  expected = sum(np.mean((np.asarray(x) - np.asarray(y)) ** 2) for x, y in zip(fa, fb))
  assert float(feature_loss.feature_loss(net, a, b)) == pytest.approx(expected, rel=1e-5)
  assert float(feature_loss.feature_loss(net, a, a)) == 0.0
  pooled = net.model.apply(net.variables, a, method=lambda mdl, x: mdl.features(x, False))
  np.testing.assert_allclose(np.asarray(fa[-1]).mean((1, 2)), pooled, rtol=1e-5, atol=1e-6)
  small = jax.image.resize(a, (3, 16, 16, 1), "linear")
  assert np.isfinite(float(feature_loss.feature_loss(net, small, small * 0.5)))  # resized to the classifier's 32x32


def _sr_state(classifier_workdir):
  config = with_overrides(enhance_configs.get_config("smoke"), **{"optim.schedule": "constant"})
  state = i2i_train.build_state(config)
  return state.replace(features=feature_loss.load(str(classifier_workdir), 1))


def test_gradients_reach_the_generator_only(classifier_workdir):
  state = _sr_state(classifier_workdir)
  batch = {"image": jax.random.uniform(jax.random.PRNGKey(2), (8, 16, 16, 1), minval=-1, maxval=1)}
  step = jax.jit(i2i_steps.train_step, static_argnames=("feature_weight",))
  without, m0 = step(state, batch, feature_weight=0.0)
  with_feat, m1 = step(state, batch, feature_weight=1.0)
  assert "feature" not in m0 and float(m1["feature"]) > 0
  assert float(m1["g_loss"]) == pytest.approx(float(m0["g_loss"]) + float(m1["feature"]), rel=1e-5)
  assert_trees_equal(with_feat.d_params, without.d_params)
  assert max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(without.d_params),
                                                             jax.tree.leaves(state.d_params))) > 0
  assert_trees_equal(with_feat.features.variables, state.features.variables)
  diffs = jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), with_feat.g_params,
                                       without.g_params))
  assert max(diffs) > 0
  out, target = batch["image"], batch["image"][::-1]
  g_target = jax.grad(lambda t: feature_loss.feature_loss(state.features, out, t))(target)
  g_out = jax.grad(lambda o: feature_loss.feature_loss(state.features, o, target))(out)
  assert float(jnp.abs(g_target).max()) == 0.0 and float(jnp.abs(g_out).max()) > 0


def test_smoke_training_with_the_feature_loss(classifier_workdir, tmp_path):
  config = with_overrides(enhance_configs.get_config("smoke"), **{
      "train.feature_weight": 0.1, "train.feature_workdir": str(classifier_workdir)})
  result = i2i_train.train_and_evaluate(config, str(tmp_path / "sr"))
  assert result["step"] == config.train.num_steps and np.isfinite(result["psnr"])
  _, state = i2i_train.load_state(tmp_path / "sr")  # inference needs no classifier
  assert state.features is None


def test_missing_or_wrong_classifier_is_a_clear_error(classifier_workdir, tmp_path):
  with pytest.raises(UserError, match="feature_workdir='.*nothing' holds no classifier checkpoints"):
    feature_loss.load(str(tmp_path / "nothing"), 1)
  with pytest.raises(UserError, match="1-channel images but the generator makes 3-channel"):
    feature_loss.load(str(classifier_workdir), 3)
  sr = enhance_configs.get_config("smoke")
  i2i_train.train_and_evaluate(sr, str(tmp_path / "sr"))
  with pytest.raises(UserError, match="holds a 'enhance' run, not a classifier"):
    feature_loss.load(str(tmp_path / "sr"), 1)
  with pytest.raises(UserError, match="needs config.train.feature_workdir"):
    i2i_train.validate(with_overrides(enhance_configs.get_config("smoke"), **{"train.feature_weight": 1.0}), 1)


def test_step_without_the_classifier_says_so(classifier_workdir):
  state = _sr_state(classifier_workdir).replace(features=None)
  batch = {"image": jnp.zeros((8, 16, 16, 1))}
  with pytest.raises(ValueError, match=r"feature_weight=0.5 needs state.features"):
    i2i_steps.train_step(state, batch, feature_weight=0.5)
