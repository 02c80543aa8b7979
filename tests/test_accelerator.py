"""The checks benchmarks/accelerator.py runs on a GPU or TPU, written for whatever backend JAX has.

In CI they run on the CPU (four fake devices); on an accelerator machine the script runs them there
with AIGC_EXPECT_BACKEND=gpu, so a run that silently fell back to the CPU fails instead of passing.
"""

import os

import flax.linen as nn
import jax
import numpy as np
import pytest
from helpers import assert_trees_equal, smoke_config

from aigc_jax import models
from aigc_jax.core import parallel
from aigc_jax.models import cpu_convs
from aigc_jax.tasks.gan import steps, train

# Off the CPU, convolutions may run in TF32 and reduce in another order under pmap or a mesh.
TOLERANCE = {"cpu": dict(rtol=2e-5, atol=2e-6)}.get(jax.default_backend(), dict(rtol=2e-3, atol=2e-4))


def test_backend_is_the_one_the_run_expects():
  expected = os.environ.get("AIGC_EXPECT_BACKEND")
  if expected:
    assert jax.default_backend() == expected, jax.devices()


def _batches(n, per_device=4):
  rng = np.random.default_rng(0)
  size = per_device * jax.local_device_count()
  return [{"image": rng.uniform(-1, 1, (size, 32, 32, 1)).astype(np.float32), "label": np.zeros(size, np.int32)}
          for _ in range(n)]


def _run(mode, batches, traces):
  config = smoke_config()

  def counted(state, batch, **kw):
    traces.append(mode)
    return steps.train_step(state, batch, **kw)
  if mode is None:
    state, step = train.build_state(config), jax.jit(counted)
    for b in batches:
      state, metrics = step(state, b)
    return jax.device_get(state.arrays), jax.device_get(metrics)
  dp = parallel.DataParallel(mode, devices=jax.local_devices())
  dstate = dp.put_state(train.build_state(config, parallel.bn_axis_name(mode)))
  step = dp.step(counted)
  for b in batches:
    dstate, metrics = step(dstate, dp.put_batch(b))
  return dp.get_state(dstate.arrays), dp.get_metrics(metrics)


@pytest.mark.parametrize("mode", parallel.MODES)
def test_parallel_step_equals_the_single_device_step_and_compiles_once(mode):
  batches, traces = _batches(3), []
  ref_state, ref_metrics = _run(None, batches, traces)
  state, metrics = _run(mode, batches, traces)
  assert traces == [None, mode]  # three steps each, one trace each
  assert_trees_equal(state, ref_state, **TOLERANCE)
  for k in ref_metrics:
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-3 if jax.default_backend() != "cpu" else 1e-4,
                               atol=1e-5)


def test_auto_convolutions_are_xlas_off_the_cpu():
  """conv_impl=auto: the CPU forms on the CPU, XLA's own convolutions on a GPU or TPU, in the compiled step."""
  backend = jax.default_backend()
  g, d = models.create(smoke_config().model, (32, 32, 1))
  if backend == "cpu":
    assert (g.conv_transpose.func, d.conv.func) == (cpu_convs.UpConv, cpu_convs.DownConv)
  else:
    assert (g.conv_transpose, d.conv) == (nn.ConvTranspose, nn.Conv)
  state = train.build_state(smoke_config())
  jaxpr = str(jax.make_jaxpr(steps.train_step)(state, _batches(1)[0]))
  # The CPU forms are custom_jvp functions of matmuls; XLA's are conv_general_dilated throughout.
  assert ("custom_jvp_call" in jaxpr) == (backend == "cpu")
  assert "conv_general_dilated" in jaxpr
