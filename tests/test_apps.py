"""Repair and enhancement: damage statistics, PSNR/SSIM against scikit-image, blending, inversion,
odd sizes and tiling seams, training through the shared loop, and the CLI's bad-input paths."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from aigc_jax.core.errors import UserError
from aigc_jax.data import damage
from aigc_jax.metrics import image_quality
from aigc_jax.models import patchgan, srgan, unet
from aigc_jax.tasks.gan import inpaint, steps
from aigc_jax.tasks.image2image import enhance, repair
from aigc_jax.tasks.image2image import steps as i2i_steps
from aigc_jax.tasks.image2image import train as i2i_train
from configs import enhance as enhance_configs
from configs import repair as repair_configs
from tests.conftest import ROOT
from tests.helpers import smoke_config

# ---------------------------------------------------------------- damage


def _masks(kind, n=200, h=32, w=32):
  keys = jax.random.split(jax.random.PRNGKey(0), n)
  return np.asarray(jax.vmap(lambda k: damage.mask(k, kind, h, w))(keys))


def test_center_mask_covers_a_quarter_in_the_middle():
  m = np.asarray(damage.center_mask(32, 32))[..., 0]
  assert m.shape == (32, 32) and (1 - m).mean() == 0.25
  assert (m[8:24, 8:24] == 0).all() and m[:8].all() and m[:, 24:].all()


@pytest.mark.parametrize("kind,lo,hi", [("boxes", 0.02, 0.45), ("strokes", 0.03, 0.5), ("pixels", 0.3, 0.7)])
def test_mask_coverage_statistics(kind, lo, hi):
  m = _masks(kind)
  assert set(np.unique(m)) <= {0.0, 1.0}
  holes = 1 - m.mean(axis=(1, 2, 3))
  assert (holes > 0).all() and (holes < 1).all()  # every mask has a hole and keeps pixels
  assert lo < holes.mean() < hi, holes.mean()
  assert holes.std() > 0.01  # masks differ between keys
  if kind == "pixels":  # per-image rate uniform in [0.3, 0.7]
    assert 0.25 < holes.min() and holes.max() < 0.75 and abs(holes.mean() - 0.5) < 0.03


def test_damage_is_deterministic_in_the_key_and_noise_has_the_requested_strength():
  x = jnp.zeros((4, 16, 16, 1))
  a = damage.damage_batch(jax.random.PRNGKey(3), x, ("strokes", "boxes"))
  b = damage.damage_batch(jax.random.PRNGKey(3), x, ("strokes", "boxes"))
  np.testing.assert_array_equal(a[1], b[1])
  img = jnp.zeros((64, 64, 1))
  g = damage.noise(jax.random.PRNGKey(0), img, "gaussian", sigma=0.2)
  assert abs(float(jnp.std(g)) - 0.2) < 0.01
  sp = np.asarray(damage.noise(jax.random.PRNGKey(0), img, "salt_pepper", amount=0.1))
  assert abs((sp != 0).mean() - 0.1) < 0.02 and set(np.unique(sp)) == {-1.0, 0.0, 1.0}
  _, known = damage.damage_one(jax.random.PRNGKey(0), img, ("gaussian",))
  assert not np.asarray(known).any()  # noise: no pixel is trusted
  with pytest.raises(UserError, match="comma-separated"):
    damage.parse_kinds("center,blur")


# ---------------------------------------------------------------- metrics


def test_psnr_and_ssim_match_scikit_image():
  from skimage.metrics import peak_signal_noise_ratio, structural_similarity

  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (3, 20, 23, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.2, a.shape), -1, 1).astype(np.float32)
  p = np.asarray(image_quality.psnr(a, b))
  s = np.asarray(image_quality.ssim(a, b))
  for i in range(3):
    assert p[i] == pytest.approx(peak_signal_noise_ratio(a[i], b[i], data_range=2.0), abs=1e-3)
    assert s[i] == pytest.approx(structural_similarity(a[i], b[i], data_range=2.0, channel_axis=-1), abs=1e-4)
  # Over a region: PSNR from the region's squared error, SSIM the mean of skimage's map over it.
  region = np.zeros((3, 20, 23, 1), np.float32)
  region[:, 5:15, 4:20] = 1
  _, full = structural_similarity(a[0, ..., 0], b[0, ..., 0], data_range=2.0, full=True)
  ms = float(image_quality.ssim(a[:1, ..., :1], b[:1, ..., :1], region=region[:1])[0])
  assert ms == pytest.approx(full[5:15, 4:20].mean(), abs=1e-4)
  mse = ((a[0] - b[0])[5:15, 4:20] ** 2).mean()
  assert float(image_quality.psnr(a, b, region=region)[0]) == pytest.approx(10 * np.log10(4 / mse), abs=1e-3)


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("h,w", [(28, 28), (17, 30), (5, 9)])
def test_unet_and_patchgan_keep_odd_sizes(h, w):
  net = unet.UNet(out_channels=3, features=8, depth=2)
  x = jnp.zeros((2, h, w, 4))
  params = net.init(jax.random.PRNGKey(0), x)
  assert net.apply(params, x).shape == (2, h, w, 3)
  res = unet.UNet(out_channels=3, features=8, depth=2, residual=True)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, h, w, 4), minval=-1, maxval=1)
  np.testing.assert_array_equal(res.apply(res.init(jax.random.PRNGKey(0), x), x), x[..., :3])  # starts as identity
  d = patchgan.PatchDiscriminator(features=8, layers=2)
  assert d.apply(d.init(jax.random.PRNGKey(0), x), x).shape == (2, -(-h // 4), -(-w // 4))


def _sr(scale):
  g = srgan.SRGenerator(scale=scale, channels=1, features=8, blocks=2)
  x = jax.random.uniform(jax.random.PRNGKey(1), (1, 13, 11, 1), minval=-1, maxval=1)
  params = g.init(jax.random.PRNGKey(0), x)
  # Non-zero last layer, so the network and not only its bicubic skip is checked.
  params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.PRNGKey(2), p.shape), params)
  return g, params


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_generator_starts_at_bicubic_and_upscales_any_size(scale):
  g = srgan.SRGenerator(scale=scale, channels=1, features=8, blocks=1)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 7, 5, 1), minval=-0.8, maxval=0.8)
  y = g.apply(g.init(jax.random.PRNGKey(0), x), x)
  assert y.shape == (2, 7 * scale, 5 * scale, 1)
  np.testing.assert_allclose(y, srgan.bicubic(x, scale), atol=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_upscaling_has_no_seams(scale):
  g, params = _sr(scale)
  x = jax.random.uniform(jax.random.PRNGKey(3), (1, 45, 37, 1), minval=-1, maxval=1)
  fn = jax.jit(lambda v: g.apply(params, v))
  whole = fn(x)
  tiled = enhance.upscale_tiled(fn, x, scale, tile=10, overlap=8)  # 5x4 tiles, ragged at the edges
  np.testing.assert_allclose(tiled, whole, atol=1e-5)
  # Too little context shows up as seams: the check above can fail.
  assert float(jnp.max(jnp.abs(enhance.upscale_tiled(fn, x, scale, tile=10, overlap=1) - whole))) > 1e-3


# ---------------------------------------------------------------- repair network: blending and training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """Smoke repair and enhance networks trained through the shared loop, with their workdirs."""
  out = {}
  repair_config = repair_configs.get_config("smoke")
  repair_config.damage.kinds = "center,pixels"  # cheaper to compile; every kind is covered above
  for name, config in (("repair", repair_config), ("enhance", enhance_configs.get_config("smoke"))):
    workdir = tmp_path_factory.mktemp(name)
    result = i2i_train.train_and_evaluate(config, str(workdir))
    out[name] = (config, workdir, result)
  return out


def test_training_writes_checkpoints_strips_and_metrics(trained):
  for name, (config, workdir, result) in trained.items():
    assert result["step"] == config.train.num_steps
    assert np.isfinite([result["psnr"], result["ssim"]]).all() and result["test_examples"] == 40
    assert (workdir / "metrics.json").exists() and list((workdir / "samples").glob("*.png"))
    assert (workdir / "checkpoints" / str(config.train.num_steps)).exists()


def test_blending_leaves_known_pixels_untouched(trained):
  config, workdir, _ = trained["repair"]
  _, state = i2i_train.load_state(workdir)
  x = jax.random.uniform(jax.random.PRNGKey(0), (6, 32, 32, 1), minval=-1, maxval=1)
  g_in, _, known = i2i_steps.degrade(state, jax.random.PRNGKey(1), x)
  out = i2i_steps.apply_generator(state, g_in)
  k = np.asarray(known[..., 0]) == 1
  assert k.any() and (~k).any()
  np.testing.assert_array_equal(np.asarray(out)[..., 0][k], np.asarray(x)[..., 0][k])
  raw = state.generator.apply({"params": state.g_params}, g_in)
  np.testing.assert_array_equal(np.asarray(out)[..., 0][~k], np.clip(np.asarray(raw), -1, 1)[..., 0][~k])


@pytest.mark.parametrize("kinds,fill", [("boxes,gaussian", False), ("boxes,strokes", True)])
def test_step_is_the_same_under_pmap_and_jit(kinds, fill):
  from aigc_jax.core import parallel

  config = repair_configs.get_config("smoke")
  config.damage.kinds = kinds
  config.model.fill = fill  # noise needs the plain U-Net
  state = i2i_train.build_state(config)
  batch = {"image": np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (8, 32, 32, 1), minval=-1, maxval=1))}
  results = []
  for mode in parallel.MODES:
    dp = parallel.DataParallel(mode)
    ds, metrics = dp.step(i2i_steps.train_step)(dp.put_state(state), dp.put_batch(batch))
    results.append((dp.get_state(ds.g_params), dp.get_metrics(metrics)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), results[0][0], results[1][0])
  assert results[0][1]["l1"] == pytest.approx(results[1][1]["l1"], abs=1e-5)


# ---------------------------------------------------------------- GAN inversion


def test_inversion_lowers_masked_error_and_keeps_known_pixels():
  config = smoke_config()
  from aigc_jax.tasks.gan import train

  state = train.build_state(config)
  gen = inpaint.Generator(state, 32, 1)
  # Targets the generator can reach: its own samples, so the search has something to find.
  target = steps.sample_step(state, jax.random.normal(jax.random.PRNGKey(7), (4, state.z_dim)))
  target = jax.image.resize(target, (4, 28, 28, 1), "linear")
  known = jnp.broadcast_to(damage.center_mask(28, 28), target.shape)
  out, before, after = inpaint.inpaint(gen, target * known, known, restarts=2, num_steps=60, return_losses=True)
  assert out.shape == target.shape
  assert (np.asarray(after) < 0.8 * np.asarray(before)).all(), (before, after)
  k = np.asarray(known) == 1
  np.testing.assert_array_equal(np.asarray(out)[k], np.asarray(target * known)[k])


# ---------------------------------------------------------------- command line


def _png(path, shape, value=128):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.full(shape, value, np.uint8)).save(path)
  return path


def test_repair_and_enhance_run_on_images_and_folders(trained, tmp_path):
  rconf, rdir, _ = trained["repair"]
  img = _png(tmp_path / "in" / "a.png", (21, 19))
  _png(tmp_path / "in" / "sub" / "b.png", (30, 30))
  out = repair.run(rconf, rdir, str(tmp_path / "in"), "strokes", str(tmp_path / "r"))
  assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
      "a.png", "a_strip.png", "sub/b.png", "sub/b_strip.png"]
  assert np.asarray(Image.open(out / "a.png")).shape == (21, 19)
  mask = np.zeros((21, 19), np.uint8)
  mask[5:10, 5:10] = 255
  Image.fromarray(mask).save(tmp_path / "m.png")
  out = repair.run(rconf, rdir, str(img), str(tmp_path / "m.png"), str(tmp_path / "r2"))
  res = np.asarray(Image.open(out / "a.png"))
  assert (res[mask == 0] == 128).all()  # only the marked pixels change
  econf, edir, _ = trained["enhance"]
  out = enhance.run(econf, edir, str(img), str(tmp_path / "e"), degrade=True)
  assert np.asarray(Image.open(out / "a.png")).shape == (20, 18)  # cropped to a multiple of 2, down, up
  out = enhance.run(econf, edir, str(img), str(tmp_path / "e2"))
  assert np.asarray(Image.open(out / "a.png")).shape == (42, 38)
  # --self_ensemble: the same files; known pixels still exact; a non-square image turned and back.
  out = repair.run(rconf, rdir, str(img), str(tmp_path / "m.png"), str(tmp_path / "r3"), ensemble=True)
  assert (np.asarray(Image.open(out / "a.png"))[mask == 0] == 128).all()
  out = enhance.run(econf, edir, str(img), str(tmp_path / "e3"), ensemble=True)
  assert np.asarray(Image.open(out / "a.png")).shape == (42, 38)


def test_workdirs_trained_before_a_preset_changed_still_repair(tmp_path):
  """--mode=repair builds the network its workdir was trained as: a workdir from before model.fill
  and the repair optimiser settings (its config.json lacks the keys) works with today's preset."""
  old = repair_configs.get_config("smoke")
  old.damage.kinds = "center"
  for key in ("fill", "fill_sweeps", "fill_biharmonic_sweeps"):
    del old.model[key]
  old.optim.b1, old.optim.grad_clip = 0.5, 0.0
  i2i_train.train_and_evaluate(old, str(tmp_path / "w"))
  img = _png(tmp_path / "a.png", (32, 32))
  out = repair.run(repair_configs.get_config("smoke"), str(tmp_path / "w"), str(img), "center", str(tmp_path / "r"))
  assert np.asarray(Image.open(out / "a.png")).shape == (32, 32)
  with pytest.raises(UserError, match="task 'repair', but --config is of task 'enhance'"):
    enhance.run(enhance_configs.get_config("smoke"), str(tmp_path / "w"), str(img), str(tmp_path / "e"))
  assert not (tmp_path / "e").exists()


def test_self_ensemble_is_the_mean_over_the_eight_symmetries():
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 5, 7, 1))
  upscale = lambda v: jnp.repeat(jnp.repeat(jnp.tanh(v), 2, 1), 2, 2)  # commutes with flips and turns
  np.testing.assert_allclose(i2i_steps.self_ensemble(upscale, x), upscale(x), atol=1e-6)
  shift = lambda v: jnp.roll(v, 1, axis=2)  # does not: each symmetry rolls another way
  expected = (jnp.roll(x, 1, 2) + jnp.roll(x, -1, 2) + jnp.roll(x, 1, 1) + jnp.roll(x, -1, 1)) / 4
  np.testing.assert_allclose(i2i_steps.self_ensemble(shift, x), expected, atol=1e-6)


def test_bad_inputs_raise_and_write_nothing(trained, tmp_path):
  rconf, rdir, _ = trained["repair"]
  img = _png(tmp_path / "a.png", (20, 20))
  rgb = _png(tmp_path / "rgb.png", (20, 20, 3))
  (tmp_path / "empty").mkdir()
  (tmp_path / "notimage.png").write_text("hello")
  small_mask = _png(tmp_path / "m.png", (10, 10), 255)
  out = tmp_path / "out"
  cases = [
      (str(img), str(small_mask), "must have the size of the image"),
      (str(tmp_path / "notimage.png"), "center", "is not a readable image"),
      (str(rgb), "center", "RGB .3 channel.s.. but the network"),
      (str(tmp_path / "empty"), "center", "holds no images"),
      (str(img), None, "fills holes; pass --mask"),
      (str(img), "nonsense", "neither a mask kind"),
  ]
  for input_path, mask, message in cases:
    with pytest.raises(UserError, match=message):
      repair.run(rconf, rdir, input_path, mask, str(out))
    assert not out.exists()
  out.mkdir()
  (out / "keep.txt").write_text("x")
  with pytest.raises(UserError, match="--overwrite"):
    repair.run(rconf, rdir, str(img), "center", str(out))
  assert [p.name for p in out.iterdir()] == ["keep.txt"]


def run_main(*args):
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
  return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], env=env, capture_output=True, text=True,
                        timeout=600, cwd=ROOT)


def test_main_bad_input_is_one_line_error_with_exit_code_2(trained, tmp_path):
  rconf, rdir, _ = trained["repair"]
  _png(tmp_path / "a.png", (20, 20))
  _png(tmp_path / "m.png", (10, 10), 255)
  r = run_main("--mode=repair", "--config", "configs/repair.py:smoke", "--workdir", str(rdir), "--input",
               str(tmp_path / "a.png"), "--mask", str(tmp_path / "m.png"), "--output", str(tmp_path / "out"))
  assert r.returncode == 2, r.stderr
  assert r.stderr.strip().splitlines()[-1].startswith("error: --mask") and "size of the image" in r.stderr
  assert not (tmp_path / "out").exists()
  r = run_main("--mode=enhance", "--config", "configs/repair.py:smoke", "--workdir", str(rdir), "--input",
               str(tmp_path / "a.png"), "--output", str(tmp_path / "out"))
  assert r.returncode == 2 and "--mode=enhance does not apply to a repair config" in r.stderr
  assert not (tmp_path / "out").exists()
