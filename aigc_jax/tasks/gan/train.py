"""GAN training: data -> parallel pure step -> logs, sample grids and checkpoints.

Everything a user can get wrong is checked before the work directory is touched. A run killed
by SIGTERM (a preempted TPU VM) or Ctrl-C saves a checkpoint at the step it reached; starting
the same command again resumes there and, on CPU, ends bit-identical to an uninterrupted run.
"""

import flax.linen as nn
import jax
import ml_collections

from aigc_jax import models
from aigc_jax.core import images, trainer
from aigc_jax.core.errors import UserError
from aigc_jax.tasks.gan import augment, evaluation, losses, steps
from aigc_jax.tasks.gan.state import RESUME_DEFAULTS, GANState, build_state


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
  for key in ("gp_weight", "r1_gamma", "r2_gamma", "acgan_weight", "ortho_weight"):
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
  aug = config.get("augment", {})
  try:
    policy = augment.parse_policy(aug.get("policy", ""))
  except ValueError as e:
    raise UserError(f"config.augment.policy: {e}") from None
  validate_ada(aug, policy)


def validate_ada(aug, policy):
  """ADA's keys: a target in [0, 1) (0: off), a positive interval and speed, and transforms to apply."""
  target = aug.get("ada_target", 0.0)
  if not 0.0 <= target < 1.0:
    raise UserError(f"config.augment.ada_target={target} must be in [0, 1); 0 disables ADA (StyleGAN2-ADA: 0.6)")
  if aug.get("ada_interval", 4) < 1:
    raise UserError(f"config.augment.ada_interval={aug.ada_interval} must be a positive number of steps")
  if aug.get("ada_kimg", 500.0) <= 0:
    raise UserError(f"config.augment.ada_kimg={aug.ada_kimg} must be a positive number of thousands of images")
  if target > 0 and not policy:
    raise UserError(f"config.augment.ada_target={target} needs transforms to apply: set config.augment.policy, "
                    "e.g. translation,cutout")


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


def conv_choice(config) -> str:
  """The DCGAN's convolutions this run uses (models.cpu_convs.select, made once per run), in a few words."""
  if config.model.name != "dcgan":
    return ""
  threads = models.cpu_convs.xla_cpu_threads()
  convs = models.cpu_convs.select(config.get("conv_impl", "auto"), jax.default_backend(), threads)
  kind = "XLA's" if convs.conv is nn.Conv else f"XLA:CPU forms for {threads} thread{'s' if threads > 1 else ''}"
  return f"convolutions: {kind}"


def fixed_noise(config, n: int):
  """The noise batch behind every logged sample grid, so grids are comparable across steps."""
  return jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5A3), (n, config.model.z_dim))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, stop_after=None) -> GANState:
  """Trains until config.train.num_steps, or until `stop_after(step)` is true (see trainer.run), and returns
  the final host state."""
  validate(config, jax.device_count())
  t = config.train

  def setup(run: trainer.Run) -> trainer.Hooks:
    check_labels(config, run.source)
    # Built before anything is written: a missing classifier or real data stops the run first.
    evaluator = evaluation.TrainingEval(config, run.workdir, run.is_main) if config.eval.every else None
    sample = jax.jit(steps.sample_step)
    z_fixed = fixed_noise(config, t.num_sample_images)
    classes = run.state.num_classes
    # Conditional grids: one class per column, so every row runs through the classes.
    labels_fixed = steps.default_labels(t.num_sample_images, classes) if classes else None

    def write_samples(step, dstate):
      grid = images.grid(images.to_uint8(sample(run.host_state(dstate), z_fixed, labels_fixed)), ncols=classes or None)
      run.writer.image(step, "samples", grid)
      if run.is_main:
        images.save_png(run.workdir / "samples" / f"step_{step:07d}.png", grid, scale=max(1, 128 // grid.shape[0] + 1))

    periodic = [(t.sample_every, write_samples)]
    if evaluator:
      periodic.append((config.eval.every, lambda step, dstate: evaluator(step, run.host_state(dstate), run.writer)))
    return trainer.Hooks(periodic=periodic, close=evaluator.close if evaluator else None)

  state, _ = trainer.train(config, workdir, build_state=build_state, train_step=steps.train_step,
                           step_options=steps.step_options(config), defaults=RESUME_DEFAULTS, setup=setup,
                           stop_after=stop_after, about=conv_choice(config))
  return state
