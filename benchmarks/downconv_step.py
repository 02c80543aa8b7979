"""Whole train step with the DCGAN's convolutions as XLA's ops vs the CPU forms of DownConv / UpConv.

  python benchmarks/downconv_step.py --config configs/dcgan.py:seed64 --batch_size 64 --rounds 4
  python benchmarks/downconv_step.py --impls auto --variants "16x64=xla/s2d_matmul/xla"
  python benchmarks/downconv_step.py --impls auto --variants upconv_kernel_grad=im2col --variants dy_t_max_patches=0

Compiles the step once per `model.downconv_impl` (same initial state, same batch) and times them
in alternating rounds, so that load from other processes hits both alike; prints the median
ms/step of each and the speed-up. `--variants` adds `auto` steps with some of the per-shape choices
in `aigc_jax/models/layers.py` overridden, items joined by '+':
- SIDExCHANNELS=forward/input_grad/kernel_grad: DownConv's forms for that input shape
  (`layers._fast_downconv_forms`). UpConv's input gradient uses the forward form chosen for its
  output gradient's shape, so a forward override applies there too (at 32x32, 8x8x128 is also the
  output gradient of the generator's first layer).
- upconv_kernel_grad=FORM: UpConv's kernel-gradient form on every layer (`layers.KERNEL_GRADS`).
- dy_t_max_patches=N: the largest patch matrix (elements) whose kernel-gradient product takes dY
  transposed when XLA has more than one thread (0: never).
- phase_forward_min_size=N: the smallest input side on which UpConv's forward is the stride-1
  phase convolution (XLA's transposed convolution below).
- pad_first=1: DownConv's im2col and space-to-depth views read from a padded copy of the input
  (the earlier form) instead of each padding its own window.
- views_barrier=0: lets XLA fuse the producer of those views' input into the copies that build them.
- patch_quads=0: im2col patches from 2 C-wide pair views only, never from 4 C-wide runs.
This is how those choices were checked in whole steps, where a form's cost (memory traffic, cache)
differs from its cost alone (benchmarks/conv_forms.py, benchmarks/upconv.py). The last line is JSON.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from aigc_jax.core import host_memory, parallel  # noqa: E402
from aigc_jax.tasks.gan import steps, train
from aigc_jax.models import layers  # noqa: E402
from benchmarks.speed.timing import alternate, attributes_set, synthetic_batch  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/dcgan.py:cifar10", "Config file and preset.")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_list("impls", ["xla", "auto"], "model.downconv_impl values to compare.")
flags.DEFINE_multi_string("variants", [], "auto with choices overridden, e.g. "
                          "16x64=xla/s2d_matmul/xla+8x128=im2col/s2d_matmul/xla, upconv_kernel_grad=im2col, "
                          "dy_t_max_patches=0, phase_forward_min_size=16.")
flags.DEFINE_integer("rounds", 5, "Alternating timing rounds.")
flags.DEFINE_integer("steps", 0, "Steps per round (default: 3 at 32x32, 1 at 64x64).")


def _kernel_grad_form(value):
  if value not in layers.KERNEL_GRADS:
    raise ValueError(f"must be one of {layers.KERNEL_GRADS}")
  return value


def _count(value):
  if not value.isdigit():
    raise ValueError("takes an integer >= 0")
  return int(value)


def _flag(value):
  if value not in ("0", "1"):
    raise ValueError("takes 0 or 1")
  return value == "1"


# Module-level choices in aigc_jax/models/layers.py a variant may set: name -> (attribute, parse).
KNOBS = {"upconv_kernel_grad": ("_UPCONV_KERNEL_GRAD", _kernel_grad_form),
         "dy_t_max_patches": ("_DY_T_MAX_PATCHES", _count),
         "phase_forward_min_size": ("_PHASE_FORWARD_MIN_SIZE", _count),
         "pad_first": ("_PAD_FIRST", _flag),
         "views_barrier": ("_VIEWS_BARRIER", _flag),
         "patch_quads": ("_PATCH_QUADS", _flag),
         "col2im_forward_max_size": ("_COL2IM_FORWARD_MAX_SIZE", _count)}


def parse_variant(text):
  """'16x64=xla/s2d_matmul/xla+upconv_kernel_grad=im2col' -> ({(16, 64): forms}, {attribute: value})."""
  table, knobs = {}, {}
  for item in text.split("+"):
    key, _, value = item.partition("=")
    if key in KNOBS:
      attr, parse = KNOBS[key]
      try:
        knobs[attr] = parse(value)
      except ValueError as e:
        raise SystemExit(f"error: bad value in {item!r}; {key} {e}")
      continue
    try:
      side, channels = (int(v) for v in key.split("x"))
      forms = tuple(value.split("/"))
    except ValueError:
      raise SystemExit(f"error: bad --variants item {item!r}; use SIDExCHANNELS=forward/input_grad/kernel_grad "
                       f"or one of {sorted(KNOBS)}=VALUE")
    if len(forms) != 3 or any(f not in layers.DOWNCONV_FORMS for f in forms):
      raise SystemExit(f"error: bad forms in {item!r}; three of {layers.DOWNCONV_FORMS} joined by '/'")
    table[(side, channels)] = forms
  return table, knobs


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
  variants = {v: parse_variant(v) for v in FLAGS.variants}  # all checked before anything compiles
  for impl in FLAGS.impls + FLAGS.variants:
    config.model.downconv_impl = impl if impl in FLAGS.impls else "auto"
    choices = {}
    if impl not in FLAGS.impls:
      table, knobs = variants[impl]
      choices = dict(knobs, _fast_downconv_forms=overridden(table))
    with attributes_set(layers, **choices):
      state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
      step = dp.step(steps.train_step, loss=config.train.loss, donate=False).lower(state, batch).compile()
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
