"""The pure GAN train step: `state, batch -> state, metrics`.

One jitted function does a discriminator update on a real and a generated batch, then a
generator update against the updated discriminator. It neither knows nor cares whether it runs
under `jax.pmap` (pass the pmap `axis_name`: gradients, metrics and BatchNorm statistics are
averaged over it) or under `jax.jit` on a sharded global batch (`axis_name=None`).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from aigc_jax import losses


class GANState(struct.PyTreeNode):
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

  @property
  def arrays(self):
    """The checkpointed part of the state."""
    return {k: getattr(self, k) for k in ("step", "rng", "g_params", "g_stats", "d_params", "d_stats",
                                          "g_opt", "d_opt")}

  def with_arrays(self, arrays):
    return self.replace(**arrays)


def create_state(rng, generator, discriminator, g_tx, d_tx, *, z_dim, image_shape) -> GANState:
  """Initialises both networks and their optimizers (on the host's default device)."""
  init_rng, g_rng, d_rng = jax.random.split(rng, 3)
  g_vars = generator.init(g_rng, jnp.zeros((2, z_dim)), train=False)
  d_vars = discriminator.init(d_rng, jnp.zeros((2, *image_shape)), train=False)
  return GANState(
      step=jnp.zeros((), jnp.int32), rng=init_rng,
      g_params=g_vars["params"], g_stats=g_vars.get("batch_stats", {}),
      d_params=d_vars["params"], d_stats=d_vars.get("batch_stats", {}),
      g_opt=g_tx.init(g_vars["params"]), d_opt=d_tx.init(d_vars["params"]),
      generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx, z_dim=z_dim)


SCHEDULES = ("constant", "cosine", "linear")


def make_schedule(optim_config, lr: float, num_steps: int) -> optax.Schedule:
  """Constant, or warm-up then cosine or linear decay to 0 at num_steps."""
  warmup = optim_config.warmup_steps
  if optim_config.schedule == "constant":
    return optax.constant_schedule(lr)
  if optim_config.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1), max(num_steps, 2))
  if optim_config.schedule == "linear":
    return optax.join_schedules([optax.linear_schedule(0.0, lr, max(warmup, 1)),
                                 optax.linear_schedule(lr, 0.0, max(num_steps - warmup, 1))], [warmup])
  raise ValueError(f"unknown schedule '{optim_config.schedule}'; use one of {SCHEDULES}")


def make_optimizer(optim_config, lr: float, num_steps: int) -> optax.GradientTransformation:
  """Adam (b1=0.5 for GANs) with an optional schedule and global-norm gradient clipping."""
  adam = optax.adam(make_schedule(optim_config, lr, num_steps), b1=optim_config.b1, b2=optim_config.b2)
  if optim_config.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(optim_config.grad_clip), adam)
  return adam


def noise(rng, batch_size: int, z_dim: int, axis_name=None):
  """Latent batch for this device's share of the global batch.

  Under pmap every device draws the same global batch and keeps its slice, so the parallel step
  sees exactly the noise the single-device step would.
  """
  if axis_name is None:
    return jax.random.normal(rng, (batch_size, z_dim))
  n = jax.lax.axis_size(axis_name)
  z = jax.random.normal(rng, (batch_size * n, z_dim))
  return jax.lax.dynamic_slice_in_dim(z, jax.lax.axis_index(axis_name) * batch_size, batch_size)


def _mean(tree, axis_name):
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def generate(state: GANState, z, train: bool):
  """G(z); in train mode also returns G's updated BatchNorm statistics."""
  variables = {"params": state.g_params, "batch_stats": state.g_stats}
  if train:
    images, updates = state.generator.apply(variables, z, train=True, mutable=["batch_stats"])
    return images, updates["batch_stats"]
  return state.generator.apply(variables, z, train=False), state.g_stats


def discriminator_step(state: GANState, real, rng, axis_name=None):
  """Updates D (and its BatchNorm statistics) on a real batch and a batch from the current G."""
  d = state.discriminator
  fake, _ = generate(state, noise(rng, real.shape[0], state.z_dim, axis_name), train=True)
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(d_params):
    real_logits, upd = d.apply({"params": d_params, "batch_stats": state.d_stats}, real, mutable=["batch_stats"])
    fake_logits, upd = d.apply({"params": d_params, "batch_stats": upd["batch_stats"]}, fake,
                               mutable=["batch_stats"])
    return losses.discriminator_loss(real_logits, fake_logits), (real_logits, fake_logits, upd["batch_stats"])

  (loss, (real_logits, fake_logits, d_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
  grads = _mean(grads, axis_name)
  updates, d_opt = state.d_tx.update(grads, state.d_opt, state.d_params)
  metrics = _mean({"d_loss": loss, "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                   "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}, axis_name)
  metrics["d_grad_norm"] = optax.global_norm(grads)
  return state.replace(d_params=optax.apply_updates(state.d_params, updates), d_stats=d_stats, d_opt=d_opt), metrics


def generator_step(state: GANState, batch_size: int, rng, loss: str = "non_saturating", axis_name=None):
  """Updates G (and its BatchNorm statistics) against the current D, which stays fixed."""
  d = state.discriminator
  z = noise(rng, batch_size, state.z_dim, axis_name)

  def loss_fn(g_params):
    images, upd = state.generator.apply({"params": g_params, "batch_stats": state.g_stats}, z, train=True,
                                        mutable=["batch_stats"])
    # D scores with batch statistics, as in its own step; the statistics it would update are dropped.
    logits, _ = d.apply({"params": state.d_params, "batch_stats": state.d_stats}, images, mutable=["batch_stats"])
    return losses.generator_loss(logits, loss), upd["batch_stats"]

  (g_loss, g_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
  grads = _mean(grads, axis_name)
  updates, g_opt = state.g_tx.update(grads, state.g_opt, state.g_params)
  metrics = {"g_loss": _mean(g_loss, axis_name), "g_grad_norm": optax.global_norm(grads)}
  return state.replace(g_params=optax.apply_updates(state.g_params, updates), g_stats=g_stats, g_opt=g_opt), metrics


def train_step(state: GANState, batch, *, loss: str = "non_saturating", axis_name=None):
  """One discriminator update, then one generator update against the updated discriminator."""
  rng = jax.random.fold_in(state.rng, state.step)
  d_rng, g_rng = jax.random.split(rng)
  state, d_metrics = discriminator_step(state, batch["image"], d_rng, axis_name)
  state, g_metrics = generator_step(state, batch["image"].shape[0], g_rng, loss, axis_name)
  metrics = {k: v for m in (d_metrics, g_metrics) for k, v in m.items()}
  return state.replace(step=state.step + 1), metrics


def sample_step(state: GANState, z):
  """Images in [-1, 1] from the generator with its running BatchNorm statistics."""
  return generate(state, z, train=False)[0]

