"""Inception-v3 as used for FID: the 2015-12-05 TensorFlow graph, in pytorch-fid's torchvision layout.

The FID graph is not torchvision's Inception3: its average pools leave the padding out of the
count (TF's SAME pooling; pytorch-fid's FIDInceptionA/C/E_1 set count_include_pad=False), the pool
branch of the last block (Mixed_7c, pytorch-fid's FIDInceptionE_2) is a 3x3 max pool, and the
classifier has 1008 outputs. Module names follow torchvision's, so a pytorch-fid state-dict key
such as ``Mixed_5b.branch5x5_2.conv.weight`` names the Flax parameter
``Mixed_5b/branch5x5_2/conv/kernel`` (see aigc_jax/metrics/inception.py for the loader).

Inference only: BatchNorm always uses the stored statistics. Every block's output is sown into the
'intermediates' collection as `<torchvision name>_out`, so tests can compare blocks one by one.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008


class BasicConv2d(nn.Module):
  """Convolution without bias, BatchNorm (eps 1e-3, as in TF) and ReLU, like torchvision's BasicConv2d."""

  features: int
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: tuple[int, int] = (0, 0)
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel_size, strides=(self.strides, self.strides),
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=self.precision, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  """3x3 stride-1 average that divides by the number of in-image pixels (TF SAME pooling)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


class InceptionA(nn.Module):
  """Mixed_5b/c/d (pytorch-fid's FIDInceptionA)."""

  pool_features: int
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv2d(*a, precision=self.precision, name=name, **k)
    b1 = conv("branch1x1", 64)(x)
    b5 = conv("branch5x5_2", 64, (5, 5), padding=(2, 2))(conv("branch5x5_1", 48)(x))
    b3 = conv("branch3x3dbl_1", 64)(x)
    b3 = conv("branch3x3dbl_2", 96, (3, 3), padding=(1, 1))(b3)
    b3 = conv("branch3x3dbl_3", 96, (3, 3), padding=(1, 1))(b3)
    bp = conv("branch_pool", self.pool_features)(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: halves the resolution."""

  precision: Any = None

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv2d(*a, precision=self.precision, name=name, **k)
    b3 = conv("branch3x3", 384, (3, 3), strides=2)(x)
    bd = conv("branch3x3dbl_1", 64)(x)
    bd = conv("branch3x3dbl_2", 96, (3, 3), padding=(1, 1))(bd)
    bd = conv("branch3x3dbl_3", 96, (3, 3), strides=2)(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b-e (pytorch-fid's FIDInceptionC): factorised 7x7 convolutions."""

  channels_7x7: int
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv2d(*a, precision=self.precision, name=name, **k)
    c7 = self.channels_7x7
    b1 = conv("branch1x1", 192)(x)
    b7 = conv("branch7x7_1", c7)(x)
    b7 = conv("branch7x7_2", c7, (1, 7), padding=(0, 3))(b7)
    b7 = conv("branch7x7_3", 192, (7, 1), padding=(3, 0))(b7)
    bd = conv("branch7x7dbl_1", c7)(x)
    bd = conv("branch7x7dbl_2", c7, (7, 1), padding=(3, 0))(bd)
    bd = conv("branch7x7dbl_3", c7, (1, 7), padding=(0, 3))(bd)
    bd = conv("branch7x7dbl_4", c7, (7, 1), padding=(3, 0))(bd)
    bd = conv("branch7x7dbl_5", 192, (1, 7), padding=(0, 3))(bd)
    bp = conv("branch_pool", 192)(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: halves the resolution."""

  precision: Any = None

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv2d(*a, precision=self.precision, name=name, **k)
    b3 = conv("branch3x3_2", 320, (3, 3), strides=2)(conv("branch3x3_1", 192)(x))
    b7 = conv("branch7x7x3_1", 192)(x)
    b7 = conv("branch7x7x3_2", 192, (1, 7), padding=(0, 3))(b7)
    b7 = conv("branch7x7x3_3", 192, (7, 1), padding=(3, 0))(b7)
    b7 = conv("branch7x7x3_4", 192, (3, 3), strides=2)(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b/c; `pool` is 'avg' in Mixed_7b (FIDInceptionE_1) and 'max' in Mixed_7c (FIDInceptionE_2)."""

  pool: str = "avg"
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    conv = lambda name, *a, **k: BasicConv2d(*a, precision=self.precision, name=name, **k)
    b1 = conv("branch1x1", 320)(x)
    b3 = conv("branch3x3_1", 384)(x)
    b3 = jnp.concatenate([conv("branch3x3_2a", 384, (1, 3), padding=(0, 1))(b3),
                          conv("branch3x3_2b", 384, (3, 1), padding=(1, 0))(b3)], axis=-1)
    bd = conv("branch3x3dbl_1", 448)(x)
    bd = conv("branch3x3dbl_2", 384, (3, 3), padding=(1, 1))(bd)
    bd = jnp.concatenate([conv("branch3x3dbl_3a", 384, (1, 3), padding=(0, 1))(bd),
                          conv("branch3x3dbl_3b", 384, (3, 1), padding=(1, 0))(bd)], axis=-1)
    if self.pool == "avg":
      pooled = _avg_pool_3x3(x)
    elif self.pool == "max":
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      raise ValueError(f"InceptionE pool must be 'avg' or 'max', got {self.pool!r}")
    bp = conv("branch_pool", 192)(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """Image [N, H, W, 3] scaled to [-1, 1] -> (pool3 features [N, 2048], logits [N, 1008]).

  FID uses H = W = 299 (the extractor resizes to that); the network accepts any size from 75 up.
  `last_pool='avg'` turns Mixed_7c into torchvision's/Keras' InceptionE, which is how the tests
  compare the whole network with Keras' InceptionV3; FID needs the default 'max'.
  """

  num_classes: int = NUM_CLASSES
  last_pool: str = "max"
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    p = self.precision
    blocks = [
        ("Conv2d_1a_3x3", lambda n: BasicConv2d(32, (3, 3), strides=2, precision=p, name=n)),
        ("Conv2d_2a_3x3", lambda n: BasicConv2d(32, (3, 3), precision=p, name=n)),
        ("Conv2d_2b_3x3", lambda n: BasicConv2d(64, (3, 3), padding=(1, 1), precision=p, name=n)),
        ("maxpool1", lambda n: _max_pool_3x3_s2),
        ("Conv2d_3b_1x1", lambda n: BasicConv2d(80, precision=p, name=n)),
        ("Conv2d_4a_3x3", lambda n: BasicConv2d(192, (3, 3), precision=p, name=n)),
        ("maxpool2", lambda n: _max_pool_3x3_s2),
        ("Mixed_5b", lambda n: InceptionA(32, precision=p, name=n)),
        ("Mixed_5c", lambda n: InceptionA(64, precision=p, name=n)),
        ("Mixed_5d", lambda n: InceptionA(64, precision=p, name=n)),
        ("Mixed_6a", lambda n: InceptionB(precision=p, name=n)),
        ("Mixed_6b", lambda n: InceptionC(128, precision=p, name=n)),
        ("Mixed_6c", lambda n: InceptionC(160, precision=p, name=n)),
        ("Mixed_6d", lambda n: InceptionC(160, precision=p, name=n)),
        ("Mixed_6e", lambda n: InceptionC(192, precision=p, name=n)),
        ("Mixed_7a", lambda n: InceptionD(precision=p, name=n)),
        ("Mixed_7b", lambda n: InceptionE("avg", precision=p, name=n)),
        ("Mixed_7c", lambda n: InceptionE(self.last_pool, precision=p, name=n)),
    ]
    for name, make in blocks:
      x = make(name)(x)
      self.sow("intermediates", f"{name}_out", x)
    features = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes, precision=p, name="fc")(features)
    return features, logits
