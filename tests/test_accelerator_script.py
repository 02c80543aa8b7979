"""benchmarks/accelerator.py end to end on the CPU with --tiny, before accelerator time is spent on it."""

import json
import subprocess
import sys

import numpy as np
from conftest import ROOT
from sklearn.datasets import load_digits


def write_idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(folder, n=400):
  """The first n scikit-learn digits as 28x28 MNIST-style IDX files (3x nearest upsampling, padded)."""
  digits = load_digits()
  images = np.kron(np.round(digits.images[:n] / 16 * 255), np.ones((3, 3)))
  write_idx(folder / "t10k-images-idx3-ubyte", np.pad(images, ((0, 0), (2, 2), (2, 2))))
  write_idx(folder / "t10k-labels-idx1-ubyte", digits.target[:n])


def test_accelerator_script_runs_every_section_on_the_cpu(tmp_path):
  (tmp_path / "mnist").mkdir()
  fake_mnist(tmp_path / "mnist")
  out = tmp_path / "out"
  cmd = [sys.executable, "-m", "benchmarks.accelerator", "--tiny", "--mnist", str(tmp_path / "mnist"), "--out",
         str(out), "--train_s", "8", "--num_samples", "60", "--train_split", "train[:300]", "--real_split",
         "train[300:]", "--torch", "off"]
  r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  result = json.loads((out / "results.json").read_text())
  assert result["errors"] == {} and result["skipped"] == [], result["errors"]
  assert result["tests"]["returncode"] == 0, result["tests"]["failures"]
  rows = result["steps"]["rows"]
  assert [(row["model"], row["dtype"]) for row in rows] == [("dcgan", "float32"), ("dcgan", "bfloat16"),
                                                            ("sngan", "float32"), ("biggan", "float32")]
  assert all(row["jax_traces"] == 1 and row["flops_per_step"] > 0 and row["jax_steps_per_s"] > 0 for row in rows)
  assert result["pipeline"]["ratio"] > 0
  mnist = result["mnist"]
  assert mnist["steps"] > 0 and np.isfinite(mnist["fid"]) and 0 <= mnist["class_accuracy"] <= 1
  text = (out / "results.md").read_text()
  for heading in ("## Tests on this backend", "## Train steps", "## Input pipeline", "## Conditional MNIST"):
    assert heading in text
  assert (out / "mnist_samples.png").exists()


def test_accelerator_script_refuses_a_missing_mnist_folder(tmp_path):
  r = subprocess.run([sys.executable, "-m", "benchmarks.accelerator", "--mnist", str(tmp_path / "none"), "--out",
                      str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(f"error: --mnist '{tmp_path / 'none'}'")
  assert not (tmp_path / "out").exists()
