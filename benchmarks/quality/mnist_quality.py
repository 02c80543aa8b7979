"""Sample quality on MNIST at the same CPU-time budget per run: DCGAN (JAX and its PyTorch twin),
conditional DCGAN with the classic and the R3GAN objective, with DiffAugment and ADA on 10% of the
data, and the SNGAN rows.

  python -m benchmarks.quality.mnist_quality --data DIR --budget_s 600 --torch_python /path/to/torch/bin/python \
      --out runs/mnist_quality

Every run trains on images [:8000] of the IDX files at --data (MNIST's 10,000 test images:
t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, from
https://storage.googleapis.com/cvdf-datasets/mnist/ or any MNIST mirror) and is scored against the
held-out images [8000:], put through the same 28 -> 32 convention the run trained with (`resize`,
or `pad` where the data has config.data.pad; the row's 'convention'). A run trains until the
process has spent --budget_s seconds of CPU time on it (`time.process_time()`: what the run itself
computed, so other jobs loading the machine do not shrink it; data loading and the first
compilation count too), checked after every step. Training stops at --curve_points evenly spaced
marks of CPU seconds, where --curve_samples images are drawn and scored (the FID against CPU
seconds curve, 'curve' in the row: [CPU s, steps, FID]); that scoring is not charged, nor is the
setup of the resumed segment after it (resuming is bit-exact, so the segments train what one run
would). At the end the EMA generator draws --num_samples images (balanced classes for the
conditional runs), written to OUT/<run>/samples.npz ('images' uint8 [N, 32, 32, 1], and
'labels'), and scored in the feature space of the MNIST classifier (configs/classifier.py:mnist,
trained into OUT/classifier unless --classifier_workdir is given): classifier-FID, KID, precision
and recall, and for the conditional runs the class accuracy, the fraction of samples the
classifier assigns to the label they were generated with. Writes OUT/results.json ({"runs":
{run: row}} with the command, machine and date), OUT/results.md (the table under a header with the
command that regenerates it) and OUT/fid_vs_cpu.png (every run's curve).

Runs:
  dcgan                 configs/dcgan.py:files, g/d features 32, batch 64 (non-saturating loss)
  dcgan_torch           the canonical PyTorch DCGAN (pytorch/examples dcgan: 64 features, BCE,
                        Adam(2e-4, 0.5), batch 64, no EMA; benchmarks/quality/torch_dcgan.py) run
                        by --torch_python on the very images the dcgan run trains on, its samples
                        scored here; skipped with a note when --torch_python is not given
  dcgan_cond            configs/dcgan.py:files_cond (conditional BatchNorm in G, projection D), 32
  dcgan_cond_r3         dcgan_cond with R3GAN's objective: relativistic pairing loss, R1 = R2
                        gamma --r3_gamma, Adam(b1=0, b2=0.99)
  dcgan_cond_diffaug10  dcgan_cond on a deterministic 10% of the training images (800) with
                        DiffAugment (color,translation,cutout)
  dcgan_cond_ada10      the same with ADA instead: those transforms with probability p, target 0.6,
                        interval 4, ada_kimg --ada_kimg (p can cross [0, 1] within the budget)
  dcgan_cond_r3_ada10   dcgan_cond_r3 on the 10% with ADA
  sngan                 configs/sngan.py:mnist (ResNet, spectral norm, hinge, TTUR), batch 32
  sngan_cond            the same with conditional BatchNorm in G and a projection discriminator
  sngan_cond_diffaug10  sngan_cond on the 10% with DiffAugment
All JAX runs keep an EMA of G (--ema_decay, --ema_start) and sample from it.

Resumable: OUT/<run>/budget.json holds the CPU and wall seconds, steps and curve so far (updated at
every checkpoint and when the run ends or is interrupted); started again, a run trains on from its
last checkpoint for the CPU seconds left, and a finished run with its samples is not redone. A run
killed without warning (SIGKILL) may get up to checkpoint_every steps more than its budget.
"""

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from aigc_jax import data
from aigc_jax.core import host_memory
from aigc_jax.core.errors import UserError
from aigc_jax.metrics.evaluator import Evaluator
from aigc_jax.tasks.classifier import train as cls_train
from aigc_jax.tasks.gan import sample, steps, train
from benchmarks import report
from benchmarks.quality import curves
from benchmarks.quality.budget import Budget, marks, train_in_segments
from configs import classifier, dcgan, sngan, with_overrides

AUG = "color,translation,cutout"
D32 = {"model.g_features": 32, "model.d_features": 32}
TEN = {"data.fraction": 0.1}
TORCH = "torch"  # the PyTorch twin: no config module, run by torch_dcgan.py
TORCH_RUN = "dcgan_torch"
RUNS = {
    "dcgan": (dcgan, "files", D32),
    "dcgan_torch": (TORCH, "", {}),
    "dcgan_cond": (dcgan, "files_cond", D32),
    "dcgan_cond_r3": (dcgan, "files_cond", {**D32, "r3": True}),
    "dcgan_cond_diffaug10": (dcgan, "files_cond", {**D32, **TEN, "augment.policy": AUG}),
    "dcgan_cond_ada10": (dcgan, "files_cond", {**D32, **TEN, "ada": True}),
    "dcgan_cond_r3_ada10": (dcgan, "files_cond", {**D32, **TEN, "r3": True, "ada": True}),
    "sngan": (sngan, "mnist", {}),
    "sngan_cond": (sngan, "mnist", {"model.cond_mode": "projection"}),
    "sngan_cond_diffaug10": (sngan, "mnist", {"model.cond_mode": "projection", **TEN, "augment.policy": AUG}),
}
MAX_STEPS = 10_000_000  # the budget ends every run; a fixed, unreached num_steps keeps resuming compatible


def parse_set(items: list[str]) -> dict:
  """--set key=value pairs -> {key: value}, values as Python literals where they parse as one."""
  out = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise UserError(f"--set '{item}' is not key=value, e.g. --set model.g_features=8")
    try:
      out[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      out[key] = text
  return out


def convention(config) -> str:
  """How 28x28 digits become 32x32 in this config: 'pad' (config.data.pad) or 'resize'."""
  return "pad" if config.data.get("pad", False) else "resize"


def run_config(name: str, args, extra: dict):
  module, preset, overrides = RUNS[name]
  if module == TORCH:  # the twin trains on the dcgan run's images
    module, preset, overrides = RUNS["dcgan"]
  overrides = dict(overrides)
  if overrides.pop("r3", False):  # R3GAN (Huang et al. 2024): RpGAN + R1 + R2, Adam(0, 0.99)
    overrides.update({"train.loss": "relativistic", "train.r1_gamma": args.r3_gamma, "train.r2_gamma": args.r3_gamma,
                      "optim.b1": 0.0, "optim.b2": 0.99})
  if overrides.pop("ada", False):  # StyleGAN2-ADA's controller over DiffAugment's transforms
    overrides.update({"augment.policy": AUG, "augment.ada_target": 0.6, "augment.ada_kimg": args.ada_kimg})
  config = module.get_config(preset)
  common = {"data.path": args.data, "data.split": args.train_split, "seed": args.seed,
            "train.num_steps": MAX_STEPS, "train.ema_decay": args.ema_decay, "train.ema_start": args.ema_start,
            "train.log_every": args.log_every, "train.checkpoint_every": args.checkpoint_every,
            "train.sample_every": args.checkpoint_every}
  if "pad" in config.data:
    common["data.pad"] = args.convention == "pad"
  for key in extra:
    node = config
    for part in key.split("."):
      if not hasattr(node, "keys") or part not in node:
        raise UserError(f"--set names a key the configs do not have: {key}; see configs/default.py")
      node = node[part]
  return with_overrides(config, **{**common, **overrides, **extra})


def train_classifier(args, workdir: Path, run_config) -> Path:
  """configs/classifier.py:mnist on the run's convention (OUT/classifier, or OUT/classifier_pad for padding)."""
  config = with_overrides(classifier.get_config("mnist"), **{"data.path": args.data})
  if "pad" in config.data:
    config = with_overrides(config, **{"data.pad": convention(run_config) == "pad"})
  if convention(run_config) == "pad":
    workdir = workdir.with_name(workdir.name + "_pad")
  if not (workdir / "metrics.json").exists():
    cls_train.train_and_evaluate(config, str(workdir))
  return workdir


def evaluator_for(args, classifier_workdir: Path, out: Path, run_config):
  """Scores against the held-out images put through `run_config`'s 28 -> 32 convention (own statistics cache)."""
  kind = convention(run_config)
  overrides = {"data.path": args.data, "eval.real_split": args.real_split, "eval.extractor": "classifier",
               "eval.classifier_workdir": str(classifier_workdir), "eval.metrics": "fid,kid,prdc",
               "eval.num_samples": args.num_samples, "eval.cache_dir": str(out / f"stats_{kind}")}
  if "pad" in run_config.data:
    overrides["data.pad"] = kind == "pad"
  return Evaluator(with_overrides(dcgan.get_config("files"), **overrides), log=lambda msg: print(msg, flush=True))


def score(evaluator, images: np.ndarray, labels) -> dict:
  values = evaluator.evaluate(images)
  row = {k: round(float(values[k]), 5) for k in ("fid", "kid", "kid_std", "precision", "recall", "density",
                                                  "coverage")}
  row["num_real"] = int(values["num_real"])
  if labels is not None:
    _, logits = evaluator.extractor(images)
    row["class_accuracy"] = round(float((logits.argmax(-1) == labels).mean()), 5)
  return row


def training_images(config) -> np.ndarray:
  """uint8 [N, 32, 32, C]: the images a run of `config` trains on (its split, fraction and 28 -> 32 convention)."""
  return data.load(config.data, seed=config.seed).images


def torch_twin(args, config, workdir: Path, score_curve) -> dict:
  """Trains benchmarks/quality/torch_dcgan.py with --torch_python for the budget; its numbers and final samples."""
  workdir.mkdir(parents=True, exist_ok=True)
  images_path = workdir / "train_images.npz"
  np.savez(images_path, images=training_images(config))
  threads = args.torch_threads
  cmd = [args.torch_python, str(Path(__file__).with_name("torch_dcgan.py")), "--images", str(images_path),
         "--budget_s", str(args.budget_s), "--marks", ",".join(f"{m:g}" for m in marks(args.budget_s,
                                                                                         args.curve_points)),
         "--num_samples", str(args.num_samples), "--out", str(workdir), "--threads", str(threads),
         "--seed", str(args.seed)]
  print("torch twin:", " ".join(cmd), flush=True)
  env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
  done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
  if done.returncode != 0:
    raise UserError(f"the PyTorch twin failed ({args.torch_python}): {done.stderr.strip().splitlines()[-1:]}")
  info = json.loads(done.stdout.strip().splitlines()[-1])
  images_path.unlink()
  curve = []
  for point in info["samples"]:
    with np.load(workdir / point["file"]) as f:
      images = f["images"]
    curve.append([point["cpu_s"], point["steps"], score_curve(images[:args.curve_samples], None)])
  (workdir / info["samples"][-1]["file"]).rename(workdir / "samples.npz")
  return {"info": info, "images": images, "curve": curve}


def write_results(out: Path, results: dict, names: list[str]) -> str:
  """OUT/results.json and OUT/results.md with every run in `results`, also those of earlier invocations
  (in the order of RUNS); returns the table."""
  rows = []
  for name in [n for n in RUNS if n in results]:
    r = results[name]
    acc = f"{r['class_accuracy']:.3f}" if "class_accuracy" in r else "-"
    curve = " ".join(f"{fid:.1f}" for _, _, fid in r.get("curve", []))
    rows.append([name, r.get("convention", "resize"), r["steps"], f"{r['steps'] * r['batch_size']:,}",
                 f"{r['cpu_s']:.0f}", f"{r['wall_s']:.0f}", f"{r['fid']:.2f}", f"{r['kid']:.4f}",
                 f"{r['precision']:.3f}", f"{r['recall']:.3f}", acc, curve])
  table = report.markdown_table(["run", "28->32", "steps", "images seen", "CPU s", "wall s", "classifier-FID", "KID",
                                 "precision", "recall", "class accuracy", "FID during training"], rows)
  earlier = [n for n in RUNS if n in results and n not in names]
  notes = [f"Runs {', '.join(earlier)} come from earlier invocations into the same --out."] if earlier else []
  notes.append("FID during training: classifier-FID of the EMA generator (the PyTorch twin: G) at evenly spaced "
               "marks of CPU seconds, on fewer samples than the final column ('curve_samples' in results.json), "
               "drawn in fid_vs_cpu.png.")
  report.write(out, "mnist_quality", "Sample quality on MNIST at one CPU budget per run", {"runs": results},
               table, notes)
  curves.draw(out / "fid_vs_cpu.png", {n: [(c, f) for c, _, f in results[n].get("curve", [])]
                                       for n in RUNS if n in results},
              f"classifier-FID against process CPU seconds, MNIST [:8000] (from {out.name}/results.json)")
  return table


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data", required=True,
                 help="a folder with MNIST's t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
                      "(from https://storage.googleapis.com/cvdf-datasets/mnist/ or any MNIST mirror)")
  p.add_argument("--budget_s", type=float, required=True, help="process CPU seconds of training per run")
  p.add_argument("--out", required=True)
  p.add_argument("--runs", default=",".join(RUNS))
  p.add_argument("--num_samples", type=int, default=10_000)
  p.add_argument("--classifier_workdir", default="", help="a configs/classifier.py:mnist run (default: train one)")
  p.add_argument("--train_split", default="train[:8000]")
  p.add_argument("--real_split", default="train[8000:]", help="the held-out images the samples are scored against")
  p.add_argument("--ema_decay", type=float, default=0.99, help="the horizon 1 / (1 - decay) must fit the run")
  p.add_argument("--ema_start", type=int, default=100)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--log_every", type=int, default=50)
  p.add_argument("--checkpoint_every", type=int, default=500)
  p.add_argument("--curve_points", type=int, default=5, help="FID points during training (the last at the budget)")
  p.add_argument("--curve_samples", type=int, default=2_000, help="samples per FID point during training")
  p.add_argument("--torch_python", default="", help="a Python with torch for the dcgan_torch run (else skipped)")
  p.add_argument("--torch_threads", type=int, default=1,
                 help="torch's threads: on a loaded 2-core machine a second one cost more CPU seconds than it saved")
  p.add_argument("--convention", choices=["pad", "resize"], default="pad",
                 help="28 -> 32: zero-pad (config.data.pad, where the data has it) or resize")
  p.add_argument("--r3_gamma", type=float, default=0.05, help="R1 and R2 gamma of the R3GAN runs (R3GAN CIFAR: 0.05)")
  p.add_argument("--ada_kimg", type=float, default=100.0, help="ADA speed: thousands of images for p to move by 1")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config key in every run, e.g. --set model.g_features=8 (repeatable)")
  args = p.parse_args()
  try:
    run(args)
  except UserError as e:
    sys.exit(f"error: {e}")


def run(args):
  names = [n for n in args.runs.split(",") if n]
  unknown = [n for n in names if n not in RUNS]
  if unknown or not names:
    raise UserError(f"--runs={args.runs} names unknown or no runs {unknown}; choose from {', '.join(RUNS)}")
  if args.budget_s <= 0:
    raise UserError(f"--budget_s={args.budget_s} must be a positive number of CPU seconds")
  if args.num_samples < 6 or args.curve_samples < 6:
    raise UserError(f"--num_samples={args.num_samples} / --curve_samples={args.curve_samples} is too few; "
                    "precision and recall need at least 6")
  if args.curve_points < 1:
    raise UserError(f"--curve_points={args.curve_points} must be at least 1")
  if not Path(args.data).is_dir():
    raise UserError(f"--data '{args.data}' is not a folder; give the one holding MNIST's IDX files")
  if TORCH_RUN in names and not args.torch_python:
    print(f"{TORCH_RUN}: skipped, no --torch_python given", flush=True)
    names.remove(TORCH_RUN)
  extra = parse_set(args.set)
  configs = {name: run_config(name, args, extra) for name in names}  # every bad override fails before training
  for config in configs.values():
    train.validate(config, 1)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  evaluators = {}

  def evaluator(config):
    kind = convention(config)
    if kind not in evaluators:
      clf = Path(args.classifier_workdir) if args.classifier_workdir else train_classifier(args, out / "classifier",
                                                                                            config)
      evaluators[kind] = evaluator_for(args, clf, out, config)
    return evaluators[kind]

  results = report.read(out).get("runs", {})
  for name in names:
    config, workdir = configs[name], out / name
    budget = Budget(workdir / "budget.json", args.budget_s)
    samples_path = workdir / "samples.npz"
    done = results.get(name, {})
    if done.get("budget_s") == args.budget_s and done.get("num_samples") == args.num_samples and \
        (name == TORCH_RUN or done.get("steps") == budget.steps and budget.left() <= 0) and samples_path.exists():
      print(f"{name}: done, {done}", flush=True)
      continue
    ev = evaluator(config)
    score_curve = lambda images, labels: score(ev, images, labels)["fid"]
    t0 = time.time()
    if name == TORCH_RUN:
      twin = torch_twin(args, config, workdir, score_curve)
      info, images, labels = twin["info"], twin["images"], None
      t0 = time.time()  # the twin sampled its final images itself; what follows is the scoring
      row = {"cpu_s": info["cpu_s"], "wall_s": info["wall_s"], "steps": info["steps"], "batch_size": 64,
             "model": "dcgan (PyTorch twin)", "cond_mode": "none", "loss": "non_saturating", "fraction": 1.0,
             "augment": "", "features": [64, 64], "torch": info["torch"], "curve": twin["curve"]}
    else:
      def score_state(state):
        y = np.asarray(steps.default_labels(args.curve_samples, state.num_classes)) if state.num_classes else None
        return score_curve(sample.generate_images(state, args.curve_samples, seed=1, labels=y), y)

      state = train_in_segments(config, workdir, budget, args.curve_points, score_state)
      labels = np.asarray(steps.default_labels(args.num_samples, state.num_classes)) if state.num_classes else None
      t0 = time.time()
      images = sample.generate_images(state, args.num_samples, seed=1, labels=labels)
      row = {"cpu_s": round(budget.cpu_s, 1), "wall_s": round(budget.wall_s, 1), "steps": int(state.step),
             "batch_size": config.train.batch_size, "model": config.model.name, "cond_mode": config.model.cond_mode,
             "loss": config.train.loss, "fraction": config.data.fraction, "augment": config.augment.policy,
             "ada_target": config.augment.ada_target, "features": [config.model.g_features, config.model.d_features],
             "curve": budget.curve}
      if state.ada is not None:
        row["ada_p"] = round(float(state.ada["p"]), 4)
    sample.write(str(samples_path), images, labels=labels, overwrite=True)
    row = {"budget_s": args.budget_s, "num_samples": args.num_samples, "curve_samples": args.curve_samples,
           "convention": convention(config), **row, **score(ev, images, labels),
           "sample_and_score_wall_s": round(time.time() - t0, 1)}
    # Re-read: another invocation into the same --out (e.g. the PyTorch twin alongside) may have added rows.
    results = {**report.read(out).get("runs", {}), name: row}
    write_results(out, results, names)
    print(name, row, flush=True)
  print(write_results(out, {**report.read(out).get("runs", {}), **results}, names))


if __name__ == "__main__":
  host_memory.reexec()
  main()
