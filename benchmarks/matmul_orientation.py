"""Times the kernel-gradient product P^T dY of an im2col convolution in both output orientations on XLA:CPU.

  python benchmarks/matmul_orientation.py [--reps 9]

For patches P (pixels x K) and an output gradient dY (pixels x out), the kernel gradient is
P^T dY (K x out) or, transposed, dY^T P (out x K). XLA:CPU (jax 0.12) runs them at very different
speeds: the one whose result has the longer minor axis wins (out x K when K > out, K x out when
K < out). Its algebraic simplifier folds a trailing transpose back into the dot, so `(dY^T P).T` is
as slow or as fast as `P^T dY`; `lax.optimization_barrier` between the product and the transpose
keeps dY^T P (what `layers._im2col_matmul` does when K > out). Shapes are the DCGAN layers' (batch
64). The last line is JSON.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from aigc_jax.core import host_memory  # noqa: E402
from benchmarks.speed.timing import median_ms  # noqa: E402

# (pixels, K, out): G 8x8x128 -> 64 per phase, D 16x16x64 -> 128, G 4x4x256 -> 128 per phase,
# D 32x32x3 -> 64 (the image layer), G 16x16x64 -> 3 from patches of dY (48 wide) times x (64).
SHAPES = [(4096, 512, 64), (4096, 1024, 128), (1024, 1024, 128), (16384, 48, 64)]
FORMS = {
  "P^T dY": lambda p, d: p.T @ d,
  "(dY^T P)^T": lambda p, d: (d.T @ p).T,
  "barrier(dY^T P)^T": lambda p, d: lax.optimization_barrier(d.T @ p).T,
}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--reps", type=int, default=9)
  args = p.parse_args()
  rows = []
  for m, k, n in SHAPES:
    rng = np.random.default_rng(0)
    patches = jnp.asarray(rng.standard_normal((m, k)), jnp.float32)
    dy = jnp.asarray(rng.standard_normal((m, n)), jnp.float32)
    ms = {name: median_ms(jax.jit(f), (patches, dy), args.reps) for name, f in FORMS.items()}
    gflop = 2 * m * k * n / 1e9
    print(f"pixels {m} K {k} out {n}: " + " | ".join(f"{name} {t:.2f} ms ({gflop / t * 1e3:.0f} GFLOP/s)"
                                                     for name, t in ms.items()), flush=True)
    rows.append(dict(pixels=m, k=k, out=n, ms={name: round(t, 2) for name, t in ms.items()}))
  print(json.dumps(dict(benchmark="matmul_orientation", jax=jax.__version__, cpus=len(os.sched_getaffinity(0)),
                        rows=rows)))


if __name__ == "__main__":
  host_memory.reexec()
  main()
