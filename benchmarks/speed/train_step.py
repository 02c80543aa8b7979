"""Times the compiled GAN train step on synthetic batches of a config's shape (no dataset needed).

  python -m benchmarks.speed.train_step --config configs/dcgan.py:cifar10 --batch_size 64 --out runs/train_step

Prints compile seconds, steps/s, images/s, XLA's cost-analysis FLOPs per step and achieved
GFLOP/s, page faults and CPU time per step (all threads: how much of the machine a step keeps
busy); the last line is one JSON object with those fields, also written to OUT/results.json, with
the table in OUT/results.md (benchmarks/report.py).
"""

import json
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from aigc_jax.core import host_memory, parallel
from aigc_jax.tasks.gan import steps, train
from benchmarks import report
from benchmarks.speed.timing import seconds_per_step, synthetic_batch

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/dcgan.py:cifar10", "Config file and preset.")
flags.DEFINE_integer("batch_size", None, "Global batch size (default: the config's).")
flags.DEFINE_string("out", "runs/train_step", "Folder for results.json and results.md.")
flags.DEFINE_integer("steps", 30, "Timed steps after compilation.")
flags.DEFINE_integer("warmup", 10, "Untimed steps after compilation: until XLA's buffers are all mapped (with 3, "
                     "a 64x64 step still faulted ~40 fresh huge pages per step and ran 15% slower).")


def main(_):
  config = FLAGS.config
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  batch_size = config.train.batch_size
  train.validate(config, jax.device_count())
  dp = parallel.DataParallel(config.train.parallel)
  state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
  batch = synthetic_batch(dp, config, batch_size)

  step = dp.step(steps.train_step, loss=config.train.loss)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  if dp.mode == "pmap":  # pmap reports one device's program.
    flops *= dp.num_devices

  faults = {}
  _, seconds = seconds_per_step(compiled, state, batch, FLAGS.warmup, FLAGS.steps, faults)
  steps_per_s = 1.0 / seconds
  result = {
      "config": FLAGS["config"].config_filename if hasattr(FLAGS["config"], "config_filename") else "",
      "backend": jax.default_backend(), "devices": jax.device_count(), "parallel": dp.mode,
      "batch_size": batch_size, "image_shape": list(batch["image"].shape[-3:]),
      "conv_impl": config.get("conv_impl", "auto"),
      "compile_s": round(compile_s, 3), "steps_per_s": round(steps_per_s, 3),
      "images_per_s": round(steps_per_s * batch_size, 1), "flops_per_step": flops,
      "gflops_per_s": round(flops * steps_per_s / 1e9, 2),
      "page_faults_per_step": round(faults["per_step"]), "cpu_ms_per_step": round(1e3 * faults["cpu_s_per_step"], 1),
      "cores_busy": round(faults["cpu_s_per_step"] / seconds, 2), "malloc_tuned": host_memory.enabled(),
      "huge_pages": host_memory.huge_pages(),
  }
  print(f"compile {compile_s:.2f} s | {steps_per_s:.2f} steps/s | {result['images_per_s']:.0f} images/s | "
        f"{flops / 1e9:.2f} GFLOP/step | {result['gflops_per_s']:.1f} GFLOP/s | "
        f"{faults['per_step']:.0f} page faults/step | CPU {result['cpu_ms_per_step']:.0f} ms/step "
        f"({result['cores_busy']:.2f} cores busy) (malloc tunables {'on' if result['malloc_tuned'] else 'off'})")
  print(json.dumps(result))
  table = report.markdown_table(
      ["config", "batch", "image", "compile s", "steps/s", "images/s", "GFLOP/step", "GFLOP/s", "page faults/step",
       "CPU ms/step", "cores busy", "malloc tunables"],
      [[result["config"], batch_size, "x".join(map(str, result["image_shape"])), result["compile_s"],
        result["steps_per_s"], result["images_per_s"], round(flops / 1e9, 2), result["gflops_per_s"],
        result["page_faults_per_step"], result["cpu_ms_per_step"], result["cores_busy"],
        "on" if result["malloc_tuned"] else "off"]])
  report.write(FLAGS.out, "train_step", "Compiled GAN train step on synthetic batches",
               {**result, "warmup_steps": FLAGS.warmup, "timed_steps": FLAGS.steps}, table)


if __name__ == "__main__":
  host_memory.reexec()
  app.run(main)
