"""The core runs where TensorFlow and TFDS are not installed (a bare GPU or TPU image): main.py trains,
samples, evaluates and repairs the digits end to end in a process that cannot import them, and a TFDS
config there is a one-line error saying what to install."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

BLOCKER = ROOT / "tests" / "no_tensorflow"
SMOKE = f"{ROOT}/configs/dcgan.py:smoke"


def run_without_tf(*args):
  path = os.pathsep.join([str(BLOCKER), os.environ.get("PYTHONPATH", "")])
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
  return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], env=env, capture_output=True, text=True,
                        timeout=600, cwd=ROOT)


def ok(r):
  assert r.returncode == 0, r.stderr[-3000:]
  return r


def test_the_blocker_blocks():
  path = os.pathsep.join([str(BLOCKER), os.environ.get("PYTHONPATH", "")])
  for module in ("tensorflow", "tensorflow_datasets", "tensorflow.io"):
    r = subprocess.run([sys.executable, "-c", f"import {module}"], env={**os.environ, "PYTHONPATH": path},
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "ModuleNotFoundError" in r.stderr


def test_digits_train_sample_eval_repair_without_tensorflow(tmp_path):
  clf, gan, rep = tmp_path / "clf", tmp_path / "gan", tmp_path / "repair"
  ok(run_without_tf("--config", f"{ROOT}/configs/classifier.py:smoke", "--workdir", str(clf)))
  r = ok(run_without_tf("--config", SMOKE, "--workdir", str(gan)))
  assert "step 6/6" in r.stdout
  assert list((gan / "tensorboard").glob("events.out.tfevents*")) and list((gan / "samples").glob("*.png"))

  ok(run_without_tf("--mode=sample", "--config", SMOKE, "--workdir", str(gan), "--num_samples", "12",
                    "--output", str(tmp_path / "s.npz")))
  with np.load(tmp_path / "s.npz") as f:
    assert f["images"].shape == (12, 32, 32, 1)

  flags = [f"--config.eval.{k}={v}" for k, v in (
      ("classifier_workdir", clf), ("cache_dir", tmp_path / "cache"), ("num_samples", 32), ("batch_size", 16),
      ("kid_subset_size", 16), ("kid_subsets", 2), ("real_split", "train[:64]"))]
  r = ok(run_without_tf("--mode=eval", "--config", SMOKE, "--workdir", str(gan), *flags))
  assert '"fid"' in r.stdout

  ok(run_without_tf("--config", f"{ROOT}/configs/repair.py:smoke", "--workdir", str(rep)))
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "digit.png")
  ok(run_without_tf("--mode=repair", "--config", f"{ROOT}/configs/repair.py:smoke", "--workdir", str(rep),
                    "--input", str(tmp_path / "digit.png"), "--mask", "center", "--output", str(tmp_path / "fixed")))
  assert list((tmp_path / "fixed").glob("*.png"))


@pytest.mark.parametrize("preset", ["configs/dcgan.py:cifar10", "configs/sngan.py:cifar10_cond"])
def test_tfds_config_without_tensorflow_says_what_to_install(tmp_path, preset):
  r = run_without_tf("--config", f"{ROOT}/{preset}", "--workdir", str(tmp_path / "w"))
  assert r.returncode == 2
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and "pip install tensorflow-datasets" in lines[0], r.stderr[-2000:]
  assert not (tmp_path / "w").exists()
