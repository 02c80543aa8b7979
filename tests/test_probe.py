"""--mode=probe: linear probes on pixels, a random and a trained discriminator's pooled features."""

import json

import numpy as np
import pytest
from helpers import smoke_config

from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError
from aigc_jax.models.dcgan import Discriminator
from aigc_jax.tasks.gan import probe, train


@pytest.fixture(scope="module")
def gan_workdir(tmp_path_factory):
  """A smoke GAN checkpoint (initial weights: the probe only needs a discriminator to read)."""
  w = tmp_path_factory.mktemp("probe")
  config = smoke_config()
  ckpt = Checkpoints(w / "checkpoints")
  ckpt.save(0, train.build_state(config).arrays, config, force=True)
  ckpt.close()
  return w


def probe_config(**overrides):
  return smoke_config(**{"probe.train_split": "train[:500]", "probe.test_split": "train[1500:]", "probe.pool": 2,
                         "probe.cs": "0.1,1", **overrides})


def test_pooled_features_shape_and_max_pool(gan_workdir):
  config = smoke_config()
  state = train.build_state(config)
  images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 1), dtype=np.uint8)
  feats = probe.discriminator_features(state, images, pool=2, batch_size=4)
  f = config.model.d_features
  assert feats.shape == (5, 4 * (f + 2 * f + 4 * f))
  _, layers = Discriminator(32, 1, f).apply({"params": state.d_params, "batch_stats": state.d_stats},
                                             images.astype(np.float32) / 127.5 - 1.0, train=False,
                                             return_features=True)
  first = np.asarray(layers[0])  # 16x16xf max-pooled to 2x2: the max over each 8x8 quadrant
  np.testing.assert_allclose(feats[:, :f], first[:, :8, :8].max(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_linear_probe_picks_c_on_validation():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 3, 300)
  x = rng.normal(size=(300, 5)) + 3 * np.eye(3, 5)[y]
  r = probe.linear_probe(x[:200], y[:200], x[200:], y[200:], [1e-4, 1.0], 0.25)
  assert r["c"] == 1.0 and r["test_accuracy"] > 0.9 and r["dim"] == 5


def test_probe_on_digits(gan_workdir, tmp_path, capsys):
  result = probe.run(probe_config(), str(gan_workdir), output=str(tmp_path / "p.json"))
  out = capsys.readouterr().out.strip().splitlines()
  assert json.loads(out[-1]) == result == json.loads((tmp_path / "p.json").read_text())
  assert any(line.startswith("pixels") for line in out) and any(line.startswith("trained_d") for line in out)
  assert result["train_examples"] == 500 and result["test_examples"] == 297
  assert result["pixels"]["test_accuracy"] > 0.8  # chance is 0.1
  for name in ("random_d", "trained_d"):
    assert 0.3 < result[name]["test_accuracy"] <= 1 and result[name]["dim"] == 4 * 7 * 8


@pytest.mark.parametrize("overrides, match", [
    ({"probe.cs": "0.1,x"}, "config.probe.cs='0.1,x'"),
    ({"probe.val_fraction": 1.0}, r"val_fraction=1.0 must be in \(0, 1\)"),
    ({"probe.train_split": "test"}, "has one split, 'train'"),
])
def test_probe_bad_config(gan_workdir, overrides, match):
  with pytest.raises(UserError, match=match):
    probe.run(probe_config(**overrides), str(gan_workdir))


def test_probe_needs_labels_and_a_checkpoint(gan_workdir, tmp_path):
  np.savez(tmp_path / "u.npz", images=np.zeros((50, 32, 32, 1), np.uint8))
  config = probe_config(**{"data.source": "files", "data.path": str(tmp_path / "u.npz")})
  with pytest.raises(UserError, match="has no labels"):
    probe.run(config, str(gan_workdir))
  with pytest.raises(UserError, match="no checkpoint in"):
    probe.run(probe_config(), str(tmp_path / "empty"))
