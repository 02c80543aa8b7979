"""JAX's persistent compilation cache, on by default for runs started from main.py.

XLA:CPU takes about ten seconds to compile a DCGAN train step; with the cache, a second run of the
same config (a resumed run, a sample or evaluation run, the next test) loads the compiled program
from disk instead. The cache lives in ``$AIGC_COMPILATION_CACHE`` if set (``off`` disables it),
else in ``$XDG_CACHE_HOME/aigc_jax/jax_cache`` (``~/.cache/aigc_jax/jax_cache``). Entries are keyed
by the program, the jax/jaxlib version and the device, so a stale entry is never used.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
from absl import logging

from aigc_jax.core.errors import UserError

ENV = "AIGC_COMPILATION_CACHE"
OFF = ("off", "none", "0", "false", "no")
# Programs that compile faster than this are cheaper to recompile than to read back; the train,
# sample and metric steps all take longer.
MIN_COMPILE_SECS = 0.5


def default_dir() -> Path:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(base) / "aigc_jax" / "jax_cache"


def cache_dir() -> Path | None:
  """Where the cache goes, or None when ``$AIGC_COMPILATION_CACHE`` is ``off``."""
  value = os.environ.get(ENV, "").strip()
  if value.lower() in OFF:
    return None
  return Path(value).expanduser() if value else default_dir()


def enable(min_compile_secs: float = MIN_COMPILE_SECS) -> Path | None:
  """Points JAX at the cache directory (created if missing); returns it, or None when off.

  A directory the user named that cannot be used is a UserError; if the default one cannot be
  created (read-only home), the run goes on without a cache. A cache directory already given to
  JAX itself (``JAX_COMPILATION_CACHE_DIR``) is left alone unless ``$AIGC_COMPILATION_CACHE`` is set.
  """
  explicit = bool(os.environ.get(ENV, "").strip())
  path = cache_dir()
  if path is None:
    jax.config.update("jax_compilation_cache_dir", None)
    return None
  if not explicit and jax.config.jax_compilation_cache_dir:
    return Path(jax.config.jax_compilation_cache_dir)
  try:
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
      raise PermissionError(f"{path} is not writable")
  except OSError as e:
    if explicit:
      raise UserError(f"{ENV}={os.environ[ENV]!r} cannot be used as a compilation cache directory ({e}); "
                      f"give a writable directory, or 'off'") from None
    logging.warning("compilation cache disabled: cannot create %s (%s)", path, e)
    return None
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_secs)
  return path
