"""GAN training: data -> parallel pure step -> logs, sample grids and checkpoints.

Everything a user can get wrong is checked before the work directory is touched. A run killed
by SIGTERM (a preempted TPU VM) or Ctrl-C saves a checkpoint at the step it reached; starting
the same command again resumes there and, on CPU, ends bit-identical to an uninterrupted run.
"""

import jax
import ml_collections
import numpy as np

from aigc_jax.tasks.gan import augment, losses, steps
from aigc_jax import data, models
from aigc_jax.core import files, images, trainer, parallel, summary
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError


def validate(config: ml_collections.ConfigDict, num_devices: int):
  """Config checks that need no data; raise UserError naming the value and what is accepted."""
  t = config.train
  trainer.validate(config, num_devices, positive=("train.sample_every",))
  if t.loss not in losses.LOSSES:
    raise UserError(f"config.train.loss='{t.loss}' is not one of {', '.join(losses.LOSSES)}")
  validate_beyond(config)
  models.cpu_convs.check_impl(config.get("conv_impl", "auto"))


def validate_beyond(config: ml_collections.ConfigDict):
  """Checks of the keys configs/sngan.py introduced (losses, regularisers, EMA, augmentation, subsets)."""
  t = config.train
  for key in ("gp_weight", "r1_gamma", "acgan_weight", "ortho_weight"):
    if t.get(key, 0.0) < 0:
      raise UserError(f"config.train.{key}={t[key]} must be >= 0")
  for key in ("d_steps", "r1_every"):
    if t.get(key, 1) < 1:
      raise UserError(f"config.train.{key}={t[key]} must be a positive integer")
  if not 0.0 <= t.get("ema_decay", 0.0) < 1.0:
    raise UserError(f"config.train.ema_decay={t.ema_decay} must be in [0, 1); 0 disables the moving average")
  if t.get("ema_start", 0) < 0:
    raise UserError(f"config.train.ema_start={t.ema_start} must be >= 0")
  fraction = config.data.get("fraction", 1.0)
  if not 0.0 < fraction <= 1.0:
    raise UserError(f"config.data.fraction={fraction} must be in (0, 1]")
  try:
    augment.parse_policy(config.get("augment", {}).get("policy", ""))
  except ValueError as e:
    raise UserError(f"config.augment.policy: {e}") from None


def build_state(config: ml_collections.ConfigDict, bn_axis_name=None) -> steps.GANState:
  """The initial host-side state for `config` (deterministic in config.seed)."""
  shape = (config.data.resolution, config.data.resolution, config.data.channels)
  generator, discriminator = models.create(config.model, shape, bn_axis_name=bn_axis_name,
                                           conv_impl=config.get("conv_impl", "auto"))
  g_tx = steps.make_optimizer(config.optim, config.optim.g_lr, config.train.num_steps)
  d_tx = steps.make_optimizer(config.optim, config.optim.d_lr, config.train.num_steps)
  # Partitionable threefry is for sharded randomness; the host-side init compiles ~5x faster without it.
  with jax.threefry_partitionable(False):
    state = jax.jit(steps.create_state, static_argnums=(1, 2, 3, 4),
                    static_argnames=("z_dim", "image_shape", "num_classes", "ema"))(
        jax.random.PRNGKey(config.seed), generator, discriminator, g_tx, d_tx, z_dim=config.model.z_dim,
        image_shape=shape, num_classes=models.num_classes(config.model),
        ema=config.train.get("ema_decay", 0.0) > 0)
  return jax.device_get(state)


def _same_on_all_processes(what: str, value: int, directory):
  """Processes that see different checkpoints would pair up mismatched collectives and hang; say why instead."""
  from jax.experimental import multihost_utils

  values = np.asarray(multihost_utils.process_allgather(np.int32(value))).ravel()
  if (values != int(value)).any():
    raise UserError(f"the processes see different checkpoints in {directory} ({what} per process: "
                    f"{values.tolist()}); --workdir must be one directory all processes share")


def check_labels(config, source):
  """A conditional model needs a labelled source with at most model.num_classes classes."""
  classes = models.num_classes(config.model)
  if not classes:
    return
  if not source.num_classes:
    raise UserError(f"config.model.cond_mode='{config.model.cond_mode}' needs labelled images, but data source "
                    f"'{config.data.source}' has no labels; use --config.model.cond_mode=none")
  if source.num_classes > classes:
    raise UserError(f"the data has {source.num_classes} classes but config.model.num_classes={classes}; "
                    f"set --config.model.num_classes={source.num_classes}")


def fixed_noise(config, n: int):
  """The noise batch behind every logged sample grid, so grids are comparable across steps."""
  return jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5A3), (n, config.model.z_dim))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, stop_after=None) -> steps.GANState:
  """Trains until config.train.num_steps, or until `stop_after(step)` is true (see trainer.run), and returns
  the final host state."""
  validate(config, jax.device_count())
  dp = parallel.DataParallel(config.train.parallel)
  workdir = files.path(workdir)
  source = data.load(config.data, seed=config.seed, process_index=jax.process_index(),
                     process_count=jax.process_count())
  ckpt = Checkpoints(workdir / "checkpoints", keep=config.train.keep_checkpoints)
  if jax.process_count() > 1:  # opening existing checkpoints is itself a collective step in Orbax.
    _same_on_all_processes("checkpoint directory exists", ckpt.directory.exists(), ckpt.directory)
  check_labels(config, source)
  start_step = ckpt.check_compatible(config) or 0
  if jax.process_count() > 1:
    _same_on_all_processes("latest step", start_step, ckpt.directory)
  state = build_state(config, parallel.bn_axis_name(dp.mode))
  if start_step:
    state = state.with_arrays(ckpt.restore(start_step, state.arrays))
    print(f"resumed from step {start_step} in {ckpt.directory}", flush=True)

  is_main = jax.process_index() == 0
  evaluator = None
  if config.eval.every:
    from aigc_jax.tasks.gan.evaluation import TrainingEval  # checks the extractor and real data before anything is written
    evaluator = TrainingEval(config, workdir, is_main)

  # Everything is valid: from here on the work directory is written.
  if is_main:
    files.write_text(workdir / "config.json", config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  writer = summary.Writer(workdir / "tensorboard")
  if evaluator:
    evaluator.writer = writer
  t = config.train
  per_process_batch = t.batch_size // jax.process_count()
  host_batches = data.batches(source, config.data, batch_size=per_process_batch, seed=config.seed,
                              start_step=start_step)
  device_batches = parallel.prefetch(host_batches, dp.put_batch)
  train_step = dp.step(steps.train_step, **steps.step_options(config))
  sample = jax.jit(steps.sample_step)
  z_fixed = fixed_noise(config, t.num_sample_images)
  # Conditional grids: one class per column, so every row runs through the classes.
  labels_fixed = steps.default_labels(t.num_sample_images, state.num_classes) if state.num_classes else None
  progress = summary.Progress(start_step, t.num_steps)
  dstate = dp.put_state(state)

  def host_state(dstate):
    return state.with_arrays(dp.get_state(dstate.arrays))

  def write_samples(step, host):
    grid = images.grid(images.to_uint8(sample(host, z_fixed, labels_fixed)),
                       ncols=state.num_classes or None)
    writer.image(step, "samples", grid)
    if is_main:
      images.save_png(workdir / "samples" / f"step_{step:07d}.png", grid, scale=max(1, 128 // grid.shape[0] + 1))

  def save(step, dstate):
    ckpt.save(step, dp.get_state(dstate.arrays), config, force=True)

  hooks = [(t.sample_every, lambda step, ds: write_samples(step, host_state(ds)))]
  if evaluator:
    hooks.append((config.eval.every, lambda step, ds: evaluator(step, host_state(ds))))
  try:
    dstate, _ = trainer.run(train_step, dstate, device_batches, dp=dp, start_step=start_step, num_steps=t.num_steps,
                         log_every=t.log_every, checkpoint_every=t.checkpoint_every, save=save, hooks=hooks,
                         progress=progress, writer=writer, is_main=is_main, stop_after=stop_after)
    return host_state(dstate)
  finally:
    ckpt.close()
    writer.close()
    if evaluator:
      evaluator.close()
