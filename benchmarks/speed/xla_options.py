"""Times the DCGAN train step compiled under XLA:CPU option sets (oneDNN, XNNPACK, YNNPACK, fast math).

  python -m benchmarks.speed.xla_options [--config configs/dcgan.py:cifar10] [--batch_size 64] [--rounds 5] \
      [--out runs/xla_options]

XLA:CPU in jaxlib 0.12 has several experimental library paths (`xla_cpu_use_onednn`,
`xla_cpu_experimental_onednn_custom_call`, `xla_cpu_use_xnnpack`, `xla_cpu_experimental_ynn_fusion_type`,
...). Each set here is passed to `Lowered.compile(compiler_options=...)`, so all programs live in one
process and are timed in alternating rounds (load from other processes hits all alike); the first
set is the default compilation. A set XLA rejects is reported and skipped. Each set's first step
runs on the same state and batch, and the largest difference of its metrics (losses, D outputs,
gradient norms) to the first set's is printed: the options change rounding, not the computation.
The last line is JSON, also written to OUT/results.json, with the table in OUT/results.md.
"""

import json
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from aigc_jax.core import host_memory, parallel
from aigc_jax.tasks.gan import steps, train
from benchmarks import report
from benchmarks.speed.timing import alternate, synthetic_batch

OPTION_SETS = {
  "default": {},
  "onednn": {"xla_cpu_use_onednn": True},
  "onednn_custom_call": {"xla_cpu_use_onednn": True, "xla_cpu_experimental_onednn_custom_call": True},
  "xnnpack": {"xla_cpu_use_xnnpack": True},
  "ynn_dots_only": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},
  "ynn_convs_only": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
  "no_ynn": {"xla_cpu_experimental_ynn_fusion_type": ""},
  "fast_math": {"xla_cpu_enable_fast_math": True},
  "memory_scheduler": {"xla_cpu_enable_concurrency_optimized_scheduler": False},
  "vector_width_512": {"xla_cpu_prefer_vector_width": 512},
}

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/dcgan.py:cifar10", "Config file and preset.")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_list("sets", list(OPTION_SETS), f"Option sets to compare, of {list(OPTION_SETS)}.")
flags.DEFINE_integer("rounds", 5, "Alternating timing rounds.")
flags.DEFINE_integer("steps", 0, "Steps per round (default: 2 at 32x32, 1 at 64x64).")
flags.DEFINE_string("out", "runs/xla_options", "Folder for results.json and results.md.")


def main(_):
  unknown = [s for s in FLAGS.sets if s not in OPTION_SETS]
  if unknown:
    raise SystemExit(f"error: unknown option set(s) {unknown}; use some of {list(OPTION_SETS)}")
  config = FLAGS.config
  config.train.batch_size = FLAGS.batch_size
  res = config.data.resolution
  dp = parallel.DataParallel(config.train.parallel, devices=jax.devices()[:1])
  batch = synthetic_batch(dp, config, FLAGS.batch_size)
  state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
  lowered = dp.step(steps.train_step, loss=config.train.loss, donate=False).lower(state, batch)
  runs, compile_s, first = {}, {}, {}
  for name in FLAGS.sets:
    t0 = time.perf_counter()
    try:
      runs[name] = lowered.compile(compiler_options=OPTION_SETS[name])
    except Exception as e:  # noqa: BLE001  (XLA reports unknown or unsupported options as runtime errors)
      print(f"{name}: not accepted by this XLA ({str(e).splitlines()[0][:160]})", flush=True)
      continue
    compile_s[name] = time.perf_counter() - t0
    first[name] = jax.device_get(runs[name](state, batch)[1])
  n = FLAGS.steps or (2 if res <= 32 else 1)
  times = alternate({name: (step, (state, batch)) for name, step in runs.items()}, FLAGS.rounds, n)
  ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
  base = next(iter(ms))
  diff = {name: max(float(np.max(np.abs(np.asarray(first[name][k]) - np.asarray(first[base][k]))))
                    for k in first[base]) for name in runs}
  for name in runs:
    print(f"{name:<20} {ms[name]:8.1f} ms/step  (x{ms[base] / ms[name]:.2f} vs {base})"
          f"  compile {compile_s[name]:.1f} s  metrics max diff {diff[name]:.1e}  rounds: "
          + " ".join(f"{1e3 * t:.0f}" for t in times[name]), flush=True)
  result = dict(benchmark="xla_options", jax=jax.__version__, resolution=res, batch_size=FLAGS.batch_size,
                rounds=FLAGS.rounds, steps_per_round=n, options={k: OPTION_SETS[k] for k in runs},
                ms_per_step={k: round(v, 1) for k, v in ms.items()}, metrics_max_diff=diff,
                compile_s={k: round(v, 1) for k, v in compile_s.items()},
                rejected=[k for k in FLAGS.sets if k not in runs])
  print(json.dumps(result))
  table = report.markdown_table(
      ["option set", "compiler options", "ms/step", f"speed vs {base}", "compile s", "metrics max diff"],
      [[name, ", ".join(f"`{k}={v}`" for k, v in OPTION_SETS[name].items()) or "(XLA's defaults)",
        f"{ms[name]:.1f}", f"x{ms[base] / ms[name]:.2f}", f"{compile_s[name]:.1f}", f"{diff[name]:.1e}"]
       for name in runs])
  notes = [f"Train step of {config.model.name}, {res}x{res}, batch {FLAGS.batch_size}: median over {FLAGS.rounds} "
           f"alternating rounds of {n} steps."]
  if result["rejected"]:
    notes.append("Not accepted by this XLA: " + ", ".join(result["rejected"]) + ".")
  report.write(FLAGS.out, "xla_options", "XLA:CPU option sets on the GAN train step", result, table, notes)


if __name__ == "__main__":
  host_memory.reexec()
  app.run(main)
