"""The pure image-to-image step: `state, batch -> state, metrics` on clean images it damages itself.

The step damages its batch (holes or noise for repair, area downscaling for enhancement) from
`fold_in(rng, step)`, so the damage never repeats, costs no input-pipeline work and is reproduced
exactly on resume. The generator is trained with a pixel loss (`pixel_loss`: L1, L2 or their sum;
`pixel_region`: averaged over the whole image or over the pixels the repair has to fix) plus an
optional adversarial loss from a conditional PatchGAN (pix2pix, SRGAN; with `adv_weight` 0 the
discriminator is not updated at all), optionally plus a classifier feature loss.

L1 makes the network predict the per-pixel median of what could be in a hole, L2 the mean; PSNR is
a mean squared error, so L2 is what a PSNR-oriented repair wants (on MNIST's centre box the median
of an uncertain pixel is black background, the mean a grey stroke estimate).
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
  """The generator's output; for holes, known pixels are pasted back so they stay untouched.

  Residual networks' outputs are not clipped here, so that the loss keeps a gradient for pixels
  pushed past [-1, 1]; `apply_generator` (what users, strips and test metrics get) clips them.
  """
  out = state.generator.apply({"params": g_params}, g_in)
  if state.task == "repair":
    c = out.shape[-1]
    known = g_in[..., c:]
    out = known * g_in[..., :c] + (1.0 - known) * out
  return out


PIXEL_LOSSES = ("l1", "l2", "l1+l2")
PIXEL_REGIONS = ("image", "holes")


def pixel_loss(out, clean, known, kind: str = "l1", region: str = "image"):
  """The generator's reconstruction loss, a scalar.

  kind: l1 (mean |e|), l2 (mean e^2) or l1+l2 (their sum); region: `image` averages over every pixel
  (known pixels, pasted back, add 0), `holes` over each image's pixels to fix (1 - known; noise and
  super-resolution have known = 0, so there the two are the same), then over the batch, so a small
  hole weighs as much as a large one.

  `out` may lie past [-1, 1] (residual networks are clipped only for users); a pixel past the end
  of the range at which its target sits counts as the clipped value, an error of 0.
  """
  err = out - clean
  # Outputs are clipped to [-1, 1] for users (apply_generator), so a value past the end of the range
  # where the target sits at that end (MNIST's background, -1) is no error at all: it counts 0,
  # which lets the network make such pixels exact rather than only close. Past the range on the
  # other side it still counts in full, keeping the gradient that pulls it back.
  err = jnp.where(((clean <= -1.0) & (out < -1.0)) | ((clean >= 1.0) & (out > 1.0)), 0.0, err)
  per_pixel = {"l1": jnp.abs(err), "l2": err * err, "l1+l2": jnp.abs(err) + err * err}[kind]
  if region == "image":
    return jnp.mean(per_pixel)
  fix = jnp.broadcast_to(1.0 - known, per_pixel.shape)
  return jnp.mean(jnp.sum(per_pixel * fix, (1, 2, 3)) / jnp.maximum(jnp.sum(fix, (1, 2, 3)), 1.0))


def train_step(state: I2IState, batch, *, l1_weight: float = 1.0, adv_weight: float = 0.01,
               feature_weight: float = 0.0, pixel_loss_kind: str = "l1", pixel_region: str = "image",
               axis_name=None):
  """One discriminator update on (condition, clean) vs (condition, repaired), then one generator update.

  The generator loss is `l1_weight` x `pixel_loss` (of `pixel_loss_kind` over `pixel_region`) +
  `adv_weight` x the adversarial loss; with `adv_weight` 0 the discriminator is neither updated nor
  evaluated (its parameters stay as they are). With `feature_weight` > 0 it adds that times the
  classifier feature loss against the clean images (`state.features`, frozen).
  """
  if feature_weight and state.features is None:
    raise ValueError(f"feature_weight={feature_weight} needs state.features, the frozen classifier "
                     "(feature_loss.load(feature_workdir, channels)); this state has none")
  clean = batch["image"]
  rng = jax.random.fold_in(state.rng, state.step)
  g_in, cond, known = degrade(state, rng, clean, axis_name)
  d = state.discriminator
  use_d = bool(adv_weight)
  fake = jax.lax.stop_gradient(jnp.clip(restore(state, state.g_params, g_in), -1.0, 1.0))

  def d_loss_fn(d_params):
    real_logits = d.apply({"params": d_params}, jnp.concatenate([cond, clean], -1))
    fake_logits = d.apply({"params": d_params}, jnp.concatenate([cond, fake], -1))
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))

  if use_d:
    d_loss, d_grads = jax.value_and_grad(d_loss_fn)(state.d_params)
    d_grads = parallel.mean(d_grads, axis_name)
    upd, d_opt = state.d_tx.update(d_grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, upd)
  else:  # a pure reconstruction run: the PatchGAN would cost half the step and change nothing
    d_loss, d_opt, d_params = jnp.zeros(()), state.d_opt, state.d_params

  def g_loss_fn(g_params):
    raw = restore(state, g_params, g_in)  # unclipped: its pixel loss has a gradient everywhere
    out = jnp.clip(raw, -1.0, 1.0)  # what D, the feature loss and the metrics see
    l1 = jnp.mean(jnp.abs(out - clean))
    pix = pixel_loss(raw, clean, known, pixel_loss_kind, pixel_region)
    if use_d:
      adv = jnp.mean(jax.nn.softplus(-d.apply({"params": d_params}, jnp.concatenate([cond, out], -1))))
    else:
      adv = jnp.zeros(())
    feat = feature_loss.feature_loss(state.features, out, clean) if feature_weight else jnp.zeros(())
    return l1_weight * pix + adv_weight * adv + feature_weight * feat, (l1, pix, adv, feat, out)

  (g_loss, (l1, pix, adv, feat, out)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
  g_grads = parallel.mean(g_grads, axis_name)
  upd, g_opt = state.g_tx.update(g_grads, state.g_opt, state.g_params)
  metrics = {"d_loss": d_loss, "g_loss": g_loss, "l1": l1, "pixel": pix, "g_adv": adv,
             "psnr": jnp.mean(image_quality.psnr(out, clean))}
  if feature_weight:
    metrics["feature"] = feat
  metrics = parallel.mean(metrics, axis_name)
  state = state.replace(step=state.step + 1, g_params=optax.apply_updates(state.g_params, upd), g_opt=g_opt,
                        d_params=d_params, d_opt=d_opt)
  return state, metrics


DIHEDRAL = tuple((turns, flip) for turns in range(4) for flip in (False, True))  # the 8 symmetries of a square


def self_ensemble(fn, x):
  """The x8 geometric self-ensemble (Lim et al. 2017, EDSR+): the mean of `fn` over the 8 flips and
  quarter turns of `x` [N, H, W, C], each output turned back. `fn` must be fully convolutional (any
  H, W; a turn swaps them); its output may be larger (super-resolution). For repair, paste the known
  pixels back after the mean: it keeps them only up to rounding."""
  total = None
  for turns, flip in DIHEDRAL:
    y = fn(jnp.rot90(x[:, :, ::-1] if flip else x, turns, axes=(1, 2)))
    y = jnp.rot90(y, -turns, axes=(1, 2))
    y = y[:, :, ::-1] if flip else y
    total = y if total is None else total + y
  return total / len(DIHEDRAL)


@jax.jit
def apply_generator(state: I2IState, g_in):
  """Inference: the repaired / upscaled images for a prepared generator input, in [-1, 1]."""
  return jnp.clip(restore(state, state.g_params, g_in), -1.0, 1.0)
