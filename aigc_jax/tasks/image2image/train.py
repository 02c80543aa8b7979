"""Repair and enhancement training: config checks, the networks, the loop, strips and test metrics.

The loop is core.trainer's (pmap | jit, progress, NaN stop, signals, checkpoints, TensorBoard);
every `train.sample_every` steps a PNG strip shows damaged, restored and clean images, and at the
end the test split's PSNR/SSIM go to WORKDIR/metrics.json.
"""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from aigc_jax import data
from aigc_jax.core import checkpoint, files, images, optim, trainer
from aigc_jax.core.errors import UserError
from aigc_jax.data import damage
from aigc_jax.metrics import image_quality
from aigc_jax.models import patchgan, srgan, unet
from aigc_jax.tasks.image2image import feature_loss, steps
from aigc_jax.tasks.image2image.steps import I2IState, apply_generator, degrade

TASKS = ("repair", "enhance")
# What a resume key meant before it was added to the config (the defaults of configs/default.py).
RESUME_DEFAULTS = {"seed": 0, "data.resolution": 32, "data.channels": 3, "train.ema_decay": 0.0}


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
  if t.get("pixel_loss", "l1") not in steps.PIXEL_LOSSES:
    raise UserError(f"config.train.pixel_loss='{t.pixel_loss}' is not one of {steps.PIXEL_LOSSES}")
  if t.get("pixel_region", "image") not in steps.PIXEL_REGIONS:
    raise UserError(f"config.train.pixel_region='{t.pixel_region}' is not one of {steps.PIXEL_REGIONS}")
  if t.adv_weight < 0:
    raise UserError(f"config.train.adv_weight={t.adv_weight} must be 0 (no discriminator) or positive")
  if config.task == "repair":
    kinds = damage.parse_kinds(config.damage.kinds)
    noise = [k for k in kinds if k in damage.NOISE_KINDS]
    if config.model.get("fill", False) and noise:
      raise UserError(f"config.model.fill=True fills holes, but damage.kinds has noise ({', '.join(noise)}); "
                      "use hole kinds only (center, boxes, strokes, pixels) or model.fill=False")
  else:
    if config.model.scale not in srgan.SCALES:
      raise UserError(f"config.model.scale={config.model.scale} is not one of {srgan.SCALES}")
    if config.data.resolution % config.model.scale:
      raise UserError(f"config.data.resolution={config.data.resolution} is not a multiple of "
                      f"config.model.scale={config.model.scale}")


def create_models(config: ml_collections.ConfigDict):
  m, c = config.model, config.data.channels
  if config.task == "repair":
    g = unet.UNet(out_channels=c, features=m.features, depth=m.depth, residual=m.get("residual", False),
                  fill=m.get("fill", False), fill_sweeps=m.get("fill_sweeps", 16),
                  fill_biharmonic_sweeps=m.get("fill_biharmonic_sweeps", 8))
  else:
    g = srgan.SRGenerator(scale=m.scale, channels=c, features=m.features, blocks=m.blocks)
  return g, patchgan.PatchDiscriminator(features=m.d_features, layers=m.d_layers)


def build_state(config: ml_collections.ConfigDict, bn_axis_name=None) -> I2IState:
  """The initial host-side state for `config` (deterministic in config.seed); the networks have no BatchNorm."""
  g, d = create_models(config)
  g_tx = optim.make_optimizer(config.optim, config.optim.g_lr, config.train.num_steps)
  d_tx = optim.make_optimizer(config.optim, config.optim.d_lr, config.train.num_steps)
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


def load_state(workdir, config=None) -> tuple[ml_collections.ConfigDict, I2IState]:
  """The config saved in `workdir` and its latest checkpointed state, for inference.

  The network is built from the saved config, not from a given `config` (the --config of
  --mode=repair / enhance): a preset may have changed since the workdir was trained (model.fill,
  optim.grad_clip), and the checkpoint holds the network it describes. A given `config` must be of
  the same task.
  """
  directory = files.path(workdir) / "checkpoints"
  hint = "train one first with python main.py --config configs/repair.py:mnist --workdir W"
  given = config
  config, _ = checkpoint.saved_config(directory, what=f"a repair or enhance network ({hint})")
  if given is not None and given.get("task") != config.get("task"):
    raise UserError(f"'{workdir}' holds a network of task '{config.get('task')}', but --config is of task "
                    f"'{given.get('task')}'")
  if config.get("task") not in TASKS:
    raise UserError(f"'{workdir}' holds a '{config.get('task')}' run, not one of {TASKS}")
  state, _ = checkpoint.restore_latest(directory, build_state(config), config, defaults=RESUME_DEFAULTS, missing=hint)
  return config, state


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
  t = config.train
  feature_weight = float(t.get("feature_weight", 0.0))

  def make_state(config, bn_axis_name=None):
    state = build_state(config)
    if feature_weight:  # frozen, not checkpointed: loaded from its own workdir on every start
      state = state.replace(features=feature_loss.load(t.feature_workdir, config.data.channels))
    return state

  def setup(run: trainer.Run) -> trainer.Hooks:
    test_source = data.load(config.data, seed=config.seed, split_key="test_split") if config.data.test_split else None
    shown = next(data.batches(run.source, config.data, batch_size=min(8, run.source.num_examples or 8),
                              seed=config.seed + 1))["image"]

    def write_strip(step, dstate):
      rows = strip_rows(run.host_state(dstate), jnp.asarray(shown), jax.random.PRNGKey(config.seed + 2))
      grid = images.grid(np.concatenate(rows), ncols=len(rows[0]))
      run.writer.image(step, "damaged_restored_clean", grid)
      if run.is_main:
        images.save_png(run.workdir / "samples" / f"step_{step:07d}.png", grid, scale=max(1, 256 // grid.shape[1] + 1))

    def finish(step, dstate):
      result = {"step": step}
      if test_source is not None:
        clean = np.concatenate(list(_all(test_source, config)))
        result.update(evaluate(run.host_state(dstate), clean))
        result["test_examples"] = len(clean)
      if run.is_main:
        files.write_text(run.workdir / "metrics.json", json.dumps(result, indent=1) + "\n")
      return result

    return trainer.Hooks(periodic=[(t.sample_every, write_strip)], finish=finish)

  _, result = trainer.train(config, workdir, build_state=make_state, train_step=steps.train_step,
                            step_options=dict(l1_weight=t.l1_weight, adv_weight=t.adv_weight,
                                              feature_weight=feature_weight,
                                              pixel_loss_kind=t.get("pixel_loss", "l1"),
                                              pixel_region=t.get("pixel_region", "image")),
                            defaults=RESUME_DEFAULTS, setup=setup)
  return result


def _all(source, config, batch_size: int = 500):
  for b in data.eval_batches(source, config.data, batch_size=batch_size):
    yield b["image"][b["mask"]]
