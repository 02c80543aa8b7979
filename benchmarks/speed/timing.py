"""What the benchmarks share: a synthetic batch of a config's shape, timing in alternating rounds, medians,
results written to an --out folder.

Alternating rounds (contender A, B, ..., then A, B, ... again) let load from other processes hit
every contender alike; medians over rounds are then comparable on a busy machine.
"""

import resource
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


def median_ms(fn, args, reps: int) -> float:
  """Median milliseconds of `fn(*args)` over `reps` calls, after one untimed call (compilation)."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def minor_page_faults() -> int:
  """This process's minor page faults so far: memory the kernel had to map in (see aigc_jax.core.host_memory)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def cpu_seconds() -> float:
  """CPU time this process has used so far, all threads, user and system."""
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def seconds_per_step(step, state, batch, warmup: int, steps: int, faults: dict | None = None):
  """(state, seconds per step) after `warmup` untimed and `steps` timed calls of `step(state, batch)`;
  `faults`, if given, receives 'per_step': the minor page faults per timed step, and
  'cpu_s_per_step': the CPU seconds (all threads) per timed step."""
  for _ in range(warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  f0, c0, t0 = minor_page_faults(), cpu_seconds(), time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - t0) / steps
  if faults is not None:
    faults["per_step"] = (minor_page_faults() - f0) / steps
    faults["cpu_s_per_step"] = (cpu_seconds() - c0) / steps
  return state, seconds
