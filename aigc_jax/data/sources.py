"""Where images come from: TFDS, scikit-learn's embedded digits, or local files.

Every source yields examples {'image': uint8 [H, W, C] or encoded bytes, 'label': int32} as a
tf.data.Dataset; `pipeline.py` turns them into batches. In-memory sources are small by nature
(the digits, a folder of images, an IDX or NPZ file); TFDS streams from its prepared files.
"""

import dataclasses
import gzip
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aigc_jax.errors import UserError

SOURCES = ("tfds", "digits", "files")
OFFLINE_PRESETS = "configs/dcgan.py:digits, or configs/dcgan.py:files with --config.data.path"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclasses.dataclass
class Source:
  """A dataset of examples plus what the pipeline needs to know about it."""

  dataset: tf.data.Dataset
  num_examples: int | None  # this process's share; None when TFDS does not know it
  num_classes: int | None
  encoded: bool  # images are still PNG/JPEG bytes (TFDS), decoded after any resume skip.


def load(data_config, *, seed: int, process_index: int = 0, process_count: int = 1) -> Source:
  """Opens the configured source, failing early with a UserError for anything a user can fix."""
  if data_config.source == "tfds":
    return _tfds_source(data_config, seed, process_index, process_count)
  if data_config.source == "digits":
    images, labels = digits_arrays()
  elif data_config.source == "files":
    images, labels = read_image_files(data_config.path, data_config.channels)
  else:
    raise UserError(f"unknown data source '{data_config.source}'; use one of {SOURCES}")
  images = fit_images(images, data_config.resolution, data_config.channels, data_config.resize)
  # Each process reads a disjoint, equally sized slice, as tfds.split_for_jax_process does.
  per_process = len(images) // process_count
  if per_process == 0:
    raise UserError(f"{len(images)} images cannot be split over {process_count} processes")
  sl = slice(process_index * per_process, (process_index + 1) * per_process)
  examples = {"image": images[sl], "label": labels[sl].astype(np.int32)}
  num_classes = int(labels.max()) + 1 if labels.size and labels.min() >= 0 else None
  return Source(tf.data.Dataset.from_tensor_slices(examples), per_process, num_classes, encoded=False)


def _tfds_source(cfg, seed, process_index, process_count) -> Source:
  data_dir = cfg.data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")
  try:
    builder = tfds.builder(cfg.name, data_dir=data_dir)
  except Exception as e:  # TFDS raises several types for unknown names.
    raise UserError(f"unknown TFDS dataset '{cfg.name}' ({type(e).__name__}); see tfds.list_builders()") from None
  if not builder.is_prepared():
    try:
      builder.download_and_prepare()
    except Exception as e:
      raise UserError(f"TFDS dataset '{cfg.name}' is not in {data_dir} and could not be downloaded "
                      f"({type(e).__name__}); prepare it there on a machine with network, set "
                      f"--config.data.data_dir, or train offline with {OFFLINE_PRESETS}") from None
  known_splits = builder.info.splits  # empty only when TFDS has no metadata (tfds.testing.mock_data)
  if known_splits and cfg.split not in known_splits:
    raise UserError(f"TFDS dataset '{cfg.name}' has no split '{cfg.split}'; available: {sorted(builder.info.splits)}")
  if "image" not in builder.info.features:
    raise UserError(f"TFDS dataset '{cfg.name}' has no 'image' feature; features: {list(builder.info.features)}")
  split = tfds.split_for_jax_process(cfg.split, process_index=process_index, process_count=process_count,
                                     drop_remainder=True)
  ds = builder.as_dataset(split=split, shuffle_files=True, decoders={"image": tfds.decode.SkipDecoding()},
                          read_config=tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=4))
  has_label = "label" in builder.info.features
  ds = ds.map(lambda ex: {"image": ex["image"],
                          "label": tf.cast(ex["label"], tf.int32) if has_label else tf.constant(-1, tf.int32)})
  num_classes = builder.info.features["label"].num_classes if has_label else None
  num_examples = known_splits[split].num_examples if known_splits else None
  return Source(ds, num_examples, num_classes, encoded=True)


def digits_arrays():
  """scikit-learn's 1,797 embedded 8x8 handwritten digits as uint8 [N, 8, 8, 1], labels [N]."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  images = np.round(digits.images / 16.0 * 255.0).astype(np.uint8)[..., None]
  return images, digits.target.astype(np.int32)


def fit_images(images: np.ndarray, resolution: int, channels: int, resize: bool) -> np.ndarray:
  """Checks channels and brings [N, H, W, C] uint8 images to resolution x resolution."""
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise UserError(f"images must be [N, H, W, 1 or 3]; got shape {tuple(images.shape)}")
  if images.shape[-1] != channels:
    raise UserError(f"images have {images.shape[-1]} channel(s) but config.data.channels={channels}; "
                    f"set --config.data.channels={images.shape[-1]}")
  if images.shape[1:3] == (resolution, resolution):
    return images
  if not resize:
    raise UserError(f"images are {images.shape[1]}x{images.shape[2]} but the model needs "
                    f"{resolution}x{resolution}; set --config.data.resize=True or --config.data.resolution")
  out = tf.image.resize(tf.constant(images, tf.float32), (resolution, resolution), method="bilinear",
                        antialias=True)
  return np.clip(np.round(out.numpy()), 0, 255).astype(np.uint8)


def read_image_files(path: str, channels: int):
  """Reads a folder of images (class subfolders give labels), an .npz, or an IDX file/folder."""
  if not path:
    raise UserError("config.data.path is empty; set --config.data.path=DIR_OR_FILE (images, .npz or IDX)")
  p = Path(path).expanduser()
  if not p.exists():
    raise UserError(f"data path '{path}' does not exist")
  if p.is_file():
    images, labels = _read_array_file(p)
  else:
    arrays = sorted(q for q in p.iterdir() if q.suffix == ".npz" or "idx3" in q.name)
    if arrays:
      images, labels = _read_array_file(arrays[0])
    else:
      images, labels = _read_image_folder(p, channels)
  if len(images) == 0:
    raise UserError(f"no images found in '{path}'")
  if images.ndim == 3:
    images = images[..., None]
  if images.dtype != np.uint8:
    raise UserError(f"images in '{path}' have dtype {images.dtype}; expected uint8 in [0, 255]")
  return images, labels


def _read_array_file(p: Path):
  if p.suffix == ".npz":
    with np.load(p) as f:
      if "images" not in f:
        raise UserError(f"'{p}' has no 'images' array; it has {list(f.keys())}")
      images = f["images"]
      labels = f["labels"] if "labels" in f else np.full(len(images), -1)
    return images, np.asarray(labels, np.int32)
  if "idx3" in p.name:
    images = read_idx(p)
    label_file = p.with_name(p.name.replace("images-idx3", "labels-idx1"))
    labels = read_idx(label_file) if label_file.exists() else np.full(len(images), -1)
    return images, labels.astype(np.int32)
  raise UserError(f"'{p}' is not an .npz or IDX (idx3) file")


def read_idx(path) -> np.ndarray:
  """Reads an IDX file (the MNIST format), gzip-compressed or not."""
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
    raise UserError(f"'{path}' is not an unsigned-byte IDX file")
  ndim = data[3]
  dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if body.size != int(np.prod(dims)):
    raise UserError(f"'{path}' is truncated: header says {dims}, found {body.size} bytes of data")
  return body.reshape(dims)


def _read_image_folder(root: Path, channels: int):
  from PIL import Image, UnidentifiedImageError

  files = sorted(q for q in root.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
  if not files:
    raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in '{root}'")
  classes = sorted({q.parent.relative_to(root).as_posix() for q in files} - {"."})
  images, labels = [], []
  for q in files:
    try:
      with Image.open(q) as im:
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError) as e:
      raise UserError(f"'{q}' is not a readable image ({e.__class__.__name__})") from None
    if images and arr.shape != images[0].shape:
      raise UserError(f"'{q}' is {arr.shape[1]}x{arr.shape[0]} but '{files[0]}' is "
                      f"{images[0].shape[1]}x{images[0].shape[0]}; images in one folder must share a size")
    images.append(arr)
    rel = q.parent.relative_to(root).as_posix()
    labels.append(classes.index(rel) if rel in classes else -1)
  return np.stack(images), np.asarray(labels, np.int32)
