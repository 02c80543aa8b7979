import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_equal

from aigc_jax import models
from aigc_jax.core.errors import UserError
from aigc_jax.models import dcgan
from configs import dcgan as dcgan_config


@pytest.mark.parametrize("resolution,channels", [(32, 1), (32, 3), (64, 3), (64, 1)])
def test_shapes_and_ranges(resolution, channels):
  cfg = dcgan_config.get_config("smoke").model
  g, d = models.create(cfg, (resolution, resolution, channels))
  z = jax.random.normal(jax.random.PRNGKey(0), (3, cfg.z_dim))
  gv = g.init(jax.random.PRNGKey(1), z, train=False)
  images = g.apply(gv, z, train=False)
  assert images.shape == (3, resolution, resolution, channels)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  dv = d.init(jax.random.PRNGKey(2), images, train=False)
  assert d.apply(dv, images, train=False).shape == (3,)


def test_dcgan_initialisation():
  g = dcgan.Generator(resolution=64, channels=3, features=64)
  params = g.init(jax.random.PRNGKey(0), jnp.zeros((1, 100)), train=False)["params"]
  kernel = np.asarray(params["up2"]["kernel"])
  assert abs(kernel.std() - 0.02) < 0.001 and abs(kernel.mean()) < 0.001
  scale = np.asarray(params["bn1"]["scale"])
  assert abs(scale.mean() - 1.0) < 0.01 and 0.01 < scale.std() < 0.03
  # The seed setting: z=100 -> 64x64x3 through 4x4x512, 8x8x256, 16x16x128, 32x32x64.
  assert params["project"]["kernel"].shape == (100, 4 * 4 * 512)
  assert params["up4"]["kernel"].shape[-1] == 3


def test_batchnorm_axis_name_is_a_field():
  g, d = models.create(dcgan_config.get_config("smoke").model, (32, 32, 1), bn_axis_name="batch")
  assert g.bn_axis_name == "batch" and d.bn_axis_name == "batch"
  # Outside a pmap the named axis does not exist: the field really reaches BatchNorm.
  variables = g.init(jax.random.PRNGKey(0), jnp.zeros((2, 100)), train=False)
  with pytest.raises(NameError, match="batch"):
    g.apply(variables, jnp.zeros((2, 100)), train=True, mutable=["batch_stats"])


@pytest.mark.parametrize("shape,match", [((48, 48, 3), "48x48 is not supported"), ((32, 32, 2), "2 channels")])
def test_unsupported_shapes(shape, match):
  with pytest.raises(UserError, match=match):
    models.create(dcgan_config.get_config("smoke").model, shape)


def test_conv_impl_changes_the_computation_not_the_parameters():
  """Plain Flax by default (nn.Conv / nn.ConvTranspose fields); the CPU forms that conv_impl picks
  keep the parameter trees and values, and the outputs to float rounding."""
  assert (dcgan.Generator().conv_transpose, dcgan.Discriminator().conv) == (nn.ConvTranspose, nn.Conv)
  cfg = dcgan_config.get_config("smoke").model
  z = jax.random.normal(jax.random.PRNGKey(0), (3, cfg.z_dim))
  images, variables = {}, {}
  for impl in ("xla", "cpu"):
    g, d = models.create(cfg, (32, 32, 1), conv_impl=impl)
    gv = g.init(jax.random.PRNGKey(1), z, train=False)
    images[impl] = g.apply(gv, z, train=False)
    dv = d.init(jax.random.PRNGKey(2), images[impl], train=False)
    variables[impl] = (gv, dv, d.apply(dv, images[impl], train=False))
  assert_trees_equal(variables["xla"][:2], variables["cpu"][:2])
  np.testing.assert_allclose(images["cpu"], images["xla"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(variables["cpu"][2], variables["xla"][2], rtol=1e-4, atol=1e-5)
