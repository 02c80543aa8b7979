"""benchmarks/applications/applications.py's one-command pieces: its configs, train-or-reuse, the photo crops,
and a baselines-only run end to end."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED_MNIST

from aigc_jax.tasks.image2image import train as i2i_train
from benchmarks.applications import applications, photo_crops, text_pages
from configs import enhance as enhance_configs


def _args(**kw):
  base = dict(data="/some/mnist", train_steps=700, photo_steps=600, gan_steps=500, classifier_steps=300,
              feature_weight=0.25, networks=list(applications.NETWORKS), steps={"sr2": 900})
  return argparse.Namespace(**{**base, **kw})


def test_network_configs_are_the_presets_sized_by_the_flags(tmp_path):
  configs = applications.network_configs(_args(), tmp_path)
  assert set(configs) == set(applications.NETWORKS)
  steps = {"classifier": 300, "gan": 500, "sr2": 900, "repair_photos": 600, "denoise_photos": 600, "sr2_photos": 600}
  for name, config in configs.items():
    assert config.train.num_steps == steps.get(name, 700), name
    if name.endswith("_photos"):
      assert config.data.path == str(tmp_path / "photo_crops.npz") and config.data.channels == 1
      assert config.data.resolution == 32
    else:
      assert config.data.path == "/some/mnist"
    if config.get("task") in i2i_train.TASKS and name != "sr4_feature":  # its classifier is set at training
      i2i_train.validate(config, 1)
  assert configs["denoise"].damage.kinds == configs["denoise_photos"].damage.kinds == "gaussian,salt_pepper"
  assert configs["denoise_photos"].model.residual and configs["sr4"].model.scale == 4
  assert configs["sr4_feature"].train.feature_weight == 0.25 and configs["sr4"].train.feature_weight == 0.0
  assert configs["gan"].data.split == "train[:8000]"
  only = applications.network_configs(_args(networks=["sr2"]), tmp_path)
  assert list(only) == ["sr2"]
  defaults = _args(train_steps=None, photo_steps=None, gan_steps=None, classifier_steps=None, steps={"gan": 8})
  configs = applications.network_configs(defaults, tmp_path)
  assert {n: c.train.num_steps for n, c in configs.items()} == {**applications.STEPS, "gan": 8}
  assert configs["gan"].train.sample_every == 2


def test_bad_network_names_and_steps_are_one_line_errors():
  with pytest.raises(SystemExit, match="error: --networks has unknown name.*srx.*use any of classifier"):
    applications.parse_networks("sr2,srx")
  assert applications.parse_steps("sr2=10,gan=3") == {"sr2": 10, "gan": 3}
  for bad in ("sr2=0", "sr2", "srx=5", "sr2=-1"):
    with pytest.raises(SystemExit, match=f"error: --steps item '{bad}' is not NAME=N"):
      applications.parse_steps(bad)


def test_finished_workdir_is_reused_and_unfinished_resumes(tmp_path):
  config = enhance_configs.get_config("smoke")
  config.train.num_steps = 2
  log = {}
  applications.train("sr", config, tmp_path / "sr", log)
  assert log["sr"]["steps"] == 2 and log["sr"]["resumed_from"] == 0 and "seconds" in log["sr"]
  applications.train("sr", config, tmp_path / "sr", log)
  assert log["sr"] == {"workdir": str(tmp_path / "sr"), "steps": 2, "reused": True}
  config.train.num_steps = 4
  applications.train("sr", config, tmp_path / "sr", log)
  assert log["sr"]["resumed_from"] == 2 and applications.finished_step(tmp_path / "sr") == 4


def test_photo_crops_are_deterministic_and_train_and_test_photos_disjoint(tmp_path):
  assert not set(photo_crops.TRAIN) & set(photo_crops.TEST)
  a = photo_crops.crops(photo_crops.TEST, 3, 32, seed=1)
  assert a.shape == (12, 32, 32, 1) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, photo_crops.crops(photo_crops.TEST, 3, 32, seed=1))
  assert photo_crops.write(tmp_path / "c.npz", size=16, per_photo=16, text_pages=3) == 16 * len(photo_crops.TRAIN) + 6
  assert np.load(tmp_path / "c.npz")["images"].shape == (16 * len(photo_crops.TRAIN) + 6, 16, 16, 1)
  assert photo_crops.write(tmp_path / "d.npz", size=16, per_photo=2, text_pages=0) == 2 * len(photo_crops.TRAIN)


def test_text_pages_are_dark_print_on_light_paper_and_deterministic():
  a, b = text_pages.pages(2, size=64, seed=4)
  np.testing.assert_array_equal(a, text_pages.pages(1, size=64, seed=4)[0])
  assert a.shape == (64, 64) and a.dtype == np.uint8 and not np.array_equal(a, b)
  for p in (a, b):  # mostly paper, with some ink
    assert np.median(p) > 100 and p.min() < np.median(p) - 60


def test_photos_are_used_at_their_native_resolution():
  small = np.random.default_rng(0).integers(0, 256, (6, 10)).astype(np.uint8)
  np.testing.assert_array_equal(photo_crops.native(small), small)
  np.testing.assert_array_equal(photo_crops.native(np.kron(small, np.ones((2, 2), np.uint8))), small)
  np.testing.assert_array_equal(photo_crops.native(np.kron(small, np.ones((4, 4), np.uint8))), small)
  almost = np.kron(small, np.ones((2, 2), np.uint8))
  almost[3, 5] ^= 1  # one pixel differs from its block: not a repeated picture
  np.testing.assert_array_equal(photo_crops.native(almost), almost)
  # scikit-image's moon is a 256x256 photo with every pixel repeated 2x2; the others are native.
  assert photo_crops.grey("moon").shape == (256, 256)
  assert photo_crops.grey("camera").shape == (512, 512)


def test_augmented_crops_are_flips_and_turns_of_the_same_crops():
  plain = photo_crops.crops(photo_crops.TRAIN[:2], 8, 16, seed=3)
  aug = photo_crops.crops(photo_crops.TRAIN[:2], 8, 16, seed=3, augment=True)
  for p, a in zip(plain[..., 0], aug[..., 0]):
    assert any(np.array_equal(np.rot90(f, t), a) for f in (p, p[:, ::-1]) for t in range(4))
  assert not np.array_equal(plain, aug)


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="shared MNIST not present")
def test_baselines_only_run_writes_results_and_table(tmp_path):
  out = tmp_path / "out"
  cmd = [sys.executable, "-m", "benchmarks.applications.applications", "--data", str(SHARED_MNIST), "--out", str(out),
         "--networks=", "--tasks", "super-resolution", "--num_images", "8"]
  r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                     env={**os.environ, "AIGC_HOST_MEMORY": "off"})
  assert r.returncode == 0, r.stderr[-2000:]
  saved = json.loads((out / "results.json").read_text())
  assert saved["benchmark"] == "applications" and saved["training"] == {}
  assert [(row["task"], row.get("damage"), row["dataset"]) for row in saved["rows"]] == [
      ("reference", "none", "mnist[9992:]"), ("super-resolution", "x2 area downscale", "mnist[9992:]"),
      ("super-resolution", "x4 area downscale", "mnist[9992:]"),
      ("super-resolution", "x2 area downscale", "skimage photos camera+coins+moon+page")]
  assert [row["n"] for row in saved["rows"]] == [8, 8, 8, 4]
  photo = saved["rows"][-1]
  assert list(photo["psnr_per_image"]) == ["camera", "coins", "moon", "page"]
  assert np.isclose(np.mean(list(photo["psnr_per_image"].values())), photo["psnr"])
  md = (out / "results.md").read_text()
  assert f"`{saved['command']}`" in md and saved["command"].endswith("--networks= --tasks super-resolution "
                                                                     "--num_images 8")
  assert sum(line.startswith("| super-resolution | ") for line in md.splitlines()) == 4  # 3 rows + 1 per photo
  assert "| task | damage | method | camera | coins | moon | page |" in md
  assert sorted(p.name for p in out.glob("*.png")) == ["examples_sr_photos.png", "examples_sr_x2.png",
                                                       "examples_sr_x4.png"]


def test_photo_crops_of_other_text_pages_are_an_error_before_any_write(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  photo_crops.write(out / "photo_crops.npz", size=16, per_photo=1, text_pages=0)
  assert photo_crops.text_pages_in(out / "photo_crops.npz") == 0
  before = sorted(p.name for p in out.iterdir())
  with pytest.raises(SystemExit, match=r"error: .*photo_crops.npz holds crops of 0 text pages, not --text_pages 16; "
                                       r"use another --out"):
    applications.run(["--data", str(SHARED_MNIST), "--out", str(out), "--networks", "sr2_photos"])
  assert sorted(p.name for p in out.iterdir()) == before


def test_rows_name_how_a_network_was_trained():
  from configs import repair

  config = repair.get_config("mnist")
  assert applications.training_label(config, 2000, 366.0) == (
      f"{config.train.pixel_loss} loss, on a smooth fill, 2000 steps in 6.1 min")
  config.model.fill = False
  config.train.pixel_loss, config.train.adv_weight = "l1", 0.01
  assert applications.training_label(config, 600) == "l1 loss + GAN, 600 steps"  # reused: no time
  del config.train["pixel_loss"], config.train["adv_weight"], config.model["fill"]  # saved before the keys
  assert applications.training_label(config, 600) == "l1 loss + GAN, 600 steps"


def test_denoisers_are_tuned_on_the_original_ten_training_photos():
  """Growing TRAIN must not move the classical baselines: their strengths are tuned on TUNE."""
  assert photo_crops.TUNE == ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                              "immunohistochemistry", "retina", "grass", "gravel", "brick")
  assert set(photo_crops.TUNE) <= set(photo_crops.TRAIN) and not set(photo_crops.TUNE) & set(photo_crops.TEST)
