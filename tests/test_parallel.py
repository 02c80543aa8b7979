"""pmap and jit-sharded steps on 4 fake CPU devices equal the single-device step on the global batch."""

import jax
import numpy as np
import pytest
from helpers import assert_trees_equal, smoke_config

from aigc_jax.core import parallel
from aigc_jax.tasks.gan import steps, train


def _batches(n, batch_size=16):
  rng = np.random.default_rng(0)
  return [{"image": rng.uniform(-1, 1, (batch_size, 32, 32, 1)).astype(np.float32),
           "label": np.zeros(batch_size, np.int32)} for _ in range(n)]


def _run(mode, batches):
  config = smoke_config()
  if mode is None:
    state = train.build_state(config)
    step = jax.jit(steps.train_step)
    for b in batches:
      state, metrics = step(state, b)
    return jax.device_get(state.arrays), jax.device_get(metrics)
  dp = parallel.DataParallel(mode)
  state = train.build_state(config, parallel.bn_axis_name(mode))
  dstate = dp.put_state(state)
  step = dp.step(steps.train_step)
  for b in batches:
    dstate, metrics = step(dstate, dp.put_batch(b))
  return dp.get_state(dstate.arrays), dp.get_metrics(metrics)


def test_four_devices_are_available():
  assert jax.device_count() == 4


@pytest.mark.parametrize("mode", parallel.MODES)
def test_parallel_step_equals_single_device_step(mode):
  batches = _batches(3)
  ref_state, ref_metrics = _run(None, batches)
  state, metrics = _run(mode, batches)
  # Parameters, optimizer moments and BatchNorm running statistics of both networks.
  assert_trees_equal(state, ref_state, rtol=2e-5, atol=2e-6)
  for k in ref_metrics:
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-4, atol=1e-6)


def test_batch_layout_per_device():
  batch = _batches(1)[0]
  pm = parallel.DataParallel("pmap").put_batch(batch)
  assert pm["image"].shape == (4, 4, 32, 32, 1)
  np.testing.assert_array_equal(np.asarray(pm["image"].addressable_shards[1].data)[0], batch["image"][4:8])
  jt = parallel.DataParallel("jit").put_batch(batch)
  assert jt["image"].shape == (16, 32, 32, 1)
  assert len({s.device for s in jt["image"].addressable_shards}) == 4
  np.testing.assert_array_equal(np.asarray(jt["image"].addressable_shards[2].data), batch["image"][8:12])


def test_prefetch_keeps_order():
  assert list(parallel.prefetch(iter(range(5)), lambda x: x * 10, size=2)) == [0, 10, 20, 30, 40]


@pytest.mark.parametrize("mode", parallel.MODES)
def test_train_step_compiles_once(mode):
  traces = []

  def counted(state, batch, **kw):
    traces.append(1)
    return steps.train_step(state, batch, **kw)

  dp = parallel.DataParallel(mode)
  dstate = dp.put_state(train.build_state(smoke_config(), parallel.bn_axis_name(mode)))
  step = dp.step(counted)
  for b in _batches(3):
    dstate, _ = step(dstate, dp.put_batch(b))
  assert len(traces) == 1
