"""A CPU-seconds budget per training run, spent in segments with a quality point after each.

`Budget` keeps what a run has spent (process CPU and wall seconds, steps) and its curve of
(CPU seconds, steps, FID) points in WORKDIR/budget.json across invocations. `train_in_segments`
trains (or resumes) a GAN until the next mark of CPU seconds, lets the caller score the state
there with the clock stopped, and goes on from that checkpoint to the next mark: resuming is
bit-exact (tests/test_checkpoint.py), so the segments train what one uninterrupted run would.
The setup of a resumed segment (data, state, compilation) is not charged to the budget; the
first segment's is.
"""

import json
import time
from pathlib import Path

from aigc_jax.tasks.gan import state as gan_state
from aigc_jax.tasks.gan import train


class Budget:
  """CPU and wall seconds, steps and curve points of a run, kept in WORKDIR/budget.json."""

  def __init__(self, path: Path, limit_s: float):
    self.path, self.limit_s = path, limit_s
    saved = json.loads(path.read_text()) if path.exists() else {}
    self.cpu_s, self.wall_s, self.steps = saved.get("cpu_s", 0.0), saved.get("wall_s", 0.0), saved.get("steps", 0)
    self.curve = saved.get("curve", [])
    self._cpu0 = self._wall0 = None
    self.last_step = self.steps

  def left(self) -> float:
    return self.limit_s - self.cpu_s

  def start(self):
    self._cpu0, self._wall0 = time.process_time(), time.time()

  def restart_cpu_clock(self):
    """Forget the CPU time since start(): a resumed segment's setup is not charged."""
    self._cpu0 = time.process_time()

  def spent(self) -> float:
    return self.cpu_s + time.process_time() - self._cpu0

  def record(self, steps: int):
    cpu, wall = time.process_time(), time.time()
    self.cpu_s += cpu - self._cpu0
    self.wall_s += wall - self._wall0
    self._cpu0, self._wall0 = cpu, wall
    self.steps = steps
    self.save()

  def save(self):
    tmp = self.path.with_name(self.path.name + ".tmp")
    tmp.write_text(json.dumps({"cpu_s": self.cpu_s, "wall_s": self.wall_s, "steps": self.steps,
                               "curve": self.curve}) + "\n")
    tmp.replace(self.path)


def marks(limit_s: float, points: int) -> list[float]:
  """`points` evenly spaced CPU-second marks ending at the budget."""
  return [limit_s * (i + 1) / points for i in range(points)]


def train_segment(config, workdir: Path, budget: Budget, until_s: float, charge_setup: bool):
  """Trains (or resumes) until `until_s` CPU seconds are spent; returns the host state of that checkpoint."""
  workdir.mkdir(parents=True, exist_ok=True)
  every = config.train.checkpoint_every
  first = [True]

  def stop_after(step):
    if first[0] and not charge_setup:
      budget.restart_cpu_clock()
    first[0] = False
    budget.last_step = step
    over = budget.spent() >= until_s
    if over or step % every == 0:  # the checkpoint of this step is saved right after
      budget.record(step)
    return over

  budget.start()
  try:
    state = train.train_and_evaluate(config, str(workdir), stop_after=stop_after)
  finally:
    budget.record(budget.last_step)
  return state


def train_in_segments(config, workdir: Path, budget: Budget, points: int, score):
  """Trains until the budget is spent, calling `score(state) -> fid` at each of `points` marks (clock stopped).

  Returns the final host state; the curve points are in budget.curve as [cpu_s, steps, fid].
  """
  state = None
  for mark in marks(budget.limit_s, points):
    if budget.curve and budget.curve[-1][0] >= mark - 1e-6:
      continue  # scored in an earlier invocation
    if budget.cpu_s < mark:
      state = train_segment(config, workdir, budget, mark, charge_setup=budget.steps == 0)
    elif state is None:
      state = gan_state.load_state(config, workdir)[0]
    budget.curve.append([round(budget.cpu_s, 1), int(state.step), None])
    budget.curve[-1][2] = score(state)
    budget.save()
  if state is None:
    state = gan_state.load_state(config, workdir)[0]
  return state
