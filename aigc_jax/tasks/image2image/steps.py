"""The pure image-to-image step: `state, batch -> state, metrics` on clean images it damages itself.

The step damages its batch (holes or noise for repair, area downscaling for enhancement) from
`fold_in(rng, step)`, so the damage never repeats, costs no input-pipeline work and is reproduced
exactly on resume. The generator is trained with a pixel (L1) loss plus a small adversarial loss
from a conditional PatchGAN (pix2pix, SRGAN), optionally plus a classifier feature loss.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from aigc_jax.core import parallel
from aigc_jax.core.state import Checkpointed
from aigc_jax.data import damage
from aigc_jax.metrics import image_quality
from aigc_jax.models import srgan
from aigc_jax.tasks.image2image import feature_loss


class I2IState(Checkpointed, struct.PyTreeNode):
  """Generator, discriminator, their optimizers, and (static) how a batch is damaged."""

  step: jax.Array
  rng: jax.Array
  g_params: Any
  d_params: Any
  g_opt: Any
  d_opt: Any
  generator: nn.Module = struct.field(pytree_node=False)
  discriminator: nn.Module = struct.field(pytree_node=False)
  g_tx: optax.GradientTransformation = struct.field(pytree_node=False)
  d_tx: optax.GradientTransformation = struct.field(pytree_node=False)
  task: str = struct.field(pytree_node=False, default="repair")
  kinds: tuple = struct.field(pytree_node=False, default=("center",))
  sigma: float = struct.field(pytree_node=False, default=0.2)
  amount: float = struct.field(pytree_node=False, default=0.1)
  scale: int = struct.field(pytree_node=False, default=2)
  features: feature_loss.FeatureNet | None = None  # the frozen classifier of train.feature_weight, if any

  ARRAYS = ("step", "rng", "g_params", "d_params", "g_opt", "d_opt")


def degrade(state: I2IState, key, clean, axis_name=None):
  """clean [N, H, W, C] -> (generator input, D's condition at output size, trusted-pixel mask)."""
  if state.task == "repair":
    damaged, known = damage.damage_batch(key, clean, state.kinds, state.sigma, state.amount, axis_name)
    g_in = jnp.concatenate([damaged, known], -1)
    return g_in, g_in, known
  low = damage.downscale(clean, state.scale)
  return low, srgan.bicubic(low, state.scale), jnp.zeros(clean.shape[:3] + (1,), clean.dtype)


def restore(state: I2IState, g_params, g_in):
  """The generator's output; for holes, known pixels are pasted back so they stay untouched."""
  out = state.generator.apply({"params": g_params}, g_in)
  if state.task == "repair":
    c = out.shape[-1]
    known = g_in[..., c:]
    out = known * g_in[..., :c] + (1.0 - known) * out
  return out


def train_step(state: I2IState, batch, *, l1_weight: float = 1.0, adv_weight: float = 0.01,
               feature_weight: float = 0.0, axis_name=None):
  """One discriminator update on (condition, clean) vs (condition, repaired), then one generator update.

  With `feature_weight` > 0 the generator loss adds that times the classifier feature loss
  against the clean images (`state.features`, frozen).
  """
  if feature_weight and state.features is None:
    raise ValueError(f"feature_weight={feature_weight} needs state.features, the frozen classifier "
                     "(feature_loss.load(feature_workdir, channels)); this state has none")
  clean = batch["image"]
  rng = jax.random.fold_in(state.rng, state.step)
  g_in, cond, known = degrade(state, rng, clean, axis_name)
  d = state.discriminator
  fake = jax.lax.stop_gradient(restore(state, state.g_params, g_in))

  def d_loss_fn(d_params):
    real_logits = d.apply({"params": d_params}, jnp.concatenate([cond, clean], -1))
    fake_logits = d.apply({"params": d_params}, jnp.concatenate([cond, fake], -1))
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))

  d_loss, d_grads = jax.value_and_grad(d_loss_fn)(state.d_params)
  d_grads = parallel.mean(d_grads, axis_name)
  upd, d_opt = state.d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, upd)

  def g_loss_fn(g_params):
    out = restore(state, g_params, g_in)
    l1 = jnp.mean(jnp.abs(out - clean))
    adv = jnp.mean(jax.nn.softplus(-d.apply({"params": d_params}, jnp.concatenate([cond, out], -1))))
    feat = feature_loss.feature_loss(state.features, out, clean) if feature_weight else jnp.zeros(())
    return l1_weight * l1 + adv_weight * adv + feature_weight * feat, (l1, adv, feat, out)

  (g_loss, (l1, adv, feat, out)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
  g_grads = parallel.mean(g_grads, axis_name)
  upd, g_opt = state.g_tx.update(g_grads, state.g_opt, state.g_params)
  metrics = {"d_loss": d_loss, "g_loss": g_loss, "l1": l1, "g_adv": adv,
             "psnr": jnp.mean(image_quality.psnr(out, clean))}
  if feature_weight:
    metrics["feature"] = feat
  metrics = parallel.mean(metrics, axis_name)
  state = state.replace(step=state.step + 1, g_params=optax.apply_updates(state.g_params, upd), g_opt=g_opt,
                        d_params=d_params, d_opt=d_opt)
  return state, metrics


@jax.jit
def apply_generator(state: I2IState, g_in):
  """Inference: the repaired / upscaled images for a prepared generator input."""
  return restore(state, state.g_params, g_in)
