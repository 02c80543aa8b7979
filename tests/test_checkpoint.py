"""Resume equals an uninterrupted run; incompatible configs and damaged checkpoints are refused clearly."""

import os
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import ROOT
from helpers import assert_trees_equal, smoke_config

from aigc_jax.core.checkpoint import (
  IGNORED_KEYS,
  RESUME_KEYS,
  Checkpoints,
  flatten,
  incompatible_keys,
)
from aigc_jax.core.errors import UserError
from aigc_jax.tasks.classifier import train as cls_train
from aigc_jax.tasks.gan import state as gan_state
from aigc_jax.tasks.gan import train
from aigc_jax.tasks.image2image import train as i2i_train


def _snapshot(path):
  return sorted((p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                for p in path.rglob("*"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A 6-step run with checkpoints at steps 3 and 6."""
  workdir = tmp_path_factory.mktemp("run")
  config = smoke_config()
  final = train.train_and_evaluate(config, str(workdir))
  return config, workdir, final


def test_run_writes_checkpoints_config_events_and_samples(trained):
  config, workdir, final = trained
  assert int(final.step) == 6
  assert Checkpoints(workdir / "checkpoints").latest_step() == 6
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["3", "6"]
  assert (workdir / "config.json").exists()
  assert any(p.name.startswith("events.out.tfevents") for p in (workdir / "tensorboard").iterdir())
  assert sorted(p.name for p in (workdir / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]


def test_resume_from_step_k_equals_uninterrupted_run(trained, tmp_path):
  config, workdir, final = trained
  partial = tmp_path / "w"
  shutil.copytree(workdir, partial)
  shutil.rmtree(partial / "checkpoints" / "6")  # as if the run had stopped after step 3
  resumed = train.train_and_evaluate(config, str(partial))
  assert_trees_equal(resumed.arrays, final.arrays)


def test_stop_after_ends_early_with_a_checkpoint_and_the_rest_resumes_to_the_same_result(trained, tmp_path):
  config, _, final = trained
  asked = []
  early = train.train_and_evaluate(config, str(tmp_path), stop_after=lambda step: asked.append(step) or step == 2)
  assert int(early.step) == 2 and asked == [1, 2]
  assert Checkpoints(tmp_path / "checkpoints").latest_step() == 2
  resumed = train.train_and_evaluate(config, str(tmp_path))
  assert_trees_equal(resumed.arrays, final.arrays)


def test_finished_run_restarts_as_a_no_op(trained, tmp_path):
  config, workdir, final = trained
  copy = tmp_path / "w"
  shutil.copytree(workdir, copy)
  again = train.train_and_evaluate(config, str(copy))
  assert_trees_equal(again.arrays, final.arrays)


def test_incompatible_config_is_refused_and_nothing_changes(trained):
  config, workdir, _ = trained
  before = _snapshot(workdir)
  bad = smoke_config(**{"model.g_features": 16})
  with pytest.raises(UserError, match=r"incompatible config \(model.g_features: 8 -> 16\)"):
    train.train_and_evaluate(bad, str(workdir))
  assert _snapshot(workdir) == before


def test_compatible_changes_are_allowed():
  saved = smoke_config().to_dict()
  assert incompatible_keys(saved, smoke_config(**{"optim.g_lr": 1e-3, "train.num_steps": 99}).to_dict()) == []
  assert incompatible_keys(saved, smoke_config(**{"data.resolution": 64, "seed": 1}).to_dict()) == [
      "data.resolution", "seed"]


# Keys added to configs/default.py after the first checkpoints were written.
LATER_KEYS = ("model.cond_mode", "model.num_classes", "model.spectral_norm", "model.attention_res",
              "model.shared_dim", "model.dtype", "train.ema_decay")


def test_checkpoint_from_before_a_key_existed_resumes_as_the_default(trained, tmp_path):
  config, workdir, final = trained
  old = tmp_path / "w"
  shutil.copytree(workdir, old)
  shutil.rmtree(old / "checkpoints" / "6")
  old_config = smoke_config()
  for key in LATER_KEYS:
    section, leaf = key.split(".")
    del old_config[section][leaf]
  ckpt = Checkpoints(old / "checkpoints")
  ckpt.save(6, final.arrays, old_config, force=True)
  ckpt.close()
  assert not set(LATER_KEYS) & {f"{s}.{k}" for s, v in ckpt.saved_config(6).items() if isinstance(v, dict)
                                for k in v}
  again = train.train_and_evaluate(config, str(old))
  assert_trees_equal(again.arrays, final.arrays)
  with pytest.raises(UserError, match=r"model.dtype: 'float32' \(the default; the checkpoint predates the key\) "
                                      r"-> 'bfloat16'"):
    Checkpoints(old / "checkpoints").check_compatible(smoke_config(**{"model.dtype": "bfloat16"}),
                                                       gan_state.RESUME_DEFAULTS)
  assert incompatible_keys(ckpt.saved_config(6), smoke_config(**{"train.ema_decay": 0.999}).to_dict(),
                          gan_state.RESUME_DEFAULTS) == [
      "train.ema_decay"]


def test_other_tasks_take_defaults_only_outside_their_own_model_and_optim():
  from configs import classifier

  now = classifier.get_config("smoke").to_dict()
  saved = classifier.get_config("smoke").to_dict()
  del saved["train"]["ema_decay"], saved["model"]["num_classes"]
  # train.* comes from configs/default.py for every task; a classifier's model.* does not.
  assert incompatible_keys(saved, now, cls_train.RESUME_DEFAULTS) == ["model.num_classes"]


def test_resume_defaults_are_the_defaults_of_configs_default():
  """What each task passes for keys an old checkpoint lacks is what configs/default.py says today."""
  from configs import default

  flat = flatten(default.get_config().to_dict())
  for defaults in (gan_state.RESUME_DEFAULTS, cls_train.RESUME_DEFAULTS, i2i_train.RESUME_DEFAULTS):
    assert {k: flat[k] for k in defaults} == defaults
  resume = {k for k in flat if any(k == p or k.startswith(p + ".") for p in RESUME_KEYS)} - set(IGNORED_KEYS)
  assert set(gan_state.RESUME_DEFAULTS) == resume


def test_damaged_checkpoint_is_reported(trained, tmp_path):
  config, workdir, _ = trained
  copy = tmp_path / "w"
  shutil.copytree(workdir, copy)
  state_dir = copy / "checkpoints" / "6" / "state"
  for p in state_dir.rglob("*"):
    if p.is_file() and "manifest" in p.name:
      p.unlink()
  with pytest.raises(UserError, match=r"checkpoint step 6 .* is unreadable or incomplete") as e:
    train.train_and_evaluate(config, str(copy))
  assert "\n" not in str(e.value)


def test_unfinished_temporary_checkpoint_is_ignored(trained, tmp_path):
  config, workdir, final = trained
  copy = tmp_path / "w"
  shutil.copytree(workdir, copy)
  shutil.rmtree(copy / "checkpoints" / "6")
  (copy / "checkpoints" / "6.orbax-checkpoint-tmp-123").mkdir()  # a save killed mid-write
  assert Checkpoints(copy / "checkpoints").latest_step() == 3


def test_sigterm_saves_and_the_same_command_resumes_to_the_same_result(tmp_path):
  """A preempted run: SIGTERM mid-training, then the same command again."""
  steps = 400
  args = [sys.executable, str(ROOT / "main.py"), "--config", f"{ROOT}/configs/dcgan.py:smoke",
          f"--config.train.num_steps={steps}", "--config.train.log_every=1", "--config.train.sample_every=1000",
          "--config.train.checkpoint_every=1000", "--config.train.parallel=jit"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  full = subprocess.run(args + [f"--workdir={tmp_path / 'full'}"], env=env, capture_output=True, text=True,
                        timeout=600)
  assert full.returncode == 0, full.stderr[-2000:]

  proc = subprocess.Popen(args + [f"--workdir={tmp_path / 'cut'}"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    for line in proc.stdout:
      if line.startswith("step 20/"):
        proc.send_signal(signal.SIGTERM)
        break
    _, err = proc.communicate(timeout=300)
  finally:
    proc.kill()
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  assert "interrupted by SIGTERM" in err
  stopped = Checkpoints(tmp_path / "cut" / "checkpoints").latest_step()
  assert 20 <= stopped < steps

  again = subprocess.run(args + [f"--workdir={tmp_path / 'cut'}"], env=env, capture_output=True, text=True,
                         timeout=600)
  assert again.returncode == 0, again.stderr[-2000:]
  assert f"resumed from step {stopped}" in again.stdout

  config = smoke_config(**{"train.num_steps": steps, "train.parallel": "jit"})
  template = train.build_state(config).arrays
  a = Checkpoints(tmp_path / "full" / "checkpoints").restore(steps, template)
  b = Checkpoints(tmp_path / "cut" / "checkpoints").restore(steps, template)
  assert_trees_equal(a, b)


def test_training_stops_on_nan_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  import jax.numpy as jnp

  from aigc_jax.tasks.gan import steps

  real_step = steps.train_step

  def diverging_step(state, batch, **kw):
    new, metrics = real_step(state, batch, **kw)
    metrics["d_loss"] = jnp.where(state.step >= 4, jnp.nan, metrics["d_loss"])
    return new, metrics

  monkeypatch.setattr(steps, "train_step", diverging_step)
  with pytest.raises(FloatingPointError, match="non-finite metrics at step 6"):
    train.train_and_evaluate(smoke_config(), str(tmp_path))
  assert Checkpoints(tmp_path / "checkpoints").latest_step() == 3


def test_layer_formulations_do_not_block_resuming():
  """conv_impl changes how layers compute, not their parameters; so did the model.upconv_impl /
  model.downconv_impl keys it replaced, which checkpoints of older code still hold."""
  saved = smoke_config().to_dict()
  del saved["conv_impl"]
  assert incompatible_keys(saved, smoke_config(conv_impl="xla").to_dict()) == []
  saved["model"]["upconv_impl"] = "fast"  # older code
  assert incompatible_keys(saved, smoke_config().to_dict()) == []
  saved["model"]["downconv_impl"] = "xla"
  assert incompatible_keys(saved, smoke_config(conv_impl="cpu").to_dict()) == []
  assert incompatible_keys(saved, smoke_config(**{"model.d_features": 16}).to_dict()) == ["model.d_features"]
