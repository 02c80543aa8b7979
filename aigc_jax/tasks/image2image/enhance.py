"""--mode=enhance: super-resolution of a user's images, of any size, in overlapping tiles.

  python main.py --mode=enhance --config configs/enhance.py:mnist_x2 --workdir W --input IMG_OR_DIR \
      --output OUT [--degrade] [--self_ensemble]

Each image is upscaled by the network's factor. With --degrade the input is taken as the
original: it is first area-downscaled by the factor (cropped to a multiple of it), so the strip
can show low-res input, bicubic, network and original side by side. Without it the strip shows
the input (nearest-neighbour enlarged), bicubic and the network. --self_ensemble averages the
network over the 8 flips and quarter turns of each image (steps.self_ensemble; 8x the time).
"""


import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.core import images
from aigc_jax.core.errors import UserError
from aigc_jax.data import damage, inputs
from aigc_jax.models import srgan
from aigc_jax.tasks.image2image import steps, train

TILE = 96  # low-resolution tile side
OVERLAP = 16  # low-resolution pixels of context on each side; above the generator's receptive radius


def upscale_tiled(fn, image, scale: int, tile: int = TILE, overlap: int = OVERLAP):
  """fn([1, h, w, C]) -> [1, h*scale, w*scale, C], applied to overlapping tiles of `image` [1, H, W, C].

  Each tile is run with `overlap` extra input pixels on every side that exist, and only its
  centre is kept, so as long as the network sees no further than `overlap` pixels the result
  equals running it on the whole image, with no seams, in memory bounded by the tile size.
  """
  _, h, w, c = image.shape
  if h <= tile + 2 * overlap and w <= tile + 2 * overlap:
    return fn(image)
  out = np.zeros((1, h * scale, w * scale, c), np.float32)
  for y0 in range(0, h, tile):
    for x0 in range(0, w, tile):
      y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
      ya, xa = max(y0 - overlap, 0), max(x0 - overlap, 0)
      yb, xb = min(y1 + overlap, h), min(x1 + overlap, w)
      up = np.asarray(fn(image[:, ya:yb, xa:xb]))
      out[:, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = up[:, (y0 - ya) * scale:(y1 - ya) * scale,
                                                                   (x0 - xa) * scale:(x1 - xa) * scale]
  return jnp.asarray(out)


def run(config, workdir, input_path, output, overwrite: bool = False, degrade: bool = False,
        ensemble: bool = False):
  """Upscales every input image; returns the output folder."""
  if config.task != "enhance":
    raise UserError(f"--mode=enhance needs a super-resolution config (configs/enhance.py); got task "
                    f"'{config.task}'")
  out = images.results_folder(output, overwrite)
  config, state = train.load_state(workdir, config)  # the network as trained, whatever the preset is now
  items = inputs.read_inputs(input_path)
  inputs.check_channels(items, config.data.channels, workdir)
  scale = config.model.scale
  if degrade:
    for name, im in items:
      if im.shape[0] < scale or im.shape[1] < scale:
        raise UserError(f"'{name}' is {im.shape[1]}x{im.shape[0]}, smaller than the factor {scale} of --degrade")
  fn = jax.jit(lambda x: steps.apply_generator(state, x))
  results = []
  for name, im in items:
    x = inputs.to_unit(im)
    original = None
    if degrade:
      hh, ww = (im.shape[0] // scale) * scale, (im.shape[1] // scale) * scale
      original = x[:, :hh, :ww]
      x = damage.downscale(original, scale)
    sr = steps.self_ensemble(lambda v: upscale_tiled(fn, v, scale), x) if ensemble else upscale_tiled(fn, x, scale)
    bicubic = srgan.bicubic(x, scale)
    nearest = jnp.repeat(jnp.repeat(x, scale, 1), scale, 2)
    columns = [images.to_uint8(v[0]) for v in (nearest, bicubic, sr)]
    if original is not None:
      columns.append(images.to_uint8(original[0]))
    results.append((name, images.to_uint8(sr[0]), columns))
  images.save_results(out, overwrite, results)
  return out
