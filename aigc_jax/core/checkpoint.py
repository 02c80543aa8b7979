"""Orbax checkpoints of the train state, with the config that produced them.

Saves are atomic (Orbax writes a temporary directory and renames it when complete), every
process takes part, and a run restarted with the same command resumes from the latest step.
Resuming with a config that changes what the arrays mean is refused before anything is written.
"""

import json

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from aigc_jax.core import files
from aigc_jax.core.errors import UserError

# Config entries that must match to resume: they change the networks or their inputs.
RESUME_KEYS = ("seed", "model", "data.resolution", "data.channels", "optim.grad_clip", "optim.schedule",
               "train.ema_decay")
# Formulations of the same layers (same parameters and values): a checkpoint moves freely between them.
INTERCHANGEABLE_KEYS = ("model.upconv_impl", "model.downconv_impl")


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flat(v, key + "."))
    else:
      out[key] = v
  return out


def _defaults(task: str) -> dict:
  """configs/default.py flattened: what a key meant before it was added to the config.

  The other tasks replace its model and optim sections with their own, so for them only the rest
  applies. Outside a checkout there is no configs/, and absent keys must match exactly.
  """
  try:
    from configs import default
  except ImportError:
    return {}
  flat = _flat(default.get_config().to_dict())
  if task != "gan":
    flat = {k: v for k, v in flat.items() if not k.startswith(("model.", "optim."))}
  return flat


def _saved_values(saved: dict, keys) -> dict:
  """The saved config flattened, a key it lacks read as its default: the checkpoint was written before
  the key existed, so it was trained with the behaviour the default gives."""
  defaults = _defaults(saved.get("task", "gan"))
  return {**{k: defaults[k] for k in keys if k in defaults}, **_flat(saved)}


def incompatible_keys(saved: dict, current: dict) -> list[str]:
  """Keys under RESUME_KEYS whose values differ between a saved and the current config dict."""
  b = _flat(current)
  keys = {k for k in _flat(saved).keys() | b.keys() if any(k == p or k.startswith(p + ".") for p in RESUME_KEYS)}
  keys -= set(INTERCHANGEABLE_KEYS)
  a = _saved_values(saved, keys)
  return sorted(k for k in keys if a.get(k) != b.get(k))


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

  def check_compatible(self, config: ml_collections.ConfigDict) -> int | None:
    """Returns the step to resume from, or raises if the saved config conflicts with `config`."""
    step = self.latest_step()
    if step is None:
      return None
    saved_config = self.saved_config(step)
    bad = incompatible_keys(saved_config, config.to_dict())
    if bad:
      saved, written = _saved_values(saved_config, bad), _flat(saved_config)
      now = _flat(config.to_dict())

      def was(k):
        unwritten = k in saved and k not in written
        return f"{saved.get(k)!r}" + (" (the default; the checkpoint predates the key)" if unwritten else "")

      diffs = ", ".join(f"{k}: {was(k)} -> {now.get(k)!r}" for k in bad)
      raise UserError(f"{self.directory} holds a checkpoint (step {step}) from an incompatible config ({diffs}); "
                      "use a new --workdir or the original config")
    return step

  def restore(self, step: int, template):
    """Restores the arrays saved at `step` into the structure of `template` (numpy leaves)."""
    target = jax.tree.map(np.asarray, template)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    except Exception as e:
      raise self._unreadable(step, e) from None
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
    _drop_closed_loop_reports()
    reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    return UserError(f"checkpoint step {step} in {self.directory} is unreadable or incomplete ({reason}); "
                     f"move {self.directory / str(step)} away to resume from an earlier step")


def _drop_closed_loop_reports():
  """Silences the aftermath of a failed read, which the one-line error has already reported.

  Orbax reads the arrays concurrently (asyncio.gather) and on the first failure closes its event loop
  without cancelling the other reads. As each of those finishes, TensorStore's done-callback calls
  loop.call_soon_threadsafe on the closed loop, and Python prints the resulting RuntimeError through
  sys.unraisablehook: one traceback per read still in flight, after main.py's one-line error. Closing
  the CheckpointManager does not stop them (the reads belong to the loop, not the manager). From the
  first failed read on, unraisable 'Event loop is closed' errors are dropped; all others still print.
  """
  import sys

  previous = sys.unraisablehook
  if getattr(previous, "drops_closed_loop", False):
    return

  def hook(report):
    if not (isinstance(report.exc_value, RuntimeError) and str(report.exc_value) == "Event loop is closed"):
      previous(report)

  hook.drops_closed_loop = True
  sys.unraisablehook = hook
