"""Super-resolution presets: `--config configs/enhance.py:PRESET`, overridable as --config.a.b=v.

mnist_x2 (default)  SRGAN-style residual generator (sub-pixel upsampling, bicubic skip) + PatchGAN
                    on MNIST IDX files at --config.data.path: 14x14 -> 28x28, trains on [:8000].
mnist_x4            7x7 -> 28x28.
files_x2, files_x4  your own images (--config.data.path), random crops resized to data.resolution.
smoke               a few tiny steps on the digits, for tests and quick checks.

SRGAN's perceptual loss, with the project's classifier in VGG's place:
  --config.train.feature_weight=W --config.train.feature_workdir=CLASSIFIER_WORKDIR
adds W x sum over its residual blocks of mean((phi(SR) - phi(HR))^2) to the generator loss.

Low-resolution inputs are made by area (box) downscaling of the clean images; a trained network
upscales images of any size (`--mode=enhance`), in overlapping tiles when they are large.
"""

from configs.repair import base, files, smoke

PRESETS = ("mnist_x2", "mnist_x4", "files_x2", "files_x4", "smoke")


def get_config(preset: str = "mnist_x2"):
  if preset not in PRESETS:
    raise ValueError(f"unknown preset '{preset}' for configs/enhance.py; use one of {', '.join(PRESETS)}")
  config = base("enhance")
  config.model.scale = 4 if preset.endswith("x4") else 2
  if preset.startswith("files"):
    files(config)
  elif preset == "smoke":
    smoke(config)
  return config
