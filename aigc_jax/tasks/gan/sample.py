"""--mode=sample: images from the latest checkpoint, as .npz or numbered PNGs for external FID tools."""

import jax
import numpy as np

from aigc_jax.core import files, images
from aigc_jax.tasks.gan import steps
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError


def load_state(config, workdir) -> steps.GANState:
  """The latest checkpointed state of `workdir`, built for single-device use."""
  from aigc_jax.tasks.gan.train import build_state

  directory = files.path(workdir) / "checkpoints"
  ckpt = Checkpoints(directory, read_only=True)
  step = ckpt.latest_step()
  if step is None:
    raise UserError(f"no checkpoint in {directory}; train first with --mode=train")
  ckpt.check_compatible(config)
  state = build_state(config)
  return state.with_arrays(ckpt.restore(step, state.arrays))


def generate_images(state: steps.GANState, num: int, seed: int, batch_size: int = 250, labels=None) -> np.ndarray:
  """`num` uint8 [N, H, W, C] images; deterministic in `seed`.

  A conditional generator draws image i of class labels[i] (default: classes in turn, balanced).
  """
  fn = jax.jit(steps.sample_step)
  rng = jax.random.PRNGKey(seed)
  if state.num_classes and labels is None:
    labels = np.asarray(steps.default_labels(num, state.num_classes))
  out = []
  for i, start in enumerate(range(0, num, batch_size)):
    z = jax.random.normal(jax.random.fold_in(rng, i), (batch_size, state.z_dim))
    y = None
    if state.num_classes:
      y = np.zeros(batch_size, np.int32)
      chunk = np.asarray(labels[start:start + batch_size], np.int32)
      y[:len(chunk)] = chunk
    out.append(images.to_uint8(fn(state, z, y))[: num - start])
  return np.concatenate(out)


def parse_labels(text: str | None, num: int, num_classes: int):
  """--labels '3' or '0,1,7' -> int32 [num] cycling through them; None -> balanced classes (conditional)."""
  if not num_classes:
    if text:
      raise UserError(f"--labels={text} needs a class-conditional model (config.model.cond_mode), this one is "
                      "unconditional")
    return None
  if not text:
    return np.asarray(steps.default_labels(num, num_classes))
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError:
    values = []
  if not values or any(not 0 <= v < num_classes for v in values):
    raise UserError(f"--labels={text} must be class ids in 0..{num_classes - 1}, comma-separated, e.g. 3 or 0,1,7")
  return np.resize(np.asarray(values, np.int32), num)


def write(output: str, samples: np.ndarray, labels=None, overwrite: bool = False):
  """`F.npz` gets arrays `images` (and `labels`); any other path becomes a folder of PNGs."""
  out = files.path(output)
  if out.exists() and not overwrite:
    raise UserError(f"{out} exists; pass --overwrite to replace it or choose another --output")
  if out.suffix == ".npz":
    arrays = {"images": samples} if labels is None else {"images": samples, "labels": labels}
    return files.write_atomic(out, lambda f: np.savez_compressed(f, **arrays))
  if out.exists():
    out.rmtree() if out.is_dir() else out.unlink()
  digits = len(str(len(samples) - 1))
  for i, im in enumerate(samples):
    images.save_png(out / f"{i:0{digits}d}.png", im)
  return out


def run(config, workdir, num_samples: int, output: str, overwrite: bool = False, seed: int = 0,
        labels: str | None = None):
  if num_samples <= 0:
    raise UserError(f"--num_samples={num_samples} must be positive")
  if not output:
    raise UserError("--output is required: F.npz for an array file, or a folder name for PNGs")
  if files.path(output).exists() and not overwrite:
    raise UserError(f"{output} exists; pass --overwrite to replace it or choose another --output")
  from aigc_jax import models

  y = parse_labels(labels, num_samples, models.num_classes(config.model))  # before any work
  state = load_state(config, workdir)
  return write(output, generate_images(state, num_samples, seed, labels=y), labels=y, overwrite=overwrite)
