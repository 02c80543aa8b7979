"""The conditional DCGAN with the R3GAN objective and ADA: networks, pmap/jit equality, bit-exact resume,
sampling with --labels."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT
from helpers import assert_trees_equal, labelled_batches, run_gan_steps, smoke_config, with_overrides
from test_main import run_main

from aigc_jax import models
from aigc_jax.core import parallel
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.tasks.gan import train
from configs import dcgan

SMOKE = f"{ROOT}/configs/dcgan.py:smoke"
# Everything at once, so one compilation per parallel mode covers it: conditional BN and projection,
# the pairing loss with R1 and R2, ADA over DiffAugment's transforms (p moves every 2 steps), 2 D steps.
R3_ADA = {"model.cond_mode": "projection", "model.class_embed_dim": 4, "train.loss": "relativistic", "train.r1_gamma": 0.1,
          "train.r2_gamma": 0.1, "train.d_steps": 2, "augment.policy": "translation,cutout",
          "augment.ada_target": 0.01, "augment.ada_interval": 2, "augment.ada_kimg": 0.1, "train.ema_decay": 0.9}


@pytest.mark.parametrize("mode", ["projection", "acgan"])
@pytest.mark.parametrize("res", [32, 64])
def test_conditional_networks(mode, res):
  cfg = smoke_config(**{"model.cond_mode": mode})
  g, d = models.create(cfg.model, (res, res, 1))
  y = jnp.array([0, 3])
  gv = g.init(jax.random.PRNGKey(0), jnp.zeros((2, cfg.model.z_dim)), labels=y, train=False)
  dv = d.init(jax.random.PRNGKey(1), jnp.zeros((2, res, res, 1)), labels=y, train=False)
  assert "cbn0" in gv["params"] and "bn0" not in gv["params"]
  assert gv["params"]["cbn0"]["gamma"]["embedding"].shape == (10, res)
  z = jax.random.normal(jax.random.PRNGKey(2), (2, cfg.model.z_dim))
  a = g.apply(gv, z, labels=y, train=False)
  assert a.shape == (2, res, res, 1)
  # Labels reach G: another class, another image for the same z, once the class embeddings differ.
  params = jax.tree.map(lambda p: p, gv["params"])
  params["cbn0"]["beta"]["embedding"] = jax.random.normal(jax.random.PRNGKey(3), (10, params["cbn0"]["beta"]
                                                                                   ["embedding"].shape[1]))
  gv2 = {**gv, "params": params}
  assert not np.allclose(g.apply(gv2, z, labels=y, train=False), g.apply(gv2, z, labels=y + 1, train=False))
  out = d.apply(dv, a, labels=y, train=False)
  if mode == "acgan":
    assert out[0].shape == (2,) and out[1].shape == (2, 10) and "classes" in dv["params"]
  else:
    assert out.shape == (2,) and dv["params"]["projection"]["embed"]["kernel"].shape[0] == 10
    # The class term starts small (embedding N(0, 0.02)) and depends on the label.
    assert not np.allclose(out, d.apply(dv, a, labels=y + 1, train=False))
    # The feature probe calls D without labels: the unconditional logit and the same features.
    logits, feats = d.apply(dv, a, train=False, return_features=True)
    assert logits.shape == (2,) and len(feats) == res.bit_length() - 3


def test_class_embedding_is_concatenated_to_z():
  cfg = smoke_config(**{"model.cond_mode": "projection", "model.class_embed_dim": 6})
  g, _ = models.create(cfg.model, (32, 32, 1))
  gv = g.init(jax.random.PRNGKey(0), jnp.zeros((2, 100)), labels=jnp.array([0, 1]), train=False)
  assert gv["params"]["class_embed"]["embedding"].shape == (10, 6)
  assert gv["params"]["project"]["kernel"].shape[0] == 100 + 6
  norms = np.linalg.norm(gv["params"]["class_embed"]["embedding"], axis=1)
  assert 0.3 < norms.mean() < 2.0  # about unit norm, like a one-hot label
  # Unconditional: no embedding, whatever the key says.
  g, _ = models.create(with_overrides(cfg, **{"model.cond_mode": "none"}).model, (32, 32, 1))
  assert "class_embed" not in g.init(jax.random.PRNGKey(0), jnp.zeros((2, 100)), train=False)["params"]


def test_unconditional_dcgan_is_unchanged():
  g, d = models.create(smoke_config().model, (32, 32, 1))
  gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((2, 100)), train=False))
  dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 1)), train=False))
  assert sorted(gv["params"]) == ["bn0", "bn1", "bn2", "project", "up1", "up2", "up3"]
  assert sorted(dv["params"]) == ["bn1", "bn2", "conv0", "conv1", "conv2", "logit"]


def _batches(n, batch_size=16):
  return labelled_batches(n, batch_size)


def _run(mode, batches):
  return run_gan_steps(smoke_config(**R3_ADA), mode, batches)


@pytest.fixture(scope="module")
def reference():
  return _run(None, _batches(4))


def test_single_device_step_reports_every_term_and_steps_p_in_units(reference):
  state, metrics = reference
  assert {"d_r1", "d_r2", "ada_sign", "ada_p", "g_loss", "d_loss"} <= set(metrics)
  assert set(state["ada"]) == {"p", "signs", "count"} and int(state["ada"]["count"]) == 0  # 4 steps: 2 intervals
  # Each adjustment moves p by 16 * 2 / 100 = 0.32 (or clamps it at 0).
  p = float(state["ada"]["p"])
  assert min(abs(p - k * 0.32) for k in range(3)) < 1e-6, p


@pytest.mark.parametrize("mode", parallel.MODES)
def test_parallel_step_equals_single_device(reference, mode):
  ref_state, ref_metrics = reference
  state, metrics = _run(mode, _batches(4))
  assert_trees_equal(state, ref_state, rtol=2e-4, atol=2e-5)
  for k in ref_metrics:
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-3, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A 6-step conditional R3GAN + ADA run (pmap over 4 devices) with checkpoints at steps 3 and 6."""
  workdir = tmp_path_factory.mktemp("dcgan_cond") / "run"
  config = smoke_config(**{**R3_ADA, "train.d_steps": 1})
  return config, workdir, train.train_and_evaluate(config, str(workdir))


def test_checkpoint_holds_ada_and_resume_is_bit_exact(trained, tmp_path):
  config, workdir, final = trained
  assert "ada" in final.arrays and "ema_params" in final.arrays
  assert_trees_equal(Checkpoints(workdir / "checkpoints").restore(6, train.build_state(config).arrays), final.arrays)
  partial = tmp_path / "w"
  shutil.copytree(workdir, partial)
  shutil.rmtree(partial / "checkpoints" / "6")  # as if the run had stopped after step 3
  resumed = train.train_and_evaluate(config, str(partial))
  assert_trees_equal(resumed.arrays, final.arrays)


def test_main_samples_the_asked_classes(trained, tmp_path):
  _, workdir, _ = trained
  args = ["--config", SMOKE, *[f"--config.{k}={v}" for k, v in {**R3_ADA, "train.d_steps": 1}.items()],
          "--workdir", str(workdir)]
  r = run_main("--mode=sample", *args, "--num_samples", "6", "--labels", "3,7", "--output", str(tmp_path / "s.npz"))
  assert r.returncode == 0, r.stderr[-3000:]
  with np.load(tmp_path / "s.npz") as f:
    assert f["images"].shape == (6, 32, 32, 1) and f["labels"].tolist() == [3, 7, 3, 7, 3, 7]
    # Same latents (seed 0), other classes: other images.
    images = f["images"]
  r = run_main("--mode=sample", *args, "--num_samples", "6", "--labels", "1", "--output", str(tmp_path / "t.npz"))
  assert r.returncode == 0, r.stderr[-3000:]
  with np.load(tmp_path / "t.npz") as f:
    assert not np.array_equal(f["images"], images)


@pytest.mark.parametrize("preset", ["cifar10_cond", "digits_cond", "files_cond"])
def test_conditional_presets_are_the_unconditional_ones_plus_projection(preset):
  cond, plain = dcgan.get_config(preset).to_dict(), dcgan.get_config(preset[:-len("_cond")]).to_dict()
  assert cond["model"].pop("cond_mode") == "projection" and plain["model"].pop("cond_mode") == "none"
  assert cond["model"].pop("class_embed_dim") == 32 and plain["model"].pop("class_embed_dim") == 0
  assert cond == plain
