"""The numpy pipeline of in-memory sources, fitting images to the resolution, and the event writer.

Each replaces a TensorFlow piece (tf.data, tf.image.resize, tf.summary); these tests hold them to
what the TensorFlow versions did.
"""

import gc
import io
import itertools

import numpy as np
import pytest
from helpers import smoke_config
from PIL import Image

from aigc_jax import data
from aigc_jax.core import summary
from aigc_jax.core.errors import UserError
from aigc_jax.data import pipeline


def _source(n=10, size=4):
  images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, size, size, 1), np.uint8)
  return data.Source(n, n, images=images, labels=np.arange(n, dtype=np.int32))


def _labels(source, batch_size, count, seed=0, start_step=0):
  it = data.batches(source, smoke_config().data, batch_size=batch_size, seed=seed, start_step=start_step)
  out = [b["label"] for b in itertools.islice(it, count)]
  it.close()
  return np.stack(out)


def test_every_epoch_is_a_permutation_and_seeds_differ():
  got = _labels(_source(10), 5, 8).reshape(4, 10)  # four epochs of 10 examples in batches of 5
  for epoch in got:
    assert sorted(epoch) == list(range(10))
  assert len({tuple(e) for e in got}) > 1  # reshuffled each epoch
  assert not np.array_equal(got, _labels(_source(10), 5, 8, seed=1).reshape(4, 10))
  np.testing.assert_array_equal(got, _labels(_source(10), 5, 8).reshape(4, 10))


@pytest.mark.parametrize("batch_size", [3, 10, 25])
def test_resume_at_any_step_sees_the_same_batches(batch_size):
  full = _labels(_source(10), batch_size, 12, seed=7)
  for start in (1, 4, 9):
    np.testing.assert_array_equal(_labels(_source(10), batch_size, 12 - start, seed=7, start_step=start), full[start:])


def test_batches_are_the_images_in_unit_range_with_their_labels():
  b = next(data.batches(_source(10), smoke_config().data, batch_size=4, seed=0))
  assert b["image"].dtype == np.float32 and b["label"].dtype == np.int32
  np.testing.assert_array_equal(b["image"][:, 0, 0, 0], b["label"].astype(np.float32) / np.float32(127.5) - 1)


def test_eval_batches_pad_the_last_batch_with_a_mask():
  out = list(data.eval_batches(_source(10), smoke_config().data, batch_size=4))
  assert [int(b["mask"].sum()) for b in out] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate([b["label"][b["mask"]] for b in out]), np.arange(10))
  assert out[-1]["image"].shape == (4, 4, 4, 1) and not out[-1]["image"][2:].any()


def test_prefetch_thread_ends_when_the_iterator_is_dropped_or_closed():
  it = data.batches(_source(10), smoke_config().data, batch_size=4, seed=0)
  next(it)
  dropped = it._thread
  del it
  gc.collect()
  closed = data.batches(_source(10), smoke_config().data, batch_size=4, seed=0)
  closed.close()
  for thread in (dropped, closed._thread):
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_prefetch_raises_the_error_of_the_batch_it_could_not_make():
  def make(step):
    if step == 2:
      raise ValueError("bad batch 2")
    return step
  it = pipeline.Prefetch(make, 0, 4)
  assert [next(it), next(it)] == [0, 1]
  with pytest.raises(ValueError, match="bad batch 2"):
    next(it)


def test_resize_matches_tensorflows_antialiased_bilinear_to_one_level():
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(0)
  for shape, res in [((20, 8, 8, 1), 32), ((20, 28, 28, 1), 32), ((6, 40, 30, 3), 32), ((3, 100, 80, 3), 64)]:
    x = rng.integers(0, 256, shape).astype(np.uint8)
    ref = tf.image.resize(tf.constant(x, tf.float32), (res, res), method="bilinear", antialias=True).numpy()
    ref = np.clip(np.round(ref), 0, 255).astype(np.int32)
    got = data.fit_images(x, res, shape[-1], resize=True).astype(np.int32)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1 and (got != ref).mean() < 0.01


def test_pad_centres_images_with_black_borders():
  x = np.full((2, 28, 28, 1), 255, np.uint8)
  out = data.fit_images(x, 32, 1, resize=True, pad=True)
  assert out.shape == (2, 32, 32, 1)
  assert (out[:, 2:30, 2:30] == 255).all() and out.sum() == x.sum()
  odd = data.fit_images(np.full((1, 5, 4, 1), 9, np.uint8), 8, 1, resize=False, pad=True)
  assert (odd[0, 1:6, 2:6] == 9).all() and odd.sum() == 9 * 20
  with pytest.raises(UserError, match=r"pads images up to 32x32, but these are 40x40"):
    data.fit_images(np.zeros((1, 40, 40, 1), np.uint8), 32, 1, resize=True, pad=True)


def test_pad_is_a_data_option_of_every_source():
  cfg = smoke_config(**{"data.pad": True}).data
  b = next(data.batches(data.load(cfg, seed=0), cfg, batch_size=8, seed=0))  # 8x8 digits in 32x32
  assert (b["image"][:, :12] == -1).all() and (b["image"][:, 20:] == -1).all() and (b["image"][:, 12:20] > -1).any()


def test_pad_under_tfds_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  cfg = smoke_config(**{"data.source": "tfds", "data.name": "mnist", "data.channels": 1, "data.pad": True}).data
  with tfds.testing.mock_data(num_examples=16):
    b = next(data.batches(data.load(cfg, seed=0), cfg, batch_size=8, seed=0))
  assert b["image"].shape == (8, 32, 32, 1)
  assert (b["image"][:, :2] == -1).all() and (b["image"][:, 30:] == -1).all()


def _events(logdir):
  from tensorboard.backend.event_processing import event_accumulator

  acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
  acc.Reload()
  return {tag: [(e.step, e.tensor_proto) for e in acc.Tensors(tag)] for tag in acc.Tags()["tensors"]}


def test_event_files_hold_scalars_and_png_images_tensorboard_reads(tmp_path):
  from tensorboard.util import tensor_util

  w = summary.Writer(tmp_path / "tb")
  w.scalars(3, {"d_loss": 0.25, "fid": 12.5})
  w.scalars(6, {"d_loss": 0.5})
  image = np.arange(6 * 9 * 3, dtype=np.uint8).reshape(6, 9, 3)
  w.image(6, "samples", image)
  w.close()
  events = _events(tmp_path / "tb")
  assert [(s, float(tensor_util.make_ndarray(t))) for s, t in events["d_loss"]] == [(3, 0.25), (6, 0.5)]
  assert [(s, float(tensor_util.make_ndarray(t))) for s, t in events["fid"]] == [(3, 12.5)]
  (step, t), = events["samples"]
  width, height, png = tensor_util.make_ndarray(t)
  assert step == 6 and (int(width), int(height)) == (9, 6)
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), image)
