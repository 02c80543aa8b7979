"""malloc tunables for XLA:CPU's buffers: when the restart happens, what it passes on, and how to opt out."""

import json
import os
import subprocess
import sys

import pytest

from aigc_jax.core import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
  f = tmp_path / "enabled"
  f.write_text("always [madvise] never\n")
  assert host_memory.thp_mode(str(f)) == "madvise"
  f.write_text("[always] madvise never\n")
  assert host_memory.thp_mode(str(f)) == "always"
  f.write_text("garbage\n")
  assert host_memory.thp_mode(str(f)) is None
  assert host_memory.thp_mode(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("environ, glibc, want", [
  ({}, (2, 36), True),
  ({}, (2, 26), True),
  ({}, (2, 25), False),  # no malloc tunables
  ({}, None, False),  # musl, or not Linux
  ({"AIGC_HOST_MEMORY": "off"}, (2, 36), False),
  ({"AIGC_HOST_MEMORY": "0"}, (2, 36), False),
  ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, (2, 36), False),  # the user's own malloc settings stand
  ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}, (2, 36), False),
  ({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}, (2, 36), True),
])
def test_wanted(monkeypatch, environ, glibc, want):
  monkeypatch.setattr(host_memory.sys, "platform", "linux")
  assert host_memory.wanted(environ, glibc=glibc, accelerator=False) is want


def test_not_wanted_off_linux_or_with_an_accelerator(monkeypatch):
  monkeypatch.setattr(host_memory.sys, "platform", "linux")
  assert not host_memory.wanted({}, glibc=(2, 36), accelerator=True)
  monkeypatch.setattr(host_memory.sys, "platform", "darwin")
  assert not host_memory.wanted({}, glibc=(2, 36), accelerator=False)


def test_accelerator_present_from_jax_platforms_or_device_nodes(monkeypatch):
  assert host_memory.accelerator_present({"JAX_PLATFORMS": "tpu"})
  assert host_memory.accelerator_present({"JAX_PLATFORMS": "cuda,cpu"})
  assert not host_memory.accelerator_present({"JAX_PLATFORMS": "cpu"})
  monkeypatch.setattr(host_memory.glob, "glob", lambda pattern: ["/dev/nvidia0"] if "nvidia" in pattern else [])
  assert host_memory.accelerator_present({})
  monkeypatch.setattr(host_memory.glob, "glob", lambda pattern: [])
  assert not host_memory.accelerator_present({})


def test_environ_with_tunables_keeps_other_tunables_and_adds_huge_pages_where_supported():
  env = host_memory.environ_with_tunables({"GLIBC_TUNABLES": "glibc.pthread.rseq=0", "X": "1"}, (2, 36), "madvise")
  assert env["X"] == "1"
  assert env["GLIBC_TUNABLES"].startswith("glibc.pthread.rseq=0:")
  assert host_memory.enabled(env) and host_memory.huge_pages(env)
  for glibc, mode in [((2, 34), "madvise"), ((2, 36), "never"), ((2, 36), None)]:
    env = host_memory.environ_with_tunables({}, glibc, mode)
    assert host_memory.enabled(env) and not host_memory.huge_pages(env)
  assert not host_memory.enabled({}) and not host_memory.huge_pages({})


SCRIPT = """
import json, os, sys
sys.path.insert(0, {root!r})
from aigc_jax.core import host_memory
print("started", flush=True)
host_memory.reexec()
print(json.dumps({{"argv": sys.argv, "tunables": os.environ.get("GLIBC_TUNABLES"), "enabled": host_memory.enabled(),
                  "huge_pages": host_memory.huge_pages()}}))
"""


def run_script(tmp_path, **env_overrides):
  script = tmp_path / "probe.py"
  script.write_text(SCRIPT.format(root=ROOT))
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "AIGC_HOST_MEMORY")}
  env.update(env_overrides)
  out = subprocess.run([sys.executable, str(script), "--flag", "a b"], env=env, capture_output=True, text=True,
                       timeout=60, check=True).stdout.splitlines()
  return out[:-1], json.loads(out[-1])


@pytest.mark.skipif(not host_memory.wanted({}), reason="not Linux with glibc >= 2.26")
def test_reexec_restarts_once_with_the_same_arguments(tmp_path):
  lines, got = run_script(tmp_path)
  assert lines == ["started", "started"]  # the original process, then the restarted one
  assert got["argv"][1:] == ["--flag", "a b"]
  assert got["enabled"]
  supported = host_memory.glibc_version() >= (2, 35) and host_memory.thp_mode() in ("always", "madvise")
  assert got["huge_pages"] == supported


def test_reexec_opt_out_and_already_set(tmp_path):
  lines, got = run_script(tmp_path, AIGC_HOST_MEMORY="off")
  assert lines == ["started"] and got["tunables"] is None and not got["enabled"]
  lines, got = run_script(tmp_path, GLIBC_TUNABLES="glibc.malloc.hugetlb=0")
  assert lines == ["started"] and got["tunables"] == "glibc.malloc.hugetlb=0" and not got["huge_pages"]


STEP_SCRIPT = """
import hashlib, sys
sys.path.insert(0, {root!r})
from aigc_jax.core import host_memory
host_memory.reexec()
import jax, numpy as np
from aigc_jax.core import parallel
from aigc_jax.tasks.gan import steps, train
from configs import dcgan
config = dcgan.get_config("smoke")
dp = parallel.DataParallel(config.train.parallel, devices=jax.devices()[:1])
rng = np.random.default_rng(0)
batch = dp.put_batch({{"image": rng.uniform(-1, 1, (config.train.batch_size, config.data.resolution,
                      config.data.resolution, config.data.channels)).astype(np.float32),
                      "label": np.zeros(config.train.batch_size, np.int32)}})
state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
step = dp.step(steps.train_step, loss=config.train.loss)
for _ in range(2):
  state, _ = step(state, batch)
leaves = jax.tree.leaves(jax.device_get((state.g_params, state.d_params)))
print(host_memory.enabled(), hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in leaves)).hexdigest())
"""


@pytest.mark.skipif(not host_memory.wanted({}), reason="not Linux with glibc >= 2.26")
def test_tunables_change_no_result(tmp_path):
  """Two train steps give bit-identical parameters with and without the malloc tunables."""
  script = tmp_path / "step.py"
  script.write_text(STEP_SCRIPT.format(root=ROOT))
  base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "AIGC_HOST_MEMORY")}
  out = {}
  for setting in ("on", "off"):
    env = dict(base, AIGC_HOST_MEMORY=setting, AIGC_COMPILATION_CACHE="off")
    line = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300,
                          check=True).stdout.split()
    out[setting] = line
  assert out["on"][0] == "True" and out["off"][0] == "False"
  assert out["on"][1] == out["off"][1]
