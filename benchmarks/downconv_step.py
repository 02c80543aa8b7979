"""Whole train step with the discriminator's convolutions as XLA's op vs DownConv's CPU forms.

  python benchmarks/downconv_step.py --config configs/dcgan.py:seed64 --batch_size 64 --rounds 4

Compiles the step once per `model.downconv_impl` (same initial state, same batch) and times them
in alternating rounds, so that load from other processes hits both alike; prints the median
ms/step of each and the speed-up. The last line is JSON.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from aigc_jax import host_memory, parallel, steps, train  # noqa: E402
from benchmarks.timing import alternate, synthetic_batch  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/dcgan.py:cifar10", "Config file and preset.")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_list("impls", ["xla", "auto"], "model.downconv_impl values to compare.")
flags.DEFINE_integer("rounds", 5, "Alternating timing rounds.")
flags.DEFINE_integer("steps", 0, "Steps per round (default: 3 at 32x32, 1 at 64x64).")


def main(_):
  config = FLAGS.config
  config.train.batch_size = FLAGS.batch_size
  res, channels = config.data.resolution, config.data.channels
  dp = parallel.DataParallel(config.train.parallel, devices=jax.devices()[:1])
  batch = synthetic_batch(dp, config, FLAGS.batch_size)
  runs = {}
  for impl in FLAGS.impls:
    config.model.downconv_impl = impl
    state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
    step = dp.step(steps.train_step, loss=config.train.loss, donate=False).lower(state, batch).compile()
    jax.block_until_ready(step(state, batch))
    runs[impl] = (step, state)
  n = FLAGS.steps or (3 if res <= 32 else 1)
  times = alternate({impl: (step, (state, batch)) for impl, (step, state) in runs.items()}, FLAGS.rounds, n)
  ms = {impl: 1e3 * float(np.median(t)) for impl, t in times.items()}
  base = FLAGS.impls[0]
  for impl in runs:
    print(f"downconv_impl={impl:<5} {ms[impl]:8.1f} ms/step  (x{ms[base] / ms[impl]:.2f} vs {base})  rounds: "
          + " ".join(f"{1e3 * t:.0f}" for t in times[impl]))
  print(json.dumps(dict(benchmark="downconv_step", resolution=res, channels=channels, batch_size=FLAGS.batch_size,
                        features=config.model.d_features, rounds=FLAGS.rounds, steps_per_round=n,
                        ms_per_step={k: round(v, 1) for k, v in ms.items()})))


if __name__ == "__main__":
  host_memory.reexec()
  app.run(main)
