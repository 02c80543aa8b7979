"""Two JAX processes train exactly like one process with all their devices, and share checkpoints.

Each worker (tests/multihost_worker.py) is a real process with 2 CPU devices, joined through
jax.distributed on 127.0.0.1 via the config or the AIGC_* environment variables. The reference
is one process with 4 devices fed the same global batches. XLA:CPU compiles slowly, so workers
share a persistent compilation cache and skip expensive backend optimizations.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT
from helpers import assert_trees_equal, smoke_config

from aigc_jax.core import distributed
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError
from aigc_jax.tasks.gan import train

WORKER = ROOT / "tests" / "multihost_worker.py"
PHASE_TIMEOUT_S = 480  # per group of concurrent workers; the slower group takes ~1-2 min on 2 busy cores.
MODES = ("jit", "pmap")
# Same global batches, same 4-way split: only the order of the cross-device sums differs (gloo vs
# in-process). Adam turns a gradient near zero's rounding into a relative change of its update, so
# atol is a few % of one lr=2e-4 step; a real divergence (other batches, rng) moves weights by ~lr.
TOL = dict(rtol=1e-5, atol=5e-6)
STRIPPED_ENV = ("AIGC_COORDINATOR", "AIGC_NUM_PROCESSES", "AIGC_PROCESS_ID", "JAX_COORDINATOR_ADDRESS",
                "JAX_NUM_CPU_DEVICES", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def worker_env(cache, devices: int, **extra) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0 "
                       "--xla_llvm_disable_expensive_passes=true",
             JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1", **extra)
  return env


class Run:
  """The worker processes of one training run, their logs, and the final state each process saw."""

  def __init__(self, tmp, name, *, processes, cache, modes=MODES, via="env"):
    self.tmp, self.name, self.workdir = tmp, name, tmp / name
    self.out = tmp / f"{name}.final"
    self.procs, self.logs, self.commands = [], [], []
    common = [sys.executable, str(WORKER), str(self.workdir), str(self.out), f"--modes={','.join(modes)}"]
    if processes == 1:
      self.commands.append((common + ["--shards=2"], worker_env(cache, 4)))
      return
    coordinator = f"127.0.0.1:{free_port()}"
    for i in range(processes):
      # Process 0 serves the coordinator; binding it to loopback only also works without IPv6.
      env = worker_env(cache, 2, JAX_COORDINATOR_BIND_ADDRESS=coordinator)
      if via == "env":
        cmd = common
        env.update(AIGC_COORDINATOR=coordinator, AIGC_NUM_PROCESSES=str(processes), AIGC_PROCESS_ID=str(i))
      else:
        cmd = common + [f"distributed.coordinator={coordinator}", f"distributed.num_processes={processes}",
                        f"distributed.process_id={i}"]
      self.commands.append((cmd, env))

  def start(self):
    for cmd, env in self.commands:
      log = self.tmp / f"{self.name}.{len(self.procs)}.log"
      self.logs.append(log)
      with open(log, "w") as f:  # a file, not a pipe: a worker blocked on a full pipe would stall its peer.
        self.procs.append(subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT))

  def kill(self):
    for p in self.procs:
      if p.poll() is None:
        p.kill()
      p.wait()

  def output(self, i: int) -> str:
    return self.logs[i].read_text()

  def final(self, mode: str, i: int = 0) -> dict:
    with np.load(f"{self.out}.{mode}.{i}.npz") as f:
      return dict(f)

  def checkpoint(self, mode: str, template, step: int = 6) -> dict:
    ckpt = Checkpoints(self.workdir / mode / "checkpoints")
    assert ckpt.latest_step() == step
    return flat(ckpt.restore(step, template))


def run_together(*runs):
  """Starts every worker of `runs` and waits for all; a failure, a timeout or Ctrl-C kills them all."""
  deadline = time.monotonic() + PHASE_TIMEOUT_S
  try:
    for run in runs:
      run.start()
    for run in runs:
      for i, p in enumerate(run.procs):
        try:
          rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
          pytest.fail(f"{run.name} worker {i} still running after {PHASE_TIMEOUT_S}s:\n{run.output(i)[-3000:]}")
        assert rc == 0, f"{run.name} worker {i} exited {rc}:\n{run.output(i)[-3000:]}"
  finally:
    for run in runs:
      run.kill()


def flat(tree) -> dict:
  """A state's arrays keyed like the workers' .npz files."""
  return {jax.tree_util.keystr(k): np.asarray(x) for k, x in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope="module")
def template():
  return train.build_state(smoke_config()).arrays


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
  """Both modes from scratch: 2 processes x 2 devices (joined via $AIGC_*) and 1 process x 4 devices."""
  tmp = tmp_path_factory.mktemp("multihost")
  cache = tmp / "xla_cache"
  two = Run(tmp, "two", processes=2, cache=cache, via="env")
  one = Run(tmp, "one", processes=1, cache=cache)
  run_together(two, one)
  return tmp, cache, two, one


@pytest.mark.parametrize("mode", MODES)
def test_every_process_ends_with_the_same_parameters(fresh, mode):
  _, _, two, _ = fresh
  final = two.final(mode, 0)
  assert int(final["['step']"]) == 6
  assert_trees_equal(final, two.final(mode, 1))  # bit-identical


@pytest.mark.parametrize("mode", MODES)
def test_two_processes_train_like_one_with_all_devices(fresh, mode, template):
  _, _, two, one = fresh
  saved = two.checkpoint(mode, template)
  assert_trees_equal(saved, two.final(mode, 0))  # what the processes hold is what was saved
  assert_trees_equal(saved, one.checkpoint(mode, template), **TOL)
  assert_trees_equal(two.final(mode, 0), one.final(mode, 0), **TOL)


def test_only_process_0_logs_and_writes_files(fresh):
  _, _, two, _ = fresh
  assert two.output(0).count("step 6/6 |") == len(MODES) and "step 6/6 |" not in two.output(1)
  for mode in MODES:
    workdir = two.workdir / mode
    assert len(list((workdir / "tensorboard").glob("events.out.tfevents*"))) == 1
    assert (workdir / "config.json").exists()
    assert sorted(p.name for p in (workdir / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]


def test_checkpoints_resume_across_process_counts(fresh, template):
  """From step 3: the 2-process checkpoint in 1 process, the 1-process one in 2 (joined via the config).

  Checkpoints hold host arrays whatever the mode, so one mode is enough here.
  """
  tmp, cache, two, one = fresh
  for src, dst in ((two, "to_one"), (one, "to_two")):
    shutil.copytree(src.workdir / "jit", tmp / dst / "jit")
    shutil.rmtree(tmp / dst / "jit" / "checkpoints" / "6")  # as if the run had stopped after step 3
  to_one = Run(tmp, "to_one", processes=1, cache=cache, modes=("jit",))
  to_two = Run(tmp, "to_two", processes=2, cache=cache, modes=("jit",), via="config")
  run_together(to_one, to_two)
  for run, i in ((to_one, 0), (to_two, 0), (to_two, 1)):  # every process agrees on the step
    assert "resumed from step 3 in" in run.output(i), run.output(i)[-2000:]
  assert_trees_equal(to_two.final("jit", 0), to_two.final("jit", 1))
  assert_trees_equal(to_one.checkpoint("jit", template), two.checkpoint("jit", template), **TOL)
  assert_trees_equal(to_two.checkpoint("jit", template), one.checkpoint("jit", template), **TOL)


def test_single_process_config_initializes_nothing(monkeypatch):
  for name in ("AIGC_COORDINATOR", "AIGC_NUM_PROCESSES", "AIGC_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  assert distributed.initialize(smoke_config()) is False


def test_environment_fills_what_the_config_leaves_unset(monkeypatch):
  monkeypatch.setenv("AIGC_COORDINATOR", "10.0.0.1:1234")
  monkeypatch.setenv("AIGC_NUM_PROCESSES", "4")
  monkeypatch.setenv("AIGC_PROCESS_ID", "3")
  assert distributed.settings(smoke_config()) == ("10.0.0.1:1234", 4, 3, False)
  config = smoke_config(**{"distributed.coordinator": "h:9", "distributed.num_processes": 2,
                           "distributed.process_id": 0})
  assert distributed.settings(config) == ("h:9", 2, 0, False)


@pytest.mark.parametrize("overrides, message", [
    ({"distributed.coordinator": "h:1", "distributed.num_processes": 2, "distributed.process_id": 2},
     r"process_id=2 \(config.distributed.process_id or \$AIGC_PROCESS_ID\) must be in \[0, 2\)"),
    ({"distributed.coordinator": "h:1", "distributed.num_processes": 2}, r"process_id=-1 .* must be in \[0, 2\)"),
    ({"distributed.coordinator": "10.0.0.1", "distributed.num_processes": 2, "distributed.process_id": 0},
     r"coordinator '10.0.0.1' \(config.distributed.coordinator or \$AIGC_COORDINATOR\) is not HOST:PORT"),
    ({"distributed.coordinator": "h:1"}, r"num_processes=0 .* must be positive"),
    ({"distributed.num_processes": 2, "distributed.process_id": 1}, r"need a coordinator"),
])
def test_bad_settings_are_one_line_user_errors(overrides, message, monkeypatch):
  for name in ("AIGC_COORDINATOR", "AIGC_NUM_PROCESSES", "AIGC_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  with pytest.raises(UserError, match=message) as e:
    distributed.initialize(smoke_config(**overrides))
  assert "\n" not in str(e.value)


def test_bad_environment_value_is_a_user_error(monkeypatch):
  monkeypatch.setenv("AIGC_NUM_PROCESSES", "two")
  with pytest.raises(UserError, match=r"AIGC_NUM_PROCESSES='two' is not an integer"):
    distributed.initialize(smoke_config())
