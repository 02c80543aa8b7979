"""Sample-quality evaluation: extractors, metrics against cached real stats, the training hook, --mode=eval."""

import json

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from helpers import assert_trees_equal, smoke_config
from test_main import SMOKE, run_main

from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError
from aigc_jax.data.sources import digits_arrays, fit_images
from aigc_jax.metrics import evaluator, extractors
from aigc_jax.tasks.classifier import train as cls_train
from aigc_jax.tasks.gan import evaluation, train
from configs import classifier as classifier_configs


@pytest.fixture(scope="module")
def classifier_workdir(tmp_path_factory):
  """An untrained smoke classifier's checkpoint: a fixed random feature map is enough to tell digits from noise."""
  w = tmp_path_factory.mktemp("clf")
  config = classifier_configs.get_config("smoke")
  ckpt = Checkpoints(w / "checkpoints")
  ckpt.save(0, cls_train.build_state(config).arrays, config, force=True)
  ckpt.close()
  return w


def eval_config(classifier_workdir, cache_dir, **overrides):
  return smoke_config(**{"eval.num_samples": 64, "eval.batch_size": 32, "eval.kid_subset_size": 32,
                         "eval.kid_subsets": 5, "eval.real_split": "train[:200]", "eval.cache_dir": str(cache_dir),
                         "eval.classifier_workdir": str(classifier_workdir), **overrides})


def digits(start, stop):
  return fit_images(digits_arrays()[0][start:stop], 32, 1, True)


def test_classifier_extractor_batches_and_checks(classifier_workdir):
  ex = extractors.ClassifierExtractor(str(classifier_workdir), batch_size=16)
  images = digits(0, 37)  # not a multiple of the batch: padded, then cut
  feats, logits = ex(images)
  assert feats.shape == (37, ex.feature_dim) == (37, 32) and logits.shape == (37, 10)
  assert feats.dtype == logits.dtype == np.float32 and feats.std() > 0
  f5, l5 = ex(images[:5])
  np.testing.assert_allclose(f5, feats[:5], rtol=1e-5, atol=1e-6)
  assert ex.name.startswith("classifier-")
  assert ex.name == extractors.ClassifierExtractor(str(classifier_workdir)).name
  with pytest.raises(UserError, match="28x28x1 .*classifier takes 32x32x1"):
    ex(np.zeros((2, 28, 28, 1), np.uint8))
  with pytest.raises(UserError, match="no classifier checkpoints"):
    extractors.ClassifierExtractor(str(classifier_workdir / "missing"))


def test_from_config_errors(tmp_path):
  e = smoke_config().eval
  e.extractor = "inception"
  e.inception_weights = str(tmp_path / "nope.npz")
  with pytest.raises(UserError, match="inception_weights=.*nope.npz.* is not a file"):
    extractors.from_config(e)
  e.extractor = "vgg"
  with pytest.raises(UserError, match="extractor='vgg' is not one of classifier, inception"):
    extractors.from_config(e)


def test_metrics_separate_real_from_noise_and_real_stats_are_cached(classifier_workdir, tmp_path, monkeypatch):
  config = eval_config(classifier_workdir, tmp_path / "cache")
  ev = evaluator.Evaluator(config, log=lambda m: None)
  assert int(ev.real["count"]) == 200 and len(list((tmp_path / "cache").glob("stats_*.npz"))) == 1
  held_out = ev.evaluate(digits(1000, 1200))
  noise = ev.evaluate(np.random.default_rng(0).integers(0, 256, (200, 32, 32, 1), dtype=np.uint8))
  assert held_out["fid"] < noise["fid"] / 5 and held_out["kid"] < noise["kid"]
  assert held_out["precision"] > 0.5 and held_out["recall"] > 0.5 and noise["precision"] < 0.1
  for r in (held_out, noise):
    assert set(r) >= {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "classifier_is",
                      "confident", "real_confident", "class_tv", "class_hist"}
    assert 0 <= r["class_tv"] <= 1 and abs(sum(r["class_hist"]) - 1) < 1e-3 and r["classifier_is"] >= 1
  # A second evaluator reads the cached statistics instead of the data.
  monkeypatch.setattr(evaluator, "_real_batches", lambda *a: (_ for _ in ()).throw(AssertionError("recomputed")))
  again = evaluator.Evaluator(config, log=lambda m: None)
  np.testing.assert_array_equal(again.real["mu"], ev.real["mu"])
  assert again.evaluate(digits(1000, 1200))["fid"] == pytest.approx(held_out["fid"])


@pytest.mark.parametrize("overrides, match", [
    ({"eval.metrics": "fid,lpips"}, r"config.eval.metrics='fid,lpips' has unknown"),
    ({"eval.num_samples": 3}, r"num_samples=3 is too few; the metrics need at least 6"),
    ({"eval.extractor": "inception", "eval.metrics": "fid,classes"}, "'classes', which needs"),
    ({"eval.every": -1}, r"config.eval.every=-1"),
])
def test_bad_eval_config(classifier_workdir, tmp_path, overrides, match):
  with pytest.raises(UserError, match=match):
    evaluator.validate(eval_config(classifier_workdir, tmp_path, **overrides))


def _scalar_tags(workdir):
  acc = event_accumulator.EventAccumulator(str(workdir / "tensorboard"))
  acc.Reload()
  return set(acc.Tags()["tensors"])


@pytest.fixture(scope="module")
def trained(classifier_workdir, tmp_path_factory):
  """The smoke GAN trained with evaluation every 3 steps, and without; both final states."""
  root = tmp_path_factory.mktemp("gan")
  config = eval_config(classifier_workdir, root / "cache", **{"eval.every": 3})
  with_eval = train.train_and_evaluate(config, str(root / "with_eval"))
  without = train.train_and_evaluate(smoke_config(), str(root / "without"))
  return root / "with_eval", with_eval, without


def test_evaluation_does_not_change_training(trained):
  _, with_eval, without = trained
  assert_trees_equal(jax.device_get(with_eval.arrays), jax.device_get(without.arrays))


def test_training_hook_logs_metrics_and_keeps_best_checkpoint(trained, capsys):
  workdir = trained[0]
  records = [json.loads(line) for line in (workdir / "eval" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [3, 6]
  assert all(np.isfinite(r["fid"]) and r["num_samples"] == 64 for r in records)
  best_step = min(records, key=lambda r: r["fid"])["step"]
  assert Checkpoints(workdir / "best", read_only=True).latest_step() == best_step
  assert {"eval/fid", "eval/kid", "eval/precision", "eval/confident"} <= _scalar_tags(workdir)


def test_mode_eval_on_workdir_and_on_npz(trained, classifier_workdir, tmp_path):
  workdir = trained[0]
  flags = [f"--config.eval.{k}={v}" for k, v in (
      ("classifier_workdir", classifier_workdir), ("cache_dir", tmp_path / "cache"), ("num_samples", 48),
      ("batch_size", 16), ("kid_subset_size", 32), ("kid_subsets", 3), ("real_split", "train[:100]"))]
  r = run_main("--mode=eval", "--config", SMOKE, "--workdir", str(workdir), "--checkpoint", "best",
               "--output", str(tmp_path / "m.json"), *flags)
  assert r.returncode == 0, r.stderr[-3000:]
  lines = r.stdout.strip().splitlines()
  assert len(lines) == 1
  result = json.loads(lines[0])
  assert result["checkpoint"] == "best" and result["num_samples"] == 48 and result["num_real"] == 100
  assert np.isfinite(result["fid"]) and 0 <= result["precision"] <= 1
  assert json.loads((tmp_path / "m.json").read_text()) == result and (tmp_path / "m.png").exists()

  np.savez(tmp_path / "s.npz", images=digits(1000, 1040))
  r = run_main("--mode=eval", "--config", SMOKE, "--samples", str(tmp_path / "s.npz"), *flags)
  assert r.returncode == 0, r.stderr[-3000:]
  result = json.loads(r.stdout.strip())
  assert result["samples"].endswith("s.npz") and result["num_samples"] == 40


def _npz(path, images):
  np.savez(path, images=images)
  return str(path)


@pytest.mark.parametrize("case, match", [
    ("empty", "holds no images"),
    ("size", r"are 28x28x1 \(HxWxC\) but the dataset is 32x32x1"),
    ("channels", r"are 32x32x3 \(HxWxC\) but the dataset is 32x32x1"),
    ("no_images_key", "has no 'images' array"),
    ("classifier", "classifier_workdir=.* holds no classifier checkpoints"),
    ("inception", "inception_weights=.* is not a file"),
])
def test_eval_bad_inputs_are_user_errors(classifier_workdir, tmp_path, case, match):
  config = eval_config(classifier_workdir, tmp_path / "cache")
  samples = _npz(tmp_path / "ok.npz", digits(0, 20))
  if case == "empty":
    samples = _npz(tmp_path / "e.npz", np.zeros((0, 32, 32, 1), np.uint8))
  elif case == "size":
    samples = _npz(tmp_path / "s.npz", np.zeros((20, 28, 28, 1), np.uint8))
  elif case == "channels":
    samples = _npz(tmp_path / "c.npz", np.zeros((20, 32, 32, 3), np.uint8))
  elif case == "no_images_key":
    np.savez(tmp_path / "k.npz", pictures=np.zeros((20, 32, 32, 1), np.uint8))
    samples = str(tmp_path / "k.npz")
  elif case == "classifier":
    config.eval.classifier_workdir = str(tmp_path / "nothing")
  elif case == "inception":
    config.eval.extractor, config.eval.metrics = "inception", "fid"
  with pytest.raises(UserError, match=match):
    evaluation.run(config, None, samples=samples, output=str(tmp_path / "out.json"))
  assert not (tmp_path / "out.json").exists()


def test_eval_errors_from_the_command_line(tmp_path):
  np.savez(tmp_path / "e.npz", images=np.zeros((0, 32, 32, 1), np.uint8))
  r = run_main("--mode=eval", "--config", SMOKE, "--samples", str(tmp_path / "e.npz"), "--output",
               str(tmp_path / "out.json"), f"--config.eval.classifier_workdir={tmp_path / 'nothing'}")
  assert r.returncode == 2
  assert r.stderr.strip().splitlines()[-1] == f"error: --samples '{tmp_path / 'e.npz'}' holds no images"
  assert not (tmp_path / "out.json").exists()


def test_eval_of_a_workdir_without_checkpoints(tmp_path):
  for checkpoint, hint in (("latest", "train first"), ("best", "eval.every")):
    with pytest.raises(UserError, match=f"no checkpoint in .*{hint}"):
      evaluation.run(smoke_config(), str(tmp_path / "none"), checkpoint=checkpoint)
  assert not (tmp_path / "none").exists()


def test_eval_of_real_images_as_a_reference(classifier_workdir, tmp_path, capsys):
  config = eval_config(classifier_workdir, tmp_path / "cache")
  result = evaluation.run(config, None, samples="data:train[1000:]")
  assert json.loads(capsys.readouterr().out.strip()) == result
  assert result["num_samples"] == config.eval.num_samples == 64 and result["samples"] == "data:train[1000:]"
  np.testing.assert_array_equal(evaluator.read_samples("data:train[1000:]", config), digits(1000, 1064))


def test_two_processes_evaluate_together_and_only_process_0_writes(classifier_workdir, tmp_path):
  from test_multihost import Run, run_together

  run = Run(tmp_path, "eval2", processes=2, cache=tmp_path / "xla_cache", modes=("jit",))
  for cmd, _ in run.commands:
    cmd += ["eval.every=3", "eval.num_samples=32", "eval.batch_size=16", "eval.kid_subset_size=16",
            "eval.kid_subsets=2", "eval.real_split=train[:100]", f"eval.cache_dir={tmp_path / 'cache'}",
            f"eval.classifier_workdir={classifier_workdir}"]
  run_together(run)
  workdir = run.workdir / "jit"
  assert [json.loads(line)["step"] for line in (workdir / "eval" / "metrics.jsonl").read_text().splitlines()] == [3, 6]
  assert Checkpoints(workdir / "best", read_only=True).latest_step() in (3, 6)
  assert "eval step 6 |" in run.output(0) and "eval step" not in run.output(1)
  assert_trees_equal(run.final("jit", 0), run.final("jit", 1))


def test_inception_extractor_is_loaded_lazily_and_gets_rgb(classifier_workdir, tmp_path, monkeypatch):
  """The Inception module is imported only for extractor=inception; grey images reach it as RGB."""
  import types

  seen = []

  class FakeInception:
    name, feature_dim, num_classes = "fake-inception", 6, 4

    def __init__(self, weights_path, batch_size=50):
      self.weights_path = weights_path

    def __call__(self, images):
      seen.append(images.shape)
      x = images.reshape(len(images), -1).astype(np.float32)
      feats = np.stack([x.mean(1), x.std(1), x[:, ::7].mean(1), x[:, ::5].mean(1), x.max(1), x[:, ::3].std(1)], 1)
      return feats, feats[:, :4]

  module = types.SimpleNamespace(InceptionExtractor=FakeInception)
  monkeypatch.setattr(extractors, "inception", module)
  (tmp_path / "w.npz").write_bytes(b"weights")
  config = eval_config(classifier_workdir, tmp_path / "cache", **{
      "eval.extractor": "inception", "eval.inception_weights": str(tmp_path / "w.npz"), "eval.metrics": "fid,kid,is"})
  result = evaluator.Evaluator(config, log=lambda m: None).evaluate(digits(1000, 1064))
  assert result["extractor"] == "fake-inception" and {"fid", "kid", "is", "is_std"} <= set(result)
  assert "classifier_is" not in result and seen and all(s[1:] == (32, 32, 3) for s in seen)
