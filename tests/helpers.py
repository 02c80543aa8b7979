"""Small shared pieces for the tests."""

import jax
import numpy as np

from aigc_jax.core import parallel
from aigc_jax.tasks.gan import steps, train
from configs import dcgan, with_overrides  # noqa: F401  (tests import it from here too)


def smoke_config(**overrides):
  """The DCGAN smoke preset with dotted overrides, e.g. smoke_config(**{'train.num_steps': 4})."""
  return with_overrides(dcgan.get_config("smoke"), **overrides)


def labelled_batches(n, batch_size=16):
  """n batches of uniform noise images [batch_size, 32, 32, 1] with random labels 0..9 (seeded)."""
  rng = np.random.default_rng(0)
  return [{"image": rng.uniform(-1, 1, (batch_size, 32, 32, 1)).astype(np.float32),
           "label": rng.integers(0, 10, batch_size).astype(np.int32)} for _ in range(n)]


def run_gan_steps(config, mode, batches):
  """(host state arrays, last metrics) after the GAN steps of `config` on `batches`: one device under jit
  when `mode` is None, else all devices under parallel mode `mode` ('pmap' or 'jit')."""
  opts = steps.step_options(config)
  if mode is None:
    state = train.build_state(config)
    step = jax.jit(lambda s, b: steps.train_step(s, b, **opts))
    for b in batches:
      state, metrics = step(state, b)
    return jax.device_get(state.arrays), jax.device_get(metrics)
  dp = parallel.DataParallel(mode)
  dstate = dp.put_state(train.build_state(config, parallel.bn_axis_name(mode)))
  step = dp.step(steps.train_step, **opts)
  for b in batches:
    dstate, metrics = step(dstate, dp.put_batch(b))
  return dp.get_state(dstate.arrays), dp.get_metrics(metrics)


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
