"""Per-layer times of the DCGAN convolutions in JAX (the project's DownConv / UpConv) and PyTorch eager.

  python benchmarks/layers_vs_pytorch.py --torch_python /work/torchvenv/bin/python \
      [--resolution 32] [--reps 7] [--threads 1]

For every discriminator (4x4 / stride-2 convolution) and generator (4x4 / stride-2 transposed
convolution) layer of the DCGAN at --resolution with features 64 and batch 64, times the forward
pass, the input gradient and the kernel gradient separately: in JAX each as its own jitted function
through `layers.downconv` / `layers.upconv` with `impl='auto'`; in PyTorch `conv2d` /
`conv_transpose2d` and `torch.ops.aten.convolution_backward` with one output mask. Both sides run
with --threads threads on that many CPUs (this process pins itself; the torch subprocess inherits it), medians of
--reps; the torch side runs first, then the JAX side, so load changes between them show up as noise
in single layers. A train step runs each D layer's forward 3 times and kernel gradient twice, each G layer's
forward twice and its gradients once, so the kernel-gradient columns show where a step loses. The
last line is JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("forward", "input_grad", "kernel_grad")


def shapes(resolution, features=64, channels=3):
  """[(kind, spatial, in, out)]: D layers, then G layers, as in aigc_jax.models.dcgan."""
  n = {32: 3, 64: 4}[resolution]
  d = [("D", resolution >> i, channels if i == 0 else features * 2 ** (i - 1), features * 2**i) for i in range(n)]
  widths = [features * 2 ** (n - 1 - i) for i in range(n)] + [channels]
  g = [("G", 4 << i, widths[i], widths[i + 1]) for i in range(n)]
  return d + g


def median(xs):
  xs = sorted(xs)
  return 0.5 * (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2])


def timed(fn, reps):
  fn()
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return 1e3 * median(times)


def torch_times(layers, batch, reps, threads):
  import torch
  import torch.nn.functional as F

  torch.set_num_threads(threads)
  out = []
  for kind, size, cin, cout in layers:
    transposed = kind == "G"
    x = torch.randn(batch, cin, size, size)
    w = 0.02 * (torch.randn(cin, cout, 4, 4) if transposed else torch.randn(cout, cin, 4, 4))
    conv = (lambda: F.conv_transpose2d(x, w, stride=2, padding=1)) if transposed else \
        (lambda: F.conv2d(x, w, stride=2, padding=1))
    g = torch.randn_like(conv())
    back = lambda mask: torch.ops.aten.convolution_backward(g, x, w, None, [2, 2], [1, 1], [1, 1], transposed, [0, 0],
                                                            1, mask)
    with torch.no_grad():
      out.append([timed(conv, reps), timed(lambda: back([True, False, False]), reps),
                  timed(lambda: back([False, True, False]), reps)])
  return out


def jax_times(layers, batch, reps):
  sys.path.insert(0, ROOT)
  import jax
  import numpy as np

  from aigc_jax.models.layers import downconv, upconv

  rng = np.random.default_rng(0)
  out = []
  for kind, size, cin, cout in layers:
    f = downconv if kind == "D" else upconv
    osize = size // 2 if kind == "D" else 2 * size
    x = jax.numpy.asarray(rng.standard_normal((batch, size, size, cin)), "float32")
    k = jax.numpy.asarray(0.02 * rng.standard_normal((4, 4, cin, cout)), "float32")
    c = jax.numpy.asarray(rng.standard_normal((batch, osize, osize, cout)), "float32")
    fns = [jax.jit(lambda x, k, c: f(x, k)),
           jax.jit(lambda x, k, c: jax.vjp(lambda x: f(x, k), x)[1](c)[0]),
           jax.jit(lambda x, k, c: jax.vjp(lambda k: f(x, k), k)[1](c)[0])]
    out.append([timed(lambda fn=fn: jax.block_until_ready(fn(x, k, c)), reps) for fn in fns])
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--torch_python", default=sys.executable, help="Python interpreter that can import torch.")
  p.add_argument("--resolution", type=int, default=32, choices=[32, 64])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--reps", type=int, default=7)
  p.add_argument("--threads", type=int, default=1, help="Threads (and CPUs) for each side.")
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args()
  layers = shapes(args.resolution)
  if args.worker:
    print(json.dumps(torch_times(layers, args.batch, args.reps, args.threads)))
    return
  cpus = sorted(os.sched_getaffinity(0))
  if not 1 <= args.threads <= len(cpus):
    raise SystemExit(f"error: --threads {args.threads} must be between 1 and the {len(cpus)} CPUs this process may use")
  os.sched_setaffinity(0, cpus[: args.threads])  # before JAX starts its thread pool
  cmd = [args.torch_python, os.path.abspath(__file__), "--worker", "--resolution", str(args.resolution),
         "--batch", str(args.batch), "--reps", str(args.reps), "--threads", str(args.threads)]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode:
    raise SystemExit(f"error: the torch worker ({args.torch_python}) failed with code {proc.returncode}; "
                     "does `import torch` work in that interpreter? (see --torch_python)")
  torch_ms = json.loads(proc.stdout.strip().splitlines()[-1])
  jax_ms = jax_times(layers, args.batch, args.reps)
  print(f"batch {args.batch}, {args.threads} thread(s) each, median ms of {args.reps}; JAX / PyTorch "
        "(ratio = PyTorch time / JAX time)")
  rows = []
  for (kind, size, cin, cout), j, t in zip(layers, jax_ms, torch_ms):
    name = f"{kind} {size}x{size}x{cin}->{cout}"
    print(f"{name:<22}" + "  ".join(f"{part} {a:7.1f} / {b:7.1f} ({b / a:4.2f})" for part, a, b in zip(PARTS, j, t)))
    rows.append(dict(layer=name, jax_ms=dict(zip(PARTS, map(lambda v: round(v, 2), j))),
                     torch_ms=dict(zip(PARTS, map(lambda v: round(v, 2), t)))))
  print(json.dumps(dict(benchmark="layers_vs_pytorch", resolution=args.resolution, batch=args.batch, reps=args.reps,
                        threads=args.threads, rows=rows)))


if __name__ == "__main__":
  sys.path.insert(0, ROOT)
  from aigc_jax.core import host_memory

  host_memory.reexec()
  main()
