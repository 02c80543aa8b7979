"""tf.data input pipeline: shuffled, repeated, batched, prefetched, and resumable by step.

The example order depends only on the seed, so resuming at step s skips s * batch examples of
the same stream (before decoding, so the skip is cheap) and sees exactly the batches an
uninterrupted run would have seen. `eval_batches` is the one ordered pass an evaluation needs.
"""

import tensorflow as tf

from aigc_jax.data.sources import Source


def to_unit_range(images_uint8):
  """uint8 [0, 255] -> float32 [-1, 1], the generator's tanh range."""
  return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def batches(source: Source, data_config, *, batch_size: int, seed: int, start_step: int = 0):
  """Yields numpy batches {'image': float32 [B, H, W, C] in [-1, 1], 'label': int32 [B]} forever.

  `batch_size` is this process's share of the global batch.
  """
  buffer = max(1, min(data_config.shuffle_buffer, source.num_examples or data_config.shuffle_buffer))
  ds = source.dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
  ds = ds.skip(start_step * batch_size)
  ds = _decode(ds, source, data_config)
  ds = ds.batch(batch_size, drop_remainder=True)
  ds = ds.map(lambda b: {"image": to_unit_range(b["image"]), "label": b["label"]},
              num_parallel_calls=tf.data.AUTOTUNE)
  return _finish(ds, data_config)


def eval_batches(source: Source, data_config, *, batch_size: int):
  """One pass over `source` in its order, as batches of exactly `batch_size`.

  The last batch is padded, with 'mask' (bool [B]) false on the padding, so a compiled eval step
  sees one shape and every example is counted once.
  """
  ds = _decode(source.dataset, source, data_config).batch(batch_size)

  def pad(b):
    n = tf.shape(b["label"])[0]
    rows = [[0, batch_size - n]]
    image = tf.pad(to_unit_range(b["image"]), rows + [[0, 0]] * 3)
    res, channels = data_config.resolution, data_config.channels
    return {"image": tf.ensure_shape(image, (batch_size, res, res, channels)),
            "label": tf.ensure_shape(tf.pad(b["label"], rows), (batch_size,)),
            "mask": tf.range(batch_size) < n}
  return _finish(ds.map(pad, num_parallel_calls=tf.data.AUTOTUNE), data_config)


def _decode(ds, source: Source, data_config):
  """Encoded (TFDS) images -> uint8 at the configured resolution; in-memory ones already are."""
  if not source.encoded:
    return ds
  res, channels = data_config.resolution, data_config.channels

  def decode(ex):
    image = tf.io.decode_image(ex["image"], channels=channels, expand_animations=False)
    if data_config.resize:
      image = tf.cast(tf.clip_by_value(tf.round(
          tf.image.resize(image, (res, res), method="bilinear", antialias=True)), 0, 255), tf.uint8)
    return {"image": tf.ensure_shape(image, (res, res, channels)), "label": ex["label"]}
  return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def _finish(ds, data_config):
  ds = ds.prefetch(data_config.prefetch_batches)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options).as_numpy_iterator()
