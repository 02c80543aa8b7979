"""--mode=sample: images from the latest checkpoint, as .npz or numbered PNGs for external FID tools."""

import shutil
from pathlib import Path

import jax
import numpy as np

from aigc_jax import images, steps
from aigc_jax.checkpoint import Checkpoints
from aigc_jax.errors import UserError


def load_state(config, workdir) -> steps.GANState:
  """The latest checkpointed state of `workdir`, built for single-device use."""
  from aigc_jax.train import build_state

  ckpt = Checkpoints(Path(workdir) / "checkpoints", read_only=True)
  step = ckpt.latest_step()
  if step is None:
    raise UserError(f"no checkpoint in {Path(workdir) / 'checkpoints'}; train first with --mode=train")
  ckpt.check_compatible(config)
  state = build_state(config)
  return state.with_arrays(ckpt.restore(step, state.arrays))


def generate_images(state: steps.GANState, num: int, seed: int, batch_size: int = 250) -> np.ndarray:
  """`num` uint8 [N, H, W, C] images; deterministic in `seed`."""
  fn = jax.jit(steps.sample_step)
  rng = jax.random.PRNGKey(seed)
  out = []
  for i, start in enumerate(range(0, num, batch_size)):
    z = jax.random.normal(jax.random.fold_in(rng, i), (batch_size, state.z_dim))
    out.append(images.to_uint8(fn(state, z))[: num - start])
  return np.concatenate(out)


def write(output: str, samples: np.ndarray, labels=None, overwrite: bool = False) -> Path:
  """`F.npz` gets arrays `images` (and `labels`); any other path becomes a folder of PNGs."""
  out = Path(output)
  if out.exists() and not overwrite:
    raise UserError(f"{out} exists; pass --overwrite to replace it or choose another --output")
  if out.suffix == ".npz":
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    arrays = {"images": samples} if labels is None else {"images": samples, "labels": labels}
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    return out
  if out.exists():
    shutil.rmtree(out) if out.is_dir() else out.unlink()
  digits = len(str(len(samples) - 1))
  for i, im in enumerate(samples):
    images.save_png(out / f"{i:0{digits}d}.png", im)
  return out


def run(config, workdir, num_samples: int, output: str, overwrite: bool = False, seed: int = 0) -> Path:
  if num_samples <= 0:
    raise UserError(f"--num_samples={num_samples} must be positive")
  if not output:
    raise UserError("--output is required: F.npz for an array file, or a folder name for PNGs")
  if Path(output).exists() and not overwrite:
    raise UserError(f"{output} exists; pass --overwrite to replace it or choose another --output")
  state = load_state(config, workdir)
  return write(output, generate_images(state, num_samples, seed), overwrite=overwrite)
