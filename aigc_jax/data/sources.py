"""Where images come from: TFDS, scikit-learn's embedded digits, or local files.

An in-memory source (the digits, a folder of images, an IDX or NPZ file) is small by nature: it is
read, sliced, fitted to the configured resolution and sharded here, once, as uint8 numpy arrays, and
`pipeline.py` batches it with numpy alone. A TFDS source streams encoded images from its prepared
files through tf.data (`tfds_source.py`); TensorFlow is imported only then.

`data.split` picks the examples, in TFDS's slicing syntax for every source: TFDS takes it as is
('train', 'test[:50%]'); an in-memory source has one split, 'train' (or ''), which slices the
same way ('train[:8000]', 'train[8000:]', '[-20%:]'), so disjoint train and test sets can be cut
from one file in the file's order.

Images of another size than data.resolution are resized (bilinear, antialiased: data.resize) or,
with data.pad, zero-padded evenly, the convention of LeNet and the DCGAN ports for MNIST (28 -> 32).
"""

import dataclasses
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.core.errors import UserError
from aigc_jax.data import files, tfds_source

SOURCES = ("tfds", "digits", "files")
RESIZE_CHUNK = 1024  # images resized at a time, to bound the float32 copy


@dataclasses.dataclass
class Source:
  """A dataset of examples plus what the pipeline needs to know about it.

  In memory: `images` uint8 [N, H, W, C] at the configured resolution and `labels` int32 [N] (-1 when
  unlabelled), this process's shard. Streamed (TFDS): `stream`, a tf.data.Dataset of encoded examples.
  """

  num_examples: int | None  # this process's share; None when TFDS does not know it
  num_classes: int | None
  images: np.ndarray | None = None
  labels: np.ndarray | None = None
  stream: Any = None

  @property
  def in_memory(self) -> bool:
    return self.images is not None


def load(data_config, *, seed: int, process_index: int = 0, process_count: int = 1, split_key: str = "split"
         ) -> Source:
  """Opens the configured source, failing early with a UserError for anything a user can fix.

  `split_key` names the data_config entry holding the split, so a classifier opens its test set
  (`data.test_split`) from the same config as its training set.
  """
  split = data_config[split_key]
  if data_config.source == "tfds":
    stream, num_examples, num_classes = tfds_source.open_split(data_config, split, seed, process_index,
                                                               process_count)
    return Source(num_examples, num_classes, stream=stream)
  if data_config.source == "digits":
    images, labels = digits_arrays()
  elif data_config.source == "files":
    images, labels = files.read_image_files(data_config.path, data_config.channels)
  else:
    raise UserError(f"unknown data source '{data_config.source}'; use one of {SOURCES}")
  # Classes count over the whole set, so a slice that misses one still agrees with its complement.
  num_classes = int(labels.max()) + 1 if labels.size and labels.min() >= 0 else None
  sl = split_slice(split, len(images), data_config.source, key=f"config.data.{split_key}")
  images, labels = images[sl], labels[sl]
  keep = fraction_indices(len(images), data_config.get("fraction", 1.0))
  images, labels = images[keep], labels[keep]
  images = fit_images(images, data_config.resolution, data_config.channels, data_config.resize,
                      data_config.get("pad", False))
  # Each process reads a disjoint, equally sized slice, as tfds.split_for_jax_process does.
  per_process = len(images) // process_count
  if per_process == 0:
    raise UserError(f"{len(images)} images cannot be split over {process_count} processes")
  sl = slice(process_index * per_process, (process_index + 1) * per_process)
  return Source(per_process, num_classes, images=images[sl], labels=labels[sl].astype(np.int32))


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


def digits_arrays():
  """scikit-learn's 1,797 embedded 8x8 handwritten digits as uint8 [N, 8, 8, 1], labels [N]."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  images = np.round(digits.images / 16.0 * 255.0).astype(np.uint8)[..., None]
  return images, digits.target.astype(np.int32)


def fit_images(images: np.ndarray, resolution: int, channels: int, resize: bool, pad: bool = False) -> np.ndarray:
  """Checks channels and brings [N, H, W, C] uint8 images to resolution x resolution.

  pad: images no larger than that are zero-padded evenly (the extra row or column at the bottom or
  right); otherwise, with resize, they are resized bilinearly with antialiasing, as
  tf.image.resize(..., antialias=True) does (equal to within one level of 255; tested).
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise UserError(f"images must be [N, H, W, 1 or 3]; got shape {tuple(images.shape)}")
  if images.shape[-1] != channels:
    raise UserError(f"images have {images.shape[-1]} channel(s) but config.data.channels={channels}; "
                    f"set --config.data.channels={images.shape[-1]}")
  height, width = images.shape[1:3]
  if (height, width) == (resolution, resolution):
    return images
  if pad:
    if height > resolution or width > resolution:
      raise UserError(f"config.data.pad=True pads images up to {resolution}x{resolution}, but these are "
                      f"{height}x{width}; set --config.data.pad=False to resize them")
    top, left = (resolution - height) // 2, (resolution - width) // 2
    return np.pad(images, ((0, 0), (top, resolution - height - top), (left, resolution - width - left), (0, 0)))
  if not resize:
    raise UserError(f"images are {height}x{width} but the model needs {resolution}x{resolution}; "
                    "set --config.data.resize=True, --config.data.pad=True or --config.data.resolution")
  return np.concatenate([_resize(images[i:i + RESIZE_CHUNK], resolution)
                         for i in range(0, len(images), RESIZE_CHUNK)])


def _resize(images: np.ndarray, resolution: int) -> np.ndarray:
  with jax.default_device(jax.local_devices(backend="cpu")[0]):  # data preparation stays on this host
    out = jax.image.resize(jnp.asarray(images, jnp.float32), (len(images), resolution, resolution, images.shape[-1]),
                           method="linear", antialias=True)
    return np.asarray(jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8))
