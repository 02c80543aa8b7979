"""Times the project's jitted DCGAN train step against the same model in PyTorch eager, side by side.

  python -m benchmarks.speed.compare_pytorch --torch_python /path/to/torch-venv/bin/python --out runs/compare_pytorch

Both sides run one step = one discriminator update (real batch + a batch from G) and one
generator update on fresh noise (non-saturating BCE-with-logits, Adam(2e-4, b1=0.5), BatchNorm in
train mode, D's parameters frozen during the G update), on synthetic images, in float32. torch is
not a project dependency: it runs in a subprocess started with --torch_python (default: this
interpreter; any Python with torch installed, e.g. a venv made with `pip install torch`, needing
nothing else) and is driven over a pipe, so the two sides alternate in short rounds (JAX round,
torch round, ...) and machine noise hits both alike; the reported times are medians over rounds,
after --warmup untimed steps on each side (with only 2, JAX's first 64x64 rounds were still
faulting in fresh memory and ran 40% slow). The JSON line keeps every round's time.
Both use the same number of threads (--threads, default: the CPUs this process may use). Like
main.py, the script restarts itself with glibc malloc tunables that keep XLA:CPU's buffers mapped
(aigc_jax/core/host_memory.py; AIGC_HOST_MEMORY=off to not); the torch side inherits them unless
--torch_malloc default.
The last line is one JSON object with every number, also written to OUT/results.json, with the
table in OUT/results.md.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTINGS = {"32": ("configs/dcgan.py:cifar10", 32), "64": ("configs/dcgan.py:seed64", 64)}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--torch_python", default=sys.executable,
                 help="Python interpreter that can import torch (default: this one), e.g. a venv's bin/python "
                      "after `pip install torch`.")
  p.add_argument("--resolutions", nargs="+", default=["32", "64"], choices=sorted(SETTINGS))
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--features", type=int, default=64, help="G and D base width (the DCGAN paper's 64).")
  p.add_argument("--rounds", type=int, default=7, help="Alternating timing rounds per side.")
  p.add_argument("--steps", type=int, default=0, help="Steps per round (default: 5 at 32x32, 2 at 64x64).")
  p.add_argument("--warmup", type=int, default=10,
                 help="Untimed steps each side runs before the rounds (JAX after compiling): until both "
                      "have mapped all the memory a step uses, so that the rounds time steady steps.")
  p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
  p.add_argument("--torch_malloc", choices=["same", "default"], default="same",
                 help="'same': torch runs with this process's GLIBC_TUNABLES; "
                      "'default': without glibc.malloc.* tunables.")
  p.add_argument("--out", default="runs/compare_pytorch", help="Folder for results.json and results.md.")
  p.add_argument("--worker", choices=["torch"], help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  for name, least in (("batch_size", 1), ("features", 1), ("rounds", 1), ("steps", 0), ("warmup", 1), ("threads", 1)):
    if getattr(args, name) < least:
      raise SystemExit(f"error: --{name} must be >= {least}, got {getattr(args, name)}")
  return args


# ---------------------------------------------------------------------------------------------- torch


def torch_worker(args):
  """Reads 'SETUP res batch features warmup [device compile dtype]' / 'RUN steps' lines on stdin, answers
  one JSON line each. device: cpu or cuda; compile: 1 wraps G and D in torch.compile; dtype: float32 or
  bfloat16 (autocast, parameters stay float32, as the project's model.dtype does). On CUDA, float32
  convolutions and matmuls may use TF32, as XLA's defaults on the GPU do."""
  import torch
  from torch import nn

  from benchmarks.quality.torch_dcgan import networks  # the one PyTorch twin; imports torch

  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
  model = {}

  def build(res, batch, f, device="cpu", compiled=0, dtype="float32", channels=3, z_dim=100):
    generator, discriminator = networks(channels, f, z_dim, res)
    generator, discriminator = generator.to(device), discriminator.to(device)
    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, channels, res, res, device=device) * 2 - 1
    g, d = (torch.compile(generator), torch.compile(discriminator)) if compiled else (generator, discriminator)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    return dict(g=g, d=d, d_module=discriminator, g_opt=g_opt, d_opt=d_opt, real=real, batch=batch, z_dim=z_dim,
                device=device, autocast=autocast)

  bce = nn.BCEWithLogitsLoss()

  def step(m):
    g, d, real, batch, dev = m["g"], m["d"], m["real"], m["batch"], m["device"]
    ones, zeros = torch.ones(batch, device=dev), torch.zeros(batch, device=dev)
    with torch.no_grad(), m["autocast"]:
      fake = g(torch.randn(batch, m["z_dim"], device=dev))
    m["d_opt"].zero_grad(set_to_none=True)
    with m["autocast"]:
      d_loss = bce(d(real).view(-1).float(), ones) + bce(d(fake).view(-1).float(), zeros)
    d_loss.backward()
    m["d_opt"].step()
    m["d_module"].requires_grad_(False)
    m["g_opt"].zero_grad(set_to_none=True)
    with m["autocast"]:
      g_loss = bce(d(g(torch.randn(batch, m["z_dim"], device=dev))).view(-1).float(), ones)
    g_loss.backward()
    m["g_opt"].step()
    m["d_module"].requires_grad_(True)
    return g_loss

  print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
  for line in sys.stdin:
    cmd, *vals = line.split()
    if cmd == "SETUP":
      res, batch, features, warmup = map(int, vals[:4])
      device, compiled, dtype = (vals[4], int(vals[5]), vals[6]) if len(vals) > 4 else ("cpu", 0, "float32")
      model = build(res, batch, features, device, compiled, dtype)
      t0 = time.perf_counter()
      step(model).item()  # with torch.compile: the compilation
      first_s = time.perf_counter() - t0
      for _ in range(warmup - 1):  # allocator, one-time dispatch
        step(model)
      print(json.dumps({"ok": True, "first_step_s": first_s}), flush=True)
    elif cmd == "RUN":
      t0 = time.perf_counter()
      for _ in range(int(vals[0])):
        loss = step(model)
      loss.item()
      print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)


class TorchSide:
  def __init__(self, python, threads, malloc="same"):
    from aigc_jax.core import host_memory

    cmd = [python, "-m", __spec__.name, "--worker", "torch", "--threads", str(threads)]  # in ROOT, below
    env = dict(os.environ)
    if malloc == "default":
      tunables = [t for t in env.get(host_memory.TUNABLES, "").split(":") if t and not t.startswith("glibc.malloc.")]
      env[host_memory.TUNABLES] = ":".join(tunables)
    self.malloc_tuned = host_memory.enabled(env)
    self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    self.info = self._read()

  def _read(self):
    line = self.proc.stdout.readline()
    if not line:
      raise SystemExit(f"error: the torch worker ({self.proc.args[0]}) exited with code {self.proc.wait()}; "
                       "does `import torch` work in that interpreter? (see --torch_python)")
    return json.loads(line)

  def ask(self, line):
    self.proc.stdin.write(line + "\n")
    self.proc.stdin.flush()
    return self._read()

  def close(self):
    self.proc.stdin.close()
    self.proc.wait()


# ------------------------------------------------------------------------------------------------ jax


class JaxSide:
  def __init__(self, threads):
    if threads:  # before the backend starts: XLA:CPU sizes its thread pool from the visible CPUs.
      os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    import jax
    self.jax = jax

  def setup(self, preset, res, batch, features, warmup):
    import numpy as np

    from aigc_jax.core import parallel
    from aigc_jax.tasks.gan import steps, train
    from configs import dcgan

    config = dcgan.get_config(preset.split(":")[1])
    config.data.resolution, config.data.channels = res, 3
    config.train.batch_size = batch
    config.model.g_features = config.model.d_features = features
    dp = parallel.DataParallel(config.train.parallel, devices=self.jax.devices()[:1])
    self.state = dp.put_state(train.build_state(config, parallel.bn_axis_name(dp.mode)))
    images = np.random.default_rng(0).uniform(-1, 1, (batch, res, res, 3)).astype(np.float32)
    self.batch = dp.put_batch({"image": images, "label": np.zeros(batch, np.int32)})
    t0 = time.perf_counter()
    self.step = dp.step(steps.train_step, loss=config.train.loss).lower(self.state, self.batch).compile()
    self.compile_s = time.perf_counter() - t0
    self.run(warmup)

  def run(self, n):
    t0 = time.perf_counter()
    for _ in range(n):
      self.state, metrics = self.step(self.state, self.batch)
    self.jax.block_until_ready(metrics)
    return time.perf_counter() - t0


def median(xs):
  xs = sorted(xs)
  return 0.5 * (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2])


def main(args):
  from aigc_jax.core import host_memory

  torch_side = TorchSide(args.torch_python, args.threads, args.torch_malloc)
  jax_side = JaxSide(args.threads)
  jax = jax_side.jax
  malloc_tuned = {"jax": host_memory.enabled(), "torch": torch_side.malloc_tuned}
  print(f"jax {jax.__version__} ({jax.default_backend()}) vs torch {torch_side.info['torch']} eager, "
        f"{args.threads} threads each, batch {args.batch_size}, features {args.features}, float32; "
        f"median over {args.rounds} alternating rounds; malloc tunables {malloc_tuned}", flush=True)
  rows = []
  for res_key in args.resolutions:
    preset, res = SETTINGS[res_key]
    steps = args.steps or (5 if res == 32 else 2)
    jax_side.setup(preset, res, args.batch_size, args.features, args.warmup)
    torch_side.ask(f"SETUP {res} {args.batch_size} {args.features} {args.warmup}")
    jax_t, torch_t = [], []
    for _ in range(args.rounds):
      jax_t.append(jax_side.run(steps) / steps)
      torch_t.append(torch_side.ask(f"RUN {steps}")["seconds"] / steps)
    row = dict(resolution=res, batch_size=args.batch_size, features=args.features, steps_per_round=steps,
               rounds=args.rounds, warmup_steps=args.warmup, jax_step_ms=round(1e3 * median(jax_t), 1),
               torch_step_ms=round(1e3 * median(torch_t), 1), jax_compile_s=round(jax_side.compile_s, 2),
               jax_round_ms=[round(1e3 * t, 1) for t in jax_t], torch_round_ms=[round(1e3 * t, 1) for t in torch_t])
    row["jax_steps_per_s"] = round(1e3 / row["jax_step_ms"], 3)
    row["torch_steps_per_s"] = round(1e3 / row["torch_step_ms"], 3)
    row["speed_ratio_jax_over_torch"] = round(row["torch_step_ms"] / row["jax_step_ms"], 3)
    rows.append(row)
    print(f"{res}x{res}x3 batch {args.batch_size}: jax {row['jax_step_ms']:.1f} ms/step "
          f"({row['jax_steps_per_s']:.2f} steps/s) | torch {row['torch_step_ms']:.1f} ms/step "
          f"({row['torch_steps_per_s']:.2f} steps/s) | jax speed / torch speed = "
          f"{row['speed_ratio_jax_over_torch']:.2f}", flush=True)
  torch_side.close()
  result = dict(benchmark="compare_pytorch", jax=jax.__version__, torch=torch_side.info["torch"],
                threads=args.threads, cpus=os.cpu_count(), malloc_tuned=malloc_tuned, rows=rows)
  print(json.dumps(result))
  table = report.markdown_table(
      ["image", "batch", "features", "JAX ms/step", "PyTorch ms/step", "JAX steps/s", "PyTorch steps/s",
       "JAX speed / PyTorch speed", "JAX compile s"],
      [[f"{r['resolution']}x{r['resolution']}x3", r["batch_size"], r["features"], r["jax_step_ms"], r["torch_step_ms"],
        r["jax_steps_per_s"], r["torch_steps_per_s"], r["speed_ratio_jax_over_torch"], r["jax_compile_s"]]
       for r in rows])
  note = (f"jax {jax.__version__} ({jax.default_backend()}) jitted vs torch {torch_side.info['torch']} eager, "
          f"{args.threads} threads each, float32; medians over {args.rounds} alternating rounds after "
          f"{args.warmup} warm-up steps per side; glibc malloc tunables: JAX {'on' if malloc_tuned['jax'] else 'off'}, "
          f"PyTorch {'on' if malloc_tuned['torch'] else 'off'}. results.json keeps every round's time.")
  report.write(args.out, "compare_pytorch", "DCGAN train step: JAX (this project) vs PyTorch eager", result, table,
               [note])


if __name__ == "__main__":
  _args = parse_args()
  if _args.worker == "torch":
    torch_worker(_args)
  else:
    from aigc_jax.core import host_memory

    host_memory.reexec()
    main(_args)
