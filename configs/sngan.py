"""SNGAN presets: `--config configs/sngan.py:PRESET`, any value overridable as --config.a.b=v.

cifar10 (default)  SNGAN ResNet on CIFAR-10 32x32 as published (Miyato et al. 2018, CIFAR-10
              ResNet): hinge loss, 5 D steps per G step, Adam(2e-4, b1=0, b2=0.9), batch 64,
              256 channels in G and 128 in D, 50,000 G steps; plus an EMA of G (not in the paper;
              --config.train.ema_decay=0 turns it off). Needs TFDS cifar10 (downloads on first use).
cifar10_cond  the same, class-conditional with a projection discriminator (Miyato & Koyama 2018).
mnist         a CPU-sized SNGAN on MNIST IDX files at --config.data.path (e.g. ../shared/data/mnist,
              the 10,000-image test set): trains on images [:8000] and leaves [8000:] held out, as
              configs/classifier.py:mnist does; hinge, TTUR (G 1e-4, D 4e-4), EMA, 1 D step.
files         the mnist setting on your own images at --config.data.path, all of them (data.split);
              grey by default, --config.data.channels=3 for RGB.
digits        the mnist setting on scikit-learn's digits (offline), with DiffAugment
              (color,translation,cutout) for the small set.
digits_cond   digits, conditional: conditional BatchNorm in G, projection discriminator.
digits_acgan  digits, conditional with an auxiliary-classifier (AC-GAN) discriminator.
smoke         a few tiny steps of the digits preset, for tests and quick checks.

The BigGAN presets are in configs/biggan.py.
"""

from configs.default import get_config as default_config

PRESETS = ("cifar10", "cifar10_cond", "mnist", "files", "digits", "digits_cond", "digits_acgan", "smoke")
MOVED = {"biggan": "configs/biggan.py:cifar10", "digits_biggan": "configs/biggan.py:digits"}


def get_config(preset: str = "cifar10"):
  if preset in MOVED:
    raise ValueError(f"preset '{preset}' of configs/sngan.py moved to {MOVED[preset]}")
  if preset not in PRESETS:
    raise ValueError(f"unknown preset '{preset}' for configs/sngan.py; use one of {', '.join(PRESETS)}")
  config = default_config()
  config.model.name = "sngan"
  config.model.z_dim = 128
  config.model.g_features = 64  # SNGAN's CIFAR widths: 256 in G, 128 in D
  config.model.d_features = 64
  config.train.loss = "hinge"
  config.train.batch_size = 64
  config.train.d_steps = 5
  config.train.num_steps = 50_000
  config.train.ema_decay = 0.9999
  config.train.ema_start = 1_000
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  if preset in ("cifar10_cond", "digits_cond"):
    config.model.cond_mode = "projection"
  if preset.startswith("cifar10"):
    return config
  # The CPU-sized setting of every other preset.
  config.data.channels = 1
  config.model.g_features = 8  # widths 32: stride-1 3x3 convolutions at 32x32 are slow on CPU
  config.model.d_features = 16
  config.model.shared_dim = 32  # configs/biggan.py
  config.train.batch_size = 32
  config.train.d_steps = 1
  config.optim.g_lr = 1e-4  # TTUR (Heusel et al. 2017): D learns faster than G
  config.optim.d_lr = 4e-4
  config.train.num_steps = 1_500
  config.train.ema_decay = 0.999
  config.train.ema_start = 200
  config.train.log_every = 100
  config.train.sample_every = 250
  config.train.checkpoint_every = 500
  if preset in ("mnist", "files"):
    config.data.source = "files"
    config.train.num_steps = 3_000
    if preset == "mnist":
      config.data.split = "train[:8000]"
    return config
  config.data.source = "digits"
  config.augment.policy = "color,translation,cutout"
  if preset == "digits_acgan":
    config.model.cond_mode = "acgan"
  if preset == "smoke":
    config.model.d_features = 8
    config.train.batch_size = 16
    config.train.num_steps = 4
    config.train.ema_start = 1
    config.train.log_every = 2
    config.train.sample_every = 2
    config.train.checkpoint_every = 2
    config.train.num_sample_images = 16
  return config
