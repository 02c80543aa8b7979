"""Keeps XLA:CPU's per-step buffers mapped (Linux with glibc, no accelerator): ``main.py`` restarts
itself once with malloc tunables, before JAX is imported.

XLA:CPU mallocs a compiled program's temporaries on every call. glibc serves blocks above 32 MiB
with fresh ``mmap`` pages and unmaps them on free, so every train step faults its working memory
back in, 4 KiB at a time, and the kernel zeroes each page: 24,508 faults per 32x32 DCGAN step on
the development machine (``benchmarks/train_step.py`` reports the faults per step). The tunables
below make malloc take every block from one heap (``mmap_max=0``, ``arena_max=1``) and keep what is
freed (``trim_threshold``), so after the first steps a step faults nothing; on glibc >= 2.35 with
transparent huge pages available, the heap also asks for 2 MiB pages (``hugetlb=1``), which makes
the first steps' faults 500 times fewer. The price: the process keeps its peak memory until it
exits, and with one malloc arena XLA's threads contend for it: compiling took 9.3 s instead of
5.8 s on 2 cores (once per config with the persistent compilation cache), and run alone with two
threads some steps got slower and others faster (README, Train step). What it buys is a step
that stays fast when other work on the machine allocates memory (README, Performance). Hosts with
a GPU or TPU, where the step does not run on the CPU, are left alone. Tunables are read when a
process starts, hence the restart (:func:`reexec`). Results do not change; ``AIGC_HOST_MEMORY=off``
keeps the process as it is, and a ``GLIBC_TUNABLES`` that already sets any ``glibc.malloc.*``
tunable is left alone.
"""

from __future__ import annotations

import glob
import os
import platform
import sys

ENV = "AIGC_HOST_MEMORY"
OFF = ("off", "none", "0", "false", "no")
TUNABLES = "GLIBC_TUNABLES"
RETAIN = {"glibc.malloc.mmap_max": "0", "glibc.malloc.arena_max": "1", "glibc.malloc.trim_threshold": str(1 << 40)}
HUGE_PAGES = {"glibc.malloc.hugetlb": "1"}
THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"
ACCELERATOR_DEVICES = ("/dev/nvidia[0-9]*", "/dev/accel[0-9]*", "/dev/vfio/[0-9]*")  # NVIDIA GPU, TPU (v4+, v2/v3)


def thp_mode(path: str = THP_MODE_FILE) -> str | None:
  """The kernel's transparent-huge-page mode ('always', 'madvise', 'never'), or None if unknown."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return None
  start, end = text.find("["), text.find("]")
  return text[start + 1 : end] if 0 <= start < end else None


def glibc_version() -> tuple[int, int] | None:
  libc, version = platform.libc_ver()
  if libc != "glibc":
    return None
  try:
    major, minor = (int(v) for v in version.split(".")[:2])
  except ValueError:
    return None
  return major, minor


def accelerator_present(environ=None) -> bool:
  """A GPU or TPU device node, or ``JAX_PLATFORMS`` naming another platform first: JAX will not run
  the step on the CPU."""
  environ = os.environ if environ is None else environ
  platforms = environ.get("JAX_PLATFORMS", "").strip().lower()
  if platforms:
    return platforms.split(",")[0].strip() != "cpu"
  return any(glob.glob(pattern) for pattern in ACCELERATOR_DEVICES)


def _tunables(environ) -> dict:
  pairs = (t.split("=", 1) for t in environ.get(TUNABLES, "").split(":") if "=" in t)
  return {k.strip(): v.strip() for k, v in pairs}


def enabled(environ=None) -> bool:
  """Whether this process (or one with ``environ``) runs with malloc keeping its memory."""
  tunables = _tunables(os.environ if environ is None else environ)
  return all(tunables.get(k) == v for k, v in RETAIN.items())


def huge_pages(environ=None) -> bool:
  """Whether glibc's huge-page tunable is set."""
  return all(_tunables(os.environ if environ is None else environ).get(k) == v for k, v in HUGE_PAGES.items())


def wanted(environ=None, glibc: tuple[int, int] | None | str = "auto", accelerator: bool | None = None) -> bool:
  """True when a restart would change something: Linux, glibc >= 2.26 (malloc tunables), no GPU
  or TPU, no ``glibc.malloc.*`` tunable set yet, and ``$AIGC_HOST_MEMORY`` not off."""
  environ = os.environ if environ is None else environ
  if environ.get(ENV, "").strip().lower() in OFF:
    return False
  if any(k.startswith("glibc.malloc.") for k in _tunables(environ)):
    return False
  if accelerator_present(environ) if accelerator is None else accelerator:
    return False
  glibc = glibc_version() if glibc == "auto" else glibc
  return sys.platform.startswith("linux") and glibc is not None and glibc >= (2, 26)


def environ_with_tunables(environ, glibc: tuple[int, int] | None = None, mode: str | None = None) -> dict:
  """A copy of ``environ`` whose ``GLIBC_TUNABLES`` also holds :data:`RETAIN`, and
  :data:`HUGE_PAGES` where glibc (>= 2.35) and the kernel ('always' or 'madvise') support it."""
  add = dict(RETAIN)
  if glibc is not None and glibc >= (2, 35) and mode in ("always", "madvise"):
    add.update(HUGE_PAGES)
  env = dict(environ)
  items = [t for t in env.get(TUNABLES, "").split(":") if t] + [f"{k}={v}" for k, v in add.items()]
  env[TUNABLES] = ":".join(items)
  return env


def reexec() -> None:
  """Restarts this Python process with the same command line and the tunables set, if
  :func:`wanted`; otherwise returns. Call it first thing in a script's ``__main__`` block."""
  if wanted():
    sys.stdout.flush()
    sys.stderr.flush()
    env = environ_with_tunables(os.environ, glibc_version(), thp_mode())
    os.execve(sys.executable, sys.orig_argv, env)
