"""A small ResNet for in-domain recognition of 32x32 images in [-1, 1], grey or RGB.

A stem convolution (stride 2 by default: XLA:CPU computes the kernel gradient of stride-1
convolutions at full 32x32 resolution several times slower than the forward pass), then stages of
basic residual blocks (He et al. 2016) that halve the resolution and double the width, and global
average pooling give one feature vector per image. `features` returns that vector: a
classifier trained on the same domain as a GAN makes a better feature space for FID on small
images than Inception, which sees them upsampled from 32x32.

As in the DCGAN modules, BatchNorm's cross-device axis is a field: it names the pmap axis under
`jax.pmap` and is None under `jax.jit` with a sharded batch.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.core.errors import UserError

_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class ResidualBlock(nn.Module):
  """conv3x3-BN-ReLU-conv3x3-BN plus a (projected when the shape changes) shortcut, then ReLU."""

  features: int
  strides: int = 1
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                                     dtype=self.dtype, name=name)
    conv = lambda f, k, s, name: nn.Conv(f, (k, k), strides=(s, s), padding="SAME", use_bias=False,
                                         kernel_init=_conv_init, dtype=self.dtype, name=name)
    y = nn.relu(norm("bn1")(conv(self.features, 3, self.strides, "conv1")(x)))
    # No zero-initialised last scale (Goyal et al.): it helps deep ResNets but stalls this shallow one at first.
    y = norm("bn2")(conv(self.features, 3, 1, "conv2")(y))
    if x.shape[-1] != self.features or self.strides != 1:
      x = norm("proj_bn")(conv(self.features, 1, self.strides, "proj")(x))
    return nn.relu(x + y)


class ResNetFeatures(nn.Module):
  """Image [N, H, W, C] -> pooled features [N, widths[-1]]."""

  widths: Sequence[int] = (32, 64, 128)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Conv(self.widths[0], (3, 3), strides=(self.stem_stride,) * 2, padding="SAME", use_bias=False,
                kernel_init=_conv_init, dtype=self.dtype, name="stem")(x.astype(self.dtype))
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                             dtype=self.dtype, name="stem_bn")(x))
    for i, width in enumerate(self.widths):
      for j in range(self.blocks_per_stage):
        x = ResidualBlock(width, strides=2 if i > 0 and j == 0 else 1, bn_axis_name=self.bn_axis_name,
                          dtype=self.dtype, name=f"stage{i}_block{j}")(x, train)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


class Classifier(nn.Module):
  """Image -> class logits [N, num_classes]; `features` is the pooled vector before the head."""

  num_classes: int = 10
  widths: Sequence[int] = (32, 64, 128)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def setup(self):
    self.backbone = ResNetFeatures(self.widths, self.blocks_per_stage, self.stem_stride, self.bn_axis_name,
                                   self.dtype)
    self.head = nn.Dense(self.num_classes, dtype=self.dtype)

  def __call__(self, x, train: bool = True):
    return self.head(self.backbone(x, train)).astype(jnp.float32)

  def features(self, x, train: bool = False):
    return self.backbone(x, train)


def create(model_config, channels: int, bn_axis_name=None) -> Classifier:
  """The classifier `model_config` describes, for images with `channels` channels."""
  if model_config.name != "resnet":
    raise UserError(f"unknown classifier model '{model_config.name}'; available: resnet")
  if channels not in (1, 3):
    raise UserError(f"images with {channels} channels are not supported; use 1 (grey) or 3 (RGB)")
  for key in ("width", "stages", "blocks_per_stage", "stem_stride"):
    if model_config[key] <= 0:
      raise UserError(f"config.model.{key}={model_config[key]} must be positive")
  if model_config.num_classes < 2:
    raise UserError(f"config.model.num_classes={model_config.num_classes} must be at least 2")
  widths = tuple(model_config.width * 2**i for i in range(model_config.stages))
  return Classifier(num_classes=model_config.num_classes, widths=widths,
                    blocks_per_stage=model_config.blocks_per_stage, stem_stride=model_config.stem_stride,
                    bn_axis_name=bn_axis_name)
