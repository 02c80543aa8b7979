"""The step loop every trainer shares: its config checks, progress, stop on NaN, periodic hooks,
checkpoints, preemption.

A run killed by SIGTERM (a preempted TPU VM) or Ctrl-C saves a checkpoint at the step it reached
and raises `Interrupted`; starting the same command again resumes there.
"""

import functools
import os
import signal

import jax
import numpy as np

from aigc_jax.core import parallel
from aigc_jax.tasks.gan import steps
from aigc_jax.core.errors import UserError


def validate(config, num_devices: int, *, batches=("train.batch_size",), positive=()):
  """The training settings every trainer reads: raise UserError naming the value and what is accepted.

  `batches` are keys of global batch sizes, which must split over the devices and the processes;
  `positive` are counts a trainer needs beyond train.num_steps, log_every, checkpoint_every and
  keep_checkpoints.
  """
  value = lambda key: functools.reduce(lambda node, k: node[k], key.split("."), config)
  if config.train.parallel not in parallel.MODES:
    raise UserError(f"config.train.parallel='{config.train.parallel}' is not one of {parallel.MODES}")
  for key in batches:
    if value(key) <= 0 or value(key) % num_devices:
      raise UserError(f"config.{key}={value(key)} is not a positive multiple of the {num_devices} device(s); "
                      f"use a multiple of {num_devices}")
    if value(key) % jax.process_count():
      raise UserError(f"config.{key}={value(key)} does not split over {jax.process_count()} processes")
  for key in ("train.num_steps", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints", *positive):
    if value(key) <= 0:
      raise UserError(f"config.{key}={value(key)} must be positive")
  o, num_steps = config.optim, config.train.num_steps
  if o.schedule not in steps.SCHEDULES:
    raise UserError(f"config.optim.schedule='{o.schedule}' is not one of {', '.join(steps.SCHEDULES)}")
  if o.schedule != "constant" and o.warmup_steps >= num_steps:
    raise UserError(f"config.optim.warmup_steps={o.warmup_steps} must be below config.train.num_steps={num_steps}")


class Interrupted(Exception):
  """Raised after a signal-triggered checkpoint; carries the conventional exit code."""

  def __init__(self, step: int, signum: int):
    super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; checkpoint saved, "
                     "run the same command to resume")
    self.exit_code = 128 + signum


class SignalFlag:
  """Turns SIGTERM/SIGINT into a flag the loop checks between steps.

  Several processes must stop at the same step to save together, and a signal reaches each at a
  different step. There SIGTERM stays with JAX's preemption service (jax.distributed installed its
  handler), which tells every process and agrees on the step; SIGINT is forwarded to it.
  """

  def __init__(self):
    self.signum = None
    self._multiprocess = jax.process_count() > 1

  def __enter__(self):
    signums = (signal.SIGINT,) if self._multiprocess else (signal.SIGTERM, signal.SIGINT)
    self._previous = {s: signal.signal(s, self._handle) for s in signums}
    return self

  def _handle(self, signum, frame):
    if self.signum is not None:  # second Ctrl-C: stop now.
      raise KeyboardInterrupt
    self.signum = signum
    if self._multiprocess:
      os.kill(os.getpid(), signal.SIGTERM)

  def __exit__(self, *exc):
    for s, h in self._previous.items():
      signal.signal(s, h)

  def requested(self, step: int) -> bool:
    if self._multiprocess:  # a local flag would stop this process alone, and the others would hang.
      from jax.experimental import multihost_utils
      return multihost_utils.reached_preemption_sync_point(step)
    return self.signum is not None


def run(step_fn, dstate, batches, *, dp, start_step: int, num_steps: int, log_every: int, checkpoint_every: int,
        save, hooks=(), progress, writer, is_main: bool, stop_after=None):
  """Runs `dstate, metrics = step_fn(dstate, batch)` from start_step to num_steps.

  Metrics are fetched from the devices only every `log_every` steps (averaged over them), so the
  host never waits on a step in between. `hooks` are (every, fn(step, dstate)) pairs, also run at
  the last step; `save(step, dstate)` writes a checkpoint. `stop_after(step) -> bool`, asked after
  every step, ends the run early as if that step were the last (a budget that is not in steps,
  such as CPU seconds; with several processes it must answer the same on all). Returns (dstate, step).
  """
  pending = []
  step = start_step
  with SignalFlag() as stop:
    while step < num_steps:
      dstate, metrics = step_fn(dstate, next(batches))
      step += 1
      pending.append(metrics)
      stopped = stop_after is not None and stop_after(step)
      last = step == num_steps or stopped
      if step % log_every == 0 or last or stop.signum is not None:
        fetched = [dp.get_metrics(m) for m in pending]
        values = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
        pending.clear()
        if not all(np.isfinite(v) for v in values.values()):
          raise FloatingPointError(f"non-finite metrics at step {step}: {values}; no checkpoint written for it")
        if is_main:
          print(progress.line(step, values), flush=True)
        writer.scalars(step, values)
      for every, fn in hooks:
        if step % every == 0 or last:
          fn(step, dstate)
      interrupt = not last and stop.requested(step)
      if step % checkpoint_every == 0 or last or interrupt:
        save(step, dstate)
      if interrupt:
        raise Interrupted(step, stop.signum or signal.SIGTERM)
      if stopped:
        break
  return dstate, step
