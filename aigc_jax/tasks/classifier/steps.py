"""The classifier's pure steps: `state, batch -> state, metrics` for training, sums for evaluation.

`train_step` runs unchanged under `jax.pmap` or a sharded `jax.jit` (core.parallel.DataParallel);
metrics and gradients are averaged over the global batch, and the random shifts are drawn for the
global batch (parallel.per_device), so both give the same updates.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from aigc_jax.core import optim, parallel
from aigc_jax.core.state import Checkpointed

OPTIMIZERS = ("adam", "sgd")


class ClassifierState(Checkpointed, struct.PyTreeNode):
  """Everything a step reads and writes; the network and optimizer are static."""

  step: jax.Array
  rng: jax.Array  # base key; step s augments with fold_in(rng, s).
  params: Any
  batch_stats: Any
  opt_state: Any
  model: nn.Module = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  ARRAYS = ("step", "rng", "params", "batch_stats", "opt_state")


def make_optimizer(optim_config, num_steps: int) -> optax.GradientTransformation:
  """Adam (decoupled weight decay) or SGD with Nesterov momentum (L2 decay); kernels decay, BN and biases not."""
  schedule = optim.make_schedule(optim_config, optim_config.lr, num_steps)
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
  if optim_config.optimizer == "adam":
    tx = optax.adamw(schedule, b1=optim_config.b1, b2=optim_config.b2, weight_decay=optim_config.weight_decay,
                     mask=decay_mask)
  elif optim_config.optimizer == "sgd":
    tx = optax.chain(optax.add_decayed_weights(optim_config.weight_decay, decay_mask),
                     optax.sgd(schedule, momentum=optim_config.momentum, nesterov=True))
  else:
    raise ValueError(f"unknown optimizer '{optim_config.optimizer}'; use one of {OPTIMIZERS}")
  if optim_config.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(optim_config.grad_clip), tx)
  return tx


def create_state(rng, model, tx, image_shape) -> ClassifierState:
  init_rng, params_rng = jax.random.split(rng)
  variables = model.init(params_rng, jnp.zeros((2, *image_shape)), train=False)
  return ClassifierState(step=jnp.zeros((), jnp.int32), rng=init_rng, params=variables["params"],
                         batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(variables["params"]),
                         model=model, tx=tx)


def random_shift(rng, images, max_shift: int, axis_name=None):
  """Translates each image by up to `max_shift` pixels, repeating its border.

  Under pmap every device draws offsets for the global batch and keeps its slice, so the parallel
  step augments exactly as the single-device step does.
  """
  n, h, w, c = images.shape
  offsets = parallel.per_device(lambda k, s: jax.random.randint(k, s, 0, 2 * max_shift + 1), rng, (n, 2), axis_name)
  pad = ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0))
  padded = jnp.pad(images, pad, mode="edge")
  return jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c)))(padded, offsets)


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
  """Per-example cross-entropy against one-hot labels smoothed towards uniform by `label_smoothing`."""
  targets = jax.nn.one_hot(labels, logits.shape[-1])
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def train_step(state: ClassifierState, batch, *, label_smoothing: float = 0.0, augment_shift: int = 0,
               axis_name=None):
  """One optimizer update on a batch {'image', 'label'}; metrics are averaged over the global batch."""
  images = batch["image"]
  if augment_shift:
    images = random_shift(jax.random.fold_in(state.rng, state.step), images, augment_shift, axis_name)

  def loss_fn(params):
    logits, updates = state.model.apply({"params": params, "batch_stats": state.batch_stats}, images, train=True,
                                        mutable=["batch_stats"])
    loss = jnp.mean(cross_entropy(logits, batch["label"], label_smoothing))
    return loss, (logits, updates["batch_stats"])

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = parallel.mean(grads, axis_name)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  metrics = parallel.mean({"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}, axis_name)
  metrics["grad_norm"] = optax.global_norm(grads)
  return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                       batch_stats=batch_stats, opt_state=opt_state), metrics


def logits_step(state: ClassifierState, images):
  """Logits with the running BatchNorm statistics, as at test time."""
  return state.model.apply({"params": state.params, "batch_stats": state.batch_stats}, images, train=False)


def eval_step(state: ClassifierState, batch, axis_name=None):
  """Sums over the global batch of loss, correct predictions and examples; 'mask' excludes padding."""
  logits = logits_step(state, batch["image"])
  mask = batch.get("mask", jnp.ones(batch["label"].shape, bool))
  correct = (jnp.argmax(logits, -1) == batch["label"]) & mask
  loss = jnp.where(mask, cross_entropy(logits, batch["label"]), 0.0)
  return parallel.total({"loss": jnp.sum(loss), "correct": jnp.sum(correct), "count": jnp.sum(mask)}, axis_name)


def eval_for_parallel(state, batch, axis_name=None):
  """eval_step in DataParallel's `state, batch -> state, aux` form; no state comes back."""
  return None, eval_step(state, batch, axis_name)
