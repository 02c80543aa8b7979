"""The GAN's train state: both networks, their optimizers and statistics, EMA; built and loaded here.

`build_state` makes the initial state of a config (deterministic in config.seed); `load_state` is
the one loader of trained GANs (sampling, evaluation, the probe, exploration, inversion).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from aigc_jax import models
from aigc_jax.core import checkpoint, files, optim
from aigc_jax.core.errors import UserError
from aigc_jax.core.state import Checkpointed, initialise
from aigc_jax.tasks.gan import ada as ada_lib

# What a resume key meant before it was added to the config (configs/default.py; a test keeps them equal).
RESUME_DEFAULTS = {
    "seed": 0, "data.channels": 3, "data.resolution": 32, "model.name": "dcgan", "model.z_dim": 100,
    "model.g_features": 64, "model.d_features": 64, "model.cond_mode": "none", "model.num_classes": 10,
    "model.class_embed_dim": 0,
    "model.spectral_norm": True, "model.attention_res": 0, "model.shared_dim": 128, "model.dtype": "float32",
    "optim.grad_clip": 0.0, "optim.schedule": "constant", "train.ema_decay": 0.0, "augment.ada_target": 0.0}
CHECKPOINTS = ("latest", "best")


class GANState(Checkpointed, struct.PyTreeNode):
  """Everything a step reads and writes. Arrays are pytree leaves; networks and optimizers are static."""

  step: jax.Array
  rng: jax.Array  # base key; step s uses fold_in(rng, s), so no key is carried forward.
  g_params: Any
  g_stats: Any
  d_params: Any
  d_stats: Any
  g_opt: Any
  d_opt: Any
  generator: nn.Module = struct.field(pytree_node=False)
  discriminator: nn.Module = struct.field(pytree_node=False)
  g_tx: optax.GradientTransformation = struct.field(pytree_node=False)
  d_tx: optax.GradientTransformation = struct.field(pytree_node=False)
  z_dim: int = struct.field(pytree_node=False, default=100)
  num_classes: int = struct.field(pytree_node=False, default=0)  # > 0: G and D take labels
  ema_params: Any = None  # moving average of g_params; None when train.ema_decay is 0
  ada: Any = None  # ADA's augmentation probability and sign statistics (ada.py); None when augment.ada_target is 0

  ARRAYS = ("step", "rng", "g_params", "g_stats", "d_params", "d_stats", "g_opt", "d_opt", "ema_params", "ada")


def label_kw(labels):
  return {} if labels is None else {"labels": labels}


def create_state(rng, generator, discriminator, g_tx, d_tx, *, z_dim, image_shape, num_classes: int = 0,
                 ema: bool = False, ada: bool = False) -> GANState:
  """Initialises both networks and their optimizers (on the host's default device)."""
  init_rng, g_rng, d_rng = jax.random.split(rng, 3)
  labels = jnp.zeros((2,), jnp.int32) if num_classes else None
  g_vars = generator.init(g_rng, jnp.zeros((2, z_dim)), train=False, **label_kw(labels))
  d_vars = discriminator.init(d_rng, jnp.zeros((2, *image_shape)), train=False, **label_kw(labels))
  return GANState(
      step=jnp.zeros((), jnp.int32), rng=init_rng,
      g_params=g_vars["params"], g_stats=g_vars.get("batch_stats", {}),
      d_params=d_vars["params"], d_stats=d_vars.get("batch_stats", {}),
      g_opt=g_tx.init(g_vars["params"]), d_opt=d_tx.init(d_vars["params"]),
      generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx, z_dim=z_dim,
      num_classes=num_classes, ema_params=jax.tree.map(jnp.copy, g_vars["params"]) if ema else None,
      ada=ada_lib.init() if ada else None)


def build_state(config: ml_collections.ConfigDict, bn_axis_name=None) -> GANState:
  """The initial host-side state for `config` (deterministic in config.seed)."""
  shape = (config.data.resolution, config.data.resolution, config.data.channels)
  generator, discriminator = models.create(config.model, shape, bn_axis_name=bn_axis_name,
                                           conv_impl=config.get("conv_impl", "auto"))
  g_tx = optim.make_optimizer(config.optim, config.optim.g_lr, config.train.num_steps)
  d_tx = optim.make_optimizer(config.optim, config.optim.d_lr, config.train.num_steps)
  return initialise(create_state, config.seed, generator, discriminator, g_tx, d_tx, z_dim=config.model.z_dim,
                    image_shape=shape, num_classes=models.num_classes(config.model),
                    ema=config.train.get("ema_decay", 0.0) > 0,
                    ada=config.get("augment", {}).get("ada_target", 0.0) > 0)


def load_state(config, workdir, checkpoint_name: str = "latest") -> tuple[GANState, int]:
  """(state, step) of WORKDIR/checkpoints (latest) or WORKDIR/best, built for single-device use."""
  if checkpoint_name not in CHECKPOINTS:
    raise UserError(f"--checkpoint={checkpoint_name} is not one of {', '.join(CHECKPOINTS)}")
  directory = files.path(workdir) / ("checkpoints" if checkpoint_name == "latest" else "best")
  hint = ("train first with --mode=train" if checkpoint_name == "latest"
          else "train with --config.eval.every=N to keep a best-FID checkpoint")
  return checkpoint.restore_latest(directory, build_state(config), config, defaults=RESUME_DEFAULTS, missing=hint)
