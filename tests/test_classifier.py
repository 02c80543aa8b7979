"""The in-domain classifier: model, pure step, data splits, training loop, predict and its bad inputs."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED_MNIST
from helpers import assert_trees_equal, with_overrides
from PIL import Image

from aigc_jax import data
from aigc_jax.core import parallel
from aigc_jax.core.errors import UserError
from aigc_jax.data.sources import digits_arrays, split_slice
from aigc_jax.models.classifier import Classifier
from aigc_jax.tasks.classifier import predict as cls_predict
from aigc_jax.tasks.classifier import steps as cls_steps
from aigc_jax.tasks.classifier import train as cls_train
from configs import classifier as classifier_configs


def smoke(**overrides):
  return with_overrides(classifier_configs.get_config("smoke"), **overrides)


def _digit_images(n, size=32):
  images, labels = digits_arrays()
  return data.fit_images(images[:n], size, 1, True), labels[:n]


@pytest.mark.parametrize("channels", [1, 3])
def test_model_logits_and_features(channels):
  model = Classifier(num_classes=7, widths=(8, 16, 32))
  x = jnp.zeros((5, 32, 32, channels))
  with jax.threefry_partitionable(False):  # as train.build_state: compiles several times faster
    variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(0), x, train=False))(x)
  assert set(variables) == {"params", "batch_stats"}
  logits, feats = jax.jit(lambda v, x: (model.apply(v, x, train=False), model.apply(v, x, method="features")))(
      variables, x)
  assert logits.shape == (5, 7) and feats.shape == (5, 32)
  head = variables["params"]["head"]
  np.testing.assert_allclose(logits, feats @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-5)


def test_presets_and_unknown_preset():
  for preset in classifier_configs.PRESETS:
    config = classifier_configs.get_config(preset)
    assert config.task == "classifier" and "loss" not in config.train
    cls_train.validate(config, 4)
  mnist = classifier_configs.get_config("mnist")
  assert (mnist.data.split, mnist.data.test_split) == ("train[:8000]", "train[8000:]")
  with pytest.raises(ValueError, match="unknown preset 'nope'"):
    classifier_configs.get_config("nope")


def _fixed_batch(n=16):
  images, labels = _digit_images(n)
  return {"image": images.astype(np.float32) / 127.5 - 1, "label": labels.astype(np.int32)}


def test_train_step_lowers_the_loss_on_a_fixed_batch_and_is_deterministic():
  config = smoke(**{"optim.schedule": "constant", "optim.lr": 3e-3})
  state, batch = cls_train.build_state(config), _fixed_batch()
  step = jax.jit(lambda s, b: cls_steps.train_step(s, b, label_smoothing=0.1, augment_shift=2))
  a, ma = step(state, batch)
  b, mb = step(state, batch)
  assert_trees_equal(a.arrays, b.arrays)
  assert_trees_equal(ma, mb)
  assert set(ma) == {"loss", "accuracy", "grad_norm"} and int(a.step) == 1
  state = a
  for _ in range(19):
    state, metrics = step(state, batch)
  assert float(metrics["loss"]) < float(ma["loss"]) - 0.3


def test_pmap_steps_equal_single_device_steps():
  """The jit-sharded steps are exercised end to end below; pmap's axis plumbing is the one to check here."""
  mode, config, batch = "pmap", smoke(), _fixed_batch()
  kw = {"label_smoothing": 0.1, "augment_shift": 2}
  ref = initial = cls_train.build_state(config)
  single = jax.jit(lambda s, b: cls_steps.train_step(s, b, **kw))
  for _ in range(2):
    ref, ref_metrics = single(ref, batch)
  dp = parallel.DataParallel(mode)
  dstate = dp.put_state(initial.replace(model=initial.model.clone(bn_axis_name=parallel.bn_axis_name(mode))))
  step = dp.step(cls_steps.train_step, **kw)
  for _ in range(2):
    dstate, metrics = step(dstate, dp.put_batch(batch))
  assert_trees_equal(dp.get_state(dstate.arrays), jax.device_get(ref.arrays), rtol=2e-5, atol=2e-6)
  for k, v in dp.get_metrics(metrics).items():
    np.testing.assert_allclose(v, float(ref_metrics[k]), rtol=1e-4, atol=1e-6)
  masked = {**batch, "mask": np.arange(16) < 11}
  _, sums = dp.step(cls_steps.eval_for_parallel, donate=False)(dstate, dp.put_batch(masked))
  ref_sums = jax.jit(cls_steps.eval_step)(ref, masked)
  assert dp.get_metrics(sums)["count"] == 11
  for k, v in dp.get_metrics(sums).items():
    np.testing.assert_allclose(v, float(ref_sums[k]), rtol=1e-4, atol=1e-5)


def test_random_shift_moves_images_within_bounds():
  images = jnp.arange(2 * 6 * 6, dtype=jnp.float32).reshape(2, 6, 6, 1)
  assert_trees_equal(cls_steps.random_shift(jax.random.PRNGKey(0), images, 0), images)
  shifted = cls_steps.random_shift(jax.random.PRNGKey(1), images, 2)
  assert shifted.shape == images.shape and not np.array_equal(shifted, images)
  assert set(np.unique(shifted)) <= set(np.unique(images))


@pytest.mark.parametrize("split,expected", [
    ("train", slice(None, None)), ("", slice(None, None)), ("train[:8000]", slice(None, 8000)),
    ("train[8000:]", slice(8000, None)), ("[-20%:]", slice(-2000, None)), ("train[10%:25%]", slice(1000, 2500)),
])
def test_split_slices(split, expected):
  assert split_slice(split, 10_000) == expected


@pytest.mark.parametrize("split,match", [
    ("test", "has one split, 'train'"), ("train[a:]", "'a' is not an index"), ("train[5:5]", "selects none"),
    ("train[:8000", "has one split"),
])
def test_bad_splits(split, match):
  with pytest.raises(UserError, match=match) as e:
    split_slice(split, 10_000)
  assert "\n" not in str(e.value)


def test_train_and_test_splits_are_disjoint_and_complete():
  cfg = smoke().data
  train, test = data.load(cfg, seed=0), data.load(cfg, seed=0, split_key="test_split")
  assert (train.num_examples, test.num_examples, train.num_classes, test.num_classes) == (1500, 297, 10, 10)
  got = np.concatenate([s.images for s in (train, test)])
  np.testing.assert_array_equal(got, data.fit_images(digits_arrays()[0], 32, 1, True))
  cfg.test_split = "validation"
  with pytest.raises(UserError, match="config.data.test_split='validation'"):
    data.load(cfg, seed=0, split_key="test_split")


def test_eval_batches_are_one_padded_ordered_pass():
  cfg = smoke(**{"data.test_split": "train[:10]"}).data
  source = data.load(cfg, seed=0, split_key="test_split")
  batches = list(data.eval_batches(source, cfg, batch_size=4))
  assert [b["image"].shape[0] for b in batches] == [4, 4, 4]
  assert [int(b["mask"].sum()) for b in batches] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches])[:10], digits_arrays()[1][:10])


def _check_metrics(workdir, steps, examples):
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert metrics["step"] == steps[-1] and metrics["test_examples"] == examples
  assert 0 <= metrics["test_accuracy"] <= 1 and np.isfinite(metrics["test_loss"])
  assert [h["step"] for h in metrics["history"]] == steps
  assert (workdir / "checkpoints" / str(steps[-1])).is_dir()
  assert list((workdir / "tensorboard").glob("events.out.tfevents*"))
  return metrics


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """The smoke preset trained on the digits: 4 steps, jit-sharded over 4 devices (compiles faster than pmap)."""
  workdir = tmp_path_factory.mktemp("classifier") / "run"
  result = cls_train.train_and_evaluate(smoke(**{"train.parallel": "jit"}), str(workdir))
  assert result["test_examples"] == 297
  return workdir


def test_training_writes_checkpoints_and_metrics_and_resumes(trained, capsys):
  _check_metrics(trained, [2, 4], 297)
  cls_train.train_and_evaluate(smoke(**{"train.num_steps": 6, "train.parallel": "jit"}), str(trained))
  assert "resumed from step 4" in capsys.readouterr().out
  _check_metrics(trained, [2, 4, 6], 297)
  with pytest.raises(UserError, match="incompatible config.*model.width"):
    cls_train.train_and_evaluate(smoke(**{"model.width": 8}), str(trained))


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="shared MNIST not present")
def test_a_few_steps_on_shared_mnist(tmp_path):
  config = smoke(**{"data.source": "files", "data.path": str(SHARED_MNIST), "data.split": "train[:512]",
                    "data.test_split": "train[-100:]", "train.parallel": "jit"})
  result = cls_train.train_and_evaluate(config, str(tmp_path))
  assert result["test_examples"] == 100
  metrics = _check_metrics(tmp_path, [2, 4], 100)
  assert metrics["train_split"] == "train[:512]" and metrics["test_split"] == "train[-100:]"


def test_predict_npz_to_csv_json_and_stdout(trained, tmp_path, capsys):
  images, _ = _digit_images(5, size=28)
  np.savez(tmp_path / "x.npz", images=images[..., 0])
  rows = cls_predict.predict(smoke(), trained, str(tmp_path / "x.npz"), str(tmp_path / "p.csv"))
  with open(tmp_path / "p.csv") as f:
    table = list(csv.DictReader(f))
  assert [r["name"] for r in table] == ["0", "1", "2", "3", "4"]
  assert list(table[0]) == ["name", "label", "probability", *(f"p{k}" for k in range(10))]
  for r, row in zip(rows, table):
    assert int(row["label"]) == r["label"] == int(np.argmax(r["probabilities"]))
    assert abs(sum(r["probabilities"]) - 1) < 1e-4
  cls_predict.predict(smoke(), trained, str(tmp_path / "x.npz"), str(tmp_path / "p.json"))
  assert json.loads((tmp_path / "p.json").read_text())[2]["label"] == rows[2]["label"]
  capsys.readouterr()
  cls_predict.predict(smoke(), trained, str(tmp_path / "x.npz"))
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 5 and lines[0].split("\t")[:2] == ["0", str(rows[0]["label"])]


def test_predict_folder_of_pngs_and_one_image(trained, tmp_path):
  images, _ = _digit_images(3, size=28)
  (tmp_path / "in" / "sub").mkdir(parents=True)
  for i, im in enumerate(images):
    Image.fromarray(np.repeat(im, 3, -1)).save(tmp_path / "in" / ("sub" if i else "") / f"{i}.png")
  rows = cls_predict.predict(smoke(), trained, str(tmp_path / "in"), str(tmp_path / "p.json"))
  assert [r["name"] for r in rows] == ["0.png", "sub/1.png", "sub/2.png"]
  one = cls_predict.predict(smoke(), trained, str(tmp_path / "in" / "sub" / "2.png"), str(tmp_path / "one.json"))
  assert one[0]["name"] == "2.png"
  np.testing.assert_allclose(one[0]["probabilities"], rows[2]["probabilities"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case,match", [
    ("empty_folder", "no images"),
    ("channels", "3 channel\\(s\\) but config.data.channels=1"),
    ("size", "images are 28x28 but the model needs 32x32"),
    ("not_images", "has no 'images' array"),
    ("missing_input", "--input '.*' does not exist"),
    ("no_input", "--input is required"),
    ("output_suffix", "must end in .csv or .json"),
    ("output_exists", "pass --overwrite"),
    ("missing_checkpoint", "no checkpoint in"),
])
def test_predict_bad_input_is_a_one_line_user_error(trained, tmp_path, case, match):
  config, workdir, output = smoke(), trained, tmp_path / "out.csv"
  path = tmp_path / "in"
  path.mkdir()
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(path / "a.png")
  if case == "empty_folder":
    path = tmp_path / "empty"
    path.mkdir()
  elif case == "channels":
    path = tmp_path / "rgb.npz"
    np.savez(path, images=np.zeros((2, 32, 32, 3), np.uint8))
  elif case == "size":
    path = tmp_path / "small.npz"
    np.savez(path, images=np.zeros((2, 28, 28), np.uint8))
    config.data.resize = False
  elif case == "not_images":
    path = tmp_path / "x.npz"
    np.savez(path, pixels=np.zeros((2, 32, 32), np.uint8))
  elif case == "missing_input":
    path = tmp_path / "nope"
  elif case == "no_input":
    path = ""
  elif case == "output_suffix":
    output = tmp_path / "out.txt"
  elif case == "output_exists":
    output.write_text("keep me")
  elif case == "missing_checkpoint":
    workdir = tmp_path / "untrained"
  with pytest.raises(UserError, match=match) as e:
    cls_predict.predict(config, workdir, str(path), str(output))
  assert "\n" not in str(e.value)
  assert output.read_text() == "keep me" if case == "output_exists" else not output.exists()
  assert not (tmp_path / "untrained").exists()


def test_training_needs_labels(tmp_path):
  np.savez(tmp_path / "x.npz", images=np.zeros((40, 32, 32), np.uint8))
  config = smoke(**{"data.source": "files", "data.path": str(tmp_path / "x.npz"), "data.split": "train[:30]",
                    "data.test_split": "train[30:]"})
  with pytest.raises(UserError, match="unlabelled images"):
    cls_train.train_and_evaluate(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()
