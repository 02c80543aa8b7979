"""Whole train step with the discriminator's convolutions as XLA's op vs DownConv's CPU forms.

  python benchmarks/downconv_step.py --config configs/dcgan.py:seed64 --batch_size 64 --rounds 4
  python benchmarks/downconv_step.py --impls auto --variants "16x64=xla/s2d_matmul/xla"

Compiles the step once per `model.downconv_impl` (same initial state, same batch) and times them
in alternating rounds, so that load from other processes hits both alike; prints the median
ms/step of each and the speed-up. `--variants` adds steps whose per-shape choice of DownConv forms
(`layers._fast_downconv_forms`, which `auto` uses on CPU) is overridden for some input shapes,
SIDExCHANNELS=forward/input_grad/kernel_grad, several joined by '+': how the per-shape choices in
`aigc_jax/models/layers.py` were checked in whole steps, where a form's cost (memory traffic,
cache) differs from its cost alone (benchmarks/conv_forms.py). UpConv's input gradient uses the
forward form chosen for its output gradient's shape, so a forward override applies there too
(at 32x32, 8x8x128 is also the output gradient of the generator's first layer). The last line is JSON.
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
from aigc_jax.models import layers  # noqa: E402
from benchmarks.timing import alternate, synthetic_batch  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/dcgan.py:cifar10", "Config file and preset.")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_list("impls", ["xla", "auto"], "model.downconv_impl values to compare.")
flags.DEFINE_multi_string("variants", [], "auto with forms overridden per input shape, e.g. "
                          "16x64=xla/s2d_matmul/xla+8x128=im2col/s2d_matmul/xla.")
flags.DEFINE_integer("rounds", 5, "Alternating timing rounds.")
flags.DEFINE_integer("steps", 0, "Steps per round (default: 3 at 32x32, 1 at 64x64).")


def parse_variant(text):
  """'16x64=xla/s2d_matmul/xla+...' -> {(16, 64): ('xla', 's2d_matmul', 'xla'), ...}."""
  table = {}
  for item in text.split("+"):
    try:
      shape, forms = item.split("=")
      side, channels = (int(v) for v in shape.split("x"))
      forms = tuple(forms.split("/"))
    except ValueError:
      raise SystemExit(f"error: bad --variants item {item!r}; use SIDExCHANNELS=forward/input_grad/kernel_grad")
    if len(forms) != 3 or any(f not in layers.DOWNCONV_FORMS for f in forms):
      raise SystemExit(f"error: bad forms in {item!r}; three of {layers.DOWNCONV_FORMS} joined by '/'")
    table[(side, channels)] = forms
  return table


def overridden(table):
  choose = layers._fast_downconv_forms
  return lambda x_shape: table.get((min(x_shape[-3:-1]), x_shape[-1])) or choose(x_shape)


def main(_):
  config = FLAGS.config
  config.train.batch_size = FLAGS.batch_size
  res, channels = config.data.resolution, config.data.channels
  dp = parallel.DataParallel(config.train.parallel, devices=jax.devices()[:1])
  batch = synthetic_batch(dp, config, FLAGS.batch_size)
  runs = {}
  choose = layers._fast_downconv_forms
  for impl in FLAGS.impls + FLAGS.variants:
    config.model.downconv_impl = impl if impl in FLAGS.impls else "auto"
    if impl not in FLAGS.impls:
      layers._fast_downconv_forms = overridden(parse_variant(impl))
    try:
      state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
      step = dp.step(steps.train_step, loss=config.train.loss, donate=False).lower(state, batch).compile()
    finally:
      layers._fast_downconv_forms = choose
    jax.block_until_ready(step(state, batch))
    runs[impl] = (step, state)
  n = FLAGS.steps or (3 if res <= 32 else 1)
  times = alternate({impl: (step, (state, batch)) for impl, (step, state) in runs.items()}, FLAGS.rounds, n)
  ms = {impl: 1e3 * float(np.median(t)) for impl, t in times.items()}
  base = next(iter(runs))
  for impl in runs:
    print(f"{impl:<12} {ms[impl]:8.1f} ms/step  (x{ms[base] / ms[impl]:.2f} vs {base})  rounds: "
          + " ".join(f"{1e3 * t:.0f}" for t in times[impl]))
  print(json.dumps(dict(benchmark="downconv_step", resolution=res, channels=channels, batch_size=FLAGS.batch_size,
                        features=config.model.d_features, rounds=FLAGS.rounds, steps_per_round=n,
                        ms_per_step={k: round(v, 1) for k, v in ms.items()})))


if __name__ == "__main__":
  host_memory.reexec()
  app.run(main)
