"""Batches for training and evaluation: numpy for in-memory sources, tf.data for TFDS streams.

In memory (the digits, image folders, IDX and NPZ files) the pipeline is plain numpy: every epoch is
a permutation of this process's examples drawn from (seed, epoch), and batch s holds positions
[s * B, (s + 1) * B) of the concatenated epochs. So a run resumed at step s computes its first batch
directly (no skipping), and sees exactly the batches an uninterrupted run would have seen. A
background thread prepares the next data.prefetch_batches batches while the step runs. grain would
do the same with more machinery; for arrays that fit in memory a permutation and a thread are all
it takes, and `benchmarks/speed/input_pipeline.py` measures that they keep ahead of the step.

`eval_batches` is the one ordered pass an evaluation needs, padded to whole batches with a mask.
"""

import queue
import threading
import weakref

import numpy as np

from aigc_jax.data import tfds_source
from aigc_jax.data.sources import Source


def to_unit_range(images_uint8):
  """uint8 [0, 255] -> float32 [-1, 1], the generator's tanh range."""
  return np.asarray(images_uint8, np.float32) / np.float32(127.5) - np.float32(1.0)


def batches(source: Source, data_config, *, batch_size: int, seed: int, start_step: int = 0):
  """Yields numpy batches {'image': float32 [B, H, W, C] in [-1, 1], 'label': int32 [B]} forever.

  `batch_size` is this process's share of the global batch.
  """
  if not source.in_memory:
    return tfds_source.batches(source.stream, source.num_examples, data_config, batch_size=batch_size,
                               seed=seed, start_step=start_step)
  order = EpochOrder(len(source.images), seed)
  images, labels = source.images, source.labels

  def batch(step):
    idx = order.positions(step * batch_size, batch_size)
    return {"image": to_unit_range(images[idx]), "label": labels[idx]}
  return Prefetch(batch, start_step, data_config.prefetch_batches)


def eval_batches(source: Source, data_config, *, batch_size: int):
  """One pass over `source` in its order, as batches of exactly `batch_size`.

  The last batch is padded, with 'mask' (bool [B]) false on the padding, so a compiled eval step
  sees one shape and every example is counted once.
  """
  if not source.in_memory:
    return tfds_source.eval_batches(source.stream, data_config, batch_size=batch_size)
  return _ordered(source.images, source.labels, batch_size)


def _ordered(images, labels, batch_size):
  for start in range(0, len(images), batch_size):
    n = min(batch_size, len(images) - start)
    pad = [(0, batch_size - n)]
    yield {"image": np.pad(to_unit_range(images[start:start + n]), pad + [(0, 0)] * 3),
           "label": np.pad(labels[start:start + n], pad), "mask": np.arange(batch_size) < n}


class EpochOrder:
  """The example at each position of an endless stream of epochs, each a fresh permutation of range(n)."""

  def __init__(self, num_examples: int, seed: int):
    if num_examples < 1:
      raise ValueError("an empty source has no order")
    self.n, self.seed = num_examples, seed
    self._epoch, self._perm = -1, None

  def permutation(self, epoch: int) -> np.ndarray:
    if epoch != self._epoch:
      rng = np.random.default_rng(np.random.SeedSequence([self.seed % 2**63, epoch]))
      self._epoch, self._perm = epoch, rng.permutation(self.n)
    return self._perm

  def positions(self, start: int, count: int) -> np.ndarray:
    """Example indices at stream positions [start, start + count)."""
    out, pos = [], start
    while pos < start + count:
      epoch, offset = divmod(pos, self.n)
      take = min(self.n - offset, start + count - pos)
      out.append(self.permutation(epoch)[offset:offset + take])
      pos += take
    return np.concatenate(out)


class Prefetch:
  """An iterator over make(start), make(start + 1), ..., computed up to `depth` ahead on a thread.

  The thread stops when the iterator is closed or garbage-collected; an error in `make` is raised
  by the next() that would have returned its batch.
  """

  def __init__(self, make, start: int, depth: int):
    self._queue = queue.Queue(maxsize=max(1, depth))
    self._stop = threading.Event()
    self._thread = threading.Thread(target=_fill, args=(make, start, self._queue, self._stop),
                                    name="aigc-jax-prefetch", daemon=True)
    self._thread.start()
    weakref.finalize(self, self._stop.set)

  def __iter__(self):
    return self

  def __next__(self):
    item = self._queue.get()
    if isinstance(item, _Failure):
      self.close()
      raise item.error
    return item

  def close(self):
    self._stop.set()


class _Failure:
  def __init__(self, error):
    self.error = error


def _fill(make, step, out: queue.Queue, stop: threading.Event):
  while not stop.is_set():
    try:
      item = make(step)
    except Exception as e:  # handed to the consumer, which raises it
      item = _Failure(e)
    while not stop.is_set():
      try:
        out.put(item, timeout=0.1)
        break
      except queue.Full:
        continue
    if isinstance(item, _Failure):
      return
    step += 1
