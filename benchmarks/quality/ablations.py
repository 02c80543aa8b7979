"""What each technique buys on this machine: classifier-FID of digit GANs trained on 10% of the digits.

  python -m benchmarks.quality.ablations --out runs/ablations --steps 800 --batch_size 32 --dcgan_features 16

Trains each variant (below) on a deterministic 10% subset of scikit-learn's digits (180 images,
data.fraction=0.1), then generates 2,000 images with the EMA weights and 2,000 with the raw
weights of the same run (the EMA ones also with G's BatchNorm statistics recomputed for them,
steps.recalibrate_ema), and reports the Frechet distance in the feature space of the project's
digits classifier (configs/classifier.py:digits; trained into OUT/classifier first when
--classifier_workdir is not given) to all 1,797 digits (what the GAN should generalise to) and
to the 180 training images. Lower is better. Writes OUT/results.json ({"runs": {variant: row}} with
the command, machine and date), OUT/results.md (the table under a header with the command that
regenerates it) and OUT/samples.png (one EMA sample grid per variant, in order). Runs are resumable: an interrupted
command started again continues each run from its last checkpoint.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from aigc_jax import metrics
from aigc_jax.core import host_memory, images
from aigc_jax.data import sources
from aigc_jax.tasks.gan import sample, steps, train
from benchmarks import report
from configs import biggan, dcgan, sngan, with_overrides

AUG = "color,translation,cutout"
COMMON = {"data.fraction": 0.1, "train.ema_decay": 0.999, "train.ema_start": 200}
VARIANTS = {
    "dcgan": ("dcgan", "digits", {}),
    "dcgan+diffaug": ("dcgan", "digits", {"augment.policy": AUG}),
    "dcgan-hinge+diffaug": ("dcgan", "digits", {"augment.policy": AUG, "train.loss": "hinge"}),
    "dcgan-lsgan+diffaug": ("dcgan", "digits", {"augment.policy": AUG, "train.loss": "lsgan"}),
    "dcgan-r1+diffaug": ("dcgan", "digits", {"augment.policy": AUG, "train.r1_gamma": 1.0, "train.r1_every": 4}),
    "dcgan-2dsteps+diffaug": ("dcgan", "digits", {"augment.policy": AUG, "train.d_steps": 2}),
    "dcgan-wgangp+diffaug": ("dcgan", "digits", {"augment.policy": AUG, "train.loss": "wgan", "train.gp_weight": 10.0,
                                                 "train.d_steps": 5}),
    "sngan+diffaug": ("sngan", "digits", {}),
    "sngan": ("sngan", "digits", {"augment.policy": ""}),
    "biggan+diffaug": ("biggan", "digits", {}),
    "dcgan-full-data": ("dcgan", "digits", {"data.fraction": 1.0}),
}


def config_for(name: str, steps: int, scale: dict):
  module, preset, overrides = VARIANTS[name]
  config = {"dcgan": dcgan, "sngan": sngan, "biggan": biggan}[module].get_config(preset)
  config = with_overrides(config, **{**COMMON, **overrides, **scale, "train.num_steps": steps,
                                     "train.checkpoint_every": max(steps // 4, 1), "train.sample_every": steps,
                                     "train.log_every": max(steps // 10, 1)})
  return config


def write_results(out: Path, results: dict, names: list[str]) -> str:
  """OUT/results.json with every variant in `results` (earlier invocations' too), OUT/results.md with
  those of `names` that have a row; returns the table."""
  rows = []
  for name in [n for n in names if n in results]:
    r = results[name]
    cells = [r.get(f"fid_{s}_{w}", float("nan")) for s in ("all", "train") for w in ("raw", "ema", "ema_recal")]
    rows.append([name, *(f"{c:.2f}" for c in cells)])
  table = report.markdown_table(["variant", "FID to all 1,797 digits: raw G", "EMA", "EMA, recalibrated BN",
                                 "FID to the 180 training digits: raw G", "EMA", "EMA, recalibrated BN"], rows)
  steps = sorted({results[n]["steps"] for n in names if n in results})
  notes = [f"Classifier-FID (lower is better) of {', '.join(map(str, steps))}-step runs on 10% of scikit-learn's "
           "digits; results.json has each run's overrides and the seconds it trained."]
  report.write(out, "ablations", "What each GAN technique buys on digits", {"runs": results}, table, notes)
  return table


def train_classifier(workdir: Path):
  from aigc_jax.tasks.classifier import train as cls_train
  from configs import classifier

  if not (workdir / "metrics.json").exists():
    cls_train.train_and_evaluate(classifier.get_config("digits"), str(workdir))
  return workdir


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", default="runs/ablations")
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--variants", default="dcgan,dcgan+diffaug,sngan+diffaug")
  p.add_argument("--num_samples", type=int, default=2000)
  p.add_argument("--classifier_workdir", default="")
  p.add_argument("--ema_decay", type=float, default=0.99, help="the horizon 1 / (1 - decay) must fit the run")
  p.add_argument("--ema_start", type=int, default=100)
  p.add_argument("--seed", type=int, default=0, help="config.seed of every run (use a new --out per seed)")
  p.add_argument("--batch_size", type=int, default=0, help="override every variant's batch size (0: preset's)")
  p.add_argument("--dcgan_features", type=int, default=0, help="override DCGAN's g/d features (0: preset's)")
  args = p.parse_args()
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  names = [v for v in args.variants.split(",") if v]
  unknown = [v for v in names if v not in VARIANTS]
  if unknown:
    sys.exit(f"error: unknown variant {unknown[0]}; choose from {', '.join(VARIANTS)}")

  from aigc_jax.tasks.gan.explore import _classifier_features

  clf = Path(args.classifier_workdir) if args.classifier_workdir else train_classifier(out / "classifier")
  features, _, _ = _classifier_features(str(clf))
  digits, _ = sources.digits_arrays()
  real = sources.fit_images(digits, 32, 1, True)
  real_feats = features(real)
  subset_feats = real_feats[sources.fraction_indices(len(real), 0.1)]

  results = report.read(out).get("runs", {})
  grids = []
  for name in names:
    scale = {"train.ema_decay": args.ema_decay, "train.ema_start": args.ema_start, "seed": args.seed}
    if args.batch_size:
      scale["train.batch_size"] = args.batch_size
    if args.dcgan_features and VARIANTS[name][0] == "dcgan":
      scale.update({"model.g_features": args.dcgan_features, "model.d_features": args.dcgan_features})
    config = config_for(name, args.steps, scale)
    t0 = time.time()
    state = train.train_and_evaluate(config, str(out / name))
    seconds = time.time() - t0
    row = {"steps": args.steps, "train_seconds_this_invocation": round(seconds, 1),
           "overrides": {**COMMON, **VARIANTS[name][2], **scale}, "model": config.model.name,
           "loss": config.train.loss, "batch_size": config.train.batch_size,
           "features": [config.model.g_features, config.model.d_features]}
    recal = steps.recalibrate_ema(state, jax.random.PRNGKey(7))
    for label, st in (("ema", state), ("ema_recal", recal), ("raw", state.replace(ema_params=None))):
      fake = sample.generate_images(st, args.num_samples, seed=1)
      f = features(fake)
      row[f"fid_all_{label}"] = round(metrics.fid_from_features(f, real_feats), 3)
      row[f"fid_train_{label}"] = round(metrics.fid_from_features(f, subset_feats), 3)
      if label == "ema":
        grids.append(images.grid(fake[:64], ncols=8))
    results[name] = row
    write_results(out, results, names)
    print(name, row, flush=True)

  table = write_results(out, results, names)
  pad = np.zeros((grids[0].shape[0], 8, grids[0].shape[2]), np.uint8)
  images.save_png(out / "samples.png", np.concatenate(sum(([g, pad] for g in grids), [])[:-1], axis=1), scale=2)
  print(table)


if __name__ == "__main__":
  host_memory.reexec()
  main()
