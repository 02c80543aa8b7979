"""What main.py does around a mode: parse flags, quiet third-party logs, runtime setup, errors as one line.

A mode is `fn(config, args) -> closing line` (None when stdout is its result); `run` looks it up in the table main.py passes,
checks what every mode needs, runs it, and turns the failures a user can cause into one line on
stderr with an exit code: 2 for a bad input (UserError), 3 for a diverged run, 128+signal for an
interrupted one (its checkpoint is saved).
"""

import logging
import sys
import warnings

from absl import flags
from absl import logging as absl_logging

from aigc_jax.core import compilation, distributed, files, trainer
from aigc_jax.core.errors import UserError

# Config keys that were renamed or moved: old -> what to use instead.
RENAMED_KEYS = {"model.upconv_impl": "conv_impl", "model.downconv_impl": "conv_impl"}
# Flags a mode reads, copied off absl's FLAGS so modes take a plain object.
ARGS = ("mode", "workdir", "num_samples", "output", "input", "mask", "degrade", "sample_seed", "checkpoint",
        "samples", "overwrite", "labels", "classifier_workdir", "verbose", "self_ensemble")


class Args:
  """main.py's flags as plain attributes, plus `config_arg` (the --config value, for the next command)."""

  def __init__(self, flag_values):
    for name in ARGS:
      setattr(self, name, flag_values[name].value)
    self.config_arg = flag_values["config"].config_filename


def quiet(verbose: bool):
  """Third-party INFO and WARNING lines off (absl, Orbax, TensorFlow, JAX), unless `verbose`."""
  if verbose:
    absl_logging.set_verbosity(absl_logging.INFO)
    return
  absl_logging.set_verbosity(absl_logging.ERROR)
  for name in ("jax", "orbax", "absl", "tensorflow", "etils"):
    logging.getLogger(name).setLevel(logging.ERROR)
  warnings.filterwarnings("ignore", category=UserWarning)
  warnings.filterwarnings("ignore", category=DeprecationWarning)


def run(config, args: Args, modes: dict, examples: dict) -> int:
  """Runs `modes[config.task][args.mode]`; returns the process exit code."""
  quiet(args.verbose)
  try:
    compilation.enable()  # before anything compiles; $AIGC_COMPILATION_CACHE=off disables it.
    distributed.initialize(config)  # before any JAX computation, so jax.devices() spans all hosts.
    task = config.get("task", "gan")
    if task not in modes:
      raise UserError(f"config.task='{task}' is not one of {', '.join(modes)}")
    if args.mode not in modes[task]:
      takes = [t for t in modes if args.mode in modes[t]]
      hint = f" Use a {'/'.join(takes)} config, e.g. {examples[takes[0]]}." if takes else ""
      raise UserError(f"--mode={args.mode} does not apply to a {task} config ({args.config_arg}); a {task} config "
                      f"takes --mode={'|'.join(modes[task])}.{hint}")
    if not args.workdir and not (args.mode == "eval" and args.samples):
      raise UserError("--workdir is required (--mode=eval can take --samples F.npz instead)")
    if args.workdir:
      files.workdir(args.workdir)  # a file in the way is refused before anything is written
    if args.output:
      files.output(args.output)
    closing = modes[task][args.mode](config, args)
    if closing:
      print(closing, flush=True)
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
  FLAGS = flags.FLAGS
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
    moved = [f"config.{k} is now config.{v}" for k, v in RENAMED_KEYS.items() if any(f"--config.{k}" in a for a in bad)]
    reason = f"unknown config key {e} in {' '.join(bad)}" + (f" ({'; '.join(moved)})" if moved else "")
  except OSError:
    reason = f"cannot load config file {FLAGS['config'].config_filename!r}; use e.g. configs/dcgan.py:digits"
  print(f"error: {reason}", file=sys.stderr)
  sys.exit(2)
