"""Paired image-to-image GANs: repair (inpainting, denoising) and enhancement (super-resolution).

The pure step `state, batch -> state, metrics` takes clean images only; it damages them itself
(holes or noise for repair, area downscaling for enhancement) from `fold_in(rng, step)`, so the
damage never repeats, costs no input-pipeline work and is reproduced exactly on resume. The
generator is trained with a pixel (L1) loss plus a small adversarial loss from a conditional
PatchGAN (pix2pix, SRGAN). Training reuses the GAN machinery: DataParallel (pmap | jit),
trainer.run (progress, NaN stop, signals), Checkpoints, TensorBoard and PNG strips.
"""

import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from aigc_jax.data import damage
from aigc_jax import data
from aigc_jax.tasks.image2image import feature_loss
from aigc_jax.core import files, images, trainer, parallel, summary
from aigc_jax.tasks.gan import steps
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError
from aigc_jax.metrics import image_quality
from aigc_jax.models import patchgan, srgan, unet

TASKS = ("repair", "enhance")


class I2IState(struct.PyTreeNode):
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

  @property
  def arrays(self):
    return {k: getattr(self, k) for k in ("step", "rng", "g_params", "d_params", "g_opt", "d_opt")}

  def with_arrays(self, arrays):
    return self.replace(**arrays)


def validate(config: ml_collections.ConfigDict, num_devices: int):
  """Config checks that need no data; UserError names the value and what is accepted."""
  if config.task not in TASKS:
    raise UserError(f"config.task='{config.task}' is not one of {TASKS}")
  trainer.validate(config, num_devices, positive=("train.sample_every",))
  if config.data.channels not in (1, 3):
    raise UserError(f"config.data.channels={config.data.channels} must be 1 (grey) or 3 (RGB)")
  t = config.train
  if t.get("feature_weight", 0.0) < 0:
    raise UserError(f"config.train.feature_weight={t.feature_weight} must be 0 (off) or positive")
  if t.get("feature_weight", 0.0) > 0 and not t.get("feature_workdir"):
    raise UserError("config.train.feature_weight > 0 needs config.train.feature_workdir, the workdir of a "
                    "classifier trained with configs/classifier.py")
  if config.task == "repair":
    damage.parse_kinds(config.damage.kinds)
  else:
    if config.model.scale not in srgan.SCALES:
      raise UserError(f"config.model.scale={config.model.scale} is not one of {srgan.SCALES}")
    if config.data.resolution % config.model.scale:
      raise UserError(f"config.data.resolution={config.data.resolution} is not a multiple of "
                      f"config.model.scale={config.model.scale}")


def create_models(config: ml_collections.ConfigDict):
  m, c = config.model, config.data.channels
  if config.task == "repair":
    g = unet.UNet(out_channels=c, features=m.features, depth=m.depth, residual=m.get("residual", False))
  else:
    g = srgan.SRGenerator(scale=m.scale, channels=c, features=m.features, blocks=m.blocks)
  return g, patchgan.PatchDiscriminator(features=m.d_features, layers=m.d_layers)


def build_state(config: ml_collections.ConfigDict) -> I2IState:
  """The initial host-side state for `config` (deterministic in config.seed)."""
  g, d = create_models(config)
  g_tx = steps.make_optimizer(config.optim, config.optim.g_lr, config.train.num_steps)
  d_tx = steps.make_optimizer(config.optim, config.optim.d_lr, config.train.num_steps)
  res, c = config.data.resolution, config.data.channels
  if config.task == "repair":
    g_in = jnp.zeros((1, res, res, c + 1))
    kinds = damage.parse_kinds(config.damage.kinds)
  else:
    g_in = jnp.zeros((1, res // config.model.scale, res // config.model.scale, c))
    kinds = ()
  d_in = jnp.zeros((1, res, res, 2 * c + (1 if config.task == "repair" else 0)))
  kg, kd, krng = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  with jax.threefry_partitionable(False):
    g_params = jax.jit(g.init)(kg, g_in)["params"]
    d_params = jax.jit(d.init)(kd, d_in)["params"]
  state = I2IState(step=jnp.zeros((), jnp.int32), rng=krng, g_params=g_params, d_params=d_params,
                   g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params), generator=g, discriminator=d,
                   g_tx=g_tx, d_tx=d_tx, task=config.task, kinds=kinds,
                   sigma=float(config.damage.sigma), amount=float(config.damage.amount),
                   scale=int(config.model.get("scale", 2)))
  return jax.device_get(state)


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


def _mean(tree, axis_name):
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


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
  d_grads = _mean(d_grads, axis_name)
  upd, d_opt = state.d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, upd)

  def g_loss_fn(g_params):
    out = restore(state, g_params, g_in)
    l1 = jnp.mean(jnp.abs(out - clean))
    adv = jnp.mean(jax.nn.softplus(-d.apply({"params": d_params}, jnp.concatenate([cond, out], -1))))
    feat = feature_loss.feature_loss(state.features, out, clean) if feature_weight else jnp.zeros(())
    return l1_weight * l1 + adv_weight * adv + feature_weight * feat, (l1, adv, feat, out)

  (g_loss, (l1, adv, feat, out)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
  g_grads = _mean(g_grads, axis_name)
  upd, g_opt = state.g_tx.update(g_grads, state.g_opt, state.g_params)
  metrics = {"d_loss": d_loss, "g_loss": g_loss, "l1": l1, "g_adv": adv,
             "psnr": jnp.mean(image_quality.psnr(out, clean))}
  if feature_weight:
    metrics["feature"] = feat
  metrics = _mean(metrics, axis_name)
  state = state.replace(step=state.step + 1, g_params=optax.apply_updates(state.g_params, upd), g_opt=g_opt,
                        d_params=d_params, d_opt=d_opt)
  return state, metrics


@jax.jit
def apply_generator(state: I2IState, g_in):
  """Inference: the repaired / upscaled images for a prepared generator input."""
  return restore(state, state.g_params, g_in)


def load_state(workdir, config=None) -> tuple[ml_collections.ConfigDict, I2IState]:
  """The config saved in `workdir` and its latest checkpointed state; a given `config` must match it."""
  workdir = files.path(workdir)
  cfg_file = workdir / "config.json"
  ckpt = Checkpoints(workdir / "checkpoints", read_only=True)
  step = ckpt.latest_step()
  if not cfg_file.exists() or step is None:
    raise UserError(f"no trained network in '{workdir}' (config.json and checkpoints/); train one first with "
                    "python main.py --config configs/repair.py:mnist --workdir W")
  if config is not None:
    ckpt.check_compatible(config)
  else:
    config = ml_collections.ConfigDict(json.loads(cfg_file.read_text()))
  if config.get("task") not in TASKS:
    raise UserError(f"'{workdir}' holds a '{config.get('task')}' run, not one of {TASKS}")
  state = build_state(config)
  return config, state.with_arrays(ckpt.restore(step, state.arrays))


def strip_rows(state: I2IState, clean, key):
  """[damaged (upscaled by nearest for SR), restored, clean] as uint8 rows for a PNG strip."""
  g_in, _, _ = degrade(state, key, clean)
  out = apply_generator(state, g_in)
  shown = g_in[..., :clean.shape[-1]]
  if state.task == "enhance":
    shown = jnp.repeat(jnp.repeat(shown, state.scale, 1), state.scale, 2)
  return [images.to_uint8(x) for x in (shown, out, clean)]


def evaluate(state: I2IState, clean: np.ndarray, seed: int = 1, batch_size: int = 250) -> dict:
  """Mean PSNR/SSIM of the restored and of the damaged inputs against `clean` [N, H, W, C] in [-1, 1]."""
  sums = {"psnr": 0.0, "ssim": 0.0, "input_psnr": 0.0}
  key = jax.random.PRNGKey(seed)
  for i in range(0, len(clean), batch_size):
    x = jnp.asarray(clean[i: i + batch_size])
    g_in, cond, _ = degrade(state, jax.random.fold_in(key, i), x)
    out = apply_generator(state, g_in)
    sums["psnr"] += float(jnp.sum(image_quality.psnr(out, x)))
    sums["ssim"] += float(jnp.sum(image_quality.ssim(out, x)))
    sums["input_psnr"] += float(jnp.sum(image_quality.psnr(cond[..., :x.shape[-1]], x)))
  return {k: v / len(clean) for k, v in sums.items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains until config.train.num_steps, writes strips and metrics.json, returns the test metrics."""
  validate(config, jax.device_count())
  dp = parallel.DataParallel(config.train.parallel)
  workdir = files.path(workdir)
  source = data.load(config.data, seed=config.seed, process_index=jax.process_index(),
                     process_count=jax.process_count())
  test_source = data.load(config.data, seed=config.seed, split_key="test_split") if config.data.test_split else None
  ckpt = Checkpoints(workdir / "checkpoints", keep=config.train.keep_checkpoints)
  start_step = ckpt.check_compatible(config) or 0
  state = build_state(config)
  if start_step:
    state = state.with_arrays(ckpt.restore(start_step, state.arrays))
    print(f"resumed from step {start_step} in {ckpt.directory}", flush=True)
  feature_weight = float(config.train.get("feature_weight", 0.0))
  if feature_weight:
    state = state.replace(features=feature_loss.load(config.train.feature_workdir, config.data.channels))

  is_main = jax.process_index() == 0
  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    files.write_text(workdir / "config.json", config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  writer = summary.Writer(workdir / "tensorboard")
  t = config.train
  host_batches = data.batches(source, config.data, batch_size=t.batch_size // jax.process_count(),
                              seed=config.seed, start_step=start_step)
  strip_images = jnp.asarray(next(data.batches(source, config.data, batch_size=min(8, source.num_examples or 8),
                                               seed=config.seed + 1))["image"])
  device_batches = parallel.prefetch(host_batches, dp.put_batch)
  step_fn = dp.step(train_step, l1_weight=t.l1_weight, adv_weight=t.adv_weight, feature_weight=feature_weight)
  progress = summary.Progress(start_step, t.num_steps)
  dstate = dp.put_state(state)

  def host_state(dstate):
    return state.with_arrays(dp.get_state(dstate.arrays))

  def write_strip(step, dstate):
    rows = strip_rows(host_state(dstate), strip_images, jax.random.PRNGKey(config.seed + 2))
    grid = images.grid(np.concatenate(rows), ncols=len(rows[0]))
    writer.image(step, "damaged_restored_clean", grid)
    if is_main:
      images.save_png(workdir / "samples" / f"step_{step:07d}.png", grid, scale=max(1, 256 // grid.shape[1] + 1))

  def save(step, dstate):
    ckpt.save(step, dp.get_state(dstate.arrays), config, force=True)

  try:
    dstate, step = trainer.run(step_fn, dstate, device_batches, dp=dp, start_step=start_step, num_steps=t.num_steps,
                            log_every=t.log_every, checkpoint_every=t.checkpoint_every, save=save,
                            hooks=[(t.sample_every, write_strip)], progress=progress, writer=writer,
                            is_main=is_main)
    result = {"step": step}
    if test_source is not None:
      clean = np.concatenate(list(_all(test_source, config)))
      result.update(evaluate(host_state(dstate), clean))
      result["test_examples"] = len(clean)
    if is_main:
      files.write_text(workdir / "metrics.json", json.dumps(result, indent=1) + "\n")
    return result
  finally:
    ckpt.close()
    writer.close()


def _all(source, config, batch_size: int = 500):
  for b in data.eval_batches(source, config.data, batch_size=batch_size):
    yield b["image"][b["mask"]]
