"""aigc-jax: one command for every task and mode.

  python main.py --config configs/dcgan.py:digits --workdir runs/digits
  python main.py --mode=sample --config configs/dcgan.py:digits --workdir runs/digits --output samples.npz

The config's `task` (gan, classifier, repair, enhance) picks the task; --mode picks what it does
(MODES below). README.md lists the modes with examples; configs/ the presets.
"""

import os
import sys

if __name__ == "__main__":  # before TensorFlow and JAX load: both read these at import
  from aigc_jax.core import host_memory
  host_memory.reexec()  # glibc reads its huge-page tunable at process start
  if not any(a in ("--verbose", "--verbose=true", "--verbose=True") for a in sys.argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # its notice ignores the level; tf.data runs no matmul

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from aigc_jax.core import cli  # noqa: E402
from aigc_jax.tasks.classifier import modes as classifier_modes  # noqa: E402
from aigc_jax.tasks.gan import modes as gan_modes  # noqa: E402
from aigc_jax.tasks.image2image import modes as image2image_modes  # noqa: E402

# config.task -> {mode: fn(config, args) -> closing line}
MODES = {"gan": gan_modes.MODES, "classifier": classifier_modes.MODES, "repair": image2image_modes.REPAIR_MODES,
         "enhance": image2image_modes.ENHANCE_MODES}
EXAMPLES = {"gan": "configs/dcgan.py:digits", "classifier": "configs/classifier.py:digits",
            "repair": "configs/repair.py:digits", "enhance": "configs/enhance.py:mnist_x2"}

flags.DEFINE_enum("mode", "train", sorted({m for modes in MODES.values() for m in modes}),
                  "What to do with the config and workdir; which modes a config takes depends on its task.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and sample grids.")
flags.DEFINE_integer("num_samples", 10_000, "--mode=sample: how many images to generate.")
flags.DEFINE_string("output", None, "sample: F.npz or a PNG folder; classify: F.csv or F.json (default: print); "
                    "eval/probe: F.json; repair/enhance/explore: a folder.")
flags.DEFINE_string("input", None, "classify/repair/enhance: a folder of images, an .npz with 'images', or one image.")
flags.DEFINE_string("mask", None, "repair: a damage kind (center, boxes, strokes, pixels, gaussian, salt_pepper) or "
                    "a mask image (white = fill); none: denoise the input as it is.")
flags.DEFINE_bool("degrade", False, "enhance: downscale --input first and show the original in the strip.")
flags.DEFINE_bool("self_ensemble", False, "repair/enhance with a network: average its outputs over the 8 flips and "
                  "quarter turns of the input (8x the time; EDSR+'s geometric self-ensemble; for images "
                  "without an upright orientation, such as photographs, not digits).")
flags.DEFINE_integer("sample_seed", 0, "sample/explore/repair: seed of the latent noise or synthetic damage.")
flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"], "eval/probe: WORKDIR/checkpoints or WORKDIR/best.")
flags.DEFINE_string("samples", None, "eval: an .npz of uint8 'images' to score instead of a checkpoint, or "
                    "data:SPLIT for real images of the config's dataset.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.DEFINE_string("labels", None, "sample, conditional models: class ids to cycle through, e.g. 3 or 0,1,7.")
flags.DEFINE_string("classifier_workdir", None, "explore: a trained classifier whose features find the nearest "
                    "training images (default: pixel space).")
flags.DEFINE_bool("verbose", False, "Show the INFO and WARNING logs of TensorFlow, JAX, Orbax and absl.")
config_flags.DEFINE_config_file("config", None, "Config file, optionally with a preset: configs/dcgan.py:digits.",
                                lock_config=True)
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  args = cli.Args(flags.FLAGS)
  return cli.run(flags.FLAGS.config, args, MODES, EXAMPLES)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
