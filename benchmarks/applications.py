"""Repair and enhancement measured side by side with the classical tools, on the same images and damage.

  python benchmarks/applications.py --data ../shared/data/mnist --out runs/apps_bench \
      --repair_workdir runs/repair_mnist --denoise_workdir runs/denoise_mnist \
      --sr2_workdir runs/sr2_mnist --sr4_workdir runs/sr4_mnist --gan_workdir runs/dcgan_mnist \
      --classifier_workdir runs/cls_mnist

Measures on MNIST images [8000:] (the networks train on [:8000]):
  inpainting     U-Net repair network, GAN inversion (inpaint.py), skimage inpaint_biharmonic, mean fill;
                 PSNR/SSIM over the holes and the whole image, classifier accuracy on the result
  denoising      U-Net denoiser, skimage denoise_tv_chambolle and denoise_nl_means (their strength
                 chosen from a grid by PSNR on 100 training images), and the noisy input itself
  super-res      SRGAN-style x2/x4 networks vs bicubic (skimage.transform.resize, order 3); PSNR/SSIM
                 with a border of the scale factor cropped, classifier accuracy on the upscaled digits;
                 with --sr2_photos_workdir also x2 on whole held-out scikit-image photographs (grey)
Prints one markdown table and writes OUT/results.json (a list of rows {task, method, dataset, ...})
and OUT/examples_*.png strips. Workdirs left out skip their rows; baselines always run.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aigc_jax import damage, images  # noqa: E402
from aigc_jax.metrics import image_quality  # noqa: E402

MASKS = ("center", "boxes", "strokes", "pixels")
NOISES = ("gaussian", "salt_pepper")


def load_mnist(path):
  from aigc_jax.data import read_idx

  root = Path(path)
  imgs = read_idx(next(root.glob("t10k-images-idx3*")))
  labels = read_idx(next(root.glob("t10k-labels-idx1*")))
  return imgs[..., None].astype(np.float32) / 127.5 - 1.0, labels.astype(np.int64)


class Accuracy:
  """The project's classifier, trained on MNIST [:8000], scoring images in [-1, 1]."""

  def __init__(self, workdir):
    self.state = None
    if workdir:
      import ml_collections

      from aigc_jax import classify

      config = ml_collections.ConfigDict(json.loads((Path(workdir) / "config.json").read_text()))
      self.config = config
      self.state = classify.load_state(config, workdir)

  def __call__(self, x, labels):
    if self.state is None:
      return None
    from aigc_jax import classify, data

    u8 = images.to_uint8(x)
    u8 = data.fit_images(u8, self.config.data.resolution, self.config.data.channels, self.config.data.resize)
    return float((classify.predict_probabilities(self.state, u8).argmax(-1) == labels).mean())


def scores(out, clean, region=None, border=0):
  out, clean = image_quality.crop_border(jnp.asarray(out), border), image_quality.crop_border(jnp.asarray(clean), border)
  row = {"psnr": float(jnp.mean(image_quality.psnr(out, clean))), "ssim": float(jnp.mean(image_quality.ssim(out, clean)))}
  if region is not None:
    row["psnr_hole"] = float(jnp.mean(image_quality.psnr(out, clean, region=region)))
    row["ssim_hole"] = float(jnp.mean(image_quality.ssim(out, clean, region=region)))
  return row


def batched(fn, *arrays, batch=500):
  return np.concatenate([np.asarray(fn(*(a[i:i + batch] for a in arrays))) for i in range(0, len(arrays[0]), batch)])


def per_image(fn, x):
  """Applies a numpy [H, W] -> [H, W] function in [0, 1] to each grey image of [N, H, W, 1] in [-1, 1]."""
  x01 = (np.asarray(x)[..., 0] + 1) / 2
  return np.stack([np.clip(fn(im), 0, 1) for im in x01])[..., None] * 2 - 1


def network(workdir):
  from aigc_jax import image2image

  _, state = image2image.load_state(workdir)
  print(f"{workdir}: checkpoint at step {int(state.step)}", flush=True)
  return state, lambda g_in: image2image.apply_generator(state, jnp.asarray(g_in))


def strip(path, rows):
  grid = images.grid(np.concatenate([images.to_uint8(r[:8]) for r in rows]), ncols=8)
  images.save_png(path, grid, scale=3)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", required=True, help="folder with the MNIST t10k IDX files")
  p.add_argument("--out", required=True)
  p.add_argument("--num_images", type=int, default=2000, help="test images from the end of the 10,000")
  p.add_argument("--inpaint_images", type=int, default=500, help="test images per mask kind for inpainting "
                 "(GAN inversion is the slow method)")
  for name in ("repair", "denoise", "sr2", "sr4", "gan", "classifier", "sr2_photos"):
    p.add_argument(f"--{name}_workdir", default="")
  p.add_argument("--inversion_steps", type=int, default=200)
  p.add_argument("--inversion_restarts", type=int, default=4)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--tasks", default="inpainting,denoising,super-resolution", help="which sections to run")
  args = p.parse_args(argv)
  out_dir = Path(args.out)
  out_dir.mkdir(parents=True, exist_ok=True)
  from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, inpaint_biharmonic
  from skimage.transform import resize

  x_all, y_all = load_mnist(args.data)
  test_x, test_y = x_all[-args.num_images:], y_all[-args.num_images:]
  tune_x = x_all[:100]
  acc = Accuracy(args.classifier_workdir)
  rows = []
  dataset = f"mnist[{10000 - args.num_images}:]"

  def add(task, damage_kind, method, n, row, accuracy=None, seconds=None):
    r = {"task": task, "damage": damage_kind, "method": method, "dataset": dataset, "n": n, **row}
    if accuracy is not None:
      r["accuracy"] = accuracy
    if seconds is not None:
      r["seconds"] = round(seconds, 1)
    rows.append(r)
    print(json.dumps(r), flush=True)

  add("reference", "none", "clean images", len(test_x), {}, acc(test_x, test_y))

  # ---- inpainting
  rep = network(args.repair_workdir) if args.repair_workdir and "inpainting" in args.tasks else None
  gan = None
  if args.gan_workdir and "inpainting" in args.tasks:
    import ml_collections

    from aigc_jax import inpaint

    gcfg = ml_collections.ConfigDict(json.loads((Path(args.gan_workdir) / "config.json").read_text()))
    gan = inpaint.load_generator(gcfg, args.gan_workdir)
    gan_steps = int(gan.state.step)
  xi, yi = test_x[:args.inpaint_images], test_y[:args.inpaint_images]
  for k, kind in enumerate(MASKS if "inpainting" in args.tasks else ()):
    damaged, known = damage.damage_batch(jax.random.PRNGKey(args.seed * 100 + k), jnp.asarray(xi), (kind,))
    damaged, known = np.asarray(damaged), np.asarray(known)
    hole = 1.0 - known
    results = {}
    t = time.time()
    means = (damaged * known).sum((1, 2, 3), keepdims=True) / np.maximum(known.sum((1, 2, 3), keepdims=True), 1)
    results["mean fill"] = (known * damaged + hole * means, time.time() - t)
    t = time.time()
    bih = np.stack([inpaint_biharmonic((d[..., 0] + 1) / 2, m[..., 0] < 0.5) for d, m in zip(damaged, known)])
    results["skimage inpaint_biharmonic"] = (np.clip(bih, 0, 1)[..., None] * 2 - 1, time.time() - t)
    if rep is not None:
      t = time.time()
      results[f"U-Net repair GAN (ours, {int(rep[0].step)} steps)"] = (batched(rep[1], np.concatenate([damaged, known], -1)), time.time() - t)
    if gan is not None:
      t = time.time()
      fill = lambda d, m: inpaint.inpaint(gan, d, m, seed=args.seed, restarts=args.inversion_restarts,
                                          num_steps=args.inversion_steps)
      results[f"GAN inversion (ours, DCGAN {gan_steps} steps)"] = (batched(fill, damaged, known, batch=250), time.time() - t)
    for method, (res, sec) in results.items():
      add("inpainting", kind, method, len(xi), scores(res, xi, hole), acc(res, yi), sec)
    strip(out_dir / f"examples_inpaint_{kind}.png", [damaged] + [r for r, _ in results.values()] + [xi])

  # ---- denoising
  den = network(args.denoise_workdir) if args.denoise_workdir else None
  for k, kind in enumerate(NOISES if "denoising" in args.tasks else ()):
    key = jax.random.PRNGKey(args.seed * 100 + 10 + k)
    noisy, _ = damage.damage_batch(key, jnp.asarray(test_x), (kind,))
    noisy = np.asarray(noisy)
    tune_noisy = np.asarray(damage.damage_batch(jax.random.fold_in(key, 1), jnp.asarray(tune_x), (kind,))[0])

    def tuned(make, grid):
      best = max(grid, key=lambda v: float(jnp.mean(image_quality.psnr(per_image(make(v), tune_noisy), tune_x))))
      return make(best), best

    tv, tv_w = tuned(lambda w: (lambda im: denoise_tv_chambolle(im, weight=w)), (0.02, 0.05, 0.1, 0.2, 0.4))
    nlm, nlm_h = tuned(lambda h: (lambda im: denoise_nl_means(im, h=h, patch_size=3, patch_distance=5,
                                                              fast_mode=True)), (0.05, 0.1, 0.2, 0.35, 0.6))
    results = {"noisy input": (noisy, 0.0)}
    t = time.time()
    results[f"skimage denoise_tv_chambolle (weight {tv_w})"] = (per_image(tv, noisy), time.time() - t)
    t = time.time()
    results[f"skimage denoise_nl_means (h {nlm_h})"] = (per_image(nlm, noisy), time.time() - t)
    if den is not None:
      t = time.time()
      g_in = np.concatenate([noisy, np.zeros_like(noisy[..., :1])], -1)
      results[f"U-Net denoise GAN (ours, {int(den[0].step)} steps)"] = (batched(den[1], g_in), time.time() - t)
    for method, (res, sec) in results.items():
      add("denoising", kind, method, len(test_x), scores(res, test_x), acc(res, test_y), sec)
    strip(out_dir / f"examples_denoise_{kind}.png", [r for r, _ in results.values()] + [test_x])

  # ---- super-resolution
  for scale, workdir in ((2, args.sr2_workdir), (4, args.sr4_workdir)) if "super-resolution" in args.tasks else ():
    low = np.asarray(damage.downscale(jnp.asarray(test_x), scale))
    results = {}
    t = time.time()
    bic = np.stack([resize((im[..., 0] + 1) / 2, test_x.shape[1:3], order=3) for im in low])
    results["bicubic (skimage resize, order 3)"] = (np.clip(bic, 0, 1)[..., None] * 2 - 1, time.time() - t)
    if workdir:
      state, fn = network(workdir)
      t = time.time()
      results[f"SRGAN-style network (ours, {int(state.step)} steps)"] = (batched(fn, low), time.time() - t)
    for method, (res, sec) in results.items():
      add("super-resolution", f"x{scale} area downscale", method, len(test_x), scores(res, test_x, border=scale),
          acc(res, test_y), sec)
    near = np.repeat(np.repeat(low, scale, 1), scale, 2)
    strip(out_dir / f"examples_sr_x{scale}.png", [near] + [r for r, _ in results.values()] + [test_x])

  # ---- super-resolution of whole photographs the network never saw (benchmarks/photo_crops.py TEST)
  if args.sr2_photos_workdir and "super-resolution" in args.tasks:
    from aigc_jax import enhance
    from benchmarks.photo_crops import TEST, grey

    state, fn = network(args.sr2_photos_workdir)
    fn = jax.jit(fn)
    scale = state.scale
    ours = f"SRGAN-style network (ours, {int(state.step)} steps), tiled"
    per = {"bicubic (skimage resize, order 3)": [], ours: []}
    sec = {k: 0.0 for k in per}
    shown = []
    for name in TEST:
      im = grey(name)
      im = im[:im.shape[0] // scale * scale, :im.shape[1] // scale * scale]
      clean = jnp.asarray(im, jnp.float32)[None, ..., None] / 127.5 - 1
      low = damage.downscale(clean, scale)
      t = time.time()
      bic = resize((np.asarray(low[0, ..., 0]) + 1) / 2, im.shape, order=3)
      bic = jnp.asarray(np.clip(bic, 0, 1))[None, ..., None] * 2 - 1
      sec["bicubic (skimage resize, order 3)"] += time.time() - t
      t = time.time()
      sr = enhance.upscale_tiled(fn, low, scale)
      sec[ours] += time.time() - t
      for method, res in zip(per, (bic, sr)):
        per[method].append(scores(res, clean, border=scale))
      c = slice(im.shape[0] // 2 - 48, im.shape[0] // 2 + 48), slice(im.shape[1] // 2 - 48, im.shape[1] // 2 + 48)
      shown.append([np.asarray(v)[:, c[0], c[1]] for v in (jnp.repeat(jnp.repeat(low, scale, 1), scale, 2), bic, sr,
                                                           clean)])
    for method, rs in per.items():
      row = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
      rows.append({"task": "super-resolution", "damage": f"x{scale} area downscale", "method": method,
                   "dataset": "skimage photos " + "+".join(TEST), "n": len(TEST), **row,
                   "seconds": round(sec[method], 1)})
      print(json.dumps(rows[-1]), flush=True)
    grid = images.grid(np.concatenate([images.to_uint8(np.concatenate(col)) for col in zip(*shown)]), ncols=len(TEST))
    images.save_png(out_dir / "examples_sr_photos.png", grid)

  (out_dir / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
  print()
  print(table(rows))
  (out_dir / "table.md").write_text(table(rows) + "\n")


def table(rows):
  cols = ("task", "dataset", "damage", "method", "n", "psnr", "ssim", "psnr_hole", "ssim_hole", "accuracy")
  head = ["task", "data", "damage", "method", "n", "PSNR dB", "SSIM", "PSNR holes", "SSIM holes", "classifier acc."]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = []
    for c in cols:
      v = r.get(c, "")
      cells.append(f"{v:.2f}" if c.startswith("psnr") and v != "" else f"{v:.3f}" if isinstance(v, float) else str(v))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
