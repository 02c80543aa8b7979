"""The canonical PyTorch DCGAN (pytorch/examples dcgan) trained for a CPU-time budget, for mnist_quality.

  /path/to/torch-venv/bin/python benchmarks/quality/torch_dcgan.py --images train.npz --budget_s 600 \
      --marks 100,200,300 --num_samples 10000 --out DIR

Needs only torch and numpy (no JAX, nothing of the project), so any Python with torch runs it; its
`networks` are also the twin benchmarks/speed/compare_pytorch.py times.
pytorch/examples' dcgan/main.py setting at 32x32: G and D of 64 base features (the networks of
benchmarks/speed/compare_pytorch.py: z=100 -> 4x4x256 -> transposed 4x4/2 convolutions with
BatchNorm and ReLU -> tanh; D: 4x4/2 convolutions, BatchNorm after the first, LeakyReLU(0.2) ->
linear logit), N(0, 0.02) weights, BCE, Adam(2e-4, betas (0.5, 0.999)) for both, batch 64,
the D step on a real batch and G(z).detach(), then the G step on the same G(z) with target 1 (as
that script does). No EMA: samples come from G in eval mode.

--images: an .npz with 'images' uint8 [N, 32, 32, C], the very images the JAX runs train on.
The clock is `time.process_time()` of this process, as for the JAX runs; when it passes each of
--marks (CPU seconds) and at the end, G draws --num_samples images from fixed noise, written to
OUT/samples_<cpu>.npz ('images' uint8 [N, 32, 32, C], 'cpu_s', 'steps'); that sampling is not
charged to the budget. The last line on stdout is a JSON object with steps, cpu_s, wall_s and the samples written.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def networks(channels: int, features: int = 64, z_dim: int = 100, res: int = 32):
  n = {32: 3, 64: 4}[res]
  width = features * 2 ** (n - 1)

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      self.project = nn.Linear(z_dim, 16 * width, bias=False)
      self.bn0 = nn.BatchNorm2d(width)
      layers, w = [], width
      for _ in range(1, n):
        layers += [nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU(True)]
        w //= 2
      layers += [nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False), nn.Tanh()]
      self.body = nn.Sequential(*layers)

    def forward(self, z):
      return self.body(torch.relu(self.bn0(self.project(z).view(-1, width, 4, 4))))

  layers, w_in = [], channels
  for i in range(n):
    layers.append(nn.Conv2d(w_in, features * 2**i, 4, 2, 1, bias=False))
    if i > 0:
      layers.append(nn.BatchNorm2d(features * 2**i))
    layers.append(nn.LeakyReLU(0.2, True))
    w_in = features * 2**i
  discriminator = nn.Sequential(*layers, nn.Flatten(), nn.Linear(16 * w_in, 1))
  generator = Generator()
  for m in list(generator.modules()) + list(discriminator.modules()):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
      nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
      nn.init.normal_(m.weight, 1.0, 0.02)
      nn.init.zeros_(m.bias)
  return generator, discriminator


def to_uint8(x: torch.Tensor) -> np.ndarray:
  """[-1, 1] NCHW -> uint8 NHWC, rounding as the project's images.to_uint8."""
  return np.clip(np.round((x.permute(0, 2, 3, 1).numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--images", required=True)
  p.add_argument("--budget_s", type=float, required=True)
  p.add_argument("--marks", default="", help="comma-separated CPU seconds at which to write samples")
  p.add_argument("--num_samples", type=int, default=10_000)
  p.add_argument("--out", required=True)
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--features", type=int, default=64)
  p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  with np.load(args.images) as f:
    data = torch.from_numpy(f["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
  n, channels, res = data.shape[0], data.shape[1], data.shape[2]
  g, d = networks(channels, args.features, res=res)
  g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = nn.BCEWithLogitsLoss()
  fixed = torch.randn(args.num_samples, 100, generator=torch.Generator().manual_seed(1))
  marks = sorted(float(m) for m in args.marks.split(",") if m.strip())
  marks = [m for m in marks if m < args.budget_s] + [args.budget_s]
  excluded, cpu0, wall0, steps, perm, pos = 0.0, time.process_time(), time.time(), 0, torch.randperm(n), 0
  spent = lambda: time.process_time() - cpu0 - excluded
  written = []

  def write_samples(cpu_s):
    nonlocal excluded
    t = time.process_time()
    g.eval()
    with torch.no_grad():
      images = np.concatenate([to_uint8(g(fixed[i:i + 500])) for i in range(0, args.num_samples, 500)])
    g.train()
    name = f"samples_{int(round(cpu_s))}.npz"
    np.savez_compressed(out / name, images=images, cpu_s=cpu_s, steps=steps)
    written.append({"file": name, "cpu_s": round(cpu_s, 1), "steps": steps})
    excluded += time.process_time() - t

  for mark in marks:
    while spent() < mark:
      if pos + args.batch_size > n:  # a new epoch, reshuffled, whole batches only (drop_last)
        perm, pos = torch.randperm(n), 0
      real = data[perm[pos:pos + args.batch_size]]
      pos += args.batch_size
      b = real.shape[0]
      fake = g(torch.randn(b, 100))
      d_opt.zero_grad(set_to_none=True)
      d_loss = bce(d(real).view(-1), torch.ones(b)) + bce(d(fake.detach()).view(-1), torch.zeros(b))
      d_loss.backward()
      d_opt.step()
      g_opt.zero_grad(set_to_none=True)
      g_loss = bce(d(fake).view(-1), torch.ones(b))
      g_loss.backward()
      g_opt.step()
      steps += 1
    write_samples(spent())
  print(json.dumps({"steps": steps, "cpu_s": round(spent(), 1), "wall_s": round(time.time() - wall0, 1),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "samples": written}), flush=True)


if __name__ == "__main__":
  main()
