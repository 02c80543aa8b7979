"""One prepared run on an accelerator: does the project work there, how fast, and what a few minutes buy.

  bash benchmarks/accelerator.sh                   # on the GPU machine; writes $OUT/results.{json,md}
  python -m benchmarks.accelerator --mnist DIR --out DIR [--tiny]

Four sections, in this order, each timed; one that would overrun --budget_s is skipped and the
table says so (at the defaults the whole run takes about 7 minutes on one H200):

  tests     pytest tests/test_accelerator.py on this backend (AIGC_EXPECT_BACKEND set to it): the
            pmap and jit steps equal the single-device step and compile once; conv_impl=auto picks
            XLA's convolutions off the CPU.
  steps     the GAN train step, synthetic batches, one device: DCGAN 32x32 and 64x64 at batch 64
            and 256, SNGAN and BigGAN (CIFAR-10 presets) at batch 64, float32 and bfloat16. Per
            row: compile seconds (the first call), whether later calls compiled again, steps/s,
            images/s, XLA's cost-analysis FLOPs per step, achieved TFLOP/s and its fraction of the
            chip's dense peak (TF32 for float32 rows, as XLA's and this script's PyTorch defaults
            allow TF32 on the GPU; BF16 for bfloat16). DCGAN rows alternate rounds with PyTorch eager
            and torch.compile of the same networks (benchmarks/speed/compare_pytorch.py's twin, in
            worker processes) when torch is importable.
  pipeline  the numpy input pipeline on the MNIST files against the step it feeds (images/s).
  mnist     conditional MNIST: --train_s seconds (wall, compilation included) of --cond_config on
            images [:8000] of the IDX files in --mnist, then classifier-FID and class accuracy of
            --num_samples balanced samples against images [8000:], in the feature space of the
            configs/classifier.py:mnist classifier trained here on [:8000].

--tiny runs every section with toy sizes, so the test suite runs this script end to end on the CPU.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np

from aigc_jax.core import parallel
from aigc_jax.core.errors import UserError
from aigc_jax.core.images import grid, save_png
from aigc_jax.tasks.classifier import train as cls_train
from aigc_jax.tasks.gan import sample, steps, train
from benchmarks import report
from benchmarks.quality import mnist_quality
from benchmarks.speed import input_pipeline
from benchmarks.speed.compare_pytorch import TorchSide, median
from benchmarks.speed.timing import synthetic_batch
from configs import biggan, classifier, dcgan, sngan, with_overrides

ROOT = Path(__file__).resolve().parents[1]
# Dense peak FLOP/s by device kind: (TF32, BF16) tensor-core rates of the SXM parts.
PEAKS = {"H200": (494.7e12, 989.4e12), "H100": (494.7e12, 989.4e12), "A100": (156e12, 312e12)}
STEP_ROWS = [  # (name, config module, preset, resolution, batch), most wanted first: the last may not fit the budget
    ("dcgan", dcgan, "cifar10", 32, 64), ("dcgan", dcgan, "seed64", 64, 64), ("sngan", sngan, "cifar10", 32, 64),
    ("biggan", biggan, "cifar10", 32, 64), ("dcgan", dcgan, "cifar10", 32, 256), ("dcgan", dcgan, "seed64", 64, 256)]
DTYPES = ("float32", "bfloat16")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--mnist", required=True, help="folder with MNIST's IDX files (t10k-images-idx3-ubyte.gz ...)")
  p.add_argument("--out", required=True, help="folder for results.json and results.md")
  p.add_argument("--sections", default="tests,steps,pipeline,mnist")
  p.add_argument("--budget_s", type=float, default=450, help="wall seconds for all sections together")
  p.add_argument("--steps_budget_s", type=float, default=170, help="wall seconds for the steps section")
  p.add_argument("--train_s", type=float, default=180, help="wall seconds of conditional MNIST training")
  p.add_argument("--cond_config", default="configs/dcgan.py:files_cond",
                 help="the conditional GAN trained in the mnist section (mnist_quality's best at 600 CPU s)")
  p.add_argument("--cond_set", action="append", default=["data.pad=True"], metavar="KEY=VALUE",
                 help="config overrides of that run; MNIST padded 28 -> 32, scored the same way")
  p.add_argument("--num_samples", type=int, default=10_000)
  p.add_argument("--train_split", default="train[:8000]", help="images the GAN and the classifier train on")
  p.add_argument("--real_split", default="train[8000:]", help="held-out images the samples are scored against")
  p.add_argument("--torch", choices=["auto", "off"], default="auto", help="auto: PyTorch rows when torch imports")
  p.add_argument("--torch_python", default=sys.executable, help="the interpreter of the PyTorch workers")
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--commit", default=os.environ.get("AIGC_COMMIT", ""), help="the commit this tree is")
  p.add_argument("--tiny", action="store_true", help="toy sizes: the whole script in a minute or two on a CPU")
  args = p.parse_args(argv)
  unknown = set(args.sections.split(",")) - {"tests", "steps", "pipeline", "mnist"}
  if unknown:
    raise UserError(f"--sections={args.sections} names {sorted(unknown)}; choose from tests, steps, pipeline, mnist")
  if not Path(args.mnist).is_dir():
    raise UserError(f"--mnist '{args.mnist}' is not a folder; give the one holding MNIST's IDX files")
  return args


class Clock:
  """Wall seconds left of the run's budget; sections ask before they start."""

  def __init__(self, budget_s):
    self.t0, self.budget_s = time.perf_counter(), budget_s

  def left(self):
    return self.budget_s - (time.perf_counter() - self.t0)


def run_tests(args):
  env = {**os.environ, "AIGC_EXPECT_BACKEND": jax.default_backend()}
  cmd = [sys.executable, "-m", "pytest", "tests/test_accelerator.py", "-q", "-p", "no:cacheprovider"]
  if args.tiny:  # the suite runs the file itself; here only the plumbing
    cmd += ["-k", "backend"]
  t0 = time.perf_counter()
  r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  summary = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
  return {"returncode": r.returncode, "summary": summary, "wall_s": round(time.perf_counter() - t0, 1),
          "failures": r.stdout[-4000:] if r.returncode else ""}


def step_config(module, preset, batch, dtype, tiny):
  """The row's preset at `batch` and `dtype`; tiny: DCGAN at width 8, the others' smoke presets (digits)."""
  if tiny and module is not dcgan:
    preset = "smoke"
  config = with_overrides(module.get_config(preset), **{"train.batch_size": batch, "model.dtype": dtype})
  if tiny and module is dcgan:
    config.model.g_features = config.model.d_features = 8
  return config


def jax_side(config, batch_size):
  """Compiles and warms the step; returns (run(n) -> seconds, compile s, compiled-again flag, FLOPs/step)."""
  dp = parallel.DataParallel("jit", devices=jax.local_devices()[:1])
  traces = []

  def counted(state, batch, **kw):
    traces.append(1)
    return steps.train_step(state, batch, **kw)
  step = dp.step(counted, loss=config.train.loss)
  holder = {"state": dp.put_state(train.build_state(config))}
  batch = synthetic_batch(dp, config, batch_size)
  lowered = step.lower(holder["state"], batch)
  flops = _flops(lowered.cost_analysis()) or _flops(lowered.compile().cost_analysis())  # HLO's, else the backend's

  def run(n):
    t0 = time.perf_counter()
    for _ in range(n):
      holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics)
    return time.perf_counter() - t0
  compile_s = run(1)
  run(3)
  traced = len(traces)
  return run, compile_s, traced, flops


def _flops(cost) -> float:
  cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
  return float((cost or {}).get("flops", 0.0))


def time_steps(args, clock):
  rows, skipped = [], []
  deadline = time.perf_counter() + min(args.steps_budget_s, clock.left())
  torch_sides = {}
  if args.torch == "auto" and torch_available(args.torch_python):
    threads = len(os.sched_getaffinity(0))
    torch_sides = {label: TorchSide(args.torch_python, threads) for label in ("eager", "compile")}
  device = "cuda" if jax.default_backend() == "gpu" else "cpu"
  kind = jax.devices()[0].device_kind
  peak = next((v for k, v in PEAKS.items() if k in kind), None)
  plan = STEP_ROWS[:1] + STEP_ROWS[2:4] if args.tiny else STEP_ROWS
  for name, module, preset, res, batch in plan:
    batch = 8 if args.tiny else batch
    for dtype in DTYPES[:1] if args.tiny and name != "dcgan" else DTYPES:
      if time.perf_counter() > deadline:
        skipped.append(f"{name} {res}x{res} batch {batch} {dtype}")
        continue
      config = step_config(module, preset, batch, dtype, args.tiny)
      run, compile_s, traced, flops = jax_side(config, batch)
      sides = {"jax": run}
      first = {}
      if name == "dcgan":
        for label, side in torch_sides.items():
          features = config.model.g_features
          answer = side.ask(f"SETUP {res} {batch} {features} 3 {device} {int(label == 'compile')} {dtype}")
          first[label] = round(answer["first_step_s"], 2)
          sides[f"torch_{label}"] = lambda n, side=side: side.ask(f"RUN {n}")["seconds"]
      per_step = run(3) / 3
      n = max(1, min(200, int(0.25 / max(per_step, 1e-6))))
      times = {k: [] for k in sides}
      for _ in range(1 if args.tiny else args.rounds):
        for k, fn in sides.items():
          times[k].append(fn(n) / n)
      row = {"model": name, "resolution": res, "batch_size": batch, "dtype": dtype, "jax_compile_s": round(compile_s, 2),
             "jax_traces": traced, "flops_per_step": flops, "steps_per_round": n}
      for k, ts in times.items():
        s = median(ts)
        row[f"{k}_steps_per_s"] = round(1 / s, 2)
        row[f"{k}_images_per_s"] = round(batch / s, 1)
      row["jax_tflops"] = round(flops * row["jax_steps_per_s"] / 1e12, 3)
      row["jax_peak_fraction"] = round(row["jax_tflops"] * 1e12 / peak[dtype == "bfloat16"], 4) if peak else None
      row["torch_first_step_s"] = first
      rows.append(row)
      print(json.dumps(row), flush=True)
  for side in torch_sides.values():
    side.close()
  return {"rows": rows, "skipped": skipped, "device_kind": kind, "peak_flops": peak,
          "torch": bool(torch_sides)}


def torch_available(python) -> bool:
  return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0


def run_pipeline(args):
  ns = SimpleNamespace(mnist_dir=os.path.abspath(args.mnist), pipeline_batches=20 if args.tiny else 200,
                       steps=3 if args.tiny else 50)
  return input_pipeline.measure("files", ns)


def train_conditional(args, work: Path, clock):
  path, _, preset = args.cond_config.partition(":")
  module = {"configs/dcgan.py": dcgan, "configs/sngan.py": sngan, "configs/biggan.py": biggan}.get(path)
  if module is None:
    raise UserError(f"--cond_config={args.cond_config}: use configs/dcgan.py, sngan.py or biggan.py with a preset")
  overrides = mnist_quality.parse_set(args.cond_set)
  common = {"data.path": os.path.abspath(args.mnist), "data.split": args.train_split, "train.num_steps": 10_000_000,
            "train.checkpoint_every": 1_000_000, "train.sample_every": 1_000_000, "train.log_every": 500}
  if args.tiny:
    common.update({"model.g_features": 8, "model.d_features": 8, "train.log_every": 5})
  config = with_overrides(module.get_config(preset), **{**common, **overrides})
  train.validate(config, jax.device_count())
  train_s = min(args.train_s, max(10.0, clock.left() - (20 if args.tiny else 60)))
  t0 = time.perf_counter()
  state = train.train_and_evaluate(config, str(work / "gan"), stop_after=lambda step: time.perf_counter() - t0 >= train_s)
  wall = time.perf_counter() - t0
  clf_config = with_overrides(classifier.get_config("mnist"), **{
      "data.path": os.path.abspath(args.mnist), "data.split": args.train_split, "data.test_split": args.real_split,
      "data.pad": config.data.pad})  # the classifier sees digits as the GAN does
  if args.tiny:
    clf_config = with_overrides(clf_config, **{"train.num_steps": 10, "optim.warmup_steps": 0, "model.width": 16,
                                               "model.stages": 2, "train.batch_size": 16})
  t1 = time.perf_counter()
  cls_train.train_and_evaluate(clf_config, str(work / "classifier"))
  clf_s = time.perf_counter() - t1
  num = args.num_samples
  evaluator = mnist_quality.evaluator_for(SimpleNamespace(data=os.path.abspath(args.mnist), real_split=args.real_split,
                                                          num_samples=num), work / "classifier", work, config)
  labels = np.asarray(steps.default_labels(num, state.num_classes)) if state.num_classes else None
  state = jax.device_get(state)
  images = sample.generate_images(state, num, seed=1, labels=labels)
  save_png(Path(args.out) / "mnist_samples.png", grid(images[:100], 10))
  row = {"config": args.cond_config, "set": args.cond_set, "convention": mnist_quality.convention(config), "steps": int(state.step), "train_wall_s": round(wall, 1),
         "batch_size": config.train.batch_size, "classifier_train_s": round(clf_s, 1), "num_samples": num,
         **mnist_quality.score(evaluator, images, labels)}
  print(json.dumps(row), flush=True)
  return row


def tables(result) -> str:
  """The run's markdown: one table per section that ran."""
  parts = []
  if "tests" in result:
    t = result["tests"]
    parts += ["## Tests on this backend", "", f"`pytest tests/test_accelerator.py`: {t['summary']} "
              f"(exit {t['returncode']}, {t['wall_s']} s)", ""]
  if "steps" in result:
    s = result["steps"]
    head = ["model", "image", "batch", "dtype", "JAX compile s", "compiled once", "JAX steps/s", "JAX images/s",
            "GFLOP/step", "JAX TFLOP/s", "of peak", "torch eager steps/s", "torch.compile steps/s",
            "JAX / compile", "torch.compile s"]
    rows = []
    for r in s["rows"]:
      eager, comp = r.get("torch_eager_steps_per_s"), r.get("torch_compile_steps_per_s")
      rows.append([r["model"], f"{r['resolution']}x{r['resolution']}", r["batch_size"], r["dtype"], r["jax_compile_s"],
                   "yes" if r["jax_traces"] == 1 else f"no ({r['jax_traces']} traces)", r["jax_steps_per_s"],
                   r["jax_images_per_s"], round(r["flops_per_step"] / 1e9, 2), r["jax_tflops"],
                   "-" if r["jax_peak_fraction"] is None else f"{100 * r['jax_peak_fraction']:.1f}%",
                   eager or "-", comp or "-", f"{r['jax_steps_per_s'] / comp:.2f}" if comp else "-",
                   r["torch_first_step_s"].get("compile", "-")])
    parts += ["## Train steps", "", report.markdown_table(head, rows), ""]
    if s["skipped"]:
      parts += [f"Skipped for time: {', '.join(s['skipped'])}.", ""]
  if "pipeline" in result:
    r = result["pipeline"]
    parts += ["## Input pipeline", "", report.markdown_table(
        ["source", "batch", "pipeline images/s", "step images/s", "pipeline / step", "host waited"],
        [[r["source"], r["batch_size"], r["pipeline_images_per_s"], r["step_images_per_s"], f"{r['ratio']}x",
          f"{100 * r['host_wait_share']:.1f}%"]]), ""]
  if "mnist" in result:
    r = result["mnist"]
    acc = f"{r['class_accuracy']:.3f}" if "class_accuracy" in r else "-"
    parts += ["## Conditional MNIST", "", report.markdown_table(
        ["config", "train wall s", "steps", "images seen", "classifier-FID", "class accuracy", "precision", "recall"],
        [[f"{r['config']} {' '.join(r['set'])}", r["train_wall_s"], r["steps"], f"{r['steps'] * r['batch_size']:,}",
          f"{r['fid']:.2f}", acc, f"{r['precision']:.3f}", f"{r['recall']:.3f}"]]), "",
        "Samples: mnist_samples.png.", ""]
  for name, error in result.get("errors", {}).items():
    parts += [f"Section {name} failed: {error}", ""]
  return "\n".join(parts)


def main(argv=None):
  args = parse_args(argv)
  clock = Clock(args.budget_s)
  sections = args.sections.split(",")
  result = {"backend": jax.default_backend(), "devices": [d.device_kind for d in jax.devices()],
            "commit_given": args.commit, "tiny": args.tiny, "errors": {}, "skipped": []}
  print(f"jax {jax.__version__} on {jax.default_backend()}: {result['devices']}", flush=True)
  work = Path(tempfile.mkdtemp(prefix="aigc_accelerator_"))
  runners = {"tests": lambda: run_tests(args), "steps": lambda: time_steps(args, clock),
             "pipeline": lambda: run_pipeline(args), "mnist": lambda: train_conditional(args, work, clock)}
  for name in ("tests", "steps", "pipeline", "mnist"):
    if name not in sections:
      continue
    if clock.left() <= (30 if name == "mnist" else 5):
      result["skipped"].append(name)
      continue
    t0 = time.perf_counter()
    try:
      result[name] = runners[name]()
    except Exception as e:  # one failing section must not cost the others' numbers
      result["errors"][name] = f"{type(e).__name__}: {e}"[:2000]
    print(f"section {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    write(args, result)
  return result


def write(args, result):
  notes = [f"Skipped for time: {', '.join(result['skipped'])}."] if result["skipped"] else []
  if args.commit:
    notes.append(f"Tree: {args.commit}.")
  report.write(args.out, "accelerator", "aigc-jax on an accelerator", result, tables(result), notes)


if __name__ == "__main__":
  try:
    main()
  except UserError as e:
    sys.exit(f"error: {e}")
