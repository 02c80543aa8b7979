"""Orbax checkpoints of the train state, with the config that produced them.

Saves are atomic (Orbax writes a temporary directory and renames it when complete), every
process takes part, and a run restarted with the same command resumes from the latest step.
Resuming with a config that changes what the arrays mean is refused before anything is written.
"""

import json
import sys
from typing import Mapping

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from aigc_jax.core import files
from aigc_jax.core.errors import UserError

# Config entries that must match to resume: they change the networks or their inputs.
RESUME_KEYS = ("seed", "model", "data.resolution", "data.channels", "optim.grad_clip", "optim.schedule",
               "train.ema_decay", "augment.ada_target")
# Keys older checkpoints saved that no longer decide anything about the arrays: the CPU formulations
# of the same convolutions (same parameters and values), now chosen per run outside `model`.
IGNORED_KEYS = ("model.upconv_impl", "model.downconv_impl")


def flatten(d: dict, prefix: str = "") -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(flatten(v, key + "."))
    else:
      out[key] = v
  return out


def _saved_values(saved: dict, keys, defaults: Mapping) -> dict:
  """The saved config flattened, a key it lacks read as its default: the checkpoint was written before
  the key existed, so it was trained with the behaviour the default gives."""
  return {**{k: defaults[k] for k in keys if k in defaults}, **flatten(saved)}


def incompatible_keys(saved: dict, current: dict, defaults: Mapping = {}) -> list[str]:
  """Keys under RESUME_KEYS whose values differ between a saved and the current config dict.

  `defaults` (flat, e.g. {'model.cond_mode': 'none'}) gives what a key the saved config lacks meant;
  each task passes its own, so this module needs no config files.
  """
  b = flatten(current)
  keys = {k for k in flatten(saved).keys() | b.keys() if any(k == p or k.startswith(p + ".") for p in RESUME_KEYS)}
  keys -= set(IGNORED_KEYS)
  a = _saved_values(saved, keys, defaults)
  return sorted(k for k in keys if a.get(k) != b.get(k))


def same_on_all_processes(what: str, value: int, directory):
  """Processes that see different checkpoints would pair up mismatched collectives and hang; say why instead."""
  if jax.process_count() == 1:
    return
  values = np.asarray(multihost_utils.process_allgather(np.int32(value))).ravel()
  if (values != int(value)).any():
    raise UserError(f"the processes see different checkpoints in {directory} ({what} per process: "
                    f"{values.tolist()}); --workdir must be one directory all processes share")


class Checkpoints:
  """A CheckpointManager over `directory` holding items 'state' (numpy arrays) and 'config' (JSON)."""

  def __init__(self, directory, *, keep: int = 3, read_only: bool = False):
    self.directory = files.absolute(directory)
    self._manager = None
    self._keep = keep
    self._read_only = read_only

  @property
  def manager(self) -> ocp.CheckpointManager:
    if self._manager is None:  # created lazily: creating it makes the directory.
      options = ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=not self._read_only,
                                             read_only=self._read_only, cleanup_tmp_directories=True)
      self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "config"))
    return self._manager

  def latest_step(self) -> int | None:
    if not self.directory.exists():
      return None
    return self.manager.latest_step()

  def saved_config(self, step: int) -> dict:
    try:
      return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
    except Exception as e:
      raise self._unreadable(step, e) from None

  def check_compatible(self, config: ml_collections.ConfigDict, defaults: Mapping = {}) -> int | None:
    """Returns the step to resume from, or raises if the saved config conflicts with `config`.

    `defaults`: see `incompatible_keys`.
    """
    step = self.latest_step()
    if step is None:
      return None
    saved_config = self.saved_config(step)
    bad = incompatible_keys(saved_config, config.to_dict(), defaults)
    if bad:
      saved, written = _saved_values(saved_config, bad, defaults), flatten(saved_config)
      now = flatten(config.to_dict())

      def was(k):
        unwritten = k in saved and k not in written
        return f"{saved.get(k)!r}" + (" (the default; the checkpoint predates the key)" if unwritten else "")

      diffs = ", ".join(f"{k}: {was(k)} -> {now.get(k)!r}" for k in bad)
      raise UserError(f"{self.directory} holds a checkpoint (step {step}) from an incompatible config ({diffs}); "
                      "use a new --workdir or the original config")
    return step

  def restore(self, step: int, template=None):
    """Restores the arrays saved at `step` into the structure of `template` (numpy leaves); without a
    template, as the nested dicts they were saved from."""
    target = None if template is None else jax.tree.map(np.asarray, template)
    hooks = sys.unraisablehook, sys.excepthook
    _drop_closed_loop_reports()  # before the read: its leftovers may report before the error reaches us
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    except Exception as e:
      raise self._unreadable(step, e) from None
    sys.unraisablehook, sys.excepthook = hooks
    return jax.tree.map(np.asarray, restored["state"])

  def save(self, step: int, host_state, config: ml_collections.ConfigDict, *, force: bool = False) -> bool:
    saved = self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(host_state), config=ocp.args.JsonSave(json.loads(config.to_json()))),
        force=force)
    return saved

  def wait(self):
    if self._manager is not None:
      self._manager.wait_until_finished()

  def close(self):
    if self._manager is not None:
      self._manager.wait_until_finished()
      self._manager.close()
      self._manager = None

  def _unreadable(self, step, e: Exception) -> UserError:
    reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    return UserError(f"checkpoint step {step} in {self.directory} is unreadable or incomplete ({reason}); "
                     f"move {self.directory / str(step)} away to resume from an earlier step")


def restore_latest(directory, template, config: ml_collections.ConfigDict, *, defaults: Mapping = {},
                   missing: str = "train first with --mode=train", check=None):
  """(state, step): the latest checkpoint in `directory` restored into `template`, a task's state.

  The one loader of trained states: the saved config must be compatible with `config` (see
  `incompatible_keys`); no checkpoint is a UserError ending in `missing`, the hint what to do.
  `check(Checkpoints, step)`: a task's further refusals, as trainer.train's check_resume.
  """
  ckpt = Checkpoints(directory, read_only=True)
  step = ckpt.latest_step()
  if step is None:
    raise UserError(f"no checkpoint in {ckpt.directory}; {missing}")
  ckpt.check_compatible(config, defaults)
  if check is not None:
    check(ckpt, step)
  # On an unreadable checkpoint the manager is left to the exiting process: closing it would wait on
  # Orbax's reads still in flight and print their errors after the one-line one.
  state = template.with_arrays(ckpt.restore(step, template.arrays))
  ckpt.close()
  return state, step


def saved_config(directory, *, what: str = "a trained network") -> tuple[ml_collections.ConfigDict, int]:
  """(config, step) saved with the latest checkpoint in `directory`; UserError naming it when there is none."""
  ckpt = Checkpoints(directory, read_only=True)
  try:
    step = ckpt.latest_step() if ckpt.directory.is_dir() else None
    if step is None:
      raise UserError(f"{ckpt.directory} holds no finished checkpoint of {what}")
    return ml_collections.ConfigDict(ckpt.saved_config(step)), step
  finally:
    ckpt.close()


def _drop_closed_loop_reports():
  """Silences the aftermath of a failed read, which the one-line error reports.

  Orbax reads the arrays concurrently (asyncio.gather) and on the first failure closes its event loop
  without cancelling the other reads. As each of those finishes, TensorStore's done-callback calls
  loop.call_soon_threadsafe on the closed loop, and Python prints the resulting RuntimeError, through
  sys.unraisablehook or sys.excepthook depending on the thread: one traceback per read still in
  flight, around main.py's one-line error. Closing the CheckpointManager does not stop them (the
  reads belong to the loop, not the manager). While a restore runs, and after one failed, 'Event
  loop is closed' RuntimeErrors are dropped from both hooks; everything else still prints.
  """
  def closed_loop(exc) -> bool:
    return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"

  unraisable, excepthook = sys.unraisablehook, sys.excepthook
  if not getattr(unraisable, "drops_closed_loop", False):
    def unraisable_hook(report):
      if not closed_loop(report.exc_value):
        unraisable(report)
    unraisable_hook.drops_closed_loop = True
    sys.unraisablehook = unraisable_hook
  if not getattr(excepthook, "drops_closed_loop", False):
    def except_hook(exc_type, exc, tb):
      if not closed_loop(exc):
        excepthook(exc_type, exc, tb)
    except_hook.drops_closed_loop = True
    sys.excepthook = except_hook
