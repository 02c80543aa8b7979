"""aigc-jax entry point.

  python main.py --config configs/dcgan.py:digits --workdir runs/digits
  python main.py --mode=sample --config configs/dcgan.py:digits --workdir runs/digits \
      --num_samples 10000 --output samples.npz
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "train", ["train", "sample", "classify", "explore"],
                  "What to do with the config and workdir.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and sample grids.")
flags.DEFINE_integer("num_samples", 10_000, "--mode=sample: how many images to generate.")
flags.DEFINE_string("output", None, "--mode=sample: F.npz, or a folder for numbered PNGs; "
                    "--mode=classify: F.csv or F.json (default: print one line per image).")
flags.DEFINE_string("input", None, "--mode=classify: a folder of images, an .npz with 'images', or one image file.")
flags.DEFINE_integer("sample_seed", 0, "--mode=sample: seed of the latent noise.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.DEFINE_string("labels", None, "--mode=sample, conditional models: class ids to cycle through, e.g. 3 or "
                    "0,1,7 (default: all classes in turn).")
flags.DEFINE_string("classifier_workdir", None, "--mode=explore: a trained classifier whose features find the "
                    "nearest training images (default: pixel space).")
config_flags.DEFINE_config_file("config", None, "Config file, optionally with a preset: configs/dcgan.py:digits.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from aigc_jax.errors import UserError
  from aigc_jax import classify, distributed, loop, sample, train

  logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  try:
    distributed.initialize(config)  # before any JAX computation, so jax.devices() spans all hosts.
    is_classifier = config.task == "classifier"
    if FLAGS.mode == "classify" and not is_classifier:
      raise UserError("--mode=classify needs a classifier config, e.g. --config configs/classifier.py:mnist")
    if FLAGS.mode in ("sample", "explore") and is_classifier:
      raise UserError(f"--mode={FLAGS.mode} needs a GAN config; a classifier labels images with --mode=classify")
    if FLAGS.mode == "train" and is_classifier:
      result = classify.train_and_evaluate(config, FLAGS.workdir)
      print(f"test accuracy {result['test_accuracy']:.4f} on {result['test_examples']} images "
            f"({config.data.test_split}) at step {result['step']}; written to {FLAGS.workdir}/metrics.json")
    elif FLAGS.mode == "train":
      train.train_and_evaluate(config, FLAGS.workdir)
    elif FLAGS.mode == "explore":
      from aigc_jax import explore

      path = explore.run(config, FLAGS.workdir, FLAGS.output, FLAGS.overwrite, FLAGS.sample_seed,
                         FLAGS.classifier_workdir)
      print(f"wrote {', '.join(sorted(p.name for p in path.iterdir()))} to {path}")
    elif FLAGS.mode == "classify":
      classify.predict(config, FLAGS.workdir, FLAGS.input, FLAGS.output, overwrite=FLAGS.overwrite)
    else:
      path = sample.run(config, FLAGS.workdir, FLAGS.num_samples, FLAGS.output, FLAGS.overwrite, FLAGS.sample_seed,
                        FLAGS.labels)
      print(f"wrote {FLAGS.num_samples} samples to {path}")
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except loop.Interrupted as e:
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
  app.run(main, flags_parser=parse_flags)
