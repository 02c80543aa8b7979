"""DCGAN presets: `--config configs/dcgan.py:PRESET`, any value overridable as --config.a.b=v.

cifar10 (default)  CIFAR-10 32x32 RGB through TFDS (downloads on first use).
mnist              MNIST through TFDS, resized to 32x32 grey.
seed64             the original setting: z=100, 64x64 RGB (CIFAR-10 upsampled; set data.name for
                   e.g. imagenet_resized/64x64).
digits             scikit-learn's embedded 8x8 digits resized to 32x32: trains offline in minutes.
files              your own images: --config.data.path=DIR (images, class subfolders optional),
                   an .npz with 'images' [N,H,W(,C)] uint8, or IDX files such as MNIST's.
smoke              a few tiny steps on the digits, for tests and quick checks.

Class-conditional DCGAN (conditional BatchNorm in G and a 32-d class embedding concatenated to z,
projection discriminator, Miyato & Koyama 2018), the rest as the unconditional preset of the same
data; sample a class with --labels:
cifar10_cond       python main.py --config configs/dcgan.py:cifar10_cond --workdir runs/dcgan_cifar_cond
digits_cond        python main.py --config configs/dcgan.py:digits_cond --workdir runs/dcgan_digits_cond
files_cond         labelled images (class subfolders, an .npz with 'labels', or IDX files with their
                   label file), e.g. MNIST's:
                   python main.py --config configs/dcgan.py:files_cond --config.data.path=../shared/data/mnist \
                     --workdir runs/dcgan_mnist_cond
                   then: python main.py --mode=sample --config configs/dcgan.py:files_cond \
                     --config.data.path=../shared/data/mnist --workdir runs/dcgan_mnist_cond \
                     --labels 3,7 --num_samples 16 --output sevens_and_threes.npz
--config.model.cond_mode=acgan gives an auxiliary-classifier D instead of the projection.
"""

from configs.default import get_config as default_config

PRESETS = ("cifar10", "mnist", "seed64", "digits", "files", "smoke", "cifar10_cond", "digits_cond", "files_cond")
CONDITIONAL = "_cond"


def get_config(preset: str = "cifar10"):
  if preset not in PRESETS:
    raise ValueError(f"unknown preset '{preset}' for configs/dcgan.py; use one of {', '.join(PRESETS)}")
  config = default_config()
  if preset.endswith(CONDITIONAL):
    config.model.cond_mode = "projection"
    config.model.class_embed_dim = 32  # cBN alone: labels at chance after 1,000 steps (docs/results.md)
    preset = preset[:-len(CONDITIONAL)]
  if preset == "mnist":
    config.data.name = "mnist"
    config.data.channels = 1
    config.train.num_steps = 20_000
  elif preset == "seed64":
    config.data.resolution = 64
    config.train.num_steps = 50_000
  elif preset in ("digits", "smoke"):
    config.data.source = "digits"
    config.data.channels = 1
    config.model.g_features = 32
    config.model.d_features = 32
    config.train.batch_size = 64
    config.train.num_steps = 2_000  # about 5 minutes on a 2-core CPU; digits appear by step 500
    config.train.log_every = 100
    config.train.sample_every = 250
    config.train.checkpoint_every = 500
    config.probe.train_split = "train[:1500]"  # as configs/classifier.py:digits
    config.probe.test_split = "train[1500:]"
    if preset == "smoke":
      config.model.g_features = 8
      config.model.d_features = 8
      config.train.batch_size = 16
      config.train.num_steps = 6
      config.train.log_every = 2
      config.train.sample_every = 3
      config.train.checkpoint_every = 3
      config.train.num_sample_images = 16
  elif preset == "files":
    config.data.source = "files"
    config.data.channels = 1
    config.train.batch_size = 64
    config.train.num_steps = 10_000
  return config
