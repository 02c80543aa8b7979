"""main.py as a user runs it: train, sample, and every bad input as a one-line error."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from helpers import write_oversized_png

SMOKE = f"{ROOT}/configs/dcgan.py:smoke"


def run_main(*args, devices=1, timeout=600):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], env=env, capture_output=True, text=True,
                        timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  w = tmp_path_factory.mktemp("main") / "run"
  r = run_main("--config", SMOKE, "--workdir", str(w))
  assert r.returncode == 0, r.stderr[-3000:]
  assert "step 6/6" in r.stdout and "steps/s" in r.stdout and "ETA" in r.stdout
  return w


def test_train_says_what_it_does_and_what_comes_next(tmp_path):
  """One opening line, one closing line with the next command, and no third-party log noise."""
  w = tmp_path / "run"
  r = run_main("--config", SMOKE, "--workdir", str(w))
  assert r.returncode == 0, r.stderr[-3000:]
  lines = r.stdout.splitlines()
  assert lines[0].startswith("train gan (dcgan) on digits [train]: 1797 images, 32x32x1 | 1 device(s) (cpu)")
  assert "6 steps" in lines[0] and f"workdir {w}" in lines[0] and "convolutions: XLA:CPU forms" in lines[0]
  assert lines[-1].startswith(f"done: checkpoints, samples/ and tensorboard/ in {w}; next: python main.py "
                              "--mode=sample")
  assert r.stderr.strip() == "", r.stderr[-3000:]  # no INFO/WARNING lines from TensorFlow, absl or Orbax
  verbose = run_main("--config", SMOKE, "--workdir", str(w), "--config.train.num_steps=8", "--verbose")
  assert verbose.returncode == 0 and verbose.stderr.strip(), "--verbose brings the library logs back"


def test_gan_config_repairs_by_inversion(workdir, tmp_path):
  """--mode=repair with a GAN config fills holes by GAN inversion, as the README shows."""
  from PIL import Image

  Image.fromarray(np.full((32, 32), 200, np.uint8)).save(tmp_path / "digit.png")
  r = run_main("--mode=repair", "--config", SMOKE, "--workdir", str(workdir), "--input", str(tmp_path / "digit.png"),
               "--mask", "center", "--output", str(tmp_path / "out"))
  assert r.returncode == 0, r.stderr[-3000:]
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["digit.png", "digit_strip.png"]
  r = run_main("--mode=repair", "--config", SMOKE, "--workdir", str(workdir), "--input", str(tmp_path / "digit.png"),
               "--output", str(tmp_path / "out2"))
  assert r.returncode == 2 and "GAN-inversion inpainting fills holes" in r.stderr
  assert not (tmp_path / "out2").exists()


def test_removed_config_key_names_its_replacement(tmp_path):
  r = run_main("--config", SMOKE, "--workdir", str(tmp_path / "w"), "--config.model.upconv_impl=xla")
  assert r.returncode == 2 and "config.model.upconv_impl is now config.conv_impl" in r.stderr
  assert not (tmp_path / "w").exists()


def test_train_writes_checkpoints_events_and_sample_pngs(workdir):
  assert (workdir / "checkpoints" / "6").is_dir()
  assert list((workdir / "tensorboard").glob("events.out.tfevents*"))
  assert (workdir / "samples" / "step_0000006.png").exists()


def test_sample_mode_writes_npz_and_png_folder(workdir, tmp_path):
  r = run_main("--mode=sample", "--config", SMOKE, "--workdir", str(workdir), "--num_samples", "37",
               "--output", str(tmp_path / "s.npz"))
  assert r.returncode == 0, r.stderr[-3000:]
  with np.load(tmp_path / "s.npz") as f:
    images = f["images"]
    assert "labels" not in f  # DCGAN is unconditional
  assert images.shape == (37, 32, 32, 1) and images.dtype == np.uint8 and images.std() > 0
  r = run_main("--mode=sample", "--config", SMOKE, "--workdir", str(workdir), "--num_samples", "12",
               "--output", str(tmp_path / "pngs"))
  assert r.returncode == 0, r.stderr[-3000:]
  assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:02d}.png" for i in range(12)]
  # Existing output is never replaced without --overwrite.
  r = run_main("--mode=sample", "--config", SMOKE, "--workdir", str(workdir), "--num_samples", "5",
               "--output", str(tmp_path / "s.npz"))
  assert r.returncode == 2 and "--overwrite" in r.stderr
  with np.load(tmp_path / "s.npz") as f:
    assert len(f["images"]) == 37


def test_sample_without_checkpoint(tmp_path):
  r = run_main("--mode=sample", "--config", SMOKE, "--workdir", str(tmp_path / "empty"), "--output",
               str(tmp_path / "x.npz"))
  assert r.returncode == 2 and "no checkpoint" in r.stderr
  assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("args,devices,message", [
    (["--config", f"{ROOT}/configs/dcgan.py:nope"], 1, "unknown preset 'nope'"),
    (["--config", SMOKE, "--config.data.source=web"], 1, "unknown data source 'web'"),
    (["--config", SMOKE, "--config.data.source=tfds", "--config.data.name=no_such_dataset"], 1,
     "unknown TFDS dataset 'no_such_dataset'"),
    (["--config", SMOKE, "--config.data.source=files", "--config.data.path=/no/such/dir"], 1,
     "data path '/no/such/dir' does not exist"),
    (["--config", SMOKE, "--config.data.resolution=48"], 1, "48x48 is not supported"),
    (["--config", SMOKE, "--config.data.channels=3"], 1, "1 channel(s) but config.data.channels=3"),
    (["--config", SMOKE, "--config.train.batch_size=6"], 4, "batch_size=6 is not a positive multiple of the 4"),
    (["--config", SMOKE, "--config.train.batch_size=abc"], 1, "abc"),
    (["--config", SMOKE, "--config.train.parallel=vmap"], 1, "config.train.parallel='vmap'"),
])
def test_bad_input_is_one_line_error_and_writes_nothing(tmp_path, args, devices, message):
  w = tmp_path / "w"
  r = run_main(*args, "--workdir", str(w), devices=devices)
  assert r.returncode != 0
  # Library start-up lines may mention "errors" (TF's oneDNN notice on Intel CPUs); ours start with "error:".
  errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
  assert errors and message in errors[0], r.stderr[-3000:]
  assert "Traceback" not in r.stderr
  assert not w.exists()


def _snapshot(path):
  return sorted((p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*"))


def assert_one_line_error(r, message):
  """Exit code 2 and one 'error: ...' line, with no traceback (ours or a library's) after it."""
  errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
  assert r.returncode == 2 and len(errors) == 1 and message in errors[0], r.stderr[-3000:]
  assert "Traceback" not in r.stderr and not re.search(r"^\w+(Error|Exception): ", r.stderr, re.MULTILINE), \
      r.stderr[-3000:]


def test_a_file_where_workdir_or_output_goes_is_one_line_error(workdir, tmp_path):
  blocker = tmp_path / "f"
  blocker.write_text("keep me")
  before = _snapshot(workdir)
  for args, message in [
      (["--workdir", str(blocker)], f"--workdir '{blocker}' is a file, not a folder"),
      (["--mode=sample", "--workdir", str(blocker), "--output", str(tmp_path / "s.npz")],
       f"--workdir '{blocker}' is a file, not a folder"),
      (["--workdir", str(blocker / "run")], f"--workdir '{blocker / 'run'}' cannot be created: '{blocker}' is a file"),
      (["--mode=sample", "--workdir", str(workdir), "--output", str(blocker / "s.npz")],
       f"--output '{blocker / 's.npz'}' cannot be written: '{blocker}' is a file")]:
    assert_one_line_error(run_main("--config", SMOKE, *args), message)
  assert sorted(os.listdir(tmp_path)) == ["f"] and blocker.read_text() == "keep me"
  assert _snapshot(workdir) == before


def test_damaged_checkpoint_is_one_line_error_without_asyncio_tracebacks(workdir, tmp_path):
  """Orbax reads the arrays concurrently; after the first bad one, the others finish on a closed event loop."""
  copy = tmp_path / "w"
  shutil.copytree(workdir, copy)
  chunks = [p for p in (copy / "checkpoints" / "6" / "state").rglob("*")
            if p.is_file() and p.parent.name == "d" and p.parent.parent.name.startswith("ocdbt.process")]
  assert len(chunks) > 1  # several arrays in flight when the first fails
  for p in chunks:
    os.truncate(p, 10)
  before = _snapshot(copy)
  sample = ["--mode=sample", "--workdir", str(copy), "--output", str(tmp_path / "s.npz")]
  for args in (["--workdir", str(copy)], sample):
    r = run_main("--config", SMOKE, *args)
    assert_one_line_error(r, f"checkpoint step 6 in {copy / 'checkpoints'} is unreadable or incomplete")
    assert "Event loop is closed" not in r.stderr
  assert _snapshot(copy) == before and not (tmp_path / "s.npz").exists()


def test_image_over_pils_pixel_limit_is_one_line_error(tmp_path):
  big = write_oversized_png(tmp_path / "big.png")
  w = tmp_path / "w"
  r = run_main("--config", SMOKE, "--config.data.source=files", f"--config.data.path={big}", "--workdir", str(w))
  assert_one_line_error(r, f"'{big}' is too large to read")
  assert "pixels (e.g. " in r.stderr and not w.exists()
