"""Input pipeline: sources (TFDS, embedded digits, local files) and batching.

Importing this package does not import TensorFlow; only opening a TFDS dataset does.
"""

from aigc_jax.data.files import read_idx, read_images
from aigc_jax.data.pipeline import batches, eval_batches, to_unit_range
from aigc_jax.data.sources import Source, fit_images, load

__all__ = ["Source", "batches", "eval_batches", "fit_images", "load", "read_idx", "read_images", "to_unit_range"]
