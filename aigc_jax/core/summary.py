"""Progress lines on stdout and TensorBoard event files; only process 0 writes."""

import time

import jax
import numpy as np

FIRST = ("d_loss", "g_loss", "d_real", "d_fake")


class Progress:
  """Formats 'step N/T | losses | steps/s | ETA' from wall-clock time between log calls."""

  def __init__(self, start_step: int, num_steps: int):
    self.num_steps = num_steps
    self._last_step, self._last_time = start_step, time.perf_counter()

  def line(self, step: int, metrics: dict) -> str:
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    eta = (self.num_steps - step) / rate if rate > 0 else float("inf")
    order = sorted(metrics, key=lambda k: (FIRST.index(k) if k in FIRST else len(FIRST), k))
    values = " ".join(f"{k} {metrics[k]:.4f}" for k in order)
    return f"step {step}/{self.num_steps} | {values} | {rate:.2f} steps/s | ETA {_duration(eta)}"


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Writer:
  """TensorBoard scalars and images under `logdir`; a no-op on processes other than 0."""

  def __init__(self, logdir):
    self._writer = None
    if jax.process_index() == 0:
      import tensorflow as tf

      self._tf = tf
      self._writer = tf.summary.create_file_writer(str(logdir))

  def scalars(self, step: int, values: dict):
    if self._writer is None:
      return
    with self._writer.as_default(step=step):
      for k, v in values.items():
        self._tf.summary.scalar(k, v)

  def image(self, step: int, name: str, image_uint8: np.ndarray):
    if self._writer is None:
      return
    with self._writer.as_default(step=step):
      self._tf.summary.image(name, image_uint8[None], max_outputs=1)

  def flush(self):
    if self._writer is not None:
      self._writer.flush()

  def close(self):
    if self._writer is not None:
      self._writer.close()
