"""GAN evaluation: scores during training (`config.eval.every`) and --mode=eval of a checkpoint or a sample file.

Generated images come from a fixed noise stream (`config.eval.seed`), not from the training RNG,
so evaluating never changes a training run and scores at different steps are of the same latents.
With several processes every process runs the same (collective-free) evaluation on the same
parameters and data; only process 0 writes logs, and the best-FID checkpoint is saved by all
processes together because Orbax saves are collective.
"""

import json
import math
import sys
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from aigc_jax.core import files
from aigc_jax.core import images as image_utils
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError
from aigc_jax.metrics.evaluator import (
  Evaluator,
  format_line,
  log_to,
  read_samples,
  validate,
)
from aigc_jax.tasks.gan.sample import generate_images
from aigc_jax.tasks.gan.state import GANState, load_state


def generate(state: GANState, num: int, seed: int, batch_size: int, log=None) -> np.ndarray:
  """`num` uint8 images of the fixed evaluation latents (sample.generate_images), with progress in `log`."""
  return generate_images(state, num, seed, batch_size, log=(lambda msg: log(f"eval: {msg}")) if log else None)


class TrainingEval:
  """The `config.eval.every` hook of a GAN run: metrics to stdout, TensorBoard and WORKDIR/eval/metrics.jsonl,
  and WORKDIR/best/ (Orbax, keep 1) holding the state with the lowest FID so far.

  Built before the work directory is written, so a missing classifier or bad eval config stops
  the run before it starts.
  """

  def __init__(self, config, workdir, is_main: bool):
    self.config, self.is_main = config, is_main
    self.log = log_to(sys.stdout) if is_main else (lambda msg: None)
    self.evaluator = Evaluator(config, log=self.log)
    workdir = files.path(workdir)
    self.history_path = workdir / "eval" / "metrics.jsonl"
    self.best = Checkpoints(workdir / "best", keep=1)
    self.best_fid = self._best_so_far() if "fid" in self.evaluator.names else None

  def _best_so_far(self) -> float:
    """The FID of the checkpoint in best/, from the history line of its step (written before it was saved)."""
    step = self.best.latest_step()
    if step is None or not self.history_path.exists():
      return math.inf
    fids = {}
    for line in self.history_path.read_text().splitlines():
      if line.strip():
        record = json.loads(line)
        fids[record["step"]] = record.get("fid", math.inf)
    return fids.get(step, math.inf)

  def __call__(self, step: int, host_state: GANState, writer):
    e = self.config.eval
    start = time.perf_counter()
    samples = generate(host_state, e.num_samples, e.seed, e.batch_size, self.log)
    values = self.evaluator.evaluate(samples)
    values["seconds"] = round(time.perf_counter() - start, 2)
    self.log(format_line(step, values))
    writer.scalars(step, {f"eval/{k}": v for k, v in values.items() if isinstance(v, float)})
    if self.is_main:
      files.append_line(self.history_path, json.dumps({"step": step, **values}))
    if self.best_fid is None:
      return
    fid = values["fid"]
    if jax.process_count() > 1:  # every process must take the same decision: Orbax saves are collective.
      fid = float(multihost_utils.broadcast_one_to_all(np.float64(fid)))
    if fid < self.best_fid:
      self.best.save(step, host_state.arrays, self.config, force=True)
      self.best.wait()
      self.best_fid = fid
      self.log(f"eval step {step}: best FID so far, saved to {self.best.directory}")

  def close(self):
    self.best.close()


def run(config, workdir: str | None, *, checkpoint: str = "latest", samples: str | None = None,
        output: str | None = None, overwrite: bool = False) -> dict:
  """--mode=eval: metrics of a checkpoint's samples or of a sample file, printed as one JSON line."""
  validate(config)
  if output:  # a grid of samples goes next to it as .png
    files.check_output(output, overwrite, suffixes=(".json",))
  log = log_to(sys.stderr)
  if samples:
    images = read_samples(samples, config)
    if images.ndim == 3:
      images = images[..., None]
    if len(images) == 0:
      raise UserError(f"--samples '{samples}' holds no images")
    evaluator = Evaluator(config, log=log)
    evaluator.check_images(images, f"--samples '{samples}'")
    result = {"samples": str(samples), **evaluator.evaluate(images)}
  else:
    if not workdir:
      raise UserError("--mode=eval needs --workdir W (a GAN run) or --samples F.npz")
    state, step = load_state(config, workdir, checkpoint)
    evaluator = Evaluator(config, log=log)
    e = config.eval
    images = generate(state, e.num_samples, e.seed, e.batch_size, log)
    result = {"workdir": str(workdir), "checkpoint": checkpoint, "step": int(step), **evaluator.evaluate(images)}
  line = json.dumps(result)
  print(line, flush=True)
  if output:
    out = files.write_text(output, line + "\n")
    grid = out.with_suffix(".png")
    tiles = image_utils.grid(images[:64])
    image_utils.save_png(grid, tiles, scale=max(1, 128 // tiles.shape[0] + 1))
    log(f"eval: wrote {out} and a grid of the first {min(64, len(images))} images to {grid}")
  return result
