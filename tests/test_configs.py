"""Every preset of every config file builds a valid config; the BigGAN smoke preset trains; the published
CIFAR-10 recipes stay as published."""

import jax
import pytest
from helpers import with_overrides

from aigc_jax import models
from aigc_jax.tasks.gan import train
from configs import biggan, classifier, dcgan, enhance, repair, sngan

GAN_CONFIGS = (dcgan, sngan, biggan)
ALL_PRESETS = [(m, p) for m in (*GAN_CONFIGS, classifier, repair, enhance) for p in m.PRESETS]


@pytest.mark.parametrize("module,preset", ALL_PRESETS, ids=[f"{m.__name__}:{p}" for m, p in ALL_PRESETS])
def test_every_preset_builds(module, preset):
  config = module.get_config(preset)
  assert config.seed == 0 and config.train.num_steps > 0
  if module in GAN_CONFIGS:
    train.validate(config, 1)
    shape = (config.data.resolution, config.data.resolution, config.data.channels)
    models.create(config.model, shape)


@pytest.mark.parametrize("module", (dcgan, sngan, biggan, classifier, repair, enhance))
def test_unknown_preset_names_the_file_and_the_presets(module):
  with pytest.raises(ValueError, match=f"unknown preset 'nope' for configs/{module.__name__.split('.')[-1]}.py; "
                                       f"use one of {', '.join(module.PRESETS)}"):
    module.get_config("nope")


def test_biggan_presets_left_sngan_with_a_pointer():
  with pytest.raises(ValueError, match="preset 'biggan' of configs/sngan.py moved to configs/biggan.py:cifar10"):
    sngan.get_config("biggan")
  with pytest.raises(ValueError, match="moved to configs/biggan.py:digits"):
    sngan.get_config("digits_biggan")


def test_published_cifar10_recipes():
  s = sngan.get_config("cifar10")  # Miyato et al. 2018, CIFAR-10 ResNet
  assert (s.model.name, s.train.loss, s.train.d_steps, s.train.batch_size, s.train.num_steps) == \
      ("sngan", "hinge", 5, 64, 50_000)
  assert (s.optim.g_lr, s.optim.d_lr, s.optim.b1, s.optim.b2) == (2e-4, 2e-4, 0.0, 0.9)
  assert (4 * s.model.g_features, 2 * s.model.d_features) == (256, 128)  # models/sngan.py widths at 32x32
  b = biggan.get_config()  # BigGAN-PyTorch scripts/launch_cifar_ema.sh
  assert (b.model.name, b.model.cond_mode, b.train.loss, b.train.d_steps, b.train.batch_size) == \
      ("biggan", "projection", "hinge", 4, 50)
  assert (b.optim.g_lr, b.optim.d_lr, b.optim.b1, b.optim.b2) == (2e-4, 2e-4, 0.0, 0.999)
  assert (b.train.ema_decay, b.train.ema_start, b.train.ortho_weight) == (0.9999, 1000, 1e-4)
  assert (4 * b.model.g_features, 2 * b.model.d_features, b.model.z_dim, b.model.shared_dim) == (256, 256, 128, 128)
  assert b.model.attention_res == 16 and b.data.name == "cifar10"


def test_mnist_presets_hold_out_the_classifier_test_images():
  for module in (sngan, biggan):
    config = module.get_config("mnist")
    assert (config.data.source, config.data.split) == ("files", "train[:8000]")
    assert classifier.get_config("mnist").data.test_split == "train[8000:]"
    assert module.get_config("files").data.split == "train"


def test_biggan_smoke_trains(tmp_path):
  config = biggan.get_config("smoke")
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == config.train.num_steps
  assert state.num_classes == 10 and state.ema_params is not None
  assert "shared_embed" in state.g_params and all(jax.numpy.isfinite(x).all() for x in jax.tree.leaves(state.g_params))
  assert (tmp_path / "checkpoints" / str(config.train.num_steps)).exists()


def test_with_overrides_sets_dotted_keys():
  config = with_overrides(sngan.get_config("smoke"), **{"model.g_features": 4, "seed": 3})
  assert (config.model.g_features, config.seed) == (4, 3)
