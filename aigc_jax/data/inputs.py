"""A user's images for the repair, enhance and inversion modes: read, checked, and damaged on request.

Everything is read and checked before any output is created.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.core.errors import UserError
from aigc_jax.core.images import to_uint8
from aigc_jax.data import damage
from aigc_jax.data.files import IMAGE_SUFFIXES, open_image


def read_inputs(path: str) -> list[tuple[str, np.ndarray]]:
  """(name, uint8 [H, W, C]) for one image file or every image in a folder (sorted by path)."""
  if not path:
    raise UserError("--input is required: one image file or a folder of images")
  p = Path(path).expanduser()
  if not p.exists():
    raise UserError(f"--input '{path}' does not exist")
  if p.is_dir():
    files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
      raise UserError(f"--input folder '{path}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [(q.relative_to(p).with_suffix("").as_posix(), read_image(q)) for q in files]
  return [(p.stem, read_image(p))]


def read_image(path: Path) -> np.ndarray:
  """uint8 [H, W, 1] for grey images, [H, W, 3] for colour ones (alpha and palettes resolved)."""
  im = open_image(path)
  mode = "L" if im.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
  return np.asarray(im.convert(mode)).reshape(im.height, im.width, -1)


def check_channels(items, channels: int, workdir):
  for name, im in items:
    if im.shape[-1] != channels:
      kind = {1: "grey", 3: "RGB"}
      raise UserError(f"'{name}' is {kind[im.shape[-1]]} ({im.shape[-1]} channel(s)) but the network in "
                      f"{workdir} works on {kind[channels]} images ({channels}); convert the image first")


def read_mask(spec: str, items) -> np.ndarray | None:
  """A mask image (white = fill) as a float32 [H, W, 1] trusted-pixel mask, checked against every input."""
  p = Path(spec).expanduser()
  if not p.exists():
    raise UserError(f"--mask '{spec}' is neither a mask kind ({', '.join(damage.KINDS)}) nor an existing file")
  m = read_image(p)
  hole = m.max(axis=-1, keepdims=True) > 127
  for name, im in items:
    if im.shape[:2] != m.shape[:2]:
      raise UserError(f"--mask '{spec}' is {m.shape[1]}x{m.shape[0]} but '{name}' is {im.shape[1]}x{im.shape[0]}; "
                      "the mask must have the size of the image")
  if not hole.any():
    raise UserError(f"--mask '{spec}' marks no pixel to fill (white = fill, black = keep)")
  return (~hole).astype(np.float32)


def to_unit(im_uint8):
  return jnp.asarray(im_uint8, jnp.float32)[None] / 127.5 - 1.0


def damage_inputs(items, mask: str | None, seed: int = 0):
  """Per image: (damaged [1, H, W, C] in [-1, 1], trusted mask [1, H, W, 1], original or None)."""
  out = []
  mask_image = read_mask(mask, items) if mask and mask not in damage.KINDS else None
  for i, (name, im) in enumerate(items):
    x = to_unit(im)
    if mask is None:
      out.append((x, jnp.zeros(x.shape[:3] + (1,)), None))
    elif mask_image is not None:
      m = jnp.asarray(mask_image)[None]
      out.append((x * m, m, None))
    else:
      d, m = damage.damage_one(jax.random.fold_in(jax.random.PRNGKey(seed), i), x[0], (mask,))
      out.append((d[None], m[None], x))
  return out


def strips(items, prepared, repaired):
  """(name, result, [damaged, repaired, original if known]) per image, as uint8, for core.images.save_results."""
  results = []
  for (name, _), (d, _, original), r in zip(items, prepared, repaired):
    columns = [to_uint8(d[0]), to_uint8(r)] + ([to_uint8(original[0])] if original is not None
                                                               else [])
    results.append((name, to_uint8(r), columns))
  return results
