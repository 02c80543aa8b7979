"""TFDS datasets, streamed through tf.data: the one part of the project that needs TensorFlow.

TensorFlow and TFDS are imported when a TFDS dataset is opened, not before, so every other source,
the trainer and the metrics run where they are not installed (a bare GPU or TPU image). The stream
is shuffled by TFDS (file order) and tf.data (a buffer of data.shuffle_buffer examples), skips the
examples of the steps a resumed run has done before decoding, and decodes, fits and batches on the
host's CPU threads.
"""

import os

from aigc_jax.core.errors import UserError

OFFLINE_PRESETS = "configs/dcgan.py:digits, or configs/dcgan.py:files with --config.data.path"
INSTALL = "pip install tensorflow-datasets tensorflow-cpu (or: pip install -e . in the repository)"


def modules():
  """(tensorflow, tensorflow_datasets), imported now; a UserError saying what to install if they are missing."""
  try:
    import tensorflow as tf
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise UserError(f"config.data.source='tfds' needs TensorFlow Datasets, which is not installed ({e.name} "
                    f"is missing): {INSTALL}; or train without it on {OFFLINE_PRESETS}") from None
  tf.config.set_visible_devices([], "GPU")  # tf.data runs on the host; JAX owns the accelerators
  return tf, tfds


def open_split(cfg, split, seed, process_index, process_count):
  """(tf.data.Dataset of {'image': encoded bytes, 'label': int32}, examples or None, classes or None)."""
  tf, tfds = modules()
  data_dir = cfg.data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")
  try:
    builder = tfds.builder(cfg.name, data_dir=data_dir)
  except Exception as e:  # TFDS raises several types for unknown names.
    raise UserError(f"unknown TFDS dataset '{cfg.name}' ({type(e).__name__}); see tfds.list_builders()") from None
  if not builder.is_prepared():
    try:
      builder.download_and_prepare()
    except Exception as e:
      raise UserError(f"TFDS dataset '{cfg.name}' is not in {data_dir} and could not be downloaded "
                      f"({type(e).__name__}); prepare it there on a machine with network, set "
                      f"--config.data.data_dir, or train offline with {OFFLINE_PRESETS}") from None
  known_splits = builder.info.splits  # empty only when TFDS has no metadata (tfds.testing.mock_data)
  name = split.split("[", 1)[0].strip()
  if known_splits and name not in known_splits:
    raise UserError(f"TFDS dataset '{cfg.name}' has no split '{name}'; available: {sorted(builder.info.splits)}")
  if "image" not in builder.info.features:
    raise UserError(f"TFDS dataset '{cfg.name}' has no 'image' feature; features: {list(builder.info.features)}")
  fraction = cfg.get("fraction", 1.0)
  if fraction < 1.0:  # TFDS reads a percentage slice: the first examples of the split, the same on every run.
    if "[" in split:
      raise UserError(f"config.data.fraction={fraction} cannot be combined with the sliced split '{split}'; "
                      "slice the split alone, e.g. 'train[:10%]'")
    split = f"{split}[:{max(1, int(round(fraction * 100)))}%]"
  split = tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count,
                                     drop_remainder=True)
  ds = builder.as_dataset(split=split, shuffle_files=True, decoders={"image": tfds.decode.SkipDecoding()},
                          read_config=tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=4))
  has_label = "label" in builder.info.features
  ds = ds.map(lambda ex: {"image": ex["image"],
                          "label": tf.cast(ex["label"], tf.int32) if has_label else tf.constant(-1, tf.int32)})
  num_classes = builder.info.features["label"].num_classes if has_label else None
  num_examples = known_splits[split].num_examples if known_splits else None
  return ds, num_examples, num_classes


def batches(stream, num_examples, data_config, *, batch_size: int, seed: int, start_step: int = 0):
  """pipeline.batches for a TFDS stream: a numpy iterator of shuffled, decoded, batched examples."""
  tf, _ = modules()
  buffer = max(1, min(data_config.shuffle_buffer, num_examples or data_config.shuffle_buffer))
  ds = stream.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
  ds = ds.skip(start_step * batch_size)
  ds = _decode(tf, ds, data_config).batch(batch_size, drop_remainder=True)
  ds = ds.map(lambda b: {"image": _to_unit_range(tf, b["image"]), "label": b["label"]},
              num_parallel_calls=tf.data.AUTOTUNE)
  return _finish(tf, ds, data_config)


def eval_batches(stream, data_config, *, batch_size: int):
  """pipeline.eval_batches for a TFDS stream: one ordered pass, the last batch padded and masked."""
  tf, _ = modules()
  ds = _decode(tf, stream, data_config).batch(batch_size)

  def pad(b):
    n = tf.shape(b["label"])[0]
    rows = [[0, batch_size - n]]
    image = tf.pad(_to_unit_range(tf, b["image"]), rows + [[0, 0]] * 3)
    res, channels = data_config.resolution, data_config.channels
    return {"image": tf.ensure_shape(image, (batch_size, res, res, channels)),
            "label": tf.ensure_shape(tf.pad(b["label"], rows), (batch_size,)),
            "mask": tf.range(batch_size) < n}
  return _finish(tf, ds.map(pad, num_parallel_calls=tf.data.AUTOTUNE), data_config)


def _to_unit_range(tf, images_uint8):
  return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def _decode(tf, ds, data_config):
  """Encoded images -> uint8 at the configured resolution, padded or resized as sources.fit_images does."""
  res, channels = data_config.resolution, data_config.channels
  pad = data_config.get("pad", False)

  def decode(ex):
    image = tf.io.decode_image(ex["image"], channels=channels, expand_animations=False)
    if pad:
      height, width = tf.shape(image)[0], tf.shape(image)[1]
      tf.debugging.assert_less_equal(tf.maximum(height, width), res,
                                     message=f"config.data.pad=True needs images of at most {res}x{res}")
      top, left = (res - height) // 2, (res - width) // 2
      image = tf.pad(image, [[top, res - height - top], [left, res - width - left], [0, 0]])
    elif data_config.resize:
      image = tf.cast(tf.clip_by_value(tf.round(
          tf.image.resize(image, (res, res), method="bilinear", antialias=True)), 0, 255), tf.uint8)
    return {"image": tf.ensure_shape(image, (res, res, channels)), "label": ex["label"]}
  return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def _finish(tf, ds, data_config):
  ds = ds.prefetch(data_config.prefetch_batches)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options).as_numpy_iterator()
