"""Feature extractors for sample-quality metrics: the project's in-domain classifier, or Inception-v3.

Both map uint8 images [N, H, W, C] to (features [N, D] float32, logits [N, K] float32). On 32x32
digits an in-domain classifier's penultimate features separate real from generated images far
better than Inception's features of the same images upsampled to 299x299, so `classifier` is the
default; `inception` gives numbers comparable with published FIDs on natural images.
"""

import hashlib
from pathlib import Path

import jax
import numpy as np

from aigc_jax.core import images as image_utils
from aigc_jax.core.errors import UserError
from aigc_jax.metrics import classifier, inception

EXTRACTORS = ("classifier", "inception")


@jax.jit
def _features_and_logits(net: classifier.TrainedClassifier, images_uint8):
  return net.features_and_logits(images_uint8)


class ClassifierExtractor:
  """Penultimate (pooled) features and logits of a classifier trained with --mode=train on a classifier config.

  `workdir` is that run's work directory; its latest checkpoint and the config saved with it are
  used, so no classifier config needs to be passed. `name` identifies the exact weights (a hash of
  the parameters), so cached real-data statistics are never reused for another classifier.
  """

  def __init__(self, workdir: str, batch_size: int = 500):
    self.net = classifier.load(workdir, "config.eval.classifier_workdir")
    self.image_shape = (self.net.resolution, self.net.resolution, self.net.channels)
    self.batch_size = batch_size
    self.num_classes = self.net.num_classes
    self.feature_dim = self.net.feature_dim
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(self.net.variables):
      digest.update(np.ascontiguousarray(leaf).tobytes())
    self.name = f"classifier-{digest.hexdigest()[:16]}"
    self.step = self.net.step

  def check_images(self, shape, what: str):
    """Raises a UserError unless images of `shape` [N, H, W, C] fit this classifier."""
    if tuple(shape[1:]) != self.image_shape:
      h, w, c = self.image_shape
      raise UserError(f"{what} are {'x'.join(map(str, shape[1:]))} (HxWxC) but the classifier takes "
                      f"{h}x{w}x{c}; evaluate images of the classifier's size and channels")

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
      raise UserError(f"images must be uint8 [N, H, W, C]; got {images.dtype} {images.shape}")
    self.check_images(images.shape, "images")
    if not len(images):
      return np.zeros((0, self.feature_dim), np.float32), np.zeros((0, self.num_classes), np.float32)
    return image_utils.map_batches(lambda b: _features_and_logits(self.net, b), images,
                                   self.batch_size)


class _GreyToRGB:
  """Feeds grey images to an RGB-only extractor by repeating the channel."""

  def __init__(self, inner):
    self.inner = inner
    self.name = inner.name
    self.feature_dim = inner.feature_dim
    self.num_classes = inner.num_classes

  def check_images(self, shape, what: str):
    if shape[-1] not in (1, 3):
      raise UserError(f"{what} have {shape[-1]} channels; Inception takes 1 (repeated to RGB) or 3")

  def __call__(self, images):
    images = np.asarray(images)
    self.check_images(images.shape, "images")
    if images.shape[-1] == 1:
      images = np.repeat(images, 3, axis=-1)
    return self.inner(images)


def from_config(eval_config):
  """The extractor `config.eval` names; raises a one-line UserError for anything missing."""
  if eval_config.extractor == "classifier":
    return ClassifierExtractor(eval_config.classifier_workdir, batch_size=eval_config.batch_size)
  if eval_config.extractor == "inception":
    weights = eval_config.inception_weights
    if not weights or not Path(weights).expanduser().is_file():
      raise UserError(f"config.eval.inception_weights='{weights}' is not a file; pass the Inception-v3 FID "
                      "weights file, or use --config.eval.extractor=classifier")
    return _GreyToRGB(inception.InceptionExtractor(str(Path(weights).expanduser()), batch_size=eval_config.batch_size))
  raise UserError(f"config.eval.extractor='{eval_config.extractor}' is not one of {', '.join(EXTRACTORS)}")
