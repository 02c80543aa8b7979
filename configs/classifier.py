"""Classifier presets: `--config configs/classifier.py:PRESET`, any value overridable as --config.a.b=v.

mnist (default)  MNIST IDX files at --config.data.path (e.g. ../shared/data/mnist, the 10,000-image
                 test set): trains on images [:8000], tests on [8000:]; 99.0% test accuracy in
                 about 3 minutes on a 2-core CPU.
digits           scikit-learn's embedded 8x8 digits resized to 32x32: trains on [:1500], tests on
                 the last 297; offline, 97.6% in about 2.5 minutes on a 2-core CPU.
smoke            a few tiny steps on the digits, for tests and quick checks.

The GAN's data, train and distributed sections keep their meaning; `model` and `optim` describe
the classifier instead, `data.test_split` selects the test images (in-memory sources slice their
one split TFDS-style: 'train[8000:]'), and `classifier` holds what only this task has.
"""

import ml_collections

from configs.default import get_config as default_config

PRESETS = ("mnist", "digits", "smoke")


def get_config(preset: str = "mnist"):
  if preset not in PRESETS:
    raise ValueError(f"unknown preset '{preset}' for configs/classifier.py; use one of {', '.join(PRESETS)}")
  config = default_config()
  config.task = "classifier"

  config.model = ml_collections.ConfigDict()
  config.model.name = "resnet"
  config.model.num_classes = 10
  config.model.width = 32  # channels of the first stage; each later stage halves the size and doubles it
  config.model.stages = 3
  config.model.blocks_per_stage = 1
  config.model.stem_stride = 2  # 1 keeps the first stage at full resolution, at several times the CPU cost

  config.optim = ml_collections.ConfigDict()
  config.optim.optimizer = "adam"  # adam (decoupled weight decay) | sgd (Nesterov momentum, L2 decay)
  config.optim.lr = 3e-3
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.momentum = 0.9  # sgd only
  config.optim.weight_decay = 1e-4
  config.optim.schedule = "cosine"  # constant | cosine | linear (with warmup_steps)
  config.optim.warmup_steps = 30
  config.optim.grad_clip = 0.0  # global-norm clipping; 0 disables

  for key in ("loss", "sample_every", "num_sample_images"):  # GAN-only
    del config.train[key]
  config.train.batch_size = 128
  config.train.num_steps = 400  # 6.4 epochs of 8,000 images
  config.train.log_every = 100
  config.train.checkpoint_every = 500

  config.data.source = "files"
  config.data.channels = 1
  config.data.split = "train[:8000]"
  config.data.test_split = "train[8000:]"

  config.classifier = ml_collections.ConfigDict()
  config.classifier.label_smoothing = 0.0
  config.classifier.augment_shift = 2  # random translations of up to this many pixels
  config.classifier.eval_every = 200
  config.classifier.eval_batch_size = 500

  if preset in ("digits", "smoke"):
    config.data.source = "digits"
    config.data.split = "train[:1500]"
    config.data.test_split = "train[1500:]"
    config.train.num_steps = 300
    config.classifier.eval_every = 100
    config.train.checkpoint_every = 100
    if preset == "smoke":
      config.model.width = 16
      config.model.stages = 2
      config.optim.warmup_steps = 0
      config.train.batch_size = 16
      config.train.num_steps = 4
      config.train.log_every = 2
      config.train.checkpoint_every = 2
      config.classifier.eval_every = 2
      config.classifier.eval_batch_size = 64
  return config
