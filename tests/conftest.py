"""Four fake CPU devices for the parallel tests; set before JAX creates its backend."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_num_cpu_devices", 4)
ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# main.py runs in subprocesses share one compilation cache for the session instead of the user's;
# the session removes the one it made.
_OWN_CACHE = None if "AIGC_COMPILATION_CACHE" in os.environ else tempfile.mkdtemp(prefix="aigc_jax_test_cache_")
if _OWN_CACHE:
  os.environ["AIGC_COMPILATION_CACHE"] = _OWN_CACHE
# main.py runs in subprocesses skip the malloc-tuning restart: it changes no result, and its single
# malloc arena slows XLA's multi-threaded compiles, which dominate the tests (tests/test_host_memory.py).
os.environ.setdefault("AIGC_HOST_MEMORY", "off")


def pytest_sessionfinish(session, exitstatus):
  if _OWN_CACHE:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
