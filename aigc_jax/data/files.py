"""Image files a user points at: a folder (class subfolders give labels), an .npz, an IDX file, one image.

Everything here is numpy and PIL; `sources.load` slices, fits and shards what these return.
"""

import gzip
import math
import re
from pathlib import Path

import numpy as np

from aigc_jax.core.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


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
