"""Whole DCGAN train steps with each `config.conv_impl`: XLA's convolutions against the CPU forms.

  python -m benchmarks.speed.conv_step [--config configs/dcgan.py:seed64] [--batch_size 64] \
      [--impls xla,cpu] [--rounds 5] [--out runs/conv_step]

Compiles the step once per value of --impls (same initial state, same batch) and times them in
alternating rounds, so that load from other processes hits all alike; the median ms/step of each
and its speed-up against the first. This is what `conv_impl=auto` rests on: the CPU forms
(`aigc_jax/models/cpu_convs`) against `nn.Conv` / `nn.ConvTranspose` on the CPU backend. Writes
OUT/results.json (with every round's time) and OUT/results.md.
"""

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from aigc_jax.core import host_memory, parallel
from aigc_jax.core.errors import UserError
from aigc_jax.models import cpu_convs
from aigc_jax.tasks.gan import steps, train
from benchmarks import report
from benchmarks.speed.timing import alternate, synthetic_batch

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/dcgan.py:cifar10", "Config file and preset.")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_list("impls", ["xla", "cpu"], f"config.conv_impl values to compare, of {cpu_convs.IMPLS}.")
flags.DEFINE_integer("rounds", 5, "Alternating timing rounds.")
flags.DEFINE_integer("steps", 0, "Steps per round (default: 3 at 32x32, 1 at 64x64).")
flags.DEFINE_string("out", "runs/conv_step", "Folder for results.json and results.md.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    for impl in FLAGS.impls:
      cpu_convs.check_impl(impl)
  except UserError as e:
    raise SystemExit(f"error: --impls: {e}") from None
  config = FLAGS.config
  config.train.batch_size = FLAGS.batch_size
  res, channels = config.data.resolution, config.data.channels
  dp = parallel.DataParallel(config.train.parallel, devices=jax.devices()[:1])
  batch = synthetic_batch(dp, config, FLAGS.batch_size)
  runs, described = {}, {}
  for impl in FLAGS.impls:
    config.conv_impl = impl
    described[impl] = cpu_convs.select(impl, jax.default_backend(), cpu_convs.xla_cpu_threads()).description
    state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
    step = dp.step(steps.train_step, loss=config.train.loss, donate=False).lower(state, batch).compile()
    jax.block_until_ready(step(state, batch))
    runs[impl] = (step, state)
  n = FLAGS.steps or (3 if res <= 32 else 1)
  times = alternate({impl: (step, (state, batch)) for impl, (step, state) in runs.items()}, FLAGS.rounds, n)
  ms = {impl: 1e3 * float(np.median(t)) for impl, t in times.items()}
  base = FLAGS.impls[0]
  rows = [[impl, described[impl], f"{ms[impl]:.1f}", f"{ms[base] / ms[impl]:.2f}",
           " ".join(f"{1e3 * t:.0f}" for t in times[impl])] for impl in runs]
  table = report.markdown_table(["conv_impl", "convolutions", "ms/step", f"speed vs {base}", "rounds, ms"], rows)
  report.write(FLAGS.out, "conv_step", f"DCGAN train step at {res}x{res}x{channels}, batch {FLAGS.batch_size}",
                dict(config=getattr(FLAGS["config"], "config_filename", ""), resolution=res, channels=channels,
                     batch_size=FLAGS.batch_size, features=[config.model.g_features, config.model.d_features],
                     rounds=FLAGS.rounds, steps_per_round=n, ms_per_step={k: round(v, 1) for k, v in ms.items()},
                     round_ms={k: [round(1e3 * t, 1) for t in v] for k, v in times.items()}, convolutions=described),
                table)
  print(table)


if __name__ == "__main__":
  host_memory.reexec()
  app.run(main)
