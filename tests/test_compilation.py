"""The persistent compilation cache: where it goes, that a second process reuses it, and 'off'."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from aigc_jax.core import compilation

# Compiles one small program with the cache as main.py sets it up and reports JAX's cache events.
PROBE = """
import json, jax, jax.numpy as jnp
from aigc_jax.core import compilation
events = []
jax.monitoring.register_event_listener(lambda event, **kw: events.append(event))
path = compilation.enable(min_compile_secs=0)
jax.jit(lambda x: jnp.tanh(x @ x.T).sum(0) + 1)(jnp.ones((16, 16))).block_until_ready()
print(json.dumps({"path": None if path is None else str(path), "dir": jax.config.jax_compilation_cache_dir,
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "misses": events.count("/jax/compilation_cache/cache_misses")}))
"""


def probe(env_value, tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  if env_value is None:
    env.pop(compilation.ENV, None)
  else:
    env[compilation.ENV] = env_value
  r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  return json.loads(r.stdout.strip().splitlines()[-1])


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.delenv(compilation.ENV, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert compilation.cache_dir() == tmp_path / "aigc_jax" / "jax_cache"
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert compilation.cache_dir() == Path.home() / ".cache" / "aigc_jax" / "jax_cache"
  for off in ("off", "OFF", " none "):
    monkeypatch.setenv(compilation.ENV, off)
    assert compilation.cache_dir() is None
  monkeypatch.setenv(compilation.ENV, "~/elsewhere")
  assert compilation.cache_dir() == Path.home() / "elsewhere"


def test_second_process_loads_what_the_first_compiled(tmp_path):
  cache = tmp_path / "cache"
  first = probe(str(cache), tmp_path)
  assert first["path"] == first["dir"] == str(cache)
  assert first["hits"] == 0 and first["misses"] >= 1
  assert any(cache.iterdir())
  second = probe(str(cache), tmp_path)
  assert second["hits"] == first["misses"] and second["misses"] == 0


def test_default_location_and_off(tmp_path):
  default = probe(None, tmp_path)
  assert default["dir"] == str(tmp_path / "xdg" / "aigc_jax" / "jax_cache")
  assert any(Path(default["dir"]).iterdir())
  off = probe("off", tmp_path)
  assert off["path"] is None and off["dir"] is None
  assert (off["hits"], off["misses"]) == (0, 0)


def test_unusable_cache_dir_is_a_one_line_error(tmp_path):
  not_a_dir = tmp_path / "file"
  not_a_dir.write_text("x")
  workdir = tmp_path / "run"
  env = {**os.environ, "JAX_PLATFORMS": "cpu", compilation.ENV: str(not_a_dir)}
  r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", f"{ROOT}/configs/dcgan.py:smoke",
                      "--workdir", str(workdir)], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert r.returncode == 2, r.stderr[-3000:]
  lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1 and compilation.ENV in lines[0] and "'off'" in lines[0], r.stderr[-3000:]
  assert not workdir.exists()
  assert not_a_dir.read_text() == "x"


@pytest.fixture(autouse=True)
def _no_global_cache_change():
  """enable() is only ever called in subprocesses here; this process's JAX config stays as it was."""
  import jax

  before = jax.config.jax_compilation_cache_dir
  yield
  assert jax.config.jax_compilation_cache_dir == before
