"""Repair (inpainting + denoising) presets: `--config configs/repair.py:PRESET`, overridable as --config.a.b=v.

mnist (default)  U-Net on MNIST IDX files at --config.data.path (e.g. ../shared/data/mnist): trains on
                 images [:8000] damaged on the fly with holes (centre box, random boxes, free-form
                 strokes, random pixels), tests on [8000:]. It corrects a smooth classical fill of
                 the holes (model.fill). Expected (2,000 steps, 7 minutes on 2 CPU cores; hole PSNR on
                 [8000:8200], docs/results.md): centre 12.3, boxes 21.0, strokes 27.1, pixels 21.9 dB,
                 against skimage's inpaint_biharmonic 7.5, 17.4, 22.6, 19.5.
mnist_denoise    the same network family for Gaussian and salt-and-pepper noise, predicting a
                 correction to its input (model.residual).
digits           scikit-learn's embedded digits (32x32), holes; trains offline.
files            your own images: --config.data.path=DIR, --config.data.resolution, --config.data.channels.
smoke            a few tiny steps on the digits, for tests and quick checks.

`damage.kinds` is any comma-separated subset of center, boxes, strokes, pixels, gaussian,
salt_pepper; each training image gets one of them, drawn anew every step.
"""

import ml_collections

from configs.default import get_config as default_config

PRESETS = ("mnist", "mnist_denoise", "digits", "files", "smoke")
HOLES = "center,boxes,strokes,pixels"
NOISE = "gaussian,salt_pepper"


def base(task: str):
  """What repair and enhance share: the GAN defaults with an image-to-image model and losses."""
  config = default_config()
  config.task = task
  config.model = ml_collections.ConfigDict()
  config.model.name = "unet" if task == "repair" else "srgan"
  config.model.features = 32
  config.model.depth = 2  # U-Net downsamplings
  config.model.blocks = 4  # SR residual blocks
  config.model.scale = 2
  if task == "repair":
    # Holes start from a smooth classical fill (models/fill.py) and the U-Net predicts its correction.
    config.model.fill = True
    config.model.fill_sweeps = 16  # Laplace Jacobi sweeps per pyramid level of that fill
    config.model.fill_biharmonic_sweeps = 8  # then damped biharmonic Jacobi sweeps per level
  config.model.d_features = 32
  config.model.d_layers = 2
  config.damage = ml_collections.ConfigDict()
  config.damage.kinds = HOLES
  config.damage.sigma = 0.2  # Gaussian std in [-1, 1] units (25.5 of 255 grey levels)
  config.damage.amount = 0.1  # salt-and-pepper fraction
  for key in ("loss", "num_sample_images"):
    del config.train[key]
  # Reconstruction for PSNR: L2 (the mean of what a pixel could be, what PSNR rewards; in the MNIST
  # runs of docs/results.md the L1 network's tanh output saturated at the background and painted
  # every hole black, L2's did not) averaged over each image's pixels to fix, no adversarial term
  # (at 0.01 it changed nothing measurable and cost half of every step).
  # The old pix2pix-style training: pixel_loss=l1, pixel_region=image, adv_weight=0.01.
  config.train.l1_weight = 1.0  # weight of the pixel loss below (named when it was always L1)
  config.train.pixel_loss = "l2"  # l1 (per-pixel median) | l2 (mean: what PSNR rewards) | l1+l2
  config.train.pixel_region = "holes"  # image (mean over all pixels) | holes (over each image's pixels to fix)
  config.train.adv_weight = 0.0  # PatchGAN loss weight; 0: no discriminator update (reconstruction only)
  config.train.feature_weight = 0.0  # > 0: add this x the classifier feature loss (aigc_jax/feature_loss.py)
  config.train.feature_workdir = ""  # the configs/classifier.py workdir that loss uses
  config.train.batch_size = 32
  config.train.num_steps = 2000
  config.train.log_every = 50
  config.train.sample_every = 250
  config.train.checkpoint_every = 250
  # Reconstruction, not a GAN game: Adam's usual b1 = 0.9 and a global-norm clip. With the GAN
  # default b1 = 0.5 and no clip, the fill-residual U-Net diverged (loss 1e8 at step 100, lr 1e-3).
  config.optim.b1 = 0.9
  config.optim.grad_clip = 1.0
  config.optim.g_lr = 1e-3
  config.optim.d_lr = 2e-4
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 50
  config.data.source = "files"
  config.data.channels = 1
  config.data.resolution = 28
  config.data.resize = False
  config.data.split = "train[:8000]"
  config.data.test_split = "train[8000:]"
  return config


def files(config):
  """Your own images (--config.data.path=DIR_OR_FILE), RGB 64x64, all of them for training."""
  config.data.path = ""
  config.data.resolution = 64
  config.data.channels = 3
  config.data.resize = True
  config.data.split = "train"
  config.data.test_split = ""
  return config


def smoke(config):
  config.data.source = "digits"
  config.data.resolution = 32 if config.task == "repair" else 16
  config.data.resize = True
  config.data.split = "train[:1500]"
  config.data.test_split = "train[1500:1540]"
  config.model.features = 8
  config.model.d_features = 8
  config.model.blocks = 1
  config.train.batch_size = 8
  config.optim.warmup_steps = 0
  config.train.num_steps = 4
  config.train.log_every = 2
  config.train.sample_every = 2
  config.train.checkpoint_every = 2
  return config


def get_config(preset: str = "mnist"):
  if preset not in PRESETS:
    raise ValueError(f"unknown preset '{preset}' for configs/repair.py; use one of {', '.join(PRESETS)}")
  config = base("repair")
  if preset == "mnist":
    config.model.depth = 3  # sees across the 14x14 centre box (300 steps: +0.3 to +2.3 dB over depth 2)
  elif preset == "mnist_denoise":
    config.damage.kinds = NOISE
    config.model.fill = False  # noise has no holes: every pixel is there, only wrong
    config.model.residual = True  # noise leaves every pixel near its value: learn the correction
  elif preset == "digits":
    config.data.source = "digits"
    config.data.resolution = 32
    config.data.resize = True
    config.data.split = "train[:1500]"
    config.data.test_split = "train[1500:]"
  elif preset == "files":
    files(config)
    config.train.pixel_loss = "l1+l2"  # photo crops, 400 steps: +0.5 to +0.6 dB in the holes over l2
  elif preset == "smoke":
    smoke(config)
  return config
