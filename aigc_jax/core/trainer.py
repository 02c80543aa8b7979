"""The one trainer every task uses: init -> restore -> steps -> hooks (log, samples, eval) -> save.

`train` owns the skeleton: config checks shared by all tasks, data parallelism, the restore point
(with every process agreeing on it), the initial or restored state, the config written only once
everything is valid, TensorBoard, the input pipeline from the restore step, and `run`, the step
loop with progress, stop on NaN, periodic hooks, checkpoints and preemption. A task passes its
state builder, its pure step and a `setup` that returns its hooks and its final evaluation.

A run killed by SIGTERM (a preempted TPU VM) or Ctrl-C saves a checkpoint at the step it reached
and raises `Interrupted`; starting the same command again resumes there.
"""

import dataclasses
import functools
import os
import signal
from typing import Any, Callable, Mapping

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from aigc_jax import data
from aigc_jax.core import checkpoint, files, optim, parallel, summary
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
  if o.schedule not in optim.SCHEDULES:
    raise UserError(f"config.optim.schedule='{o.schedule}' is not one of {', '.join(optim.SCHEDULES)}")
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


@dataclasses.dataclass
class Run:
  """What a task's hooks see of a training run."""

  config: ml_collections.ConfigDict
  workdir: Any  # files.path
  dp: parallel.DataParallel
  state: Any  # the host template: networks, optimizers and static fields
  start_step: int
  source: data.Source
  is_main: bool = True
  writer: summary.Writer | None = None

  def host_state(self, dstate):
    """The device state as one host copy of the task's state."""
    return self.state.with_arrays(self.dp.get_state(dstate.arrays))


@dataclasses.dataclass
class Hooks:
  """What a task adds to the loop: `every` -> fn(step, dstate) pairs, a final result, and cleanup."""

  periodic: list = dataclasses.field(default_factory=list)
  finish: Callable[[int, Any], dict] | None = None  # (last step, dstate) -> result
  close: Callable[[], None] | None = None


def opening_line(config, run: Run, num_steps: int, about: str = "") -> str:
  """One line that says what is about to happen; `about`: what else the task chose for this run."""
  d, m = config.data, config.model
  name = d.name if d.source == "tfds" else (d.path or d.source) if d.source == "files" else d.source
  size = f"{run.source.num_examples} images" if run.source.num_examples else "streamed"
  what = f"resume at step {run.start_step} of {num_steps}" if run.start_step else f"{num_steps} steps"
  return (f"train {config.get('task', 'gan')} ({m.get('name', 'model')}) on {name} [{d.split}]: "
          f"{size}, {d.resolution}x{d.resolution}x{d.channels} | {run.dp.num_devices} device(s) "
          f"({jax.default_backend()}), {jax.process_count()} process(es), {run.dp.mode} | {what}, "
          f"batch {config.train.batch_size}{f' | {about}' if about else ''} | workdir {run.workdir}")


def train(config: ml_collections.ConfigDict, workdir, *, build_state: Callable, train_step: Callable,
          step_options: Mapping | None = None, defaults: Mapping = {}, setup: Callable | None = None,
          check_resume: Callable | None = None, stop_after=None, about: str = ""):
  """Trains `config` in `workdir` until config.train.num_steps; returns (host state, result of the task).

  build_state(config, bn_axis_name) -> the initial host state (a `core.state.Checkpointed`);
  train_step(state, batch, axis_name=..., **step_options) -> (state, metrics), the pure step;
  defaults: what resume keys a checkpoint's config lacks meant (checkpoint.incompatible_keys);
  check_resume(Checkpoints, step): task-specific refusals to resume;
  setup(Run) -> Hooks, called after the restore and before anything is written, so the checks a
  task's hooks need (an evaluator's data and extractor) fail with nothing written.
  `stop_after`: see `run`.
  `about`: a choice the task made for this run, for the opening line (e.g. the convolutions).
  The task validates its config before calling this.
  """
  dp = parallel.DataParallel(config.train.parallel)
  workdir = files.path(workdir)
  source = data.load(config.data, seed=config.seed, process_index=jax.process_index(),
                     process_count=jax.process_count())
  ckpt = checkpoint.Checkpoints(workdir / "checkpoints", keep=config.train.keep_checkpoints)
  # Opening existing checkpoints is itself a collective step in Orbax: agree first.
  checkpoint.same_on_all_processes("checkpoint directory exists", ckpt.directory.exists(), ckpt.directory)
  start_step = ckpt.check_compatible(config, defaults) or 0
  if start_step and check_resume is not None:
    check_resume(ckpt, start_step)
  checkpoint.same_on_all_processes("latest step", start_step, ckpt.directory)
  state = build_state(config, parallel.bn_axis_name(dp.mode))
  if start_step:  # a damaged checkpoint raises here; the manager is left to the exiting process, since
    # closing it would wait on Orbax's reads still in flight and print their errors.
    state = state.with_arrays(ckpt.restore(start_step, state.arrays))
    print(f"resumed from step {start_step} in {ckpt.directory}", flush=True)
  is_main = jax.process_index() == 0
  ctx = Run(config=config, workdir=workdir, dp=dp, state=state, start_step=start_step, source=source,
            is_main=is_main)
  hooks = Hooks()
  try:
    hooks = setup(ctx) if setup is not None else hooks
    t = config.train
    if is_main:
      print(opening_line(config, ctx, t.num_steps, about), flush=True)
      # Everything is valid: from here on the work directory is written.
      files.write_text(workdir / "config.json", config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    ctx.writer = summary.Writer(workdir / "tensorboard")
    host_batches = data.batches(source, config.data, batch_size=t.batch_size // jax.process_count(),
                                seed=config.seed, start_step=start_step)
    device_batches = parallel.prefetch(host_batches, dp.put_batch)
    step_fn = dp.step(train_step, **(step_options or {}))
    dstate = dp.put_state(state)

    def save(step, dstate):
      ckpt.save(step, dp.get_state(dstate.arrays), config, force=True)

    dstate, step = run(step_fn, dstate, device_batches, dp=dp, start_step=start_step, num_steps=t.num_steps,
                       log_every=t.log_every, checkpoint_every=t.checkpoint_every, save=save, hooks=hooks.periodic,
                       progress=summary.Progress(start_step, t.num_steps), writer=ctx.writer, is_main=is_main,
                       stop_after=stop_after)
    result = hooks.finish(step, dstate) if hooks.finish is not None else {"step": step}
    return ctx.host_state(dstate), result
  finally:
    ckpt.close()
    if ctx.writer is not None:
      ctx.writer.close()
    if hooks.close is not None:
      hooks.close()
