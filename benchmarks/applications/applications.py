"""Repair and enhancement measured side by side with the classical tools, on the same images and damage.

  python -m benchmarks.applications.applications --data DIR --out runs/apps_bench

--data is a folder with MNIST's 10,000 test images (t10k-images-idx3-ubyte.gz and
t10k-labels-idx1-ubyte.gz, from https://storage.googleapis.com/cvdf-datasets/mnist/ or any MNIST mirror).

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
                  configs/repair.py:files, enhance.py:files_x2 on 32x32 grey crops of 14 scikit-image
                  photographs (photo_crops.py TRAIN) and of 16 rendered pages of text (text_pages.py),
                  flipped and turned, measured on 4 other photographs (TEST)

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
Prints one markdown table and writes OUT/results.json ({"rows": [{task, method, dataset, ...}],
"training": {network: steps and seconds}} with the command, machine and date; rewritten after every
section), OUT/results.md (the table under a header with the command that regenerates it) and
OUT/examples_*.png strips. The sections themselves are in measure.py.
"""

import argparse
import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from aigc_jax.core import host_memory, images
from aigc_jax.core.errors import UserError
from benchmarks import report
from benchmarks.applications import photo_crops
from benchmarks.applications.measure import (
  denoising,
  inpainting,
  per_image_table,
  photo_super_resolution,
  super_resolution,
  table,
  to_unit,
)

NETWORKS = ("classifier", "repair", "denoise", "sr2", "sr4", "sr4_feature", "gan", "repair_photos",
            "denoise_photos", "sr2_photos")
# Steps each network trains by default; the group flags (--train_steps, ...) and then --steps override.
# repair_photos takes 4,000: at 2,000 it lost to biharmonic on the photos' random pixels (docs/results.md).
STEPS = {"classifier": 400, "repair": 2000, "denoise": 2000, "sr2": 2000, "sr4": 2000, "sr4_feature": 2000,
         "gan": 2000, "repair_photos": 4000, "denoise_photos": 2000, "sr2_photos": 2000}
STEP_FLAGS = {"train_steps": ("repair", "denoise", "sr2", "sr4", "sr4_feature"),
              "photo_steps": ("repair_photos", "denoise_photos", "sr2_photos"), "gan_steps": ("gan",),
              "classifier_steps": ("classifier",)}
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
            "data.resize": False}
  configs = {
      "classifier": with_overrides(classifier.get_config("mnist"), **mnist),
      "repair": with_overrides(repair.get_config("mnist"), **mnist),
      "denoise": with_overrides(repair.get_config("mnist_denoise"), **mnist),
      "sr2": with_overrides(enhance.get_config("mnist_x2"), **mnist),
      "sr4": with_overrides(enhance.get_config("mnist_x4"), **mnist),
      "sr4_feature": with_overrides(enhance.get_config("mnist_x4"), **{
          **mnist, "train.feature_weight": args.feature_weight, "train.feature_workdir": ""}),
      "gan": with_overrides(dcgan.get_config("files"), **{
          **mnist, "data.split": "train[:8000]", "model.g_features": 32, "model.d_features": 32}),
      "repair_photos": with_overrides(repair.get_config("files"), **photos),
      "denoise_photos": with_overrides(repair.get_config("files"), **{**photos, "damage.kinds": repair.NOISE}),
      "sr2_photos": with_overrides(enhance.get_config("files_x2"), **photos),
  }
  configs["denoise_photos"].model.residual = True  # as configs/repair.py:mnist_denoise
  configs["denoise_photos"].model.fill = False
  for name, config in configs.items():
    config.train.num_steps = steps_for(args, name)
  configs["gan"].train.sample_every = max(configs["gan"].train.num_steps // 4, 1)
  return {name: configs[name] for name in args.networks}


def steps_for(args, name: str) -> int:
  """`name`'s step count: its --steps item, else its group flag, else STEPS."""
  if name in args.steps:
    return args.steps[name]
  flag = next(f for f, names in STEP_FLAGS.items() if name in names)
  return getattr(args, flag) or STEPS[name]


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
  from aigc_jax.tasks.classifier import train as cls_train
  from aigc_jax.tasks.gan import train as gan_train
  from aigc_jax.tasks.image2image import train as i2i_train

  steps = config.train.num_steps
  done = finished_step(workdir)
  if done is not None and done >= steps:
    print(f"{name}: reusing {workdir} (step {done})", flush=True)
    log[name] = {"workdir": str(workdir), "steps": done, "reused": True}
    return str(workdir)
  print(f"{name}: training {steps} steps into {workdir}", flush=True)
  t = time.time()
  task = config.get("task", "gan")
  fn = {"classifier": cls_train.train_and_evaluate, "gan": gan_train.train_and_evaluate}.get(
      task, i2i_train.train_and_evaluate)
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

      from aigc_jax.tasks.classifier import train as cls_train

      config = ml_collections.ConfigDict(json.loads((Path(workdir) / "config.json").read_text()))
      self.config = config
      self.state = cls_train.load_state(config, workdir)

  def __call__(self, x, labels):
    if self.state is None or labels is None:
      return None
    from aigc_jax import data
    from aigc_jax.tasks.classifier import predict as cls_predict

    u8 = images.to_uint8(x)
    u8 = data.fit_images(u8, self.config.data.resolution, self.config.data.channels, self.config.data.resize)
    return float((cls_predict.predict_probabilities(self.state, u8).argmax(-1) == labels).mean())


def network(workdir, log=None):
  """(state, generator function, label) of a trained image-to-image workdir; `log` is its entry in
  results.json's "training", whose seconds (when this run trained it) go into the label."""
  from aigc_jax.tasks.image2image import steps as i2i_steps
  from aigc_jax.tasks.image2image import train as i2i_train

  config, state = i2i_train.load_state(workdir)
  print(f"{workdir}: checkpoint at step {int(state.step)}", flush=True)
  return (state, lambda g_in: i2i_steps.apply_generator(state, jnp.asarray(g_in)),
          training_label(config, int(state.step), (log or {}).get("seconds")))


def training_label(config, steps: int, seconds=None) -> str:
  """How a network was trained, for its rows: 'l2 loss, on a smooth fill, 2000 steps in 6.1 min' or
  'l1 loss + GAN, 600 steps' (configs saved before train.pixel_loss existed trained with L1)."""
  t = config.train
  label = f"{t.get('pixel_loss', 'l1')} loss" + (" + GAN" if t.get("adv_weight", 0.01) > 0 else "")
  if config.model.get("fill", False):
    label += ", on a smooth fill"
  label += f", {steps} steps"
  if seconds is not None:
    label += f" in {seconds / 60:.1f} min"
  return label


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
  try:
    run(argv)
  except UserError as e:  # a bad config or data path: one line, not a traceback
    raise SystemExit(f"error: {e}") from None


def run(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", required=True,
                 help="a folder with MNIST's t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
                      "(from https://storage.googleapis.com/cvdf-datasets/mnist/ or any MNIST mirror)")
  p.add_argument("--out", required=True)
  p.add_argument("--num_images", type=int, default=2000, help="test images from the end of the 10,000")
  p.add_argument("--inpaint_images", type=int, default=200, help="MNIST test images per mask kind for "
                 "inpainting (GAN inversion is the slow method)")
  p.add_argument("--photo_inpaint_images", type=int, default=400, help="32x32 crops of the held-out photographs "
                 "per mask kind (an equal share from each)")
  p.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated subset of " + ", ".join(NETWORKS))
  for name in NETWORKS:
    p.add_argument(f"--{name}_workdir", default="", help="an already trained network (default: train into OUT/)")
  for flag, names in STEP_FLAGS.items():
    default = ", ".join(f"{n} {STEPS[n]}" for n in names)
    p.add_argument(f"--{flag}", type=int, default=None, help=f"steps for {', '.join(names)} (default: {default})")
  p.add_argument("--text_pages", type=int, default=photo_crops.TEXT_PAGES, help="rendered pages of text whose "
                 "crops join the photo networks' training crops (photo_crops.py)")
  p.add_argument("--steps", default="", help="per-network step counts over the above, e.g. sr2=3000,repair=500")
  p.add_argument("--feature_weight", type=float, default=0.1, help="sr4_feature's train.feature_weight")
  p.add_argument("--inversion_steps", type=int, default=60)
  p.add_argument("--inversion_restarts", type=int, default=1)
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
  crops_file = out_dir / "photo_crops.npz"
  train_photos = any(n.endswith("_photos") and not getattr(args, f"{n}_workdir") for n in args.networks)
  if train_photos and crops_file.exists() and photo_crops.text_pages_in(crops_file) != args.text_pages:
    raise SystemExit(f"error: {crops_file} holds crops of {photo_crops.text_pages_in(crops_file)} text pages, not "
                     f"--text_pages {args.text_pages}; use another --out (its networks trained on that file)")
  out_dir.mkdir(parents=True, exist_ok=True)
  from aigc_jax.core import compilation

  compilation.enable()

  if train_photos and not crops_file.exists():
    photo_crops.write(crops_file, text_pages=args.text_pages)
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

  def trained_net(name):
    """(workdir, its training log entry) for network()."""
    return workdir(name), training.get(name)

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
    wall = time.time() - start
    report.write(out_dir, "applications", "Repair and enhancement beside the classical tools",
                 {"rows": rows, "training": training, "wall_seconds": round(wall)}, table(rows),
                 [f"Wall-clock time of this invocation so far: {wall / 60:.1f} min, of which training "
                  f"{sum(t.get('seconds', 0) for t in training.values()) / 60:.1f} min "
                  f"({sum(1 for t in training.values() if t.get('reused'))} network(s) reused from an earlier run). "
                  "The networks trained into --out (or reused there) and their steps and seconds are in "
                  "results.json's \"training\"; examples_*.png show the first images of each section.",
                  *(["PSNR dB of each photograph (a row's mean is the table's):", per_image_table(rows)]
                    if per_image_table(rows) else [])])

  add("reference", "none", "clean images", len(test_x), {}, acc(test_x, test_y))
  if "inpainting" in tasks:
    rep = network(*trained_net("repair")) if "repair" in configs else None
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
    rep = network(*trained_net("repair_photos")) if "repair_photos" in configs else None
    crops = to_unit(photo_crops.crops(photo_crops.TEST, args.photo_inpaint_images // len(photo_crops.TEST), 32,
                                      seed=args.seed + 1))
    inpainting(add, crops, None, acc, rep, None, args, out_dir, "photos_", args.seed * 100 + 50,
               dataset=f"skimage photos {photo_names}, 32x32 crops")
    save()
  if "denoising" in tasks:
    den = network(*trained_net("denoise")) if "denoise" in configs else None
    denoising(add, [test_x], test_y, acc, den, [x_all[:100]], out_dir, "", args.seed * 100 + 10)
    save()
    den = network(*trained_net("denoise_photos")) if "denoise_photos" in configs else None
    photos = [to_unit(photo_crops.grey(name))[None, ..., None] for name in photo_crops.TEST]
    tune = [to_unit(photo_crops.crops(photo_crops.TUNE, 2, 96, seed=args.seed + 2))]
    denoising(add, photos, None, acc, den, tune, out_dir, "photos_", args.seed * 100 + 60,
              dataset=f"skimage photos {photo_names}", names=photo_crops.TEST)
    save()
  if "super-resolution" in tasks:
    nets = [(s, label, network(*trained_net(name))) for s, label, name in
            ((2, "", "sr2"), (4, "", "sr4"), (4, f" + classifier feature loss x{args.feature_weight}", "sr4_feature"))
            if name in configs]
    super_resolution(add, test_x, test_y, acc, nets, out_dir)
    save()
    photo_net = network(*trained_net("sr2_photos")) if "sr2_photos" in configs else None
    photo_super_resolution(add, photo_net, out_dir, f"skimage photos {photo_names}")
    save()
  save()
  print()
  print(table(rows))
  print()
  print(per_image_table(rows))
  print(f"\n{len(rows)} rows in {time.time() - start:.0f} s; training: {json.dumps(training)}")


if __name__ == "__main__":
  host_memory.reexec()
  main()
