"""Generator and discriminator networks."""

import ml_collections

from aigc_jax.models import dcgan


def create(model_config: ml_collections.ConfigDict, data_shape, bn_axis_name=None):
  """Builds (generator, discriminator) for images of `data_shape` = (H, W, C)."""
  from aigc_jax.errors import UserError

  height, width, channels = data_shape
  if height != width or height not in dcgan.SUPPORTED_RESOLUTIONS:
    raise UserError(f"image size {height}x{width} is not supported by model '{model_config.name}'; "
                    f"use square images of {' or '.join(map(str, dcgan.SUPPORTED_RESOLUTIONS))} pixels")
  if channels not in (1, 3):
    raise UserError(f"images with {channels} channels are not supported; use 1 (grey) or 3 (RGB)")
  if model_config.name != "dcgan":
    raise UserError(f"unknown model '{model_config.name}'; available: dcgan")
  g = dcgan.Generator(resolution=height, channels=channels, features=model_config.g_features,
                      bn_axis_name=bn_axis_name, upconv_impl=model_config.upconv_impl)
  d = dcgan.Discriminator(resolution=height, channels=channels, features=model_config.d_features,
                          bn_axis_name=bn_axis_name, downconv_impl=model_config.get("downconv_impl", "auto"))
  return g, d
