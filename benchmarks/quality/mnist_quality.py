"""Sample quality on MNIST at the same CPU-time budget per run: DCGAN, SNGAN, conditional SNGAN, and
conditional SNGAN with DiffAugment on 10% of the data.

  python -m benchmarks.quality.mnist_quality --data DIR --budget_s 300 --out runs/mnist_quality

Every run trains on images [:8000] of the IDX files at --data (MNIST's 10,000 test images:
t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, from
https://storage.googleapis.com/cvdf-datasets/mnist/ or any MNIST mirror) and is scored against the
held-out images [8000:]. A run trains until the process has spent --budget_s seconds of CPU time on
it (`time.process_time()`: what the run itself computed, so other jobs loading the machine do not
shrink it; data loading and compilation count too), checked after every step. Then its EMA generator
draws --num_samples images (balanced classes for the conditional runs), written to
OUT/<run>/samples.npz ('images' uint8 [N, 32, 32, 1], and 'labels'), and scored in the feature space
of the MNIST classifier (configs/classifier.py:mnist, trained into OUT/classifier unless
--classifier_workdir is given): classifier-FID, KID, precision and recall, and for the conditional
runs the class accuracy, the fraction of samples the classifier assigns to the label they were
generated with. Writes OUT/results.json ({"runs": {run: row}} with the command, machine and date)
and OUT/results.md (the table under a header with the command that regenerates it).

Runs:
  dcgan                 configs/dcgan.py:files, g/d features 32, batch 64 (non-saturating loss)
  sngan                 configs/sngan.py:mnist (ResNet, spectral norm, hinge, TTUR), batch 32
  sngan_cond            the same with conditional BatchNorm in G and a projection discriminator
  sngan_cond_diffaug10  sngan_cond on a deterministic 10% of the training images (800) with
                        DiffAugment (color,translation,cutout)
All of them keep an EMA of G (--ema_decay, --ema_start) and sample from it.

Resumable: OUT/<run>/budget.json holds the CPU and wall seconds and steps spent so far (updated at
every checkpoint and when the run ends or is interrupted); started again, a run trains on from its
last checkpoint for the CPU seconds left, and a finished run with its samples is not redone. A run
killed without warning (SIGKILL) may get up to checkpoint_every steps more than its budget.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from aigc_jax.core import host_memory
from aigc_jax.core.errors import UserError
from aigc_jax.tasks.gan import sample, steps, train
from aigc_jax.tasks.gan import state as gan_state
from benchmarks import report
from configs import dcgan, sngan, with_overrides

AUG = "color,translation,cutout"
RUNS = {
    "dcgan": (dcgan, "files", {"model.g_features": 32, "model.d_features": 32}),
    "sngan": (sngan, "mnist", {}),
    "sngan_cond": (sngan, "mnist", {"model.cond_mode": "projection"}),
    "sngan_cond_diffaug10": (sngan, "mnist", {"model.cond_mode": "projection", "data.fraction": 0.1,
                                               "augment.policy": AUG}),
}
MAX_STEPS = 10_000_000  # the budget ends every run; a fixed, unreached num_steps keeps resuming compatible


def parse_set(items: list[str]) -> dict:
  """--set key=value pairs -> {key: value}, values as Python literals where they parse as one."""
  import ast

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


def run_config(name: str, args, extra: dict):
  module, preset, overrides = RUNS[name]
  config = module.get_config(preset)
  common = {"data.path": args.data, "data.split": args.train_split, "seed": args.seed,
            "train.num_steps": MAX_STEPS, "train.ema_decay": args.ema_decay, "train.ema_start": args.ema_start,
            "train.log_every": args.log_every, "train.checkpoint_every": args.checkpoint_every,
            "train.sample_every": args.checkpoint_every}
  for key in extra:
    node = config
    for part in key.split("."):
      if not hasattr(node, "keys") or part not in node:
        raise UserError(f"--set names a key the configs do not have: {key}; see configs/default.py")
      node = node[part]
  return with_overrides(config, **{**common, **overrides, **extra})


class Budget:
  """CPU and wall seconds and steps a run has spent, kept in WORKDIR/budget.json across invocations."""

  def __init__(self, path: Path, limit_s: float):
    self.path, self.limit_s = path, limit_s
    saved = json.loads(path.read_text()) if path.exists() else {}
    self.cpu_s, self.wall_s, self.steps = saved.get("cpu_s", 0.0), saved.get("wall_s", 0.0), saved.get("steps", 0)
    self._cpu0 = self._wall0 = None
    self.last_step = self.steps

  def left(self) -> float:
    return self.limit_s - self.cpu_s

  def start(self):
    self._cpu0, self._wall0 = time.process_time(), time.time()

  def spent(self) -> float:
    return self.cpu_s + time.process_time() - self._cpu0

  def record(self, steps: int):
    cpu, wall = time.process_time(), time.time()
    self.cpu_s += cpu - self._cpu0
    self.wall_s += wall - self._wall0
    self._cpu0, self._wall0 = cpu, wall
    self.steps = steps
    tmp = self.path.with_name(self.path.name + ".tmp")
    tmp.write_text(json.dumps({"cpu_s": self.cpu_s, "wall_s": self.wall_s, "steps": steps}) + "\n")
    tmp.replace(self.path)


def train_within_budget(config, workdir: Path, budget: Budget):
  """Trains (or resumes) until the budget is spent; returns the host state of the latest checkpoint."""
  if budget.left() <= 0:
    print(f"{workdir.name}: budget spent ({budget.cpu_s:.0f} CPU s, {budget.steps} steps)", flush=True)
    return gan_state.load_state(config, workdir)[0]
  workdir.mkdir(parents=True, exist_ok=True)
  every = config.train.checkpoint_every

  def stop_after(step):
    budget.last_step = step
    over = budget.spent() >= budget.limit_s
    if over or step % every == 0:  # the checkpoint of this step is saved right after
      budget.record(step)
    return over

  budget.start()
  try:
    state = train.train_and_evaluate(config, str(workdir), stop_after=stop_after)
  finally:
    budget.record(budget.last_step)
  return state


def train_classifier(data: str, workdir: Path) -> Path:
  from aigc_jax.tasks.classifier import train as cls_train
  from configs import classifier

  if not (workdir / "metrics.json").exists():
    cls_train.train_and_evaluate(with_overrides(classifier.get_config("mnist"), **{"data.path": data}), str(workdir))
  return workdir


def evaluator_for(args, classifier_workdir: Path, out: Path):
  from aigc_jax.metrics.evaluator import Evaluator

  config = with_overrides(dcgan.get_config("files"), **{
      "data.path": args.data, "eval.real_split": args.real_split, "eval.extractor": "classifier",
      "eval.classifier_workdir": str(classifier_workdir), "eval.metrics": "fid,kid,prdc",
      "eval.num_samples": args.num_samples, "eval.cache_dir": str(out / "stats")})
  return Evaluator(config, log=lambda msg: print(msg, flush=True))


def score(evaluator, images: np.ndarray, labels) -> dict:
  values = evaluator.evaluate(images)
  row = {k: round(float(values[k]), 5) for k in ("fid", "kid", "kid_std", "precision", "recall", "density",
                                                  "coverage")}
  row["num_real"] = int(values["num_real"])
  if labels is not None:
    _, logits = evaluator.extractor(images)
    row["class_accuracy"] = round(float((logits.argmax(-1) == labels).mean()), 5)
  return row


def write_results(out: Path, results: dict, names: list[str]) -> str:
  """OUT/results.json and OUT/results.md with every run in `results`, also those of earlier invocations
  (in the order of RUNS); returns the table."""
  rows = []
  for name in [n for n in RUNS if n in results]:
    r = results[name]
    acc = f"{r['class_accuracy']:.3f}" if "class_accuracy" in r else "-"
    rows.append([name, r["steps"], f"{r['steps'] * r['batch_size']:,}", f"{r['cpu_s']:.0f}", f"{r['wall_s']:.0f}",
                 f"{r['fid']:.2f}", f"{r['kid']:.4f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}", acc])
  table = report.markdown_table(["run", "steps", "images seen", "CPU s", "wall s", "classifier-FID", "KID",
                                 "precision", "recall", "class accuracy"], rows)
  earlier = [n for n in RUNS if n in results and n not in names]
  notes = [f"Runs {', '.join(earlier)} come from earlier invocations into the same --out."] if earlier else []
  report.write(out, "mnist_quality", "Sample quality on MNIST at one CPU budget per run", {"runs": results},
               table, notes)
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
  if args.num_samples < 6:
    raise UserError(f"--num_samples={args.num_samples} is too few; precision and recall need at least 6")
  if not Path(args.data).is_dir():
    raise UserError(f"--data '{args.data}' is not a folder; give the one holding MNIST's IDX files")
  extra = parse_set(args.set)
  configs = {name: run_config(name, args, extra) for name in names}  # every bad override fails before training
  for config in configs.values():
    train.validate(config, 1)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  clf = Path(args.classifier_workdir) if args.classifier_workdir else train_classifier(args.data, out / "classifier")
  evaluator = evaluator_for(args, clf, out)
  results = report.read(out).get("runs", {})
  for name in names:
    config, workdir = configs[name], out / name
    budget = Budget(workdir / "budget.json", args.budget_s)
    samples_path = workdir / "samples.npz"
    done = results.get(name, {})
    if done.get("budget_s") == args.budget_s and done.get("num_samples") == args.num_samples and \
        done.get("steps") == budget.steps and budget.left() <= 0 and samples_path.exists():
      print(f"{name}: done, {done}", flush=True)
      continue
    state = train_within_budget(config, workdir, budget)
    labels = np.asarray(steps.default_labels(args.num_samples, state.num_classes)) if state.num_classes else None
    t0 = time.time()
    images = sample.generate_images(state, args.num_samples, seed=1, labels=labels)
    sample.write(str(samples_path), images, labels=labels, overwrite=True)
    row = {"budget_s": args.budget_s, "cpu_s": round(budget.cpu_s, 1), "wall_s": round(budget.wall_s, 1),
           "steps": int(state.step), "batch_size": config.train.batch_size, "num_samples": args.num_samples,
           "model": config.model.name, "cond_mode": config.model.cond_mode, "loss": config.train.loss,
           "fraction": config.data.fraction, "augment": config.augment.policy,
           "features": [config.model.g_features, config.model.d_features],
           **score(evaluator, images, labels), "sample_and_score_wall_s": round(time.time() - t0, 1)}
    results[name] = row
    write_results(out, results, names)
    print(name, row, flush=True)
  print(write_results(out, results, names))


if __name__ == "__main__":
  host_memory.reexec()
  main()
