"""Times each formulation of the discriminator's 4x4 / stride-2 convolution, per DCGAN layer shape.

  python benchmarks/conv_forms.py [--batch 64] [--resolutions 32 64] [--features 64] [--reps 7]

For every layer of `dcgan.Discriminator` (3 channels in) and every formulation in
`cpu_convs.DOWNCONV_FORMS` ('xla': XLA's strided convolution; 's2d_conv': space-to-depth then a
stride-1 2x2 convolution; 's2d_matmul': space-to-depth then four matmuls) it times, separately,
the forward pass, the input gradient and the kernel gradient (each its own jitted function),
interleaved over repeats; prints medians in ms and the fastest form of each part. A training step
runs, per D layer, 3 forwards (real, fake, G's fake), 2 kernel gradients and 1 input gradient,
which is the weighting of the 'step-weighted' column. The last line is JSON.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from aigc_jax.core import host_memory  # noqa: E402
from aigc_jax.models import cpu_convs  # noqa: E402

PARTS = ("forward", "input_grad", "kernel_grad")
STEP_WEIGHTS = {"forward": 3, "input_grad": 1, "kernel_grad": 2}


def discriminator_layers(resolution, features, channels=3):
  n = {32: 3, 64: 4}[resolution]
  shapes, size, cin = [], resolution, channels
  for i in range(n):
    shapes.append((size, cin, features * 2**i))
    size, cin = size // 2, features * 2**i
  return shapes


def functions(form):
  f = lambda x, k: cpu_convs.downconv(x, k, forms=(form,) * 3)
  return {"forward": jax.jit(f),
          "input_grad": jax.jit(lambda x, k, c: jax.vjp(lambda x: f(x, k), x)[1](c)[0]),
          "kernel_grad": jax.jit(lambda x, k, c: jax.vjp(lambda k: f(x, k), k)[1](c)[0])}


def time_layer(batch, size, cin, cout, reps):
  rng = np.random.default_rng(0)
  x = jax.numpy.asarray(rng.standard_normal((batch, size, size, cin)), "float32")
  k = jax.numpy.asarray(0.02 * rng.standard_normal((4, 4, cin, cout)), "float32")
  c = jax.numpy.asarray(rng.standard_normal((batch, size // 2, size // 2, cout)), "float32")
  args = {"forward": (x, k), "input_grad": (x, k, c), "kernel_grad": (x, k, c)}
  fns = {form: functions(form) for form in cpu_convs.DOWNCONV_FORMS}
  want = {part: jax.block_until_ready(fns["xla"][part](*args[part])) for part in PARTS}
  for form in fns:
    for part in PARTS:
      got = fns[form][part](*args[part])
      err = float(jax.numpy.max(abs(got - want[part])) / jax.numpy.max(abs(want[part])))
      assert err < 1e-5, (form, part, err)
  times = {(form, part): [] for form in fns for part in PARTS}
  for _ in range(reps):
    for (form, part), t in times.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fns[form][part](*args[part]))
      t.append(time.perf_counter() - t0)
  return {key: 1e3 * float(np.median(t)) for key, t in times.items()}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--resolutions", type=int, nargs="+", default=[32, 64], choices=[32, 64])
  p.add_argument("--features", type=int, default=64)
  p.add_argument("--reps", type=int, default=7)
  args = p.parse_args()
  print(f"jax {jax.__version__} ({jax.default_backend()}), {os.cpu_count()} CPUs, batch {args.batch}, float32, "
        f"median ms of {args.reps}", flush=True)
  rows = []
  for res in args.resolutions:
    for size, cin, cout in discriminator_layers(res, args.features):
      ms = time_layer(args.batch, size, cin, cout, args.reps)
      name = f"{size}x{size}x{cin}->{size // 2}x{size // 2}x{cout}"
      print(name)
      for form in cpu_convs.DOWNCONV_FORMS:
        weighted = sum(STEP_WEIGHTS[p] * ms[(form, p)] for p in PARTS)
        print(f"  {form:<11}" + "".join(f" {p} {ms[(form, p)]:7.2f}" for p in PARTS) +
              f"  step-weighted {weighted:7.1f}")
      best = {p: min(cpu_convs.DOWNCONV_FORMS, key=lambda f: ms[(f, p)]) for p in PARTS}
      print("  fastest: " + ", ".join(f"{p} {best[p]}" for p in PARTS), flush=True)
      rows.append(dict(layer=name, ms={f"{f}/{p}": round(v, 2) for (f, p), v in ms.items()}, fastest=best))
  print(json.dumps(dict(benchmark="conv_forms", jax=jax.__version__, cpus=os.cpu_count(), batch=args.batch,
                        rows=rows)))


if __name__ == "__main__":
  host_memory.reexec()
  main()
