"""Small shared pieces for the tests."""

import jax
import numpy as np

from configs import dcgan, with_overrides  # noqa: F401  (tests import it from here too)


def smoke_config(**overrides):
  """The DCGAN smoke preset with dotted overrides, e.g. smoke_config(**{'train.num_steps': 4})."""
  return with_overrides(dcgan.get_config("smoke"), **overrides)


def assert_trees_equal(a, b, rtol=0.0, atol=0.0):
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def write_oversized_png(path):
  """A PNG just over PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS), a few dozen KB on disk:
  one bit per pixel, all black, so it compresses to almost nothing."""
  import math

  from PIL import Image

  side = math.isqrt(2 * Image.MAX_IMAGE_PIXELS) + 1
  Image.new("1", (side, side)).save(path)
  return path
