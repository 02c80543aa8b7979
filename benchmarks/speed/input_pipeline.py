"""Does the input pipeline keep up with the train step?

  python -m benchmarks.speed.input_pipeline [--mnist_dir DIR] [--sources digits files tfds_mock] \
      [--out runs/input_pipeline]

For each source (scikit-learn's digits; IDX files such as MNIST's, via the `files` source; TFDS
under `tfds.testing.mock_data`, which goes through PNG decoding and resizing like a real TFDS set)
it measures, with the source's preset (configs/dcgan.py:digits, :files, :mnist; `files` runs only with --mnist_dir):

  pipeline   images/s `data.batches` delivers as host numpy batches (the step not running);
  step       images/s the compiled train step consumes on a batch already on the device;
  ratio      pipeline / step, which should be well above 1 (the issue asks for >= 5);
  training   images/s of steps fed by the real pipeline through `parallel.prefetch` (as train.py
             does), and the share of that wall time the host spent waiting for the next batch.

The digits and files sources go through the numpy pipeline (no TensorFlow); tfds_mock through
tf.data, and is skipped where TensorFlow Datasets is not installed. All of it shares the same CPUs:
the pipeline's threads compete with XLA's. The last line is JSON, also
written to OUT/results.json, with the table in OUT/results.md.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import time

import jax

from aigc_jax import data
from aigc_jax.core import host_memory, parallel
from aigc_jax.tasks.gan import steps, train
from benchmarks import report
from benchmarks.speed.timing import seconds_per_step
from configs import dcgan

SOURCES = ("digits", "files", "tfds_mock")


def parse_args():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
  p.add_argument("--mnist_dir", default="",
                 help="Folder with MNIST's IDX files (t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, "
                      "from https://storage.googleapis.com/cvdf-datasets/mnist/ or any MNIST mirror) for the "
                      "'files' source; without it that source is skipped.")
  p.add_argument("--pipeline_batches", type=int, default=200, help="Batches timed from the pipeline alone.")
  p.add_argument("--steps", type=int, default=20, help="Train steps timed, with and without the pipeline.")
  p.add_argument("--out", default="runs/input_pipeline", help="Folder for results.json and results.md.")
  return p.parse_args()


def config_for(source, args):
  if source == "digits":
    return dcgan.get_config("digits"), contextlib.nullcontext()
  if source == "files":
    config = dcgan.get_config("files")
    config.data.path = os.path.abspath(args.mnist_dir)
    return config, contextlib.nullcontext()
  import tensorflow_datasets as tfds

  config = dcgan.get_config("mnist")  # 28x28 PNGs decoded and resized to 32x32 on the fly.
  return config, tfds.testing.mock_data(num_examples=2048)


def host_batches(config, source):
  return data.batches(source, config.data, batch_size=config.train.batch_size, seed=config.seed)


def time_pipeline(config, source, n):
  it = host_batches(config, source)
  for _ in range(5):  # fill the prefetch buffers
    next(it)
  t0 = time.perf_counter()
  for _ in range(n):
    next(it)
  return n * config.train.batch_size / (time.perf_counter() - t0)


def measure(source_name, args):
  config, ctx = config_for(source_name, args)
  bs = config.train.batch_size
  with ctx:
    source = data.load(config.data, seed=config.seed)
    pipeline_ips = time_pipeline(config, source, args.pipeline_batches)

    dp = parallel.DataParallel(config.train.parallel, devices=jax.devices()[:1])
    state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
    step = dp.step(steps.train_step, loss=config.train.loss)
    fixed = dp.put_batch(next(host_batches(config, source)))
    state, seconds = seconds_per_step(step, state, fixed, 3, args.steps)
    step_ips = bs / seconds

    batches = parallel.prefetch(host_batches(config, source), dp.put_batch)
    state, metrics = step(state, next(batches))
    jax.block_until_ready(metrics)
    waited = 0.0
    t0 = time.perf_counter()
    for _ in range(args.steps):
      w0 = time.perf_counter()
      batch = next(batches)
      waited += time.perf_counter() - w0
      state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    elapsed = time.perf_counter() - t0
  shape = list(fixed["image"].shape[-3:])
  return dict(source=source_name, batch_size=bs, image_shape=shape, features=config.model.d_features,
              pipeline_images_per_s=round(pipeline_ips), step_images_per_s=round(step_ips, 1),
              ratio=round(pipeline_ips / step_ips, 1), training_images_per_s=round(args.steps * bs / elapsed, 1),
              host_wait_share=round(waited / elapsed, 4))


def main():
  args = parse_args()
  print(f"jax {jax.__version__} ({jax.default_backend()}), {os.cpu_count()} CPUs; images/s", flush=True)
  rows = []
  for name in args.sources:
    if name == "tfds_mock" and importlib.util.find_spec("tensorflow_datasets") is None:
      print("tfds_mock: skipped, tensorflow-datasets is not installed", flush=True)
      continue
    if name == "files" and not os.path.isdir(args.mnist_dir):
      print(f"files: skipped, --mnist_dir '{args.mnist_dir}' is not a folder", flush=True)
      continue
    r = measure(name, args)
    rows.append(r)
    print(f"{name:<10} {'x'.join(map(str, r['image_shape']))} batch {r['batch_size']}: pipeline "
          f"{r['pipeline_images_per_s']:>8} | step {r['step_images_per_s']:>7} | ratio {r['ratio']:>6}x | "
          f"training with prefetch {r['training_images_per_s']:>7}, host waited "
          f"{100 * r['host_wait_share']:.1f}% of it", flush=True)
  result = dict(benchmark="input_pipeline", jax=jax.__version__, cpus=os.cpu_count(), rows=rows)
  print(json.dumps(result))
  table = report.markdown_table(
      ["source", "image", "batch", "pipeline images/s", "step images/s", "pipeline / step",
       "training with prefetch, images/s", "host waited"],
      [[r["source"], "x".join(map(str, r["image_shape"])), r["batch_size"], r["pipeline_images_per_s"],
        r["step_images_per_s"], f"{r['ratio']}x", r["training_images_per_s"], f"{100 * r['host_wait_share']:.1f}%"]
       for r in rows])
  report.write(args.out, "input_pipeline", "Input pipeline vs the train step", result, table,
               [f"Pipeline: {args.pipeline_batches} host batches alone; step and training: {args.steps} steps."])


if __name__ == "__main__":
  host_memory.reexec()
  main()
