"""Where images come from: TFDS, scikit-learn's embedded digits, or local files.

Every source yields examples {'image': uint8 [H, W, C] or encoded bytes, 'label': int32} as a
tf.data.Dataset; `pipeline.py` turns them into batches. In-memory sources are small by nature
(the digits, a folder of images, an IDX or NPZ file); TFDS streams from its prepared files.

`data.split` picks the examples, in TFDS's slicing syntax for every source: TFDS takes it as is
('train', 'test[:50%]'); an in-memory source has one split, 'train' (or ''), which slices the
same way ('train[:8000]', 'train[8000:]', '[-20%:]'), so disjoint train and test sets can be cut
from one file in the file's order.
"""

import dataclasses
import gzip
import math
import os
import re
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aigc_jax.core.errors import UserError

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


def load(data_config, *, seed: int, process_index: int = 0, process_count: int = 1, split_key: str = "split"
         ) -> Source:
  """Opens the configured source, failing early with a UserError for anything a user can fix.

  `split_key` names the data_config entry holding the split, so a classifier opens its test set
  (`data.test_split`) from the same config as its training set.
  """
  split = data_config[split_key]
  if data_config.source == "tfds":
    return _tfds_source(data_config, split, seed, process_index, process_count)
  if data_config.source == "digits":
    images, labels = digits_arrays()
  elif data_config.source == "files":
    images, labels = read_image_files(data_config.path, data_config.channels)
  else:
    raise UserError(f"unknown data source '{data_config.source}'; use one of {SOURCES}")
  # Classes count over the whole set, so a slice that misses one still agrees with its complement.
  num_classes = int(labels.max()) + 1 if labels.size and labels.min() >= 0 else None
  sl = split_slice(split, len(images), data_config.source, key=f"config.data.{split_key}")
  images, labels = images[sl], labels[sl]
  keep = fraction_indices(len(images), data_config.get("fraction", 1.0))
  images, labels = images[keep], labels[keep]
  images = fit_images(images, data_config.resolution, data_config.channels, data_config.resize)
  # Each process reads a disjoint, equally sized slice, as tfds.split_for_jax_process does.
  per_process = len(images) // process_count
  if per_process == 0:
    raise UserError(f"{len(images)} images cannot be split over {process_count} processes")
  sl = slice(process_index * per_process, (process_index + 1) * per_process)
  examples = {"image": images[sl], "label": labels[sl].astype(np.int32)}
  return Source(tf.data.Dataset.from_tensor_slices(examples), per_process, num_classes, encoded=False)


_SPLIT = re.compile(r"(?P<name>[\w-]*)(?:\[(?P<start>[^:\]]*):(?P<stop>[^:\]]*)\])?")
_BOUND = re.compile(r"-?\d+%?")


def split_slice(split: str, num_examples: int, source: str = "in-memory", key: str = "config.data.split") -> slice:
  """'train[a:b]' for an in-memory set of `num_examples` -> slice; a, b are indices or percentages."""
  m = _SPLIT.fullmatch(split.replace(" ", ""))
  if not m or m["name"] not in ("", "train"):
    raise UserError(f"{key}='{split}' does not fit source '{source}', which has one split, 'train'; "
                    "slice it TFDS-style, e.g. 'train[:8000]' and 'train[8000:]', or 'train[:80%]'")
  bounds = []
  for b in (m["start"], m["stop"]):
    if not b:
      bounds.append(None)
    elif not _BOUND.fullmatch(b):
      raise UserError(f"{key}='{split}': '{b}' is not an index or a percentage such as 8000 or 80%")
    elif b.endswith("%"):
      bounds.append(math.floor(int(b[:-1]) * num_examples / 100 + 0.5))
    else:
      bounds.append(int(b))
  sl = slice(*bounds)
  if num_examples and not range(num_examples)[sl]:
    raise UserError(f"{key}='{split}' selects none of the {num_examples} images")
  return sl


def fraction_indices(num_examples: int, fraction: float) -> np.ndarray:
  """A deterministic subset (the same for every seed and process) of round(fraction * n) >= 1 indices, in order.

  Drawn by a fixed permutation rather than taken from the front, so a subset of a sorted set
  still covers its classes.
  """
  if fraction >= 1.0:
    return np.arange(num_examples)
  n = max(1, int(round(fraction * num_examples)))
  return np.sort(np.random.default_rng(0).permutation(num_examples)[:n])


def _tfds_source(cfg, split, seed, process_index, process_count) -> Source:
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
  name = split.split("[", 1)[0].strip()
  if known_splits and name not in known_splits:
    raise UserError(f"TFDS dataset '{cfg.name}' has no split '{name}'; available: {sorted(builder.info.splits)}")
  if "image" not in builder.info.features:
    raise UserError(f"TFDS dataset '{cfg.name}' has no 'image' feature; features: {list(builder.info.features)}")
  fraction = cfg.get("fraction", 1.0)
  if fraction < 1.0:  # TFDS reads a percentage slice: the first examples of the split, the same on every run.
    if "[" in split:
      raise UserError(f"config.data.fraction={fraction} cannot be combined with the sliced split '{split}'; "
                      "slice the split alone, e.g. 'train[:10%]'")
    split = f"{split}[:{max(1, int(round(fraction * 100)))}%]"
  split = tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count,
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
  images, labels, _ = read_images(path, channels)
  return images, labels


def read_images(path: str, channels: int):
  """read_image_files plus one name per image (its path in a folder, its index in an array file).

  A single image file is read too, so a classifier can label one picture.
  """
  if not path:
    raise UserError("config.data.path is empty; set --config.data.path=DIR_OR_FILE (images, .npz or IDX)")
  p = Path(path).expanduser()
  if not p.exists():
    raise UserError(f"data path '{path}' does not exist")
  names = None
  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
    images, labels, names = np.stack([_read_image(p, channels)]), np.full(1, -1, np.int32), [p.name]
  elif p.is_file():
    images, labels = _read_array_file(p)
  else:
    arrays = sorted(q for q in p.iterdir() if q.suffix == ".npz" or "idx3" in q.name)
    if arrays:
      images, labels = _read_array_file(arrays[0])
    else:
      images, labels, names = _read_image_folder(p, channels)
  if len(images) == 0:
    raise UserError(f"no images found in '{path}'")
  if images.ndim == 3:
    images = images[..., None]
  if images.dtype != np.uint8:
    raise UserError(f"images in '{path}' have dtype {images.dtype}; expected uint8 in [0, 255]")
  return images, labels, names if names is not None else [str(i) for i in range(len(images))]


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


def open_image(path):
  """The image in file `path`, decoded whole (a PIL image); a file PIL cannot or will not read is a UserError.

  PIL refuses images of over 2 * Image.MAX_IMAGE_PIXELS pixels, since a small file can decode to
  gigabytes (a 'decompression bomb'), besides files in formats it does not know and damaged ones.
  """
  from PIL import Image, UnidentifiedImageError

  try:
    with Image.open(path) as im:
      im.load()  # decoding errors surface here, not in a later convert()
      return im
  except Image.DecompressionBombError as e:
    found = re.search(r"\((\d+) pixels\)", str(e))
    size = f" ({int(found[1]):,} pixels)" if found else ""
    limit = 2 * Image.MAX_IMAGE_PIXELS
    side = math.isqrt(limit)
    raise UserError(f"'{path}' is too large to read{size}: images of up to {limit:,} pixels (e.g. {side}x{side}) "
                    "are accepted; scale it down first") from None
  except (UnidentifiedImageError, OSError, EOFError) as e:
    if isinstance(e, UnidentifiedImageError):
      reason = "not in a format PIL knows"
    else:
      reason = (e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip()) or type(e).__name__
    raise UserError(f"'{path}' is not a readable image ({reason}); accepted: "
                    f"{', '.join(s.lstrip('.').upper() for s in IMAGE_SUFFIXES)}") from None


def _read_image(q: Path, channels: int) -> np.ndarray:
  return np.asarray(open_image(q).convert("L" if channels == 1 else "RGB"))


def _read_image_folder(root: Path, channels: int):
  files = sorted(q for q in root.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
  if not files:
    raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in '{root}'")
  classes = sorted({q.parent.relative_to(root).as_posix() for q in files} - {"."})
  images, labels = [], []
  for q in files:
    arr = _read_image(q, channels)
    if images and arr.shape != images[0].shape:
      raise UserError(f"'{q}' is {arr.shape[1]}x{arr.shape[0]} but '{files[0]}' is "
                      f"{images[0].shape[1]}x{images[0].shape[0]}; images in one folder must share a size")
    images.append(arr)
    rel = q.parent.relative_to(root).as_posix()
    labels.append(classes.index(rel) if rel in classes else -1)
  return np.stack(images), np.asarray(labels, np.int32), [q.relative_to(root).as_posix() for q in files]
