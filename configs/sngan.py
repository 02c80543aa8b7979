"""SNGAN / BigGAN presets: `--config configs/sngan.py:PRESET`, any value overridable as --config.a.b=v.

cifar10       SNGAN ResNet (Miyato et al. 2018) on CIFAR-10 32x32: hinge loss, 5 D steps per G step,
              Adam(2e-4, b1=0, b2=0.9), EMA of G. Needs TFDS cifar10 (downloads on first use).
cifar10_cond  the same, class-conditional with a projection discriminator.
biggan        BigGAN-style options at 32x32 on CIFAR-10: shared class embedding, hierarchical z,
              self-attention at 16x16, spectral norm in G, orthogonal regularisation.
digits        a small SNGAN on scikit-learn's digits (offline): hinge loss, TTUR (G 1e-4, D 4e-4),
              EMA, DiffAugment (color,translation,cutout).
digits_cond   digits, conditional: conditional BatchNorm in G, projection discriminator.
digits_acgan  digits, conditional with an auxiliary-classifier (AC-GAN) discriminator.
digits_biggan digits, conditional, with the BigGAN options.
smoke         a few tiny steps of the digits preset, for tests and quick checks.
"""

from configs.default import get_config as default_config

PRESETS = ("cifar10", "cifar10_cond", "biggan", "digits", "digits_cond", "digits_acgan", "digits_biggan", "smoke")


def get_config(preset: str = "cifar10"):
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
  if preset in ("cifar10_cond", "biggan", "digits_cond", "digits_biggan"):
    config.model.cond_mode = "projection"
  if preset in ("biggan", "digits_biggan"):
    config.model.name = "biggan"
    config.model.attention_res = 16
    config.train.ortho_weight = 1e-4
  if preset.startswith("digits") or preset == "smoke":
    config.data.source = "digits"
    config.data.channels = 1
    config.model.g_features = 8  # widths 32: stride-1 3x3 convolutions at 32x32 are slow on CPU
    config.model.d_features = 16
    config.model.shared_dim = 32
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
    config.augment.policy = "color,translation,cutout"
    if preset == "digits_acgan":
      config.model.cond_mode = "acgan"
    if preset == "smoke":
      config.model.g_features = 8
      config.model.d_features = 8
      config.train.batch_size = 16
      config.train.num_steps = 4
      config.train.ema_start = 1
      config.train.log_every = 2
      config.train.sample_every = 2
      config.train.checkpoint_every = 2
      config.train.num_sample_images = 16
  return config
