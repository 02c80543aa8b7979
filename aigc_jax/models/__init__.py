"""Generator and discriminator networks."""

import jax
import jax.numpy as jnp
import ml_collections

from aigc_jax.core.errors import UserError
from aigc_jax.models import cpu_convs, dcgan, sngan
from aigc_jax.models.conditioning import COND_MODES

MODELS = ("dcgan", "sngan", "biggan")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def num_classes(model_config) -> int:
  """Classes the networks are conditioned on; 0 for unconditional models."""
  return model_config.get("num_classes", 0) if model_config.get("cond_mode", "none") != "none" else 0


def create(model_config: ml_collections.ConfigDict, data_shape, bn_axis_name=None, conv_impl: str = "auto"):
  """Builds (generator, discriminator) for images of `data_shape` = (H, W, C).

  `conv_impl` (config.conv_impl, one of cpu_convs.IMPLS) chooses DCGAN's 4x4 / stride-2 convolutions
  for this process's backend and XLA:CPU threads (cpu_convs.select, which logs the choice once).
  """
  cpu_convs.check_impl(conv_impl)
  height, width, channels = data_shape
  if height != width or height not in dcgan.SUPPORTED_RESOLUTIONS:
    raise UserError(f"image size {height}x{width} is not supported by model '{model_config.name}'; "
                    f"use square images of {' or '.join(map(str, dcgan.SUPPORTED_RESOLUTIONS))} pixels")
  if channels not in (1, 3):
    raise UserError(f"images with {channels} channels are not supported; use 1 (grey) or 3 (RGB)")
  if model_config.name not in MODELS:
    raise UserError(f"unknown model '{model_config.name}'; available: {', '.join(MODELS)}")
  dtype_name = model_config.get("dtype", "float32")
  if dtype_name not in DTYPES:
    raise UserError(f"config.model.dtype='{dtype_name}' is not one of {', '.join(DTYPES)}")
  dtype = DTYPES[dtype_name]
  cond_mode = model_config.get("cond_mode", "none")
  if cond_mode not in COND_MODES:
    raise UserError(f"config.model.cond_mode='{cond_mode}' is not one of {', '.join(COND_MODES)}")
  classes = num_classes(model_config)
  if cond_mode != "none" and classes < 2:
    raise UserError(f"config.model.num_classes={classes} must be at least 2 for cond_mode '{cond_mode}'")
  if model_config.name == "dcgan":
    convs = cpu_convs.select(conv_impl, jax.default_backend(), cpu_convs.xla_cpu_threads())
    g = dcgan.Generator(resolution=height, channels=channels, features=model_config.g_features,
                        bn_axis_name=bn_axis_name, conv_transpose=convs.conv_transpose, dtype=dtype,
                        num_classes=classes, embed_dim=model_config.get("class_embed_dim", 0))
    d = dcgan.Discriminator(resolution=height, channels=channels, features=model_config.d_features,
                            bn_axis_name=bn_axis_name, conv=convs.conv, dtype=dtype, num_classes=classes,
                            cond_mode=cond_mode)
    return g, d
  big = model_config.name == "biggan"
  attention_res = model_config.get("attention_res", 0)
  if attention_res and attention_res not in (8, 16, 32) or attention_res >= height:
    raise UserError(f"config.model.attention_res={attention_res} must be 0 (none) or 8, 16 or 32 and below "
                    f"the image size {height}")
  g = sngan.Generator(resolution=height, channels=channels, features=model_config.g_features, num_classes=classes,
                      shared_dim=model_config.get("shared_dim", 128) if big and classes else 0,
                      hierarchical_z=big, attention_res=attention_res, spectral_norm=big,
                      bn_axis_name=bn_axis_name, dtype=dtype)
  d = sngan.Discriminator(resolution=height, channels=channels, features=model_config.d_features,
                          num_classes=classes, cond_mode=cond_mode, attention_res=attention_res,
                          spectral_norm=model_config.get("spectral_norm", True), dtype=dtype)
  return g, d
