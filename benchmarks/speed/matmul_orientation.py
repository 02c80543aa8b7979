"""Times the kernel-gradient product P^T dY of an im2col convolution in each orientation on XLA:CPU.

  python -m benchmarks.speed.matmul_orientation [--reps 9] [--out runs/matmul_orientation]

For patches P (pixels x K) and an output gradient dY (pixels x out), the kernel gradient is
P^T dY (K x out) or, transposed, dY^T P (out x K). XLA:CPU (jax 0.12) runs them at very different
speeds: the one whose result has the longer minor axis wins (out x K when K > out, K x out when
K < out). Its algebraic simplifier folds a trailing transpose back into the dot, so `(dY^T P).T` is
as slow or as fast as `P^T dY`; `lax.optimization_barrier` between the product and the transpose
keeps dY^T P. The last form also materializes dY^T as an (out, pixels) operand, which XLA:CPU splits
better across threads. The `cpu_convs` column is the form `cpu_convs.strided._im2col_matmul` takes
with this process's threads (run under `taskset -c 0` for one thread). Shapes are the DCGAN layers'
(batch 64). Writes OUT/results.json and OUT/results.md.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from aigc_jax.core import host_memory
from aigc_jax.models import cpu_convs
from aigc_jax.models.cpu_convs import strided
from benchmarks import report
from benchmarks.speed.timing import median_ms

# (pixels, K, out): G 8x8x128 -> 64 per phase, D 16x16x64 -> 128, G 4x4x256 -> 128 per phase,
# D 32x32x3 -> 64 (the image layer), G 16x16x64 -> 3 from patches of dY (48 wide) times x (64).
SHAPES = [(4096, 512, 64), (4096, 1024, 128), (1024, 1024, 128), (16384, 48, 64)]
FORMS = {
  "P^T dY": lambda p, d: p.T @ d,
  "(dY^T P)^T": lambda p, d: (d.T @ p).T,
  "barrier(dY^T P)^T": lambda p, d: lax.optimization_barrier(d.T @ p).T,
  "barrier(barrier(dY^T) P)^T": lambda p, d: lax.optimization_barrier(lax.optimization_barrier(d.T) @ p).T,
}


def kept_form(pixels, k, out, threads):
  """The form cpu_convs' im2col kernel gradient takes for this product."""
  if k < out:
    return "P^T dY"
  if pixels * k <= strided._DY_T_MAX_PATCHES and threads > 1:
    return "barrier(barrier(dY^T) P)^T"
  return "barrier(dY^T P)^T"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--reps", type=int, default=9)
  p.add_argument("--out", default="runs/matmul_orientation", help="Folder for results.json and results.md.")
  args = p.parse_args(argv)
  threads = cpu_convs.xla_cpu_threads()
  rows = []
  for m, k, n in SHAPES:
    rng = np.random.default_rng(0)
    patches = jnp.asarray(rng.standard_normal((m, k)), jnp.float32)
    dy = jnp.asarray(rng.standard_normal((m, n)), jnp.float32)
    fns = {name: jax.jit(f) for name, f in FORMS.items()}
    want = np.asarray(fns["P^T dY"](patches, dy))
    for name, fn in fns.items():
      np.testing.assert_allclose(np.asarray(fn(patches, dy)), want, rtol=1e-4, atol=1e-3, err_msg=name)
    ms = {name: median_ms(fn, (patches, dy), args.reps) for name, fn in fns.items()}
    gflop = 2 * m * k * n / 1e9
    print(f"pixels {m} K {k} out {n}: " + " | ".join(f"{name} {t:.2f} ms ({gflop / t * 1e3:.0f} GFLOP/s)"
                                                     for name, t in ms.items()), flush=True)
    rows.append(dict(pixels=m, k=k, out=n, ms={name: round(t, 2) for name, t in ms.items()},
                     fastest=min(ms, key=ms.get), cpu_convs=kept_form(m, k, n, threads)))
  table = report.markdown_table(["pixels x K -> out", *FORMS, "fastest", "cpu_convs"],
                         [[f"{r['pixels']} x {r['k']} -> {r['out']}", *r["ms"].values(), r["fastest"], r["cpu_convs"]]
                          for r in rows])
  report.write(args.out, "matmul_orientation", f"im2col kernel-gradient orientation ({threads} threads), ms",
                dict(threads=threads, reps=args.reps, rows=rows), table, argv=argv)
  print(table)


if __name__ == "__main__":
  host_memory.reexec()
  main()
