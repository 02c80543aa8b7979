"""Times the FID Inception extractor (resize to 299x299, Inception-v3, features and logits) on random images.

  python -m benchmarks.speed.inception --batch_size 50 --image_size 32 --batches 3 --out runs/inception

Uses random weights unless --weights names pytorch-fid's file (speed does not depend on the values).
Prints the first call's seconds (compile + one batch), images/s, XLA's cost-analysis FLOPs per image of
the network at 299x299 and the achieved GFLOP/s; the last line is one JSON object with those fields,
also written to OUT/results.json, with the table in OUT/results.md.
"""

import json
import sys
import time

import jax
import numpy as np
from absl import app, flags

from aigc_jax.core import host_memory
from aigc_jax.core.errors import UserError
from aigc_jax.metrics import inception
from aigc_jax.models import inception as model_lib
from benchmarks import report

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", "", "pytorch-fid's pt_inception-2015-12-05-*.pth; empty: random weights.")
flags.DEFINE_integer("batch_size", 50, "Images per compiled forward pass.")
flags.DEFINE_integer("image_size", 32, "Side of the square input images (resized to 299 inside).")
flags.DEFINE_integer("channels", 3, "1 (grey) or 3 (RGB).")
flags.DEFINE_integer("batches", 3, "Timed batches after one untimed one.")
flags.DEFINE_string("out", "runs/inception", "Folder for results.json and results.md.")


def random_variables(seed=0):
  rng = np.random.default_rng(seed)
  variables = {}
  for (collection, path), shape in inception.variable_shapes().items():
    value = rng.standard_normal(shape).astype(np.float32) * 0.05
    if path[-1] in ("scale", "var"):
      value = np.abs(value) + 1.0
    node = variables.setdefault(collection, {})
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = value
  return variables


def network_flops_per_image(variables) -> float:
  """XLA's FLOP count of one 299x299 image through the network (resize excluded)."""
  size = model_lib.INPUT_SIZE
  x = jax.ShapeDtypeStruct((1, size, size, 3), np.float32)
  cost = jax.jit(model_lib.FIDInceptionV3().apply).lower(variables, x).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0)) if cost else 0.0


def main(_):
  if FLAGS.weights:
    try:
      variables = inception.load_fid_inception(FLAGS.weights)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  else:
    variables = random_variables()
  extractor = inception.InceptionExtractor.from_variables(variables, batch_size=FLAGS.batch_size)
  rng = np.random.default_rng(0)
  shape = (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
  images = rng.integers(0, 256, shape, dtype=np.uint8)

  t0 = time.perf_counter()
  extractor(images)  # compiles, then runs once
  first_s = time.perf_counter() - t0
  timed = np.concatenate([images] * FLAGS.batches)
  t0 = time.perf_counter()
  features, _ = extractor(timed)
  seconds = time.perf_counter() - t0
  assert np.all(np.isfinite(features))
  flops = network_flops_per_image(variables)
  result = {
      "device": jax.devices()[0].device_kind,
      "batch_size": FLAGS.batch_size,
      "image_size": FLAGS.image_size,
      "channels": FLAGS.channels,
      "first_call_s": round(first_s, 2),
      "images": len(timed),
      "seconds": round(seconds, 2),
      "images_per_s": round(len(timed) / seconds, 2),
      "gflop_per_image": round(flops / 1e9, 2),
      "gflop_per_s": round(flops * len(timed) / seconds / 1e9, 1),
  }
  print(f"first call (compile + 1 batch): {first_s:.1f} s; {len(timed)} images in {seconds:.1f} s: "
        f"{len(timed) / seconds:.1f} images/s on {result['device']}; {flops / 1e9:.2f} GFLOP/image, "
        f"{result['gflop_per_s']} GFLOP/s")
  print(json.dumps(result))
  table = report.markdown_table(
      ["device", "batch", "input", "weights", "first call s", "images", "images/s", "GFLOP/image", "GFLOP/s"],
      [[result["device"], FLAGS.batch_size, f"{FLAGS.image_size}x{FLAGS.image_size}x{FLAGS.channels}",
        "pytorch-fid" if FLAGS.weights else "random", result["first_call_s"], result["images"],
        result["images_per_s"], result["gflop_per_image"], result["gflop_per_s"]]])
  report.write(FLAGS.out, "inception", "FID Inception extractor (resize to 299x299, Inception-v3)",
               {**result, "weights": FLAGS.weights or "random"}, table)


if __name__ == "__main__":
  host_memory.reexec()
  app.run(main)
