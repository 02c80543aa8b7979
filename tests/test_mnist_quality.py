"""benchmarks/quality/mnist_quality.py end to end on tiny settings: files, JSON rows, CPU budget and resume."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED_MNIST

TINY = ["--num_samples", "20", "--curve_samples", "12", "--curve_points", "2", "--train_split", "train[:320]",
        "--real_split", "train[9900:]",
        "--set", "model.g_features=8", "--set", "model.d_features=8", "--set", "train.batch_size=16",
        "--checkpoint_every", "2", "--log_every", "1"]
ROW_KEYS = {"budget_s", "cpu_s", "wall_s", "steps", "batch_size", "num_samples", "model", "cond_mode", "loss",
            "fraction", "augment", "features", "fid", "kid", "kid_std", "precision", "recall", "density",
            "coverage", "num_real", "sample_and_score_wall_s", "curve", "curve_samples", "convention", "ada_target"}


def _run(*args, data=SHARED_MNIST):
  return subprocess.run([sys.executable, "-m", "benchmarks.quality.mnist_quality", "--data", str(data), *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=600)


def _runs(out):
  return json.loads((out / "results.json").read_text())["runs"]


def _table(out):
  return [line for line in (out / "results.md").read_text().splitlines() if line.startswith("|")]


@pytest.fixture(scope="module")
def classifier_workdir(tmp_path_factory):
  from aigc_jax.tasks.classifier import train as cls_train
  from configs import classifier

  workdir = tmp_path_factory.mktemp("clf")
  cls_train.train_and_evaluate(classifier.get_config("smoke"), str(workdir))
  return workdir


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="shared MNIST not present")
def test_two_runs_write_samples_and_rows_then_resume(classifier_workdir, tmp_path):
  out = tmp_path / "out"
  args = ["--out", str(out), "--runs", "dcgan,sngan_cond_diffaug10", "--classifier_workdir", str(classifier_workdir),
          *TINY]
  r = _run("--budget_s", "1", *args)
  assert r.returncode == 0, r.stderr[-2000:]
  saved = json.loads((out / "results.json").read_text())
  assert saved["benchmark"] == "mnist_quality" and saved["command"].startswith(
      "python -m benchmarks.quality.mnist_quality --data ") and {"cpu", "cores", "jax"} <= set(saved["machine"])
  results = saved["runs"]
  assert list(results) == ["dcgan", "sngan_cond_diffaug10"]
  assert set(results["dcgan"]) == ROW_KEYS
  assert set(results["sngan_cond_diffaug10"]) == ROW_KEYS | {"class_accuracy"}
  cond = results["sngan_cond_diffaug10"]
  assert (cond["cond_mode"], cond["fraction"], cond["augment"]) == ("projection", 0.1, "color,translation,cutout")
  assert 0.0 <= cond["class_accuracy"] <= 1.0 and results["dcgan"]["num_real"] == 100
  for name, row in results.items():
    budget = json.loads((out / name / "budget.json").read_text())
    assert row["steps"] == budget["steps"] >= 1 and row["cpu_s"] == round(budget["cpu_s"], 1) >= 1.0
    with np.load(out / name / "samples.npz") as f:
      assert f["images"].shape == (20, 32, 32, 1) and f["images"].dtype == np.uint8
      if name == "dcgan":
        assert f.files == ["images"]
      else:
        np.testing.assert_array_equal(np.bincount(f["labels"]), [2] * 10)
  md = (out / "results.md").read_text()
  assert saved["command"] in md and "- Machine: " in md and "- Date: " in md
  table = _table(out)
  assert len(table) == 4 and table[2].startswith("| dcgan | ") and table[3].startswith("| sngan_cond_diffaug10 | ")

  dcgan_only = [*args[:3], "dcgan", *args[4:]]
  more = _run("--budget_s", str(results["dcgan"]["cpu_s"] + 3), *dcgan_only)  # a larger budget resumes the run
  assert more.returncode == 0, more.stderr[-2000:]
  row = _runs(out)["dcgan"]
  assert f"resumed from step {results['dcgan']['steps']}" in more.stdout
  assert row["steps"] > results["dcgan"]["steps"] and row["cpu_s"] >= results["dcgan"]["cpu_s"] + 3
  assert _runs(out)["sngan_cond_diffaug10"] == cond
  assert len(_table(out)) == 4 and "Runs sngan_cond_diffaug10 come from earlier invocations" in (
      out / "results.md").read_text()

  again = _run("--budget_s", str(results["dcgan"]["cpu_s"] + 3), *dcgan_only)  # spent and sampled: nothing to do
  assert again.returncode == 0, again.stderr[-2000:]
  assert "dcgan: done" in again.stdout and "step " not in again.stdout
  assert _runs(out)["dcgan"] == row


@pytest.mark.parametrize("args,message", [
    (["--runs", "dcgan,nope"], "error: --runs=dcgan,nope names unknown or no runs ['nope']"),
    (["--budget_s", "0"], "error: --budget_s=0.0 must be a positive number of CPU seconds"),
    (["--set", "model.nope=3"], "error: --set names a key the configs do not have"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
  base = {"--budget_s": "1", "--out": str(tmp_path / "o")}
  for i in range(0, len(args), 2):
    base[args[i]] = args[i + 1]
  r = _run(*[x for kv in base.items() for x in kv], data=tmp_path)
  assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(message), r.stderr[-1000:]
  assert not (tmp_path / "o").exists()
