"""aigc-jax entry point.

  python main.py --config configs/dcgan.py:digits --workdir runs/digits
  python main.py --mode=sample --config configs/dcgan.py:digits --workdir runs/digits \
      --num_samples 10000 --output samples.npz
  python main.py --mode=eval --config configs/dcgan.py:digits --workdir runs/digits \
      --config.eval.classifier_workdir=runs/clf_digits [--checkpoint best] [--output m.json]
  python main.py --mode=eval --config configs/dcgan.py:digits --samples samples.npz --config.eval.classifier_workdir=...
  python main.py --mode=probe --config configs/dcgan.py:digits --workdir runs/digits
  python main.py --config configs/repair.py:mnist --config.data.path=DIR --workdir runs/repair
  python main.py --mode=repair --config configs/repair.py:mnist --workdir runs/repair --input IMG_OR_DIR \
      --mask center --output OUT
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "train", ["train", "sample", "eval", "probe", "explore", "classify", "repair", "enhance"],
                  "What to do with the config and workdir.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and sample grids.")
flags.DEFINE_integer("num_samples", 10_000, "--mode=sample: how many images to generate.")
flags.DEFINE_string("output", None, "--mode=sample: F.npz, or a folder for numbered PNGs; "
                    "--mode=classify: F.csv or F.json (default: print one line per image); "
                    "--mode=eval/probe: F.json for the JSON line.")
flags.DEFINE_string("input", None, "--mode=classify: a folder of images, an .npz with 'images', or one image file.")
flags.DEFINE_string("mask", None, "--mode=repair: a damage kind to apply (center, boxes, strokes, pixels, gaussian, "
                    "salt_pepper) or a mask image (white = fill); none: denoise the input as it is.")
flags.DEFINE_bool("degrade", False, "--mode=enhance: downscale --input first and show the original in the strip.")
flags.DEFINE_integer("sample_seed", 0, "--mode=sample: seed of the latent noise.")
flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"], "--mode=eval/probe: WORKDIR/checkpoints or WORKDIR/best.")
flags.DEFINE_string("samples", None, "--mode=eval: an .npz of uint8 'images' to score instead of a "
                    "checkpoint, or data:SPLIT for real images of the config's dataset.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.DEFINE_string("labels", None, "--mode=sample, conditional models: class ids to cycle through, e.g. 3 or "
                    "0,1,7 (default: all classes in turn).")
flags.DEFINE_string("classifier_workdir", None, "--mode=explore: a trained classifier whose features find the "
                    "nearest training images (default: pixel space).")
config_flags.DEFINE_config_file("config", None, "Config file, optionally with a preset: configs/dcgan.py:digits.",
                                lock_config=True)
flags.mark_flags_as_required(["config"])  # --workdir too, except for --mode=eval --samples

# Which --mode each kind of config (config.task) takes, and which config each mode needs.
MODES = {"gan": ("train", "sample", "eval", "probe", "explore"), "classifier": ("train", "classify"),
         "repair": ("train", "repair"), "enhance": ("train", "enhance")}
MODE_CONFIGS = {
    "train": "", "sample": "Use a GAN config, e.g. configs/dcgan.py:digits.",
    "eval": "Use a GAN config, e.g. configs/dcgan.py:digits.",
    "probe": "Use a GAN config, e.g. configs/dcgan.py:digits.",
    "explore": "Use a GAN config, e.g. configs/sngan.py:digits.",
    "classify": "Use a classifier config, e.g. configs/classifier.py:mnist.",
    "repair": "Use a repair config, e.g. configs/repair.py:mnist.",
    "enhance": "Use a super-resolution config, e.g. configs/enhance.py:mnist_x2."}


def config_name():
  return FLAGS["config"].config_filename


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from aigc_jax.core.errors import UserError
  from aigc_jax.tasks.classifier import classify
  from aigc_jax.core import compilation, distributed, files, trainer
  from aigc_jax.tasks.gan import evaluation, probe, sample, train

  logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  try:
    compilation.enable()  # before anything compiles; $AIGC_COMPILATION_CACHE=off disables it.
    distributed.initialize(config)  # before any JAX computation, so jax.devices() spans all hosts.
    task = config.get("task", "gan")
    if FLAGS.mode not in MODES[task]:
      raise UserError(f"--mode={FLAGS.mode} does not apply to a {task} config ({config_name()}); a {task} config "
                      f"takes --mode={'|'.join(MODES[task])}. {MODE_CONFIGS[FLAGS.mode]}")
    if not FLAGS.workdir and not (FLAGS.mode == "eval" and FLAGS.samples):
      raise UserError("--workdir is required (--mode=eval can take --samples F.npz instead)")
    if FLAGS.workdir:
      files.workdir(FLAGS.workdir)  # a file in the way is refused before anything is written
    if FLAGS.output:
      files.output(FLAGS.output)
    if FLAGS.mode == "train" and task == "classifier":
      result = classify.train_and_evaluate(config, FLAGS.workdir)
      print(f"test accuracy {result['test_accuracy']:.4f} on {result['test_examples']} images "
            f"({config.data.test_split}) at step {result['step']}; written to {FLAGS.workdir}/metrics.json")
    elif FLAGS.mode == "train" and task in ("repair", "enhance"):
      from aigc_jax.tasks.image2image import image2image
      result = image2image.train_and_evaluate(config, FLAGS.workdir)
      if "psnr" in result:
        print(f"test PSNR {result['psnr']:.2f} dB (damaged input {result['input_psnr']:.2f} dB), SSIM "
              f"{result['ssim']:.4f} on {result['test_examples']} images; written to {FLAGS.workdir}/metrics.json")
    elif FLAGS.mode == "train":
      train.train_and_evaluate(config, FLAGS.workdir)
    elif FLAGS.mode == "sample":
      path = sample.run(config, FLAGS.workdir, FLAGS.num_samples, FLAGS.output, FLAGS.overwrite, FLAGS.sample_seed,
                        FLAGS.labels)
      print(f"wrote {FLAGS.num_samples} samples to {path}")
    elif FLAGS.mode == "eval":
      evaluation.run(config, FLAGS.workdir, checkpoint=FLAGS.checkpoint, samples=FLAGS.samples, output=FLAGS.output,
                     overwrite=FLAGS.overwrite)
    elif FLAGS.mode == "probe":
      probe.run(config, FLAGS.workdir, checkpoint=FLAGS.checkpoint, output=FLAGS.output, overwrite=FLAGS.overwrite)
    elif FLAGS.mode == "explore":
      from aigc_jax.tasks.gan import explore
      path = explore.run(config, FLAGS.workdir, FLAGS.output, FLAGS.overwrite, FLAGS.sample_seed,
                         FLAGS.classifier_workdir or config.eval.classifier_workdir or None)
      print(f"wrote {', '.join(sorted(p.name for p in path.iterdir()))} to {path}")
    elif FLAGS.mode == "classify":
      classify.predict(config, FLAGS.workdir, FLAGS.input, FLAGS.output, overwrite=FLAGS.overwrite)
    elif FLAGS.mode == "repair":
      from aigc_jax.tasks.image2image import repair
      repair.run(config, FLAGS.workdir, FLAGS.input, FLAGS.mask, FLAGS.output, FLAGS.overwrite, FLAGS.sample_seed)
    elif FLAGS.mode == "enhance":
      from aigc_jax.tasks.image2image import enhance
      enhance.run(config, FLAGS.workdir, FLAGS.input, FLAGS.output, FLAGS.overwrite, FLAGS.degrade)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except trainer.Interrupted as e:
    print(str(e), file=sys.stderr)
    return e.exit_code
  except FloatingPointError as e:  # training diverged; the last good checkpoint is kept.
    print(f"error: {e}", file=sys.stderr)
    return 3
  return 0


def parse_flags(argv):
  """absl's flag parsing, with errors (unknown preset, bad override) as one line and exit code 2."""
  try:
    argv = FLAGS(argv)
    FLAGS.config.to_dict()  # a config that failed to load raises here, not mid-run.
    return argv
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    # A config file that raised: its exception is the last line of the embedded traceback.
    reason = lines[-1].split(": ", 1)[-1] if any("Traceback" in line for line in lines) else " ".join(lines)
  except (AttributeError, KeyError) as e:
    bad = [a for a in argv if a.startswith("--config.")]
    reason = f"unknown config key {e} in {' '.join(bad)}"
  except OSError:
    reason = f"cannot load config file {FLAGS['config'].config_filename!r}; use e.g. configs/dcgan.py:digits"
  print(f"error: {reason}", file=sys.stderr)
  sys.exit(2)


if __name__ == "__main__":
  from aigc_jax.core import host_memory

  host_memory.reexec()  # first: glibc reads its huge-page tunable at process start.
  app.run(main, flags_parser=parse_flags)
