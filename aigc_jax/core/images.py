"""Image grids and PNG files: the way people look at what a generator makes."""

import math
from pathlib import Path

import numpy as np
from PIL import Image

from aigc_jax.core import files
from aigc_jax.core.errors import UserError


def map_batches(fn, images: np.ndarray, batch_size: int):
  """fn over fixed-size batches of `images`, the last one zero-padded, so a jitted fn compiles once.

  Returns fn's outputs (an array or a tuple of arrays) for the real images only, joined along axis 0.
  """
  outs = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    padded = np.zeros((batch_size, *chunk.shape[1:]), chunk.dtype)
    padded[:len(chunk)] = chunk
    out = fn(padded)
    outs.append(tuple(np.asarray(o)[:len(chunk)] for o in out) if isinstance(out, tuple)
                else np.asarray(out)[:len(chunk)])
  if outs and isinstance(outs[0], tuple):
    return tuple(np.concatenate(parts) for parts in zip(*outs))
  return np.concatenate(outs)


def to_uint8(images) -> np.ndarray:
  """[-1, 1] floats -> uint8 [0, 255]."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images, ncols: int | None = None, pad: int = 2) -> np.ndarray:
  """[N, H, W, C] uint8 -> one [rows*(H+pad)+pad, cols*(W+pad)+pad, C] tile image."""
  images = np.asarray(images)
  n, h, w, c = images.shape
  ncols = ncols or math.ceil(math.sqrt(n))
  nrows = math.ceil(n / ncols)
  out = np.zeros((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), images.dtype)
  for i, im in enumerate(images):
    r, col = divmod(i, ncols)
    out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = im
  return out


def save_png(path, image: np.ndarray, scale: int = 1):
  """Writes an [H, W, 1 or 3] uint8 image, upscaled by an integer factor for small digits."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  pil = Image.fromarray(image)
  if scale > 1:
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
  files.write_atomic(path, lambda f: pil.save(f, format="PNG"))


def results_folder(output, overwrite: bool) -> Path:
  """The local --output folder for save_results, checked before any work (files.check_output)."""
  if not output:
    raise UserError("--output is required: a folder for the results and before/after strips")
  return Path(files.check_output(output, overwrite, folder=True))


def save_results(out, overwrite: bool, results):
  """results: (name, result uint8 [H, W, C], same-sized strip columns) -> OUT/name.png, OUT/name_strip.png."""
  if out.exists() and overwrite:
    out.rmtree()
  out.mkdir(parents=True, exist_ok=True)
  for name, result, columns in results:
    save_png(out / f"{name}.png", result)
    strip = grid(np.stack(columns), ncols=len(columns))
    save_png(out / f"{name}_strip.png", strip, scale=max(1, 192 // strip.shape[0]))
