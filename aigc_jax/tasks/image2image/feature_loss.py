"""A feature loss from the project's classifier, for super-resolution and repair generators.

SRGAN adds a perceptual loss on VGG features; here the in-domain classifier trained with
configs/classifier.py plays VGG's part, so the generator is pushed towards what the classifier
sees in the original, not only towards its pixels. The classifier is frozen: its variables enter
the step as a constant part of the state, are never differentiated and never checkpointed with
the generator.
"""


import jax
import jax.numpy as jnp

from aigc_jax.core.errors import UserError
from aigc_jax.metrics import classifier
from aigc_jax.models.classifier import ResidualBlock

FeatureNet = classifier.TrainedClassifier  # what the image-to-image state carries


def load(workdir: str, channels: int) -> FeatureNet:
  """The latest classifier checkpoint of `workdir`; UserError when there is none or it does not fit."""
  key = "config.train.feature_workdir"
  net = classifier.load(workdir, key)
  if net.channels != channels:
    raise UserError(f"{key}='{workdir}' is a classifier of {net.channels}-channel images but the "
                    f"generator makes {channels}-channel ones; use a classifier trained on the same images")
  return net


def block_features(net: FeatureNet, images) -> list:
  """The output of every residual block for images [N, H, W, C] in [-1, 1], resized to the classifier's size."""
  n, h, w, c = images.shape
  if (h, w) != (net.resolution, net.resolution):
    images = jax.image.resize(images, (n, net.resolution, net.resolution, c), "linear", antialias=True)
  _, captured = net.model.apply(net.variables, images, train=False, mutable=["intermediates"],
                                capture_intermediates=lambda m, name: isinstance(m, ResidualBlock)
                                and name == "__call__")
  return [v[0] for v in jax.tree.leaves(captured["intermediates"], is_leaf=lambda x: isinstance(x, tuple))]


def feature_loss(net: FeatureNet, output, target):
  """sum over residual blocks of mean((phi(output) - phi(target))^2); the target side carries no gradient."""
  target_features = jax.lax.stop_gradient(block_features(net, target))
  return sum(jnp.mean(jnp.square(a - b)) for a, b in zip(block_features(net, output), target_features))
