"""SNGAN/BigGAN networks, spectral norm and EMA through pmap, jit and checkpoints; labelled sampling; explore."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT
from helpers import assert_trees_equal, labelled_batches, run_gan_steps, with_overrides
from test_main import run_main

from aigc_jax import models
from aigc_jax.core import parallel
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError
from aigc_jax.models import sngan as sngan_models
from aigc_jax.tasks.gan import steps, train
from configs import sngan

SMOKE = f"{ROOT}/configs/sngan.py:smoke"
# Everything at once, so one compilation per parallel mode covers it: conditioning, EMA, DiffAugment,
# lazy R1 (a lax.cond around collectives), several D steps (a scan).
COND = {"model.cond_mode": "projection", "train.r1_gamma": 1.0, "train.r1_every": 2, "train.d_steps": 2}


def smoke(**overrides):
  return with_overrides(sngan.get_config("smoke"), **overrides)


def _shapes(g, d, z_dim=16, res=32, labels=True):
  y = jnp.zeros((2,), jnp.int32) if labels else None
  kw = {"labels": y} if labels else {}
  gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((2, z_dim)), train=False, **kw))
  dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((2, res, res, 1)), train=False, **kw))
  img = jax.eval_shape(lambda v: g.apply(v, jnp.zeros((2, z_dim)), train=False, **kw), gv)
  out = jax.eval_shape(lambda v: d.apply(v, jnp.zeros((2, res, res, 1)), train=False, **kw), dv)
  return gv, dv, img, out


@pytest.mark.parametrize("res", [32, 64])
def test_networks_for_both_resolutions_and_condition_modes(res):
  for mode in ("none", "projection", "acgan"):
    cfg = smoke(**{"model.cond_mode": mode})
    g, d = models.create(cfg.model, (res, res, 1))
    gv, dv, img, out = _shapes(g, d, cfg.model.z_dim, res, labels=mode != "none")
    assert img.shape == (2, res, res, 1) and img.dtype == jnp.float32
    if mode == "acgan":
      assert out[0].shape == (2,) and out[1].shape == (2, 10)
    else:
      assert out.shape == (2,)
    assert ("projection" in dv["params"]) == (mode == "projection")
    # Spectral norm on every D layer: one (u, sigma) pair per weight matrix in batch_stats.
    n_kernels = sum(1 for p, _ in jax.tree_util.tree_leaves_with_path(dv["params"]) if "kernel" in str(p))
    n_sigmas = sum(1 for p, _ in jax.tree_util.tree_leaves_with_path(dv["batch_stats"]) if "sigma" in str(p))
    assert n_sigmas == n_kernels
    assert ("cbn1" in gv["params"]["block0"]) and (("gamma" in gv["params"]["block0"]["cbn1"]) == (mode != "none"))


def test_biggan_options():
  cfg = smoke(**{"model.name": "biggan", "model.cond_mode": "projection", "model.attention_res": 16})
  g, d = models.create(cfg.model, (32, 32, 1))
  gv, dv, img, out = _shapes(g, d, cfg.model.z_dim)
  assert "shared_embed" in gv["params"] and "attention" in gv["params"] and "attention" in dv["params"]
  # Hierarchical z: the first of 4 chunks of z=128 feeds the projection; the others, with the
  # shared embedding (32), each block's conditional BatchNorm.
  assert gv["params"]["project"]["kernel"].shape[0] == 32
  assert gv["params"]["block0"]["cbn1"]["gamma"]["kernel"].shape[0] == 32 + 32
  assert any("sigma" in str(p) for p, _ in jax.tree_util.tree_leaves_with_path(gv["batch_stats"]))
  with pytest.raises(UserError, match="config.model.cond_mode='aux' is not one of none, projection, acgan"):
    models.create(with_overrides(cfg, **{"model.cond_mode": "aux"}).model, (32, 32, 1))


def test_spectral_norm_state_converges_to_the_top_singular_value():
  d = sngan_models.Discriminator(resolution=32, channels=1, features=4)
  v = d.init(jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 1)), train=False)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 32, 32, 1))
  apply = jax.jit(lambda v: d.apply(v, x, train=True, mutable=["batch_stats"])[1]["batch_stats"])
  stats = v["batch_stats"]
  for _ in range(30):
    stats = apply({"params": v["params"], "batch_stats": stats})
  kernel = np.asarray(v["params"]["block1"]["conv1"]["kernel"])
  top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
  sigma = float(stats["block1"]["conv1_sn"]["conv1/kernel/sigma"])
  np.testing.assert_allclose(sigma, top, rtol=1e-3)
  # Evaluation leaves the state alone.
  _, upd = d.apply({"params": v["params"], "batch_stats": stats}, x, train=False, mutable=["batch_stats"])
  assert_trees_equal(upd["batch_stats"], stats)


def _batches(n, batch_size=16):
  return labelled_batches(n, batch_size)


def _run(mode, batches):
  return run_gan_steps(smoke(**COND), mode, batches)


@pytest.fixture(scope="module")
def reference():
  return _run(None, _batches(2))


@pytest.mark.parametrize("mode", parallel.MODES)
def test_parallel_step_with_spectral_norm_and_ema_equals_single_device(reference, mode):
  ref_state, ref_metrics = reference
  state, metrics = _run(mode, _batches(2))
  assert "ema_params" in state and "d_r1" in metrics and "g_loss" in metrics
  # Power-iteration vectors moved, and the average is neither the initial nor the current G.
  assert_trees_equal(state, ref_state, rtol=2e-4, atol=2e-5)
  for k in ref_metrics:
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-3, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A 4-step conditional SNGAN run (pmap over 4 devices) with checkpoints at steps 2 and 4."""
  workdir = tmp_path_factory.mktemp("sngan") / "run"
  config = smoke(**{"model.cond_mode": "projection"})
  return config, workdir, train.train_and_evaluate(config, str(workdir))


def test_checkpoints_hold_spectral_norm_state_and_ema(trained):
  """What the step changed (power-iteration vectors, the average) is what is saved; resuming from
  restored arrays is model-independent and covered by test_checkpoint.py."""
  config, workdir, final = trained
  init = train.build_state(config)
  assert "ema_params" in final.arrays
  saved = Checkpoints(workdir / "checkpoints").restore(4, init.arrays)
  assert_trees_equal(saved, final.arrays)
  u = lambda s: s["d_stats"]["block1"]["conv1_sn"]["conv1/kernel/u"]
  assert not np.allclose(u(saved), u(init.arrays))
  assert not np.allclose(saved["ema_params"]["project"]["kernel"], saved["g_params"]["project"]["kernel"])
  assert not np.allclose(saved["ema_params"]["project"]["kernel"], init.arrays["g_params"]["project"]["kernel"])
  assert sorted(p.name for p in (workdir / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]


def test_sampling_uses_the_ema_weights_and_labels(trained):
  _, _, final = trained
  z = jax.random.normal(jax.random.PRNGKey(0), (10, final.z_dim))
  y = jnp.arange(10) % 10
  out = steps.sample_step(final, z, y)
  np.testing.assert_allclose(out, steps.generate(final, z, False, y, params=final.ema_params)[0], atol=1e-6)
  assert not np.allclose(out, steps.sample_step(final.replace(ema_params=None), z, y), atol=1e-4)
  assert not np.allclose(out, steps.sample_step(final, z, (y + 1) % 10), atol=1e-4)
  np.testing.assert_allclose(steps.sample_step(final, z), out, atol=1e-6)  # default labels: classes in turn


def test_main_sample_with_labels_and_explore(trained, tmp_path):
  _, workdir, _ = trained
  args = ["--config", SMOKE, "--config.model.cond_mode=projection", "--workdir", str(workdir)]
  r = run_main("--mode=sample", *args, "--num_samples", "6", "--labels", "3,7", "--output", str(tmp_path / "s.npz"))
  assert r.returncode == 0, r.stderr[-3000:]
  with np.load(tmp_path / "s.npz") as f:
    assert f["images"].shape == (6, 32, 32, 1) and f["labels"].tolist() == [3, 7, 3, 7, 3, 7]
  r = run_main("--mode=explore", *args, "--output", str(tmp_path / "ex"))
  assert r.returncode == 0, r.stderr[-3000:]
  names = sorted(p.name for p in (tmp_path / "ex").iterdir())
  assert names == ["classes.png", "explore.json", "interpolations.png", "nearest.png", "saliency.png"]
  summary = json.loads((tmp_path / "ex" / "explore.json").read_text())
  assert summary["nearest"]["space"] == "pixels" and summary["ema"] and summary["step"] == 4
  assert summary["saliency_columns"] == ["image", "input", "block0", "block1", "block2", "block3"]
  r = run_main("--mode=sample", *args, "--labels", "12", "--output", str(tmp_path / "bad.npz"))
  assert r.returncode == 2 and "--labels=12 must be class ids in 0..9" in r.stderr
  assert not (tmp_path / "bad.npz").exists()


@pytest.mark.parametrize("override,message", [
    ("--config.train.loss=wasserstein", "config.train.loss='wasserstein' is not one of"),
    ("--config.augment.policy=color,flip", "unknown augmentation 'flip'"),
    ("--config.data.fraction=0", "config.data.fraction=0.0 must be in (0, 1]"),
    ("--config.model.cond_mode=acgan --config.model.num_classes=1", "config.model.num_classes=1 must be at least 2"),
])
def test_bad_beyond_config_is_one_line_error_and_writes_nothing(tmp_path, override, message):
  w = tmp_path / "w"
  r = run_main("--config", SMOKE, *override.split(), "--workdir", str(w))
  assert r.returncode == 2
  errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
  assert errors and message in errors[0], r.stderr[-3000:]
  assert not w.exists()
