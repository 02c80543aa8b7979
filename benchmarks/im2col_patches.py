"""Times four ways to build DownConv's im2col patches (4x4 window, stride 2, 'SAME') on XLA:CPU.

  python benchmarks/im2col_patches.py [--reps 15]

- `strided`: the sixteen stride-2 views of the padded input joined by `concatenate` on the channel
  axis (the textbook im2col).
- `pairs_pad_first`: the padded rows read as (W / 2, 2 C), which puts each pair of horizontal taps
  side by side in memory, so the same patches are eight unit-stride views of 2 C channels stacked
  on a new axis, sliced from a padded copy of the input (`layers._PAD_FIRST`).
- `pairs`: the same eight views, each a window of the unpadded input padded on its own
  (`layers._padded_window`), so XLA:CPU fuses the padding into the copy (`layers._PATCH_QUADS` off).
- `quads` (`layers._downconv_patches`, what DownConv uses): with an even output width, 4 C-wide
  runs (a whole kernel row) for even and for odd output columns, eight windows of twice the length.

All give the same array (checked); shapes are the DCGAN discriminators' inputs and the generators'
output gradients at batch 64. The last line is JSON.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from aigc_jax.core import host_memory  # noqa: E402
from aigc_jax.models import layers  # noqa: E402
from benchmarks.speed.timing import attributes_set, median_ms  # noqa: E402

# (size, channels): the 32x32 image, D 16x16x64 (and G 8x8x128 -> 64's output gradient), D 8x8x128,
# D 32x32x64 at 64x64, the 64x64 image (and the 64x64 generator's output gradient).
SHAPES = [(32, 3), (16, 64), (8, 128), (32, 64), (64, 3)]


def strided(x):
  n, h, w, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  views = [xp[:, ky : ky + h - 1 : 2, kx : kx + w - 1 : 2] for ky in range(4) for kx in range(4)]
  return jnp.concatenate(views, axis=-1).reshape(-1, 16 * c)


def layers_build(**knobs):
  """layers._downconv_patches with some of its module-level choices set while it is traced."""
  def build(x):
    with attributes_set(layers, **knobs):
      return layers._downconv_patches(x).reshape(-1, 16 * x.shape[-1])
  return build


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--reps", type=int, default=15)
  p.add_argument("--batch_size", type=int, default=64)
  args = p.parse_args()
  rows = []
  for size, channels in SHAPES:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((args.batch_size, size, size, channels)), jnp.float32)
    forms = {"strided": jax.jit(strided), "pairs_pad_first": jax.jit(layers_build(_PAD_FIRST=True)),
             "pairs": jax.jit(layers_build(_PATCH_QUADS=False)), "quads": jax.jit(layers_build())}
    for f in forms.values():
      np.testing.assert_array_equal(np.asarray(forms["strided"](x)), np.asarray(f(x)))
    ms = {name: median_ms(f, (x,), args.reps) for name, f in forms.items()}
    print(f"{size}x{size}x{channels}: " + " | ".join(f"{name} {t:.2f} ms" for name, t in ms.items())
          + " | vs quads: " + " ".join(f"{name} {t / ms['quads']:.2f}" for name, t in ms.items() if name != "quads"),
          flush=True)
    rows.append(dict(size=size, channels=channels, ms={name: round(t, 2) for name, t in ms.items()}))
  print(json.dumps(dict(benchmark="im2col_patches", jax=jax.__version__, cpus=len(os.sched_getaffinity(0)),
                        batch_size=args.batch_size, rows=rows)))


if __name__ == "__main__":
  host_memory.reexec()
  main()
