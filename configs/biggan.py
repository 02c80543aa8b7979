"""BigGAN presets (Brock et al. 2019, at 32x32): `--config configs/biggan.py:PRESET`, overridable as --config.a.b=v.

Every preset is class-conditional (conditional BatchNorm fed by a shared class embedding, projection
discriminator) with hierarchical latents, self-attention at 16x16 in G and D, spectral norm in G and
D, and orthogonal regularisation of G (weight 1e-4).

cifar10 (default)  CIFAR-10 with the hyper-parameters of BigGAN-PyTorch's CIFAR-10 script
              (scripts/launch_cifar_ema.sh): batch 50, G and D lr 2e-4, Adam(b1=0, b2=0.999),
              4 D steps per G step, hinge loss, EMA of G with decay 0.9999 from step 1000, ch=64
              (256 channels in every G and D block), z 128, shared embedding 128, 125,000 G steps
              (its 500 epochs; it draws 4 fresh real batches per G step, we reuse one). That script
              turns attention and orthogonal regularisation off; --config.model.attention_res=0
              --config.train.ortho_weight=0 does the same here. Needs TFDS cifar10.
mnist         CPU-sized (configs/sngan.py:mnist plus the options above) on MNIST IDX files at
              --config.data.path, images [:8000], leaving [8000:] held out.
files         the mnist setting on your own labelled images at --config.data.path (class subfolders,
              an .npz with 'labels', or IDX files with their label file).
digits        the mnist setting on scikit-learn's digits (offline), with DiffAugment.
smoke         a few tiny steps of the digits preset, for tests and quick checks.
"""

from configs import sngan

PRESETS = ("cifar10", "mnist", "files", "digits", "smoke")


def get_config(preset: str = "cifar10"):
  if preset not in PRESETS:
    raise ValueError(f"unknown preset '{preset}' for configs/biggan.py; use one of {', '.join(PRESETS)}")
  config = sngan.get_config(preset)
  config.model.name = "biggan"
  config.model.cond_mode = "projection"
  config.model.attention_res = 16
  config.train.ortho_weight = 1e-4
  if preset == "cifar10":
    config.model.g_features = 64  # 4 x 64 = 256 channels per G block
    config.model.d_features = 128  # 2 x 128 = 256 channels per D block
    config.model.shared_dim = 128
    config.train.batch_size = 50
    config.train.d_steps = 4
    config.train.num_steps = 125_000
    config.optim.b2 = 0.999
  return config
