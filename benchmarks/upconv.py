"""Times forward+backward of UpConv's 'xla' and 'fast' paths on DCGAN generator shapes.

The layers are those of `aigc_jax.models.dcgan.Generator(resolution=R, features=F)`:
for R=32, 4x4x4F -> 8x8x2F -> 16x16xF -> 32x32x3, each a 4x4 / stride-2 transposed
convolution (R=64 adds a layer). F=64 is the project's default; F=128 gives the
512-channel PyTorch-tutorial widths. Timed is one jitted call returning the gradients
with respect to both the input and the kernel, as in generator training; then, per
layer, the forward pass alone in each of its formulations (`layers.FORWARDS`: XLA's
lhs-dilated convolution, the phase-shifted stride-1 2x2 one, or col2im: one matmul, then the
taps added into place), which a train step runs twice per layer.

  python benchmarks/upconv.py [--batch 64] [--resolution 32] [--features 64 128] [--dtype float32]
"""

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aigc_jax.core import host_memory  # noqa: E402
from aigc_jax.models.layers import FORWARDS, upconv  # noqa: E402

IMPLS = ("xla", "fast")


def generator_layers(features, resolution=32):
  """(spatial, in_channels, out_channels) of each up-sampling layer."""
  n = {32: 3, 64: 4}[resolution]
  widths = [features * 2 ** (n - 1 - i) for i in range(n)] + [3]
  return [(4 * 2**i, widths[i], widths[i + 1]) for i in range(n)]


def time_forwards(batch, size, cin, cout, dtype, reps):
  """Median ms of the forward pass in each formulation, and the largest difference to XLA's."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((batch, size, size, cin)), dtype)
  kernel = jnp.asarray(0.02 * rng.standard_normal((4, 4, cin, cout)), dtype)
  fns = {f: jax.jit(lambda x, k, f=f: upconv(x, k, impl="fast", forward=f)) for f in FORWARDS}
  out = {f: jax.block_until_ready(fn(x, kernel)).astype(jnp.float32) for f, fn in fns.items()}
  times = {f: [] for f in FORWARDS}
  for _ in range(reps):
    for f, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(x, kernel))
      times[f].append(time.perf_counter() - start)
  rel_err = max(float(jnp.max(jnp.abs(out[f] - out["xla"])) / jnp.max(jnp.abs(out["xla"]))) for f in FORWARDS)
  return {f: 1e3 * float(np.median(t)) for f, t in times.items()}, rel_err


def make_step(impl):
  def loss(x, kernel, cot):
    return jnp.vdot(upconv(x, kernel, impl=impl).astype(jnp.float32), cot)

  return jax.jit(jax.grad(loss, argnums=(0, 1)))


def time_layer(batch, size, cin, cout, dtype, reps):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, size, size, cin)), dtype)
  kernel = jnp.asarray(0.02 * rng.standard_normal((4, 4, cin, cout)), dtype)
  cot = jnp.asarray(rng.standard_normal((batch, 2 * size, 2 * size, cout)), jnp.float32)
  steps = {impl: make_step(impl) for impl in IMPLS}
  grads = {impl: jax.block_until_ready(step(x, kernel, cot)) for impl, step in steps.items()}
  times = {impl: [] for impl in IMPLS}
  for _ in range(reps):  # interleaved so that machine noise hits both alike
    for impl, step in steps.items():
      start = time.perf_counter()
      jax.block_until_ready(step(x, kernel, cot))
      times[impl].append(time.perf_counter() - start)
  rel_err = max(
    float(jnp.max(jnp.abs(f.astype(jnp.float32) - s.astype(jnp.float32))))
    / (float(jnp.max(jnp.abs(s.astype(jnp.float32)))) + 1e-30)
    for f, s in zip(grads["fast"], grads["xla"])
  )
  return {impl: 1e3 * float(np.median(t)) for impl, t in times.items()}, rel_err


def _row(name, xla_ms, fast_ms):
  return f"{name:<22}{xla_ms:>10.1f}{fast_ms:>10.1f}{xla_ms / fast_ms:>8.1f}x"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--resolution", type=int, default=32, choices=[32, 64], help="Generator.resolution")
  parser.add_argument("--features", type=int, nargs="+", default=[64, 128], help="Generator.features")
  parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
  parser.add_argument("--reps", type=int, default=5)
  args = parser.parse_args()
  dtype = jnp.dtype(args.dtype)

  print(
    f"jax {jax.__version__}, backend {jax.default_backend()}, "
    f"{os.cpu_count()} CPUs, batch {args.batch}, {args.dtype}, "
    f"median of {args.reps}, fwd+bwd (d input, d kernel) ms"
  )
  header = f"{'layer':<22}{'xla':>10}{'fast':>10}{'speedup':>9}{'max rel diff':>14}"
  print(header)
  print("-" * len(header))
  rows, totals = [], {}
  for features in args.features:
    total = dict.fromkeys(IMPLS, 0.0)
    for size, cin, cout in generator_layers(features, args.resolution):
      ms, rel_err = time_layer(args.batch, size, cin, cout, dtype, args.reps)
      name = f"{size}x{size}x{cin}->{2 * size}x{2 * size}x{cout}"
      print(_row(name, ms["xla"], ms["fast"]) + f"{rel_err:>14.1e}")
      rows.append(
        dict(
          features=features,
          layer=name,
          xla_ms=round(ms["xla"], 2),
          fast_ms=round(ms["fast"], 2),
          speedup=round(ms["xla"] / ms["fast"], 2),
          max_rel_diff=rel_err,
        )
      )
      for impl in IMPLS:
        total[impl] += ms[impl]
    name = f"generator F={features}"
    print(_row(name, total["xla"], total["fast"]))
    print("-" * len(header))
    totals[features] = dict(
      xla_ms=round(total["xla"], 2),
      fast_ms=round(total["fast"], 2),
      speedup=round(total["xla"] / total["fast"], 2),
    )
  header = f"{'forward only':<22}" + "".join(f"{f:>10}" for f in FORWARDS) + f"{'max rel diff':>14}"
  print(header)
  print("-" * len(header))
  forwards = []
  for features in args.features:
    for size, cin, cout in generator_layers(features, args.resolution):
      ms, rel_err = time_forwards(args.batch, size, cin, cout, dtype, args.reps)
      name = f"F={features} {size}x{size}x{cin}->{cout}"
      print(f"{name:<22}" + "".join(f"{ms[f]:>10.1f}" for f in FORWARDS) + f"{rel_err:>14.1e}")
      forwards.append(dict(features=features, layer=name, ms={f: round(v, 2) for f, v in ms.items()},
                           max_rel_diff=rel_err))
  print(
    json.dumps(
      dict(
        benchmark="upconv",
        resolution=args.resolution,
        backend=jax.default_backend(),
        jax=jax.__version__,
        cpus=os.cpu_count(),
        batch=args.batch,
        dtype=args.dtype,
        reps=args.reps,
        layers=rows,
        generators=totals,
        forwards=forwards,
      )
    )
  )


if __name__ == "__main__":
  host_memory.reexec()
  main()
