"""Repair and enhancement measured side by side with the classical tools, on the same images and damage.

  python benchmarks/applications.py --data ../shared/data/mnist --out runs/apps_bench

One command makes every row. Each network measured is first trained into OUT/<name>/ with the
repo's own configs (below), unless --<name>_workdir names one already trained; a workdir whose
latest checkpoint has reached its step count is reused and an unfinished one resumes, so an
interrupted run continues where it stopped. --networks picks which networks take part (the
baselines always run); the step flags size them.

  classifier      configs/classifier.py:mnist                 accuracy column, feature loss
  repair          configs/repair.py:mnist                      U-Net inpainting, MNIST
  denoise         configs/repair.py:mnist_denoise              U-Net denoising, MNIST
  sr2, sr4        configs/enhance.py:mnist_x2 / mnist_x4       super-resolution, MNIST
  sr4_feature     mnist_x4 + train.feature_weight (classifier feature loss)
  gan             configs/dcgan.py:files on MNIST [:8000]      GAN inversion inpainting (inpaint.py)
  repair_photos, denoise_photos, sr2_photos
                  configs/repair.py:files, enhance.py:files_x2 on 32x32 grey crops of 10 scikit-image
                  photographs (benchmarks/photo_crops.py TRAIN), measured on 4 others (TEST)

Measures, on MNIST images [8000:] (the networks train on [:8000]) and the held-out photographs:
  inpainting     U-Net repair network, GAN inversion, skimage inpaint_biharmonic, mean fill;
                 PSNR/SSIM over the holes and the whole image, classifier accuracy on the result;
                 photographs: 32x32 crops of the TEST photos, same mask kinds
  denoising      U-Net denoiser, skimage denoise_tv_chambolle and denoise_nl_means (their strength
                 chosen from a grid by PSNR on training images), and the noisy input itself;
                 photographs: the whole TEST photos
  super-res      SRGAN-style x2/x4 networks vs bicubic (skimage.transform.resize, order 3); PSNR/SSIM
                 with a border of the scale factor cropped, classifier accuracy on the upscaled digits;
                 photographs: x2 on the whole TEST photos, tiled
Prints one markdown table and writes OUT/results.json (a list of rows {task, method, dataset, ...},
rewritten after every section), OUT/table.md, OUT/training.json (steps and seconds per network)
and OUT/examples_*.png strips.
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

from aigc_jax.data import damage  # noqa: E402
from aigc_jax.core import host_memory, images
from aigc_jax.metrics import image_quality  # noqa: E402

MASKS = ("center", "boxes", "strokes", "pixels")
NOISES = ("gaussian", "salt_pepper")
NETWORKS = ("classifier", "repair", "denoise", "sr2", "sr4", "sr4_feature", "gan", "repair_photos",
            "denoise_photos", "sr2_photos")
TASK_NETWORKS = {"inpainting": ("repair", "gan", "repair_photos"), "denoising": ("denoise", "denoise_photos"),
                 "super-resolution": ("sr2", "sr4", "sr4_feature", "sr2_photos")}


def load_mnist(path):
  from aigc_jax.data import read_idx

  root = Path(path)
  imgs = read_idx(next(root.glob("t10k-images-idx3*")))
  labels = read_idx(next(root.glob("t10k-labels-idx1*")))
  return imgs[..., None].astype(np.float32) / 127.5 - 1.0, labels.astype(np.int64)


def network_configs(args, out_dir: Path) -> dict:
  """name -> the config that trains it, for the networks --networks names."""
  from configs import classifier, dcgan, enhance, repair, with_overrides

  mnist = {"data.path": str(args.data)}
  photos = {"data.path": str(out_dir / "photo_crops.npz"), "data.channels": 1, "data.resolution": 32,
            "data.resize": False, "train.num_steps": args.photo_steps}
  i2i = {**mnist, "train.num_steps": args.train_steps}
  configs = {
      "classifier": with_overrides(classifier.get_config("mnist"), **mnist,
                                   **{"train.num_steps": args.classifier_steps}),
      "repair": with_overrides(repair.get_config("mnist"), **i2i),
      "denoise": with_overrides(repair.get_config("mnist_denoise"), **i2i),
      "sr2": with_overrides(enhance.get_config("mnist_x2"), **i2i),
      "sr4": with_overrides(enhance.get_config("mnist_x4"), **i2i),
      "sr4_feature": with_overrides(enhance.get_config("mnist_x4"), **{
          **i2i, "train.feature_weight": args.feature_weight, "train.feature_workdir": ""}),
      "gan": with_overrides(dcgan.get_config("files"), **{
          **mnist, "data.split": "train[:8000]", "model.g_features": 32, "model.d_features": 32,
          "train.num_steps": args.gan_steps, "train.sample_every": max(args.gan_steps // 4, 1)}),
      "repair_photos": with_overrides(repair.get_config("files"), **photos),
      "denoise_photos": with_overrides(repair.get_config("files"), **{**photos, "damage.kinds": repair.NOISE}),
      "sr2_photos": with_overrides(enhance.get_config("files_x2"), **photos),
  }
  configs["denoise_photos"].model.residual = True  # as configs/repair.py:mnist_denoise
  for name, steps in args.steps.items():
    configs[name].train.num_steps = steps
  return {name: configs[name] for name in args.networks}


def finished_step(workdir: Path):
  from aigc_jax.core.checkpoint import Checkpoints

  if not (workdir / "checkpoints").is_dir():
    return None
  ckpt = Checkpoints(workdir / "checkpoints", read_only=True)
  try:
    return ckpt.latest_step()
  finally:
    ckpt.close()


def train(name: str, config, workdir: Path, log: dict) -> str:
  """Trains `config` into `workdir` unless its latest checkpoint already reached train.num_steps."""
  from aigc_jax.tasks.classifier import classify
  from aigc_jax.tasks.image2image import image2image
  from aigc_jax.tasks.gan import train as gan_train

  steps = config.train.num_steps
  done = finished_step(workdir)
  if done is not None and done >= steps:
    print(f"{name}: reusing {workdir} (step {done})", flush=True)
    log[name] = {"workdir": str(workdir), "steps": done, "reused": True}
    return str(workdir)
  print(f"{name}: training {steps} steps into {workdir}", flush=True)
  t = time.time()
  task = config.get("task", "gan")
  fn = {"classifier": classify.train_and_evaluate, "gan": gan_train.train_and_evaluate}.get(
      task, image2image.train_and_evaluate)
  fn(config, str(workdir))
  log[name] = {"workdir": str(workdir), "steps": steps, "resumed_from": done or 0,
               "seconds": round(time.time() - t, 1)}
  return str(workdir)


class Accuracy:
  """The project's classifier, trained on MNIST [:8000], scoring images in [-1, 1]."""

  def __init__(self, workdir):
    self.state = None
    if workdir:
      import ml_collections

      from aigc_jax.tasks.classifier import classify

      config = ml_collections.ConfigDict(json.loads((Path(workdir) / "config.json").read_text()))
      self.config = config
      self.state = classify.load_state(config, workdir)

  def __call__(self, x, labels):
    if self.state is None or labels is None:
      return None
    from aigc_jax.tasks.classifier import classify
    from aigc_jax import data

    u8 = images.to_uint8(x)
    u8 = data.fit_images(u8, self.config.data.resolution, self.config.data.channels, self.config.data.resize)
    return float((classify.predict_probabilities(self.state, u8).argmax(-1) == labels).mean())


def scores(out, clean, region=None, border=0):
  out = image_quality.crop_border(jnp.asarray(out), border)
  clean = image_quality.crop_border(jnp.asarray(clean), border)
  row = {"psnr": float(jnp.mean(image_quality.psnr(out, clean))),
         "ssim": float(jnp.mean(image_quality.ssim(out, clean)))}
  if region is not None:
    row["psnr_hole"] = float(jnp.mean(image_quality.psnr(out, clean, region=region)))
    row["ssim_hole"] = float(jnp.mean(image_quality.ssim(out, clean, region=region)))
  return row


def mean_scores(per_image_rows):
  return {k: float(np.mean([r[k] for r in per_image_rows])) for k in per_image_rows[0]}


def batched(fn, *arrays, batch=500):
  return np.concatenate([np.asarray(fn(*(a[i:i + batch] for a in arrays))) for i in range(0, len(arrays[0]), batch)])


def per_image(fn, x):
  """Applies a numpy [H, W] -> [H, W] function in [0, 1] to each grey image of [N, H, W, 1] in [-1, 1]."""
  x01 = (np.asarray(x)[..., 0] + 1) / 2
  return np.stack([np.clip(fn(im), 0, 1) for im in x01])[..., None] * 2 - 1


def network(workdir):
  from aigc_jax.tasks.image2image import image2image

  _, state = image2image.load_state(workdir)
  print(f"{workdir}: checkpoint at step {int(state.step)}", flush=True)
  return state, lambda g_in: image2image.apply_generator(state, jnp.asarray(g_in))


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
      t = time.time()
      results[f"U-Net repair GAN (ours, {int(rep[0].step)} steps)"] = (
          batched(rep[1], np.concatenate([damaged, known], -1)), time.time() - t)
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


def denoising(add, clean_list, labels, acc, den, tune_clean, out_dir, tag, seed, *, dataset=None):
  """Each noise kind on every image of `clean_list` (arrays [n, H, W, 1]; sizes may differ between arrays)."""
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
      results[f"U-Net denoise GAN (ours, {int(den[0].step)} steps)"] = (
          [batched(den[1], np.concatenate([n, np.zeros_like(n[..., :1])], -1)) for n in noisy], time.time() - t)
    n_images = sum(len(c) for c in clean_list)
    for method, (res, sec) in results.items():
      per = [scores(r, c) for r, c in zip(res, clean_list)]
      row = per[0] if len(per) == 1 else mean_scores(per)
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
    for s, label, (state, fn) in nets:
      if s == scale:
        t = time.time()
        results[f"SRGAN-style network{label} (ours, {int(state.step)} steps)"] = (batched(fn, low), time.time() - t)
    for method, (res, sec) in results.items():
      add("super-resolution", f"x{scale} area downscale", method, len(x), scores(res, x, border=scale),
          acc(res, labels), sec)
    near = np.repeat(np.repeat(low, scale, 1), scale, 2)
    strip(out_dir / f"examples_sr_x{scale}.png", [near] + [r for r, _ in results.values()] + [x])


def photo_super_resolution(add, net, out_dir, dataset):
  """x2 of the whole held-out photographs, tiled, vs bicubic."""
  from skimage.transform import resize

  from aigc_jax.tasks.image2image import enhance
  from benchmarks.photo_crops import TEST, grey

  state, fn = net
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
    add("super-resolution", f"x{scale} area downscale", method, len(TEST), mean_scores(rs), None, sec[method],
        dataset=dataset)
  grid = images.grid(np.concatenate([images.to_uint8(np.concatenate(col)) for col in zip(*shown)]), ncols=len(TEST))
  images.save_png(out_dir / "examples_sr_photos.png", grid)


def parse_networks(text):
  names = tuple(n for n in text.split(",") if n)
  bad = [n for n in names if n not in NETWORKS]
  if bad:
    raise SystemExit(f"error: --networks has unknown name(s) {', '.join(bad)}; use any of {', '.join(NETWORKS)}")
  return names


def parse_steps(text) -> dict:
  steps = {}
  for item in (i for i in text.split(",") if i):
    name, _, value = item.partition("=")
    if name not in NETWORKS or not value.isdigit() or int(value) <= 0:
      raise SystemExit(f"error: --steps item '{item}' is not NAME=N with N > 0 and NAME one of {', '.join(NETWORKS)}")
    steps[name] = int(value)
  return steps


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", required=True, help="folder with the MNIST t10k IDX files")
  p.add_argument("--out", required=True)
  p.add_argument("--num_images", type=int, default=2000, help="test images from the end of the 10,000")
  p.add_argument("--inpaint_images", type=int, default=500, help="test images per mask kind for inpainting "
                 "(GAN inversion is the slow method)")
  p.add_argument("--photo_inpaint_images", type=int, default=400, help="32x32 crops of the held-out photographs "
                 "per mask kind (an equal share from each)")
  p.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated subset of " + ", ".join(NETWORKS))
  for name in NETWORKS:
    p.add_argument(f"--{name}_workdir", default="", help="an already trained network (default: train into OUT/)")
  p.add_argument("--train_steps", type=int, default=2000, help="repair, denoise, sr2, sr4, sr4_feature on MNIST")
  p.add_argument("--photo_steps", type=int, default=2000, help="the three networks on photo crops")
  p.add_argument("--gan_steps", type=int, default=3000)
  p.add_argument("--classifier_steps", type=int, default=400)
  p.add_argument("--steps", default="", help="per-network step counts over the above, e.g. sr2=3000,repair=500")
  p.add_argument("--feature_weight", type=float, default=0.1, help="sr4_feature's train.feature_weight")
  p.add_argument("--inversion_steps", type=int, default=200)
  p.add_argument("--inversion_restarts", type=int, default=4)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--tasks", default="inpainting,denoising,super-resolution", help="which sections to run")
  args = p.parse_args(argv)
  tasks = [t for t in args.tasks.split(",") if t]
  bad = [t for t in tasks if t not in TASK_NETWORKS]
  if bad:
    raise SystemExit(f"error: --tasks has unknown section(s) {', '.join(bad)}; use any of {', '.join(TASK_NETWORKS)}")
  needed = {"classifier"} | {n for t in tasks for n in TASK_NETWORKS[t]}
  args.networks = [n for n in parse_networks(args.networks) if n in needed]
  args.steps = parse_steps(args.steps)
  start = time.time()
  out_dir = Path(args.out)
  out_dir.mkdir(parents=True, exist_ok=True)
  from aigc_jax.core import compilation

  compilation.enable()
  from benchmarks import photo_crops

  if any(n.endswith("_photos") and not getattr(args, f"{n}_workdir") for n in args.networks):
    if not (out_dir / "photo_crops.npz").exists():
      photo_crops.write(out_dir / "photo_crops.npz")
  configs = network_configs(args, out_dir)
  training, trained = {}, {}

  def workdir(name):
    """The network's workdir, trained first when needed; '' when --networks leaves it out."""
    if name not in configs:
      return ""
    if getattr(args, f"{name}_workdir"):
      return getattr(args, f"{name}_workdir")
    if name not in trained:
      if name == "sr4_feature":
        configs[name].train.feature_workdir = workdir("classifier")
      trained[name] = train(name, configs[name], out_dir / name, training)
    return trained[name]

  x_all, y_all = load_mnist(args.data)
  test_x, test_y = x_all[-args.num_images:], y_all[-args.num_images:]
  acc = Accuracy(workdir("classifier"))
  rows = []
  mnist_name = f"mnist[{10000 - args.num_images}:]"
  photo_names = "+".join(photo_crops.TEST)

  def add(task, damage_kind, method, n, row, accuracy=None, seconds=None, dataset=None):
    r = {"task": task, "damage": damage_kind, "method": method, "dataset": dataset or mnist_name, "n": n, **row}
    if accuracy is not None:
      r["accuracy"] = accuracy
    if seconds is not None:
      r["seconds"] = round(seconds, 1)
    rows.append(r)
    print(json.dumps(r), flush=True)

  def save():
    (out_dir / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out_dir / "training.json").write_text(json.dumps(training, indent=1) + "\n")

  add("reference", "none", "clean images", len(test_x), {}, acc(test_x, test_y))
  if "inpainting" in tasks:
    rep = network(workdir("repair")) if "repair" in configs else None
    gan = None
    if "gan" in configs:
      import ml_collections

      from aigc_jax.tasks.gan import inpaint

      gdir = workdir("gan")
      gan = inpaint.load_generator(ml_collections.ConfigDict(json.loads((Path(gdir) / "config.json").read_text())),
                                   gdir)
    n = args.inpaint_images
    inpainting(add, test_x[:n], test_y[:n], acc, rep, gan, args, out_dir, "", args.seed * 100)
    save()
    rep = network(workdir("repair_photos")) if "repair_photos" in configs else None
    crops = to_unit(photo_crops.crops(photo_crops.TEST, args.photo_inpaint_images // len(photo_crops.TEST), 32,
                                      seed=args.seed + 1))
    inpainting(add, crops, None, acc, rep, None, args, out_dir, "photos_", args.seed * 100 + 50,
               dataset=f"skimage photos {photo_names}, 32x32 crops")
    save()
  if "denoising" in tasks:
    den = network(workdir("denoise")) if "denoise" in configs else None
    denoising(add, [test_x], test_y, acc, den, [x_all[:100]], out_dir, "", args.seed * 100 + 10)
    save()
    den = network(workdir("denoise_photos")) if "denoise_photos" in configs else None
    photos = [to_unit(photo_crops.grey(name))[None, ..., None] for name in photo_crops.TEST]
    tune = [to_unit(photo_crops.crops(photo_crops.TRAIN, 2, 96, seed=args.seed + 2))]
    denoising(add, photos, None, acc, den, tune, out_dir, "photos_", args.seed * 100 + 60,
              dataset=f"skimage photos {photo_names}")
    save()
  if "super-resolution" in tasks:
    nets = [(s, label, network(workdir(name))) for s, label, name in
            ((2, "", "sr2"), (4, "", "sr4"), (4, f" + classifier feature loss x{args.feature_weight}", "sr4_feature"))
            if name in configs]
    super_resolution(add, test_x, test_y, acc, nets, out_dir)
    save()
    if "sr2_photos" in configs:
      photo_super_resolution(add, network(workdir("sr2_photos")), out_dir, f"skimage photos {photo_names}")
      save()
  save()
  print()
  print(table(rows))
  (out_dir / "table.md").write_text(table(rows) + "\n")
  print(f"\n{len(rows)} rows in {time.time() - start:.0f} s; training: {json.dumps(training)}")


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


if __name__ == "__main__":
  host_memory.reexec()
  main()
