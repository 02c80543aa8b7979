"""Times each kept form of the DCGAN's 4x4 / stride-2 convolutions alone, per layer shape, beside auto's pick.

  python -m benchmarks.speed.conv_forms [--resolutions 32 64] [--batch 64] [--features 64] [--reps 7] \
      [--out runs/conv_forms]

For every layer of `dcgan.Discriminator` (3 channels in) and every DownConv form in
`cpu_convs.DOWNCONV_FORMS` ('xla': XLA's strided convolution; 's2d_conv': space-to-depth then a
stride-1 2x2 convolution; 's2d_matmul': space-to-depth then four matmuls; 'im2col': patches then
one matmul), the forward pass, the input gradient and the kernel gradient, each its own jitted
function; for every layer of `dcgan.Generator` the transposed convolution's forward pass as XLA's
`conv_transpose` and as UpConv's forms ('phase', 'col2im'). Interleaved over repeats, medians in
ms, each checked against XLA's; each row names the fastest form and the one `auto` takes
(`cpu_convs.downconv_forms`, `cpu_convs.upconv_forward`). A train step runs, per D layer, 3
forwards, 2 kernel gradients and up to 3 input gradients, and each G layer's forward twice; a
form's cost in a step (memory traffic, cache, fusion) differs from its cost alone, so a mismatch
here is a reason to A/B the whole step (`benchmarks.speed.conv_step`), not a verdict.
Writes OUT/results.json and OUT/results.md.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.core import host_memory
from aigc_jax.models import cpu_convs
from benchmarks import report

PARTS = ("forward", "input_grad", "kernel_grad")
UP_FORMS = ("xla",) + cpu_convs.UPCONV_FORWARDS


def discriminator_layers(resolution, features, channels=3):
  """[(side, in, out)] of each D layer, as in aigc_jax.models.dcgan."""
  n = {32: 3, 64: 4}[resolution]
  return [(resolution >> i, channels if i == 0 else features * 2 ** (i - 1), features * 2**i) for i in range(n)]


def generator_layers(resolution, features, channels=3):
  """[(input side, in, out)] of each G layer, as in aigc_jax.models.dcgan."""
  n = {32: 3, 64: 4}[resolution]
  widths = [features * 2 ** (n - 1 - i) for i in range(n)] + [channels]
  return [(4 << i, widths[i], widths[i + 1]) for i in range(n)]


def down_functions(form):
  f = lambda x, k: cpu_convs.downconv(x, k, forms=(form,) * 3)
  return {"forward": jax.jit(f),
          "input_grad": jax.jit(lambda x, k, c: jax.vjp(lambda x: f(x, k), x)[1](c)[0]),
          "kernel_grad": jax.jit(lambda x, k, c: jax.vjp(lambda k: f(x, k), k)[1](c)[0])}


def up_function(form):
  if form == "xla":
    return jax.jit(lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME"))
  return jax.jit(lambda x, k: cpu_convs.upconv(x, k, forward=form))


def interleaved_ms(fns: dict, args: dict, reps: int) -> dict:
  """Median ms of each `fns[key](*args[key])`, checked against the first key's result, timed in turn."""
  out = {key: jax.block_until_ready(fn(*args[key])) for key, fn in fns.items()}
  for key in fns:
    want = out[next(k for k in fns if k[1:] == key[1:])]
    err = float(jnp.max(jnp.abs(out[key] - want)) / jnp.max(jnp.abs(want)))
    assert err < 1e-5, (key, err)
  times = {key: [] for key in fns}
  for _ in range(reps):
    for key, fn in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args[key]))
      times[key].append(time.perf_counter() - t0)
  return {key: 1e3 * float(np.median(t)) for key, t in times.items()}


def time_down_layer(batch, size, cin, cout, reps):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, size, size, cin)), jnp.float32)
  k = jnp.asarray(0.02 * rng.standard_normal((4, 4, cin, cout)), jnp.float32)
  c = jnp.asarray(rng.standard_normal((batch, size // 2, size // 2, cout)), jnp.float32)
  part_args = {"forward": (x, k), "input_grad": (x, k, c), "kernel_grad": (x, k, c)}
  fns = {(form, part): fn for form in cpu_convs.DOWNCONV_FORMS for part, fn in down_functions(form).items()}
  return interleaved_ms(fns, {key: part_args[key[1]] for key in fns}, reps)


def time_up_layer(batch, size, cin, cout, reps):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((batch, size, size, cin)), jnp.float32)
  k = jnp.asarray(0.02 * rng.standard_normal((4, 4, cin, cout)), jnp.float32)
  fns = {(form, "forward"): up_function(form) for form in UP_FORMS}
  return interleaved_ms(fns, {key: (x, k) for key in fns}, reps)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--resolutions", type=int, nargs="+", default=[32, 64], choices=[32, 64])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--features", type=int, default=64, help="g_features = d_features")
  p.add_argument("--reps", type=int, default=7)
  p.add_argument("--out", default="runs/conv_forms", help="Folder for results.json and results.md.")
  return p.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  print(f"jax {jax.__version__} ({jax.default_backend()}), batch {args.batch}, float32, median ms of {args.reps}",
        flush=True)
  down, up = [], []
  for res in args.resolutions:
    for size, cin, cout in discriminator_layers(res, args.features):
      ms = time_down_layer(args.batch, size, cin, cout, args.reps)
      auto = dict(zip(PARTS, cpu_convs.downconv_forms((args.batch, size, size, cin))))
      fastest = {p: min(cpu_convs.DOWNCONV_FORMS, key=lambda f: ms[(f, p)]) for p in PARTS}
      down.append(dict(layer=f"D {size}x{size}x{cin} -> {cout}", auto=auto, fastest=fastest,
                       ms={f"{f}/{p}": round(v, 2) for (f, p), v in ms.items()}))
      print(down[-1], flush=True)
    for size, cin, cout in generator_layers(res, args.features):
      ms = time_up_layer(args.batch, size, cin, cout, args.reps)
      up.append(dict(layer=f"G {size}x{size}x{cin} -> {cout}", fastest=min(UP_FORMS, key=lambda f: ms[(f, "forward")]),
                     auto=cpu_convs.upconv_forward((args.batch, size, size, cin)),
                     ms={f: round(ms[(f, "forward")], 2) for f in UP_FORMS}))
      print(up[-1], flush=True)
  down_rows = [[r["layer"], p, *(r["ms"][f"{f}/{p}"] for f in cpu_convs.DOWNCONV_FORMS), r["auto"][p], r["fastest"][p]]
               for r in down for p in PARTS]
  up_rows = [[r["layer"]] + [r["ms"][f] for f in UP_FORMS] + [r["auto"], r["fastest"]] for r in up]
  tables = ("DownConv, ms:\n\n" + report.markdown_table(["layer", "part", *cpu_convs.DOWNCONV_FORMS, "auto", "fastest"],
                                                 down_rows)
            + "\nUpConv forward, ms:\n\n" + report.markdown_table(["layer", *UP_FORMS, "auto", "fastest"], up_rows))
  report.write(args.out, "conv_forms", "CPU convolution forms alone", dict(
      batch=args.batch, features=args.features, reps=args.reps, downconv=down, upconv_forward=up), tables, argv=argv)
  print(tables)


if __name__ == "__main__":
  host_memory.reexec()
  main()
