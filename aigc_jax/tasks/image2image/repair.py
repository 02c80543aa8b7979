"""--mode=repair: fill holes in / denoise a user's images with a trained network or GAN inversion.

  python main.py --mode=repair --config configs/repair.py:mnist --workdir W --input IMG_OR_DIR \
      --mask center|boxes|strokes|pixels|gaussian|salt_pepper|MASK.png --output OUT

A mask *kind* damages the given (clean) image synthetically, so the strip shows damaged, repaired
and original. A mask *image* (white = pixels to fill) marks the holes of an already damaged image,
so the strip shows damaged and repaired. Without --mask a denoising network cleans the image as
it is. With a GAN config (configs/dcgan.py) the holes are filled by GAN inversion (inpaint.py).
Everything is read and checked before OUT is created; an existing OUT needs --overwrite.
"""

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.data import damage
from aigc_jax.core import images
from aigc_jax.data.sources import IMAGE_SUFFIXES, open_image
from aigc_jax.core.errors import UserError


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


def prepare_output(output: str | None, overwrite: bool) -> Path:
  if not output:
    raise UserError("--output is required: a folder for the results and before/after strips")
  out = Path(output).expanduser()
  if out.exists() and not out.is_dir():
    raise UserError(f"--output '{output}' is a file; give a folder")
  if out.exists() and any(out.iterdir()) and not overwrite:
    raise UserError(f"--output '{output}' exists and is not empty; pass --overwrite to replace it")
  return out


def write_results(out: Path, overwrite: bool, results):
  """results: (name, result uint8 [H, W, C], same-sized strip columns) -> OUT/name.png, OUT/name_strip.png."""
  if out.exists() and overwrite:
    shutil.rmtree(out)
  out.mkdir(parents=True, exist_ok=True)
  for name, result, columns in results:
    images.save_png(out / f"{name}.png", result)
    strip = images.grid(np.stack(columns), ncols=len(columns))
    images.save_png(out / f"{name}_strip.png", strip, scale=max(1, 192 // strip.shape[0]))
  print(f"wrote {len(results)} result(s) and before/after strips to {out}")


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


def run(config, workdir, input_path, mask, output, overwrite: bool = False, seed: int = 0):
  """Repairs every input image; returns the output folder."""
  out = prepare_output(output, overwrite)
  items = read_inputs(input_path)
  if config.task == "gan":
    from aigc_jax.tasks.gan import inpaint

    if mask is None or mask in damage.NOISE_KINDS:
      raise UserError("GAN-inversion inpainting fills holes: pass --mask with one of "
                      f"{', '.join(damage.MASK_KINDS)} or a mask image")
    check_channels(items, config.data.channels, workdir)
    prepared = damage_inputs(items, mask, seed)
    gan = inpaint.load_generator(config, workdir)
    repaired = [inpaint.inpaint(gan, d, m)[0] for d, m, _ in prepared]
  else:
    from aigc_jax.tasks.image2image import image2image

    if config.task != "repair":
      raise UserError(f"--mode=repair needs a repair config (configs/repair.py) or a GAN config; got task "
                      f"'{config.task}'")
    holes = any(k in damage.MASK_KINDS for k in damage.parse_kinds(config.damage.kinds))
    noise_only = all(k in damage.NOISE_KINDS for k in damage.parse_kinds(config.damage.kinds))
    if mask is None and not noise_only:
      raise UserError(f"the network in {workdir} fills holes; pass --mask with one of {', '.join(damage.KINDS)} "
                      "or a mask image (white = fill)")
    if mask is not None and mask not in damage.KINDS and not holes:
      raise UserError(f"the network in {workdir} is a denoiser; a mask image needs a hole-filling network")
    check_channels(items, config.data.channels, workdir)
    prepared = damage_inputs(items, mask, seed)
    _, state = image2image.load_state(workdir, config)
    repaired = [image2image.apply_generator(state, jnp.concatenate([d, m], -1))[0] for d, m, _ in prepared]
  results = []
  for (name, _), (d, _, original), r in zip(items, prepared, repaired):
    columns = [images.to_uint8(d[0]), images.to_uint8(r)] + ([images.to_uint8(original[0])] if original is not None
                                                               else [])
    results.append((name, images.to_uint8(r), columns))
  write_results(out, overwrite, results)
  return out
