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
