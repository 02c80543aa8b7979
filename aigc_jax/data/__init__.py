"""Input pipeline: sources (TFDS, embedded digits, local files) and tf.data batching."""

import tensorflow as tf

# tf.data only runs on the host; keep TensorFlow off any GPU so JAX owns it.
tf.config.set_visible_devices([], "GPU")

from aigc_jax.data.pipeline import batches, eval_batches, to_unit_range  # noqa: E402
from aigc_jax.data.sources import Source, fit_images, load, read_idx, read_images  # noqa: E402

__all__ = ["Source", "batches", "eval_batches", "fit_images", "load", "read_idx", "read_images", "to_unit_range"]
