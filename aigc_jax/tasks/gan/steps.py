"""The pure GAN train step: `state, batch -> state, metrics`.

One jitted function does `d_steps` discriminator updates on a real and a generated batch, then a
generator update against the updated discriminator (and, when enabled, updates the moving
average of G's weights). It neither knows nor cares whether it runs
under `jax.pmap` (pass the pmap `axis_name`: gradients, metrics and BatchNorm statistics are
averaged over it) or under `jax.jit` on a sharded global batch (`axis_name=None`).
"""


import jax
import jax.numpy as jnp
import optax

from aigc_jax.core import parallel
from aigc_jax.tasks.gan import ada as ada_lib
from aigc_jax.tasks.gan import augment as augment_lib
from aigc_jax.tasks.gan import ema as ema_lib
from aigc_jax.tasks.gan import losses, regularizers
from aigc_jax.tasks.gan.state import GANState, label_kw


def noise(rng, batch_size: int, z_dim: int, axis_name=None):
  """Latent batch for this device's share of the global batch (parallel.per_device)."""
  return parallel.per_device(jax.random.normal, rng, (batch_size, z_dim), axis_name)


def random_labels(rng, batch_size: int, num_classes: int, axis_name=None):
  """Uniform class labels for generated images, drawn for the global batch like `noise`."""
  return parallel.per_device(lambda k, s: jax.random.randint(k, s, 0, num_classes), rng, (batch_size,), axis_name)


def generate(state: GANState, z, train: bool, labels=None, params=None):
  """G(z[, labels]); in train mode also returns G's updated BatchNorm (and spectral-norm) statistics."""
  variables = {"params": state.g_params if params is None else params, "batch_stats": state.g_stats}
  if train:
    images, updates = state.generator.apply(variables, z, train=True, mutable=["batch_stats"], **label_kw(labels))
    return images, updates.get("batch_stats", state.g_stats)
  return state.generator.apply(variables, z, train=False, **label_kw(labels)), state.g_stats


def discriminate(state: GANState, d_params, d_stats, images, labels=None):
  """D in train mode -> (logits [N], AC-GAN class logits or None, updated statistics)."""
  out, upd = state.discriminator.apply({"params": d_params, "batch_stats": d_stats}, images, mutable=["batch_stats"],
                                       **label_kw(labels))
  logits, class_logits = out if isinstance(out, tuple) else (out, None)
  return logits, class_logits, upd.get("batch_stats", d_stats)


def _augment(state: GANState, rng, images, policy, axis_name):
  """DiffAugment, or with ADA on (state.ada) its transforms each applied with the controller's probability."""
  if not policy:
    return images
  if state.ada is not None:
    return ada_lib.augment(rng, images, state.ada["p"], policy, axis_name)
  return augment_lib.diff_augment(rng, images, policy, axis_name)


def _fake_labels(state: GANState, rng, n, labels, loss, axis_name):
  """Labels of a generated batch: uniform, or the real batch's for the pairing loss (as R3GAN conditions G)."""
  if not state.num_classes:
    return None
  return labels if loss in losses.PAIRED else random_labels(rng, n, state.num_classes, axis_name)


def _penalties(state, d_params, d_stats, real, fake, labels, fake_labels, rng, axis_name, *, gp_weight, r1_gamma,
               r1_every, r2_gamma):
  """WGAN-GP, (lazy) R1 and R2 terms on the images D sees; statistics updates inside them are dropped."""
  fn = lambda x: discriminate(state, d_params, d_stats, x, labels)[0]
  terms = {}
  if gp_weight > 0:
    eps = augment_lib.uniform(rng, (real.shape[0],), axis_name)
    terms["d_gp"] = (gp_weight, regularizers.gradient_penalty(fn, real, fake, eps))
  if r1_gamma > 0:
    if r1_every > 1:  # lazy R1 (Karras et al. 2020): every r1_every steps, scaled up to keep its strength.
      r1 = jax.lax.cond(state.step % r1_every == 0, lambda: regularizers.r1_penalty(fn, real),
                        lambda: jnp.zeros((), jnp.float32))
    else:
      r1 = regularizers.r1_penalty(fn, real)
    terms["d_r1"] = (0.5 * r1_gamma * r1_every, r1)
  if r2_gamma > 0:
    fake_fn = lambda x: discriminate(state, d_params, d_stats, x, fake_labels)[0]
    terms["d_r2"] = (0.5 * r2_gamma, regularizers.r2_penalty(fake_fn, fake))
  return terms


def discriminator_step(state: GANState, real, rng, axis_name=None, *, labels=None, loss: str = "non_saturating",
                       augment=(), gp_weight: float = 0.0, r1_gamma: float = 0.0, r1_every: int = 1,
                       r2_gamma: float = 0.0, acgan_weight: float = 1.0):
  """Updates D (and its BatchNorm / spectral-norm statistics) on a real batch and a batch from the current G."""
  n = real.shape[0]
  labels = labels if state.num_classes else None
  fake_labels = _fake_labels(state, jax.random.fold_in(rng, 1), n, labels, loss, axis_name)
  fake, _ = generate(state, noise(rng, n, state.z_dim, axis_name), train=True, labels=fake_labels)
  fake = jax.lax.stop_gradient(fake)
  real_in = _augment(state, jax.random.fold_in(rng, 2), real, augment, axis_name)
  fake_in = _augment(state, jax.random.fold_in(rng, 3), fake, augment, axis_name)

  def loss_fn(d_params):
    real_logits, real_cls, stats = discriminate(state, d_params, state.d_stats, real_in, labels)
    fake_logits, fake_cls, stats = discriminate(state, d_params, stats, fake_in, fake_labels)
    total = losses.discriminator_loss(real_logits, fake_logits, loss)
    parts = {}
    if real_cls is not None:
      parts["d_acgan"] = (acgan_weight, losses.classification_loss(real_cls, labels)
                          + losses.classification_loss(fake_cls, fake_labels))
    parts.update(_penalties(state, d_params, state.d_stats, real_in, fake_in, labels, fake_labels,
                            jax.random.fold_in(rng, 4), axis_name, gp_weight=gp_weight, r1_gamma=r1_gamma,
                            r1_every=r1_every, r2_gamma=r2_gamma))
    for weight, value in parts.values():
      total = total + weight * value
    return total, (real_logits, fake_logits, stats, {k: v for k, (_, v) in parts.items()})

  (loss_value, (real_logits, fake_logits, d_stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.d_params)
  grads = parallel.mean(grads, axis_name)
  updates, d_opt = state.d_tx.update(grads, state.d_opt, state.d_params)
  if state.ada is not None:
    extra["ada_sign"] = ada_lib.sign_statistic(real_logits, fake_logits, loss in losses.PAIRED)
  metrics = parallel.mean({"d_loss": loss_value, "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                   "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)), **extra}, axis_name)
  metrics["d_grad_norm"] = optax.global_norm(grads)
  return state.replace(d_params=optax.apply_updates(state.d_params, updates), d_stats=d_stats, d_opt=d_opt), metrics


def generator_step(state: GANState, batch_size: int, rng, loss: str = "non_saturating", axis_name=None, *,
                   augment=(), acgan_weight: float = 1.0, ortho_weight: float = 0.0, real=None, labels=None):
  """Updates G (and its BatchNorm statistics) against the current D, which stays fixed.

  The pairing loss (losses.PAIRED) also scores the real batch `real` (with its `labels`), as R3GAN does.
  """
  z = noise(rng, batch_size, state.z_dim, axis_name)
  labels = labels if state.num_classes else None
  fake_labels = _fake_labels(state, jax.random.fold_in(rng, 1), batch_size, labels, loss, axis_name)
  real_logits = None
  if loss in losses.PAIRED:
    real_in = _augment(state, jax.random.fold_in(rng, 3), real, augment, axis_name)
    real_logits = discriminate(state, state.d_params, state.d_stats, real_in, labels)[0]

  def loss_fn(g_params):
    images, g_stats = generate(state, z, train=True, labels=fake_labels, params=g_params)
    images = _augment(state, jax.random.fold_in(rng, 2), images, augment, axis_name)
    # D scores with batch statistics, as in its own step; the statistics it would update are dropped.
    logits, class_logits, _ = discriminate(state, state.d_params, state.d_stats, images, fake_labels)
    total = losses.generator_loss(logits, loss, real_logits)
    extra = {}
    if class_logits is not None:
      extra["g_acgan"] = losses.classification_loss(class_logits, fake_labels)
      total = total + acgan_weight * extra["g_acgan"]
    if ortho_weight > 0:
      extra["g_ortho"] = regularizers.orthogonal(g_params)
      total = total + ortho_weight * extra["g_ortho"]
    return total, (g_stats, extra)

  (g_loss, (g_stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
  grads = parallel.mean(grads, axis_name)
  updates, g_opt = state.g_tx.update(grads, state.g_opt, state.g_params)
  metrics = {"g_loss": parallel.mean(g_loss, axis_name), "g_grad_norm": optax.global_norm(grads), **parallel.mean(extra, axis_name)}
  return state.replace(g_params=optax.apply_updates(state.g_params, updates), g_stats=g_stats, g_opt=g_opt), metrics


def train_step(state: GANState, batch, *, loss: str = "non_saturating", axis_name=None, d_steps: int = 1,
               augment=(), gp_weight: float = 0.0, r1_gamma: float = 0.0, r1_every: int = 1, r2_gamma: float = 0.0,
               acgan_weight: float = 1.0, ortho_weight: float = 0.0, ema_decay: float = 0.0, ema_start: int = 0,
               ada_target: float = 0.6, ada_interval: int = 4, ada_kimg: float = 500.0):
  """`d_steps` discriminator updates, then one generator update against the updated discriminator.

  With d_steps > 1 every discriminator update sees the same real batch (the step consumes one
  batch) with fresh generated images and fresh augmentations. With ADA on (state.ada), the
  controller is updated from the last D update's sign statistic before the G update.
  """
  rng = jax.random.fold_in(state.rng, state.step)
  d_rng, g_rng = jax.random.split(rng)
  images = batch["image"]
  d_kw = dict(labels=batch.get("label"), loss=loss, augment=augment, gp_weight=gp_weight, r1_gamma=r1_gamma,
              r1_every=r1_every, r2_gamma=r2_gamma, acgan_weight=acgan_weight)
  if d_steps == 1:
    state, d_metrics = discriminator_step(state, images, d_rng, axis_name, **d_kw)
  else:
    def body(s, i):
      return discriminator_step(s, images, jax.random.fold_in(d_rng, i), axis_name, **d_kw)
    state, all_metrics = jax.lax.scan(body, state, jnp.arange(d_steps))
    d_metrics = jax.tree.map(lambda m: m[-1], all_metrics)
  if state.ada is not None:
    global_batch = images.shape[0] * (jax.lax.psum(1, axis_name) if axis_name else 1)
    state = state.replace(ada=ada_lib.update(state.ada, d_metrics["ada_sign"], global_batch, target=ada_target,
                                             interval=ada_interval, kimg=ada_kimg))
    d_metrics["ada_p"] = state.ada["p"]
  state, g_metrics = generator_step(state, images.shape[0], g_rng, loss, axis_name, augment=augment,
                                    acgan_weight=acgan_weight, ortho_weight=ortho_weight, real=images,
                                    labels=batch.get("label"))
  metrics = {k: v for m in (d_metrics, g_metrics) for k, v in m.items()}
  state = state.replace(step=state.step + 1)
  if state.ema_params is not None and ema_decay > 0:
    state = state.replace(ema_params=ema_lib.update(state.ema_params, state.g_params, state.step, ema_decay,
                                                    ema_start))
  return state, metrics


def step_options(config) -> dict:
  """train_step's keyword options from a config (keys a preset lacks take their defaults)."""
  t, aug = config.train, config.get("augment", {})
  return dict(loss=t.loss, d_steps=t.get("d_steps", 1), augment=augment_lib.parse_policy(aug.get("policy", "")),
              gp_weight=t.get("gp_weight", 0.0), r1_gamma=t.get("r1_gamma", 0.0), r1_every=t.get("r1_every", 1),
              r2_gamma=t.get("r2_gamma", 0.0), acgan_weight=t.get("acgan_weight", 1.0),
              ortho_weight=t.get("ortho_weight", 0.0), ema_decay=t.get("ema_decay", 0.0),
              ema_start=t.get("ema_start", 0), ada_target=aug.get("ada_target", 0.0),
              ada_interval=aug.get("ada_interval", 4), ada_kimg=aug.get("ada_kimg", 500.0))


def default_labels(n: int, num_classes: int):
  """Classes 0, 1, ..., num_classes - 1, 0, 1, ...: balanced labels when a caller gives none."""
  return jnp.arange(n, dtype=jnp.int32) % num_classes


def sample_step(state: GANState, z, labels=None):
  """Images in [-1, 1] from the generator with its running BatchNorm statistics.

  Uses the moving average of G's weights when the state has one. A conditional generator given no
  labels draws balanced classes (default_labels).
  """
  if state.num_classes and labels is None:
    labels = default_labels(z.shape[0], state.num_classes)
  return generate(state, z, train=False, labels=labels if state.num_classes else None, params=state.ema_params)[0]


def recalibrate_ema(state: GANState, rng, num_batches: int = 50, batch_size: int = 128) -> GANState:
  """The state with G's BatchNorm statistics recomputed for the EMA weights ("standing statistics").

  The running statistics were gathered by the raw weights; the average of those weights produces
  other activations, so sampling with EMA weights but raw statistics mismatches. Running G in train
  mode with the EMA weights on `num_batches` noise batches moves the running averages (momentum
  0.9) to within 0.9**num_batches of the EMA weights' own. Without EMA the state is returned as is.
  """
  if state.ema_params is None or not jax.tree.leaves(state.g_stats):
    return state
  single = state.replace(generator=state.generator.clone(bn_axis_name=None))  # one device, outside pmap

  def body(stats, i):
    key = jax.random.fold_in(rng, i)
    z = jax.random.normal(key, (batch_size, state.z_dim))
    labels = random_labels(jax.random.fold_in(key, 1), batch_size, state.num_classes) if state.num_classes else None
    _, stats = generate(single.replace(g_stats=stats), z, train=True, labels=labels, params=state.ema_params)
    return stats, None

  stats, _ = jax.jit(lambda s: jax.lax.scan(body, s, jnp.arange(num_batches)))(state.g_stats)
  return state.replace(g_stats=stats)
