"""The FID Inception-v3: port checked against Keras' InceptionV3, weight loader, resize, extractor, bad input."""

import collections
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch_files

from aigc_jax.core.errors import UserError
from aigc_jax.metrics import inception as inc
from aigc_jax.models import inception as model_lib

DATA = Path(__file__).parent / "data"

# torchvision's Inception3 (aux_logits=False), in state-dict order: the names pytorch-fid's weight file uses.
_STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
_BRANCHES = {
    "A": ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3",
          "branch_pool"],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
          "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"],
    "D": ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"],
    "E": ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
}
_MIXED = [("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"), ("Mixed_6b", "C"),
          ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"), ("Mixed_7a", "D"), ("Mixed_7b", "E"),
          ("Mixed_7c", "E")]
CONVS = _STEM + [f"{block}.{branch}" for block, kind in _MIXED for branch in _BRANCHES[kind]]
TORCH_KEYS = [f"{c}.{part}" for c in CONVS for part in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                                        "bn.running_var")] + ["fc.weight", "fc.bias"]
# A few shapes straight from torchvision's definition, independent of the Flax module.
ANCHOR_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_3.conv.weight": (192, 192, 7, 1),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch_pool.bn.running_var": (192,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def _random_leaf(rng, collection, path, shape):
  leaf = path[-1]
  if leaf == "kernel":
    return (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))).astype(np.float32)
  if leaf == "scale":
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  if leaf == "var":
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)
  return rng.uniform(-0.2, 0.2, shape).astype(np.float32)  # bias, mean


def random_variables(seed=0, unit_scale=False):
  """Random Flax variables of the whole network; `unit_scale` sets BN gammas to 1 (Keras' BN has none)."""
  rng = np.random.default_rng(seed)
  variables = {}
  for (collection, path), shape in inc.variable_shapes().items():
    value = _random_leaf(rng, collection, path, shape)
    if unit_scale and path[-1] == "scale":
      value = np.ones_like(value)
    node = variables.setdefault(collection, {})
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = value
  return variables


def to_state_dict(variables):
  """The pytorch-fid state dict (torch layouts) holding `variables`."""
  state = collections.OrderedDict()
  for (collection, path), _ in inc.variable_shapes().items():
    value = variables[collection]
    for name in path:
      value = value[name]
    if value.ndim == 4:
      value = value.transpose(3, 2, 0, 1)
    elif value.ndim == 2:
      value = value.T
    state[inc.torch_key(collection, path)] = np.ascontiguousarray(value)
  return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
  """(path, flax variables) of a full-size synthetic weight file in torch.save's zip format."""
  variables = random_variables(seed=1)
  state = to_state_dict(variables)
  for conv in CONVS:  # as torch >= 0.4.1 saves them; the loader must skip them
    state[f"{conv}.bn.num_batches_tracked"] = np.array(0, np.int64)
  path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-synthetic.pth"
  torch_files.save_zip(path, state, archive_name="pt_inception-2015-12-05-synthetic")
  return str(path), variables


# ---------------------------------------------------------------------------------------------
# Architecture and weight names


def test_expected_keys_and_shapes_are_torchvisions():
  shapes = {inc.torch_key(c, p): inc._torch_shape(s) for (c, p), s in inc.variable_shapes().items()}
  assert sorted(shapes) == sorted(TORCH_KEYS)
  assert len(CONVS) == 94
  for key, shape in ANCHOR_SHAPES.items():
    assert shapes[key] == shape, key
  # torchvision's inception_v3 has 27,161,264 parameters; without AuxLogits and with 1008 classes, 23,850,960.
  params = sum(np.prod(s) for (c, _), s in inc.variable_shapes().items() if c == "params")
  assert params == 23_850_960


# ---------------------------------------------------------------------------------------------
# Reading torch.save files


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reads_files_written_by_torch(fmt):
  """Fixtures written by torch 2.13 (tests/data/make_torch_files.py): dtypes, shared storages, views, Parameter."""
  expected = np.load(DATA / "torch_saved_expected.npz")
  state = inc.read_torch_file(str(DATA / f"torch_saved_{fmt}.pth"))
  assert list(state) == list(expected.files)
  for key in expected.files:
    assert state[key].dtype == expected[key].dtype, key
    np.testing.assert_array_equal(state[key], expected[key], err_msg=key)
  assert state["half"].dtype == np.float16 and state["transposed"].shape == (4, 3)


@pytest.mark.parametrize("save", [torch_files.save_zip, torch_files.save_legacy])
def test_reads_synthetic_files(tmp_path, save):
  rng = np.random.default_rng(0)
  flat = rng.standard_normal(12).astype(np.float32)
  arrays = {"w": rng.standard_normal((2, 3, 5, 5)).astype(np.float32), "n": np.array(7, np.int64),
            "t": torch_files.Tensor(flat, 0, (4, 3), (1, 4)), "s": torch_files.Tensor(flat, 4, (4,), (1,))}
  save(tmp_path / "f.pth", arrays)
  state = inc.read_torch_file(str(tmp_path / "f.pth"))
  np.testing.assert_array_equal(state["w"], arrays["w"])
  assert state["n"].dtype == np.int64 and state["n"] == 7
  np.testing.assert_array_equal(state["t"], flat.reshape(3, 4).T)
  np.testing.assert_array_equal(state["s"], flat[4:8])


class _Evil:
  def __reduce__(self):
    return (os.system, ("echo pwned > /dev/null",))


def test_reader_refuses_other_globals(tmp_path):
  with zipfile.ZipFile(tmp_path / "evil.pth", "w") as zf:
    zf.writestr("archive/data.pkl", pickle.dumps({"x": _Evil()}, protocol=2))
  with pytest.raises(UserError, match=r"refusing to load 'posix\.system'|refusing to load 'os\.system'"):
    inc.read_torch_file(str(tmp_path / "evil.pth"))


def test_reader_rejects_non_torch_files(tmp_path):
  (tmp_path / "notes.pth").write_text("not a checkpoint\n")
  with pytest.raises(UserError, match="notes.pth: not a"):
    inc.read_torch_file(str(tmp_path / "notes.pth"))
  torch_files.save_zip(tmp_path / "cut.pth", {"w": np.ones((4, 4), np.float32)})
  with zipfile.ZipFile(tmp_path / "cut.pth") as src, zipfile.ZipFile(tmp_path / "cut2.pth", "w") as dst:
    for item in src.namelist():
      if "/data/" not in item:
        dst.writestr(item, src.read(item))
  with pytest.raises(UserError, match="lacks"):
    inc.read_torch_file(str(tmp_path / "cut2.pth"))
  torch_files.save_legacy(tmp_path / "legacy.pth", {"w": np.ones((4, 4), np.float32)})
  data = (tmp_path / "legacy.pth").read_bytes()
  (tmp_path / "short.pth").write_bytes(data[:-10])
  with pytest.raises(UserError, match="short.pth: legacy torch file is truncated"):
    inc.read_torch_file(str(tmp_path / "short.pth"))


# ---------------------------------------------------------------------------------------------
# Loading the FID weights


def test_loads_full_weight_file(weights):
  path, variables = weights
  loaded = inc.load_fid_inception(path)
  assert jax.tree.structure(loaded) == jax.tree.structure(variables)
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(variables)):
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_loads_legacy_format(tmp_path):
  variables = random_variables(seed=2)
  torch_files.save_legacy(tmp_path / "legacy.pth", to_state_dict(variables))
  loaded = inc.load_fid_inception(str(tmp_path / "legacy.pth"))
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)


def test_missing_weight_file_says_where_to_get_it(tmp_path):
  with pytest.raises(UserError, match="does not exist; download it from https://github.com/mseitzer/pytorch-fid/"
                                      "releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"):
    inc.InceptionExtractor(str(tmp_path / "nope.pth"))
  with pytest.raises(UserError, match="config.eval.inception_weights"):
    inc.load_fid_inception("")


def test_benchmark_command_reports_missing_weights(tmp_path):
  """On the command line a missing file is one `error:` line and exit code 2, not a traceback."""
  root = Path(__file__).resolve().parents[1]
  result = subprocess.run([sys.executable, "-m", "benchmarks.speed.inception", "--weights",
                           str(tmp_path / "pt_inception.pth"), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=300, cwd=root, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "pt_inception.pth does not exist; download it from https://" in errors[0]
  assert "Traceback" not in result.stderr
  assert list(tmp_path.iterdir()) == []


def test_bad_state_dicts_name_the_key():
  state = to_state_dict(random_variables(seed=3))
  bad = dict(state)
  del bad["Mixed_6c.branch7x7_2.conv.weight"]
  with pytest.raises(UserError, match=r"missing 1 .*Mixed_6c\.branch7x7_2\.conv\.weight"):
    inc.params_from_state_dict(bad)
  bad = dict(state, **{"AuxLogits.fc.weight": np.zeros((1000, 768), np.float32)})
  with pytest.raises(UserError, match=r"unexpected keys AuxLogits\.fc\.weight"):
    inc.params_from_state_dict(bad)
  bad = dict(state, **{"fc.weight": np.zeros((1000, 2048), np.float32)})
  with pytest.raises(UserError, match=r"fc\.weight has shape \(1000, 2048\), the FID Inception needs \(1008, 2048\)"):
    inc.params_from_state_dict(bad)
  bad = dict(state, **{"Mixed_5b.branch1x1.bn.running_var": np.full(64, np.nan, np.float32)})
  with pytest.raises(UserError, match="running_var contains NaN"):
    inc.params_from_state_dict(bad)
  with pytest.raises(UserError, match="expected a state dict"):
    inc.params_from_state_dict([1, 2])


# ---------------------------------------------------------------------------------------------
# Numerical check of the port


def _keras_layers(model, cls):
  """The model's layers of type `cls` in creation order (Keras numbers auto-named layers as it makes them)."""
  def uid(layer):
    suffix = layer.name.rsplit("_", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0
  return sorted((l for l in model.layers if isinstance(l, cls)), key=uid)


def test_matches_keras_inception_v3():
  """Identical random weights in Keras' InceptionV3 and the port give the same blocks and logits.

  Keras' BatchNorm has no scale, so gammas are 1 here, and its last block pools by averaging, so the
  port runs with last_pool='avg'; test_fid_pool_branches checks both differences on their own. Keras'
  'same' average pooling leaves padding out of the count, as the FID graph does (torchvision does not).
  At 139x139 the Mixed_7 blocks are 3x3, so every pool still sees the image border.
  """
  keras = pytest.importorskip("keras")
  size = 139
  variables = random_variables(seed=4, unit_scale=True)
  model = keras.applications.InceptionV3(weights=None, include_top=True, input_shape=(size, size, 3),
                                         classes=1008, classifier_activation=None)
  convs = _keras_layers(model, keras.layers.Conv2D)
  bns = _keras_layers(model, keras.layers.BatchNormalization)
  assert len(convs) == len(bns) == len(CONVS)
  for name, conv, bn in zip(CONVS, convs, bns):
    params, stats = variables["params"], variables["batch_stats"]
    for part in name.split("."):
      params, stats = params[part], stats[part]
    assert conv.kernel.shape == params["conv"]["kernel"].shape, name
    assert not bn.scale and bn.epsilon == 1e-3
    conv.set_weights([params["conv"]["kernel"]])
    bn.set_weights([params["bn"]["bias"], stats["bn"]["mean"], stats["bn"]["var"]])
  model.get_layer("predictions").set_weights([variables["params"]["fc"]["kernel"],
                                              variables["params"]["fc"]["bias"]])
  mixed = [f"mixed{i}" for i in range(11)]
  probe = keras.Model(model.inputs, [model.get_layer(n).output for n in mixed] +
                      [model.get_layer("avg_pool").output, model.output])
  x = np.random.default_rng(5).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  want = [np.asarray(y) for y in probe([x], training=False)]

  net = model_lib.FIDInceptionV3(last_pool="avg")
  (features, logits), state = jax.jit(lambda v, x: net.apply(v, x, mutable=["intermediates"]))(variables, x)
  got = [state["intermediates"][f"{block}_out"][0] for block, _ in _MIXED] + [features, logits]
  for name, a, b in zip(mixed + ["features", "logits"], got, want):
    assert a.shape == b.shape, name
    err = np.abs(np.asarray(a) - b).max() / np.abs(b).max()
    assert err < 1e-4, (name, err)


def _np_pool(x, kind):
  """3x3 stride-1 pool with 1-pixel padding: max over -inf padding, or mean over in-image pixels only."""
  n, h, w, c = x.shape
  fill = -np.inf if kind == "max" else np.nan
  padded = np.full((n, h + 2, w + 2, c), fill, x.dtype)
  padded[:, 1:-1, 1:-1] = x
  windows = np.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)])
  return windows.max(0) if kind == "max" else np.nanmean(windows, 0)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_fid_pool_branches(pool):
  """Mixed_7c's max pool and the BN scale (both absent from Keras' network), checked against numpy.

  The pool branch is the last 192 channels; the other 1856 do not depend on the pool.
  """
  rng = np.random.default_rng(6)
  x = rng.standard_normal((2, 5, 4, 24)).astype(np.float32)
  block = model_lib.InceptionE(pool=pool)
  shapes = jax.eval_shape(block.init, jax.random.key(0), x)
  variables = jax.tree_util.tree_map_with_path(
      lambda p, s: _random_leaf(rng, p[0].key, tuple(k.key for k in p[1:]), s.shape), shapes)
  out = np.asarray(jax.jit(block.apply)(variables, x))
  other = np.asarray(jax.jit(model_lib.InceptionE(pool="avg" if pool == "max" else "max").apply)(variables, x))
  np.testing.assert_allclose(out[..., :-192], other[..., :-192], rtol=1e-6, atol=1e-6)
  params, stats = variables["params"]["branch_pool"], variables["batch_stats"]["branch_pool"]
  y = np.einsum("nhwc,cd->nhwd", _np_pool(x, pool), params["conv"]["kernel"][0, 0])
  y = (y - stats["bn"]["mean"]) / np.sqrt(stats["bn"]["var"] + 1e-3) * params["bn"]["scale"] + params["bn"]["bias"]
  np.testing.assert_allclose(out[..., -192:], np.maximum(y, 0), rtol=1e-5, atol=1e-5)
  assert np.abs(out[..., -192:] - other[..., -192:]).max() > 1e-2  # the two pools really differ here


# ---------------------------------------------------------------------------------------------
# Resizing and the extractor


def _torch_bilinear(x, out_h, out_w):
  """torch's upsample_bilinear2d, align_corners=False, for a [H, W] array, written from its C++ source.

  Source positions are computed in float32 as torch does; that rounding matters when shrinking large images.
  """
  def taps(n_in, n_out):
    scale = np.float32(n_in / n_out)
    src = np.maximum(scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
    i0 = src.astype(int)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, (src - i0).astype(np.float64)
  h0, h1, lh = taps(x.shape[0], out_h)
  w0, w1, lw = taps(x.shape[1], out_w)
  rows = x[h0] * (1 - lh)[:, None] + x[h1] * lh[:, None]
  return rows[:, w0] * (1 - lw) + rows[:, w1] * lw


@pytest.mark.parametrize("src,dst", [((7, 5), (13, 11)), ((37, 29), (13, 8)), ((32, 32), (299, 299)),
                                     ((512, 300), (299, 299))])
def test_resize_is_torch_bilinear(src, dst):
  """Upsampling and shrinking without antialiasing (jax.image.resize's default filter differs by up to 0.6 here)."""
  x = np.random.default_rng(7).uniform(0, 1, src).astype(np.float32)
  got = np.asarray(inc.resize_bilinear(jnp.asarray(x)[None, :, :, None], *dst))[0, :, :, 0]
  want = _torch_bilinear(x.astype(np.float64), *dst)
  np.testing.assert_allclose(got, want, atol=1e-5)
  if src[0] > dst[0]:  # the reason for antialias=False
    default = np.asarray(jax.image.resize(jnp.asarray(x), dst, "bilinear"))
    assert np.abs(default - want).max() > 0.1


def test_preprocess_is_pytorch_fids():
  """[0, 255] -> [0, 1], torch-bilinear resize to 299x299, then [-1, 1]; grey repeated over RGB."""
  images = np.random.default_rng(9).integers(0, 256, (2, 20, 24, 1), dtype=np.uint8)
  got = np.asarray(inc.preprocess(jnp.asarray(images)))
  assert got.shape == (2, 299, 299, 3) and got.dtype == np.float32
  for n in range(2):
    want = _torch_bilinear(images[n, :, :, 0] / 255.0, 299, 299) * 2 - 1
    for c in range(3):
      np.testing.assert_allclose(got[n, :, :, c], want, atol=2e-5)
  assert got.min() >= -1 and got.max() <= 1


def test_extractor(weights):
  """Batching with a padded last batch, grey images as RGB, and the fc head, on the synthetic weight file."""
  path, variables = weights
  extractor = inc.InceptionExtractor(path, batch_size=2)
  assert len(extractor.devices) == 1  # 2 images do not split over the 4 test devices
  assert (extractor.feature_dim, extractor.num_classes) == (2048, 1008) and "2015-12-05" in extractor.name
  # The name keys cached real statistics: the same weights give the same name, other weights another.
  assert inc.InceptionExtractor.from_variables(variables, batch_size=2).name == extractor.name
  assert inc.InceptionExtractor.from_variables(random_variables(seed=2), batch_size=2).name != extractor.name
  grey = np.random.default_rng(8).integers(0, 256, (5, 32, 32, 1), dtype=np.uint8)
  features, logits = extractor(grey)  # 3 batches, more than the extractor keeps in flight
  assert features.shape == (5, 2048) and logits.shape == (5, 1008)
  assert features.dtype == logits.dtype == np.float32 and np.all(np.isfinite(features))
  assert np.ptp(features, axis=0).max() > 0  # different images, different features
  fc = variables["params"]["fc"]
  np.testing.assert_allclose(logits, features @ fc["kernel"] + fc["bias"], rtol=1e-4, atol=1e-4)
  alone, _ = extractor(grey[4:])  # first in a padded batch instead of last
  np.testing.assert_allclose(alone, features[4:], rtol=1e-5, atol=1e-5)

  rgb_features, _ = extractor(np.repeat(grey[:2], 3, axis=-1))
  np.testing.assert_allclose(rgb_features, features[:2], rtol=1e-5, atol=1e-5)

  empty_f, empty_l = extractor(np.zeros((0, 32, 32, 3), np.uint8))
  assert empty_f.shape == (0, 2048) and empty_l.shape == (0, 1008)


def test_extractor_splits_batches_over_devices(weights):
  """With 4 devices (tests/conftest.py) and batch_size 4, each device takes one image; same features."""
  path, variables = weights
  images = np.random.default_rng(10).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  sharded = inc.InceptionExtractor.from_variables(variables, batch_size=4)
  assert len(sharded.devices) == jax.local_device_count() == 4
  single = inc.InceptionExtractor.from_variables(variables, batch_size=4, devices=jax.local_devices()[:1])
  got, got_logits = sharded(images)
  want, want_logits = single(images)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_logits, want_logits, rtol=1e-5, atol=1e-5)


def test_extractor_rejects_bad_images(weights):
  extractor = inc.InceptionExtractor(weights[0], batch_size=2)
  with pytest.raises(UserError, match="uint8"):
    extractor(np.zeros((2, 32, 32, 3), np.float32))
  with pytest.raises(UserError, match=r"C = 1 or 3, got shape \(2, 32, 32, 4\)"):
    extractor(np.zeros((2, 32, 32, 4), np.uint8))
  with pytest.raises(UserError, match=r"got shape \(32, 32, 3\)"):
    extractor(np.zeros((32, 32, 3), np.uint8))
  with pytest.raises(UserError, match=r"got shape \(2, 0, 32, 3\)"):
    extractor(np.zeros((2, 0, 32, 3), np.uint8))
  with pytest.raises(UserError, match="batch size must be a positive integer, got 0"):
    inc.InceptionExtractor(weights[0], batch_size=0)
