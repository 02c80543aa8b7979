"""Input pipeline: TFDS under mock_data, the embedded digits, local files and their bad inputs."""

import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import SHARED_MNIST
from helpers import smoke_config, write_oversized_png
from PIL import Image

from aigc_jax import data
from aigc_jax.data import inputs
from aigc_jax.core.errors import UserError


def _take(source, cfg, n, batch_size=8, seed=0, start_step=0):
  return list(itertools.islice(data.batches(source, cfg, batch_size=batch_size, seed=seed, start_step=start_step), n))


def _tfds_config(**kw):
  cfg = smoke_config(**{"data.source": "tfds", "data.name": "cifar10", "data.channels": 3, **kw}).data
  return cfg


def test_tfds_batches_under_mock_data():
  cfg = _tfds_config()
  with tfds.testing.mock_data(num_examples=64):
    source = data.load(cfg, seed=0)
    batches = _take(source, cfg, 10)  # 80 examples: wraps around the 64 once.
  b = batches[0]
  assert b["image"].shape == (8, 32, 32, 3) and b["image"].dtype == np.float32
  assert b["label"].shape == (8,) and b["label"].dtype == np.int32
  images = np.stack([x["image"] for x in batches])
  assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0.1
  assert source.num_classes == 10


def test_tfds_is_deterministic_and_resumable_by_step():
  cfg = _tfds_config()
  with tfds.testing.mock_data(num_examples=40):
    full = _take(data.load(cfg, seed=3), cfg, 8, seed=3)
    again = _take(data.load(cfg, seed=3), cfg, 8, seed=3)
    resumed = _take(data.load(cfg, seed=3), cfg, 3, seed=3, start_step=5)
    other = _take(data.load(cfg, seed=4), cfg, 8, seed=4)
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a["image"], b["image"])
  for a, b in zip(full[5:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
  assert not all(np.array_equal(a["image"], b["image"]) for a, b in zip(full, other))


def test_tfds_resizes_to_the_model_resolution():
  cfg = _tfds_config(**{"data.name": "mnist", "data.channels": 1})
  with tfds.testing.mock_data(num_examples=16):
    b = _take(data.load(cfg, seed=0), cfg, 1)[0]
  assert b["image"].shape == (8, 32, 32, 1)


def test_tfds_split_per_process(monkeypatch):
  seen = []
  real = tfds.split_for_jax_process
  monkeypatch.setattr(tfds, "split_for_jax_process", lambda *a, **kw: seen.append(kw) or real(*a, **kw))
  with tfds.testing.mock_data(num_examples=64):
    data.load(_tfds_config(), seed=0, process_index=1, process_count=2)
  assert seen == [{"process_index": 1, "process_count": 2, "drop_remainder": True}]


def test_tfds_unknown_dataset():
  with pytest.raises(UserError, match="unknown TFDS dataset 'no_such_dataset'"):
    data.load(_tfds_config(**{"data.name": "no_such_dataset"}), seed=0)


def test_tfds_offline_message_names_dataset_dir_and_presets(tmp_path):
  cfg = _tfds_config(**{"data.data_dir": str(tmp_path / "tfds")})
  with pytest.raises(UserError) as e:
    data.load(cfg, seed=0)
  msg = str(e.value)
  assert "cifar10" in msg and str(tmp_path / "tfds") in msg and "configs/dcgan.py:digits" in msg
  assert "\n" not in msg


def test_digits_source():
  cfg = smoke_config().data
  source = data.load(cfg, seed=0)
  assert source.num_examples == 1797 and source.num_classes == 10
  b = _take(source, cfg, 1, batch_size=32)[0]
  assert b["image"].shape == (32, 32, 32, 1)
  assert b["image"].min() >= -1 and b["image"].max() <= 1
  assert b["image"].min() < -0.99 and b["image"].max() > 0.9  # black background, bright strokes
  assert set(np.unique(b["label"])) <= set(range(10))


def test_in_memory_sources_split_per_process():
  cfg = smoke_config().data
  a = data.load(cfg, seed=0, process_index=0, process_count=2)
  b = data.load(cfg, seed=0, process_index=1, process_count=2)
  ia, ib = a.images, b.images
  assert len(ia) == len(ib) == 898
  assert not np.array_equal(ia[:10], ib[:10])


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="shared MNIST not present")
def test_files_source_reads_idx_folder():
  cfg = smoke_config(**{"data.source": "files", "data.path": str(SHARED_MNIST)}).data
  source = data.load(cfg, seed=0)
  assert source.num_examples == 10_000 and source.num_classes == 10
  b = _take(source, cfg, 1, batch_size=16)[0]
  assert b["image"].shape == (16, 32, 32, 1)
  raw = data.read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
  assert raw.shape == (10_000, 28, 28) and raw.dtype == np.uint8


def test_files_source_reads_image_folder_with_class_subfolders(tmp_path):
  rng = np.random.default_rng(0)
  for cls in ("cats", "dogs"):
    (tmp_path / cls).mkdir()
    for i in range(3):
      Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
  cfg = smoke_config(**{"data.source": "files", "data.path": str(tmp_path), "data.channels": 3}).data
  source = data.load(cfg, seed=0)
  assert source.num_examples == 6 and source.num_classes == 2
  b = _take(source, cfg, 1, batch_size=4)[0]
  assert b["image"].shape == (4, 32, 32, 3)


def test_files_source_reads_npz(tmp_path):
  images = np.random.default_rng(0).integers(0, 255, (20, 32, 32), dtype=np.uint8)
  np.savez(tmp_path / "x.npz", images=images, labels=np.arange(20) % 4)
  cfg = smoke_config(**{"data.source": "files", "data.path": str(tmp_path / "x.npz")}).data
  source = data.load(cfg, seed=0)
  got = source.images
  np.testing.assert_array_equal(got[..., 0], images)
  assert source.num_classes == 4


@pytest.mark.parametrize("case,match", [
    ("missing", "does not exist"),
    ("empty_path", "config.data.path is empty"),
    ("empty_dir", "no images"),
    ("not_image", "is not a readable image"),
    ("channels", "3 channel\\(s\\) but config.data.channels=1"),
    ("mixed_sizes", "must share a size"),
    ("no_resize", "the model needs 32x32"),
    ("bad_npz", "has no 'images' array"),
    ("bad_shape", "must be \\[N, H, W, 1 or 3\\]"),
])
def test_files_source_bad_input(tmp_path, case, match):
  path, extra = tmp_path / "d", {}
  path.mkdir()
  if case == "missing":
    path = tmp_path / "nope"
  elif case == "empty_path":
    path = ""
  elif case == "not_image":
    (path / "a.png").write_text("not a png")
  elif case == "channels":
    path = tmp_path / "rgb.npz"
    np.savez(path, images=np.zeros((4, 32, 32, 3), np.uint8))
  elif case == "mixed_sizes":
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(path / "a.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(path / "b.png")
  elif case == "no_resize":
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(path / "a.png")
    extra = {"data.resize": False}
  elif case == "bad_npz":
    path = tmp_path / "x.npz"
    np.savez(path, pixels=np.zeros((4, 32, 32), np.uint8))
  elif case == "bad_shape":
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros((4, 32, 32, 5), np.uint8))
  cfg = smoke_config(**{"data.source": "files", "data.path": str(path), **extra}).data
  with pytest.raises(UserError, match=match) as e:
    data.load(cfg, seed=0)
  assert "\n" not in str(e.value)


def test_unknown_source():
  with pytest.raises(UserError, match="unknown data source 'web'"):
    data.load(smoke_config(**{"data.source": "web"}).data, seed=0)


def test_images_pil_refuses_are_one_line_errors_naming_the_file(tmp_path):
  """Every image reader (data sources, --mode=classify, --mode=repair/enhance) goes through open_image."""

  big = write_oversized_png(tmp_path / "big.png")
  assert big.stat().st_size < 200_000
  png = tmp_path / "ok.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), np.uint8)).save(png)
  (tmp_path / "cut.png").write_bytes(png.read_bytes()[:500])
  (tmp_path / "text.png").write_text("not a png")
  limit = f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels"
  cases = [(big, rf"'{big}' is too large to read \(\d[\d,]+ pixels\): images of up to {limit} \(e\.g\. "),
           (tmp_path / "cut.png", r"'.*cut\.png' is not a readable image \(.*\); accepted: PNG, JPG"),
           (tmp_path / "text.png", r"'.*text\.png' is not a readable image \(not in a format PIL knows\)")]
  for path, match in cases:
    for read in (lambda p: data.read_images(str(p), 1), inputs.read_image):
      with pytest.raises(UserError, match=match) as e:
        read(path)
      assert "\n" not in str(e.value)
  folder = tmp_path / "folder"
  folder.mkdir()
  png.rename(folder / "a.png")
  big.rename(folder / "b.png")
  with pytest.raises(UserError, match=r"'.*folder/b\.png' is too large to read"):
    data.read_images(str(folder), 1)
