"""Progress lines on stdout and TensorBoard event files; only process 0 writes.

The event files are written with the `tensorboard` package's protos and record format, not through
tf.summary, so runs log where TensorFlow is not installed; `tensorboard --logdir` reads them as
before (scalars and images, the formats tf.summary.scalar and tf.summary.image write).
"""

import io
import itertools
import os
import socket
import time

import jax
import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

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


_file_ids = itertools.count()


class Writer:
  """TensorBoard scalars and images under `logdir`; a no-op on processes other than 0."""

  def __init__(self, logdir):
    self._records = None
    if jax.process_index() == 0:
      os.makedirs(logdir, exist_ok=True)
      name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_file_ids)}"
      self._records = RecordWriter(open(os.path.join(logdir, name), "wb"))
      self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
      self.flush()

  def scalars(self, step: int, values: dict):
    if self._records is None:
      return
    event = event_pb2.Event(wall_time=time.time(), step=int(step))
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=scalar_metadata.PLUGIN_NAME),
        data_class=summary_pb2.DataClass.DATA_CLASS_SCALAR)
    for k, v in values.items():
      event.summary.value.add(tag=k, tensor=tensor_util.make_tensor_proto(np.float32(v)), metadata=metadata)
    self._write(event)

  def image(self, step: int, name: str, image_uint8: np.ndarray):
    """One uint8 [H, W, C] image, stored as tf.summary.image stores it: [width, height, PNG] strings."""
    if self._records is None:
      return
    png = io.BytesIO()
    Image.fromarray(image_uint8[..., 0] if image_uint8.shape[-1] == 1 else image_uint8).save(png, format="PNG")
    height, width = image_uint8.shape[:2]
    tensor = tensor_util.make_tensor_proto(np.array([str(width).encode(), str(height).encode(), png.getvalue()],
                                                    dtype=object))
    event = event_pb2.Event(wall_time=time.time(), step=int(step))
    event.summary.value.add(tag=name, tensor=tensor, metadata=image_metadata.create_summary_metadata(
        display_name=name, description=""))
    self._write(event)

  def _write(self, event):
    self._records.write(event.SerializeToString())

  def flush(self):
    if self._records is not None:
      self._records.flush()

  def close(self):
    if self._records is not None:
      self._records.close()
      self._records = None
