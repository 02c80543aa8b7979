"""--mode=sample: images from the latest checkpoint, as .npz or numbered PNGs for external FID tools."""

import math
import time

import jax
import numpy as np

from aigc_jax import models
from aigc_jax.core import files, images
from aigc_jax.core.errors import UserError
from aigc_jax.tasks.gan import steps
from aigc_jax.tasks.gan.state import GANState, load_state

_sample = jax.jit(steps.sample_step)


def generate_images(state: GANState, num: int, seed: int, batch_size: int = 250, labels=None,
                    log=None) -> np.ndarray:
  """`num` uint8 [N, H, W, C] images from latents fold_in(PRNGKey(seed), batch index): the same for every call.

  The one sampling loop (--mode=sample, evaluation, exploration). A conditional generator draws
  image i of class labels[i] (default: classes in turn, balanced). `log(msg)`, if given, hears
  progress four times.
  """
  rng = jax.random.PRNGKey(seed)
  if state.num_classes and labels is None:
    labels = np.asarray(steps.default_labels(num, state.num_classes))
  num_batches = math.ceil(num / batch_size)
  report = max(1, num_batches // 4)
  begin, out = time.perf_counter(), []
  for i, start in enumerate(range(0, num, batch_size)):
    z = jax.random.normal(jax.random.fold_in(rng, i), (batch_size, state.z_dim))
    y = None
    if state.num_classes:
      y = np.zeros(batch_size, np.int32)
      chunk = np.asarray(labels[start:start + batch_size], np.int32)
      y[:len(chunk)] = chunk
    out.append(images.to_uint8(_sample(state, z, y))[: num - start])
    if log and ((i + 1) % report == 0 or i + 1 == num_batches):
      log(f"sampled {min((i + 1) * batch_size, num)}/{num} images ({time.perf_counter() - begin:.1f}s)")
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
  out = files.check_output(output, overwrite)
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
  files.check_output(output, overwrite)
  y = parse_labels(labels, num_samples, models.num_classes(config.model))  # before any work
  state, _ = load_state(config, workdir)
  return write(output, generate_images(state, num_samples, seed, labels=y), labels=y, overwrite=overwrite)
