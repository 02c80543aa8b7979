"""--mode=repair: fill holes in / denoise a user's images with a trained network or GAN inversion.

  python main.py --mode=repair --config configs/repair.py:mnist --workdir W --input IMG_OR_DIR \
      --mask center|boxes|strokes|pixels|gaussian|salt_pepper|MASK.png --output OUT [--self_ensemble]

A mask *kind* damages the given (clean) image synthetically, so the strip shows damaged, repaired
and original. A mask *image* (white = pixels to fill) marks the holes of an already damaged image,
so the strip shows damaged and repaired. --self_ensemble averages the network over the 8 flips and
quarter turns of each image (steps.self_ensemble). Without --mask a denoising network cleans the
image as it is. With a GAN config (configs/dcgan.py) the holes are filled by GAN inversion (tasks/gan/inpaint.py).
Everything is read and checked before OUT is created; an existing OUT needs --overwrite.
"""


import jax.numpy as jnp

from aigc_jax.core import images
from aigc_jax.core.errors import UserError
from aigc_jax.data import damage, inputs
from aigc_jax.tasks.image2image import steps, train


def run(config, workdir, input_path, mask, output, overwrite: bool = False, seed: int = 0,
        ensemble: bool = False):
  """Repairs every input image with the network of `workdir`; returns the output folder."""
  if config.task != "repair":
    raise UserError(f"--mode=repair needs a repair config (configs/repair.py) or a GAN config; got task "
                    f"'{config.task}'")
  out = images.results_folder(output, overwrite)
  config, state = train.load_state(workdir, config)  # the network as trained, whatever the preset is now
  items = inputs.read_inputs(input_path)
  kinds = damage.parse_kinds(config.damage.kinds)
  holes = any(k in damage.MASK_KINDS for k in kinds)
  noise_only = all(k in damage.NOISE_KINDS for k in kinds)
  if mask is None and not noise_only:
    raise UserError(f"the network in {workdir} fills holes; pass --mask with one of {', '.join(damage.KINDS)} "
                    "or a mask image (white = fill)")
  if mask is not None and mask not in damage.KINDS and not holes:
    raise UserError(f"the network in {workdir} is a denoiser; a mask image needs a hole-filling network")
  inputs.check_channels(items, config.data.channels, workdir)
  prepared = inputs.damage_inputs(items, mask, seed)
  apply = lambda g_in: steps.apply_generator(state, g_in)
  fn = (lambda g_in: steps.self_ensemble(apply, g_in)) if ensemble else apply
  # Known pixels pasted back (again): exact after the ensemble's mean too.
  repaired = [(m * d + (1.0 - m) * fn(jnp.concatenate([d, m], -1)))[0] for d, m, _ in prepared]
  images.save_results(out, overwrite, inputs.strips(items, prepared, repaired))
  return out
