"""What the step benchmarks share: a synthetic batch of a config's shape, and timing in alternating rounds.

Alternating rounds (contender A, B, ..., then A, B, ... again) let load from other processes hit
every contender alike; medians over rounds are then comparable on a busy machine.
"""

import time

import jax
import numpy as np


def synthetic_batch(dp, config, batch_size: int):
  """Uniform images in [-1, 1] of the config's resolution and channels, label 0, placed by `dp`."""
  res, channels = config.data.resolution, config.data.channels
  rng = np.random.default_rng(0)
  return dp.put_batch({"image": rng.uniform(-1, 1, (batch_size, res, res, channels)).astype(np.float32),
                       "label": np.zeros(batch_size, np.int32)})


def alternate(runs: dict, rounds: int, steps_per_round: int) -> dict:
  """name -> seconds per call in each round, for `runs` = {name: (fn, args)} called in turn."""
  times = {name: [] for name in runs}
  for _ in range(rounds):
    for name, (fn, args) in runs.items():
      t0 = time.perf_counter()
      for _ in range(steps_per_round):
        out = fn(*args)
      jax.block_until_ready(out)
      times[name].append((time.perf_counter() - t0) / steps_per_round)
  return times


def seconds_per_step(step, state, batch, warmup: int, steps: int):
  """(state, seconds per step) after `warmup` untimed and `steps` timed calls of `step(state, batch)`."""
  for _ in range(warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return state, (time.perf_counter() - t0) / steps
