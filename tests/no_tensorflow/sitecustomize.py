"""Put on PYTHONPATH, makes this interpreter (and any it re-executes) behave as if TensorFlow and
TensorFlow Datasets were not installed: no finder finds them, so importing them raises
ModuleNotFoundError and importlib.util.find_spec returns None, as on a machine without them."""

import importlib.abc
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets")


class _Hiding(importlib.abc.MetaPathFinder):
  """A finder that finds everything `finder` finds except the BLOCKED packages."""

  def __init__(self, finder):
    self._finder = finder

  def find_spec(self, name, path=None, target=None):
    if name.split(".", 1)[0] in BLOCKED or not hasattr(self._finder, "find_spec"):
      return None
    return self._finder.find_spec(name, path, target)

  def __getattr__(self, attr):  # invalidate_caches, find_distributions, ...
    return getattr(self._finder, attr)


sys.meta_path[:] = [_Hiding(f) for f in sys.meta_path]
