"""The three sections of benchmarks/applications/applications.py: the damage, the classical baselines
beside the networks given, the scores and example strips, and the markdown table of the rows.

Images are float arrays [N, H, W, 1] in [-1, 1]; `add(task, damage, method, n, scores, accuracy,
seconds, dataset=...)` receives each row; a network is (state, function of the generator input, how it
was trained: 'l2 loss, 2000 steps in 6.1 min').
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.core import images
from aigc_jax.data import damage
from aigc_jax.metrics import image_quality
from aigc_jax.tasks.image2image.steps import self_ensemble
from benchmarks.applications.photo_crops import TEST, grey

MASKS = ("center", "boxes", "strokes", "pixels")
NOISES = ("gaussian", "salt_pepper")


def scores(out, clean, region=None, border=0):
  out = image_quality.crop_border(jnp.asarray(out), border)
  clean = image_quality.crop_border(jnp.asarray(clean), border)
  row = {"psnr": float(jnp.mean(image_quality.psnr(out, clean))),
         "ssim": float(jnp.mean(image_quality.ssim(out, clean)))}
  if region is not None:
    row["psnr_hole"] = float(jnp.mean(image_quality.psnr(out, clean, region=region)))
    row["ssim_hole"] = float(jnp.mean(image_quality.ssim(out, clean, region=region)))
  return row


def mean_scores(per_image_rows, names=None):
  """The mean of each score; with `names` (one per image), also each image's PSNR as "psnr_per_image"."""
  row = {k: float(np.mean([r[k] for r in per_image_rows])) for k in per_image_rows[0]}
  if names is not None:
    row["psnr_per_image"] = {name: r["psnr"] for name, r in zip(names, per_image_rows, strict=True)}
  return row


def batched(fn, *arrays, batch=500):
  return np.concatenate([np.asarray(fn(*(a[i:i + batch] for a in arrays))) for i in range(0, len(arrays[0]), batch)])


def per_image(fn, x):
  """Applies a numpy [H, W] -> [H, W] function in [0, 1] to each grey image of [N, H, W, 1] in [-1, 1]."""
  x01 = (np.asarray(x)[..., 0] + 1) / 2
  return np.stack([np.clip(fn(im), 0, 1) for im in x01])[..., None] * 2 - 1


def strip(path, rows, scale=3):
  grid = images.grid(np.concatenate([images.to_uint8(r[:8]) for r in rows]), ncols=8)
  images.save_png(path, grid, scale=scale)


def to_unit(u8):
  return u8.astype(np.float32) / 127.5 - 1.0


def inpainting(add, x, labels, acc, rep, gan, args, out_dir, tag, seed, *, dataset=None):
  """Every mask kind on the same images `x` [N, H, W, 1]: mean fill, biharmonic, and the networks given."""
  from skimage.restoration import inpaint_biharmonic

  for k, kind in enumerate(MASKS):
    damaged, known = damage.damage_batch(jax.random.PRNGKey(seed + k), jnp.asarray(x), (kind,))
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
      g_in = np.concatenate([damaged, known], -1)
      t = time.time()
      results[f"U-Net repair (ours, {rep[2]})"] = (batched(rep[1], g_in), time.time() - t)
      t = time.time()
      ens = batched(lambda v: self_ensemble(rep[1], v), g_in)
      results[f"U-Net repair (ours, {rep[2]}), x8 self-ensemble"] = (known * damaged + hole * ens, time.time() - t)
    if gan is not None:
      from aigc_jax.tasks.gan import inpaint

      t = time.time()
      fill = lambda d, m: inpaint.inpaint(gan, d, m, seed=args.seed, restarts=args.inversion_restarts,
                                          num_steps=args.inversion_steps)
      results[f"GAN inversion (ours, DCGAN {int(gan.state.step)} steps)"] = (
          batched(fill, damaged, known, batch=250), time.time() - t)
    for method, (res, sec) in results.items():
      add("inpainting", kind, method, len(x), scores(res, x, hole), acc(res, labels), sec, dataset=dataset)
    strip(out_dir / f"examples_inpaint_{tag}{kind}.png", [damaged] + [r for r, _ in results.values()] + [x])


def tuned_denoisers(tune_clean, tune_noisy):
  """TV and NL-means with the strength from a grid that gives the best mean PSNR on the tuning pairs."""
  from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

  def tuned(make, grid):
    def psnr(v):
      return np.mean([float(jnp.mean(image_quality.psnr(per_image(make(v), n), c)))
                      for n, c in zip(tune_noisy, tune_clean)])
    best = max(grid, key=psnr)
    return make(best), best

  tv, tv_w = tuned(lambda w: (lambda im: denoise_tv_chambolle(im, weight=w)), (0.02, 0.05, 0.1, 0.2, 0.4))
  nlm, nlm_h = tuned(lambda h: (lambda im: denoise_nl_means(im, h=h, patch_size=3, patch_distance=5,
                                                            fast_mode=True)), (0.05, 0.1, 0.2, 0.35, 0.6))
  return {f"skimage denoise_tv_chambolle (weight {tv_w})": tv, f"skimage denoise_nl_means (h {nlm_h})": nlm}


def denoising(add, clean_list, labels, acc, den, tune_clean, out_dir, tag, seed, *, dataset=None, names=None):
  """Each noise kind on every image of `clean_list` (arrays [n, H, W, 1]; sizes may differ between arrays).

  `names`: one per array of single images (the photographs), to report each one's PSNR.
  """
  for k, kind in enumerate(NOISES):
    key = jax.random.PRNGKey(seed + k)
    noisy = [np.asarray(damage.damage_batch(jax.random.fold_in(key, i), jnp.asarray(c), (kind,))[0])
             for i, c in enumerate(clean_list)]
    tune_noisy = [np.asarray(damage.damage_batch(jax.random.fold_in(key, 10_000 + i), jnp.asarray(c), (kind,))[0])
                  for i, c in enumerate(tune_clean)]
    results = {"noisy input": (noisy, 0.0)}
    for method, fn in tuned_denoisers(tune_clean, tune_noisy).items():
      t = time.time()
      results[method] = ([per_image(fn, n) for n in noisy], time.time() - t)
    if den is not None:
      t = time.time()
      results[f"U-Net denoise (ours, {den[2]})"] = (
          [batched(den[1], np.concatenate([n, np.zeros_like(n[..., :1])], -1)) for n in noisy], time.time() - t)
      t = time.time()
      results[f"U-Net denoise (ours, {den[2]}), x8 self-ensemble"] = (
          [batched(lambda v: self_ensemble(den[1], v), np.concatenate([n, np.zeros_like(n[..., :1])], -1))
           for n in noisy], time.time() - t)
    n_images = sum(len(c) for c in clean_list)
    for method, (res, sec) in results.items():
      per = [scores(r, c) for r, c in zip(res, clean_list)]
      row = per[0] if len(per) == 1 else mean_scores(per, names)
      add("denoising", kind, method, n_images, row, acc(res[0], labels) if len(res) == 1 else None, sec,
          dataset=dataset)
    if len(clean_list) == 1:
      strip(out_dir / f"examples_denoise_{tag}{kind}.png", [r[0] for r, _ in results.values()] + [clean_list[0]])
    else:  # rows: methods then clean; columns: the middle 96x96 of each image
      middle = lambda a: a[:, a.shape[1] // 2 - 48:a.shape[1] // 2 + 48, a.shape[2] // 2 - 48:a.shape[2] // 2 + 48]
      shown = [np.concatenate([middle(a) for a in r]) for r in [r for r, _ in results.values()] + [clean_list]]
      images.save_png(out_dir / f"examples_denoise_{tag}{kind}.png",
                      images.grid(np.concatenate([images.to_uint8(g) for g in shown]), ncols=len(clean_list)))


def super_resolution(add, x, labels, acc, nets, out_dir):
  """x2 and x4 of `x` [N, H, W, 1]: bicubic and each network of that scale in `nets` ((scale, name, net) ...)."""
  from skimage.transform import resize

  for scale in (2, 4):
    low = np.asarray(damage.downscale(jnp.asarray(x), scale))
    results = {}
    t = time.time()
    bic = np.stack([resize((im[..., 0] + 1) / 2, x.shape[1:3], order=3) for im in low])
    results["bicubic (skimage resize, order 3)"] = (np.clip(bic, 0, 1)[..., None] * 2 - 1, time.time() - t)
    for s, label, (state, fn, how) in nets:
      if s == scale:
        t = time.time()
        results[f"SRGAN-style network{label} (ours, {how})"] = (batched(fn, low), time.time() - t)
        t = time.time()
        results[f"SRGAN-style network{label} (ours, {how}), x8 self-ensemble"] = (
            batched(lambda v: self_ensemble(fn, v), low), time.time() - t)
    for method, (res, sec) in results.items():
      add("super-resolution", f"x{scale} area downscale", method, len(x), scores(res, x, border=scale),
          acc(res, labels), sec)
    near = np.repeat(np.repeat(low, scale, 1), scale, 2)
    strip(out_dir / f"examples_sr_x{scale}.png", [near] + [r for r, _ in results.values()] + [x])


def photo_super_resolution(add, net, out_dir, dataset):
  """x2 of the whole held-out photographs, tiled, vs bicubic (alone when `net` is None)."""
  from skimage.transform import resize

  from aigc_jax.tasks.image2image import enhance

  methods = {"bicubic (skimage resize, order 3)": None}
  scale = 2
  if net is not None:
    state, fn, how = net
    scale = state.scale
    ours = f"SRGAN-style network (ours, {how}), tiled"
    methods[ours] = lambda v: enhance.upscale_tiled(fn, v, scale)
    methods[f"{ours}, x8 self-ensemble"] = lambda v: self_ensemble(lambda u: enhance.upscale_tiled(fn, u, scale), v)
  per = {k: [] for k in methods}
  sec = {k: 0.0 for k in methods}
  shown = []
  for name in TEST:
    im = grey(name)
    im = im[:im.shape[0] // scale * scale, :im.shape[1] // scale * scale]
    clean = jnp.asarray(im, jnp.float32)[None, ..., None] / 127.5 - 1
    low = damage.downscale(clean, scale)
    outs = []
    for method, run in methods.items():
      t = time.time()
      if run is None:
        res = resize((np.asarray(low[0, ..., 0]) + 1) / 2, im.shape, order=3)
        res = jnp.asarray(np.clip(res, 0, 1))[None, ..., None] * 2 - 1
      else:
        res = run(low)
      sec[method] += time.time() - t
      per[method].append(scores(res, clean, border=scale))
      outs.append(res)
    c = slice(im.shape[0] // 2 - 48, im.shape[0] // 2 + 48), slice(im.shape[1] // 2 - 48, im.shape[1] // 2 + 48)
    shown.append([np.asarray(v)[:, c[0], c[1]] for v in (jnp.repeat(jnp.repeat(low, scale, 1), scale, 2), *outs[:2],
                                                         clean)])
  for method, rs in per.items():
    add("super-resolution", f"x{scale} area downscale", method, len(TEST), mean_scores(rs, TEST), None, sec[method],
        dataset=dataset)
  grid = images.grid(np.concatenate([images.to_uint8(np.concatenate(col)) for col in zip(*shown)]), ncols=len(TEST))
  images.save_png(out_dir / "examples_sr_photos.png", grid)


def table(rows):
  cols = ("task", "dataset", "damage", "method", "n", "psnr", "ssim", "psnr_hole", "ssim_hole", "accuracy", "seconds")
  head = ["task", "data", "damage", "method", "n", "PSNR dB", "SSIM", "PSNR holes", "SSIM holes", "classifier acc.",
          "seconds"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = []
    for c in cols:
      v = r.get(c, "")
      cells.append(f"{v:.2f}" if c.startswith("psnr") and v != "" else f"{v:.1f}" if c == "seconds" and v != ""
                   else f"{v:.3f}" if isinstance(v, float) else str(v))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def per_image_table(rows):
  """PSNR of each photograph for the rows that measured whole photographs ('' when there are none)."""
  rows = [r for r in rows if "psnr_per_image" in r]
  if not rows:
    return ""
  names = list(rows[0]["psnr_per_image"])
  lines = ["| task | damage | method | " + " | ".join(names) + " |", "|" + "---|" * (3 + len(names))]
  for r in rows:
    lines.append(f"| {r['task']} | {r['damage']} | {r['method']} | "
                 + " | ".join(f"{r['psnr_per_image'][n]:.2f}" for n in names) + " |")
  return "\n".join(lines)
