"""Classifier training: config checks, the loop with test evaluation, and the one loader of trained classifiers.

The loop is core.trainer's (pmap | jit, progress, NaN stop, signals, checkpoints, TensorBoard).
Test accuracy is reported every `classifier.eval_every` steps and at the end, into TensorBoard and
WORKDIR/metrics.json (whose history survives resumes).
"""

import json

import jax
import ml_collections
import numpy as np

from aigc_jax import data
from aigc_jax.core import checkpoint, files, parallel, trainer
from aigc_jax.core.errors import UserError
from aigc_jax.core.state import initialise
from aigc_jax.models import classifier as classifier_model
from aigc_jax.tasks.classifier import steps
from aigc_jax.tasks.classifier.steps import ClassifierState

# What a resume key meant before it was added to the config (the defaults of configs/default.py).
RESUME_DEFAULTS = {"seed": 0, "data.resolution": 32, "data.channels": 3, "train.ema_decay": 0.0}


def build_state(config: ml_collections.ConfigDict, bn_axis_name=None) -> ClassifierState:
  """The initial host-side state for `config` (deterministic in config.seed)."""
  shape = (config.data.resolution, config.data.resolution, config.data.channels)
  model = classifier_model.create(config.model, config.data.channels, bn_axis_name=bn_axis_name)
  tx = steps.make_optimizer(config.optim, config.train.num_steps)
  return initialise(steps.create_state, config.seed, model, tx, shape)


def evaluate(dp: parallel.DataParallel, dstate, source: data.Source, config, eval_fn=None) -> dict:
  """Test loss and accuracy over all of `source` with the device state `dstate`.

  `eval_fn` is dp.step(steps.eval_for_parallel, donate=False), made once by a caller that evaluates often.
  """
  step = eval_fn or dp.step(steps.eval_for_parallel, donate=False)
  per_process = config.classifier.eval_batch_size // jax.process_count()
  totals = {"loss": 0.0, "correct": 0.0, "count": 0.0}
  for batch in data.eval_batches(source, config.data, batch_size=per_process):
    _, sums = step(dstate, dp.put_batch(batch))
    for k, v in dp.get_metrics(sums).items():
      totals[k] += v
  count = max(totals["count"], 1.0)
  return {"test_accuracy": totals["correct"] / count, "test_loss": totals["loss"] / count,
          "test_examples": int(totals["count"])}


def validate(config: ml_collections.ConfigDict, num_devices: int):
  """Config checks that need no data; raise UserError naming the value and what is accepted."""
  c, o = config.classifier, config.optim
  trainer.validate(config, num_devices, batches=("train.batch_size", "classifier.eval_batch_size"),
                positive=("classifier.eval_every",))
  if o.optimizer not in steps.OPTIMIZERS:
    raise UserError(f"config.optim.optimizer='{o.optimizer}' is not one of {', '.join(steps.OPTIMIZERS)}")
  if not o.lr > 0:
    raise UserError(f"config.optim.lr={o.lr} must be positive")
  if not 0 <= c.label_smoothing < 1:
    raise UserError(f"config.classifier.label_smoothing={c.label_smoothing} must be in [0, 1)")
  if c.augment_shift < 0 or c.augment_shift >= config.data.resolution // 2:
    raise UserError(f"config.classifier.augment_shift={c.augment_shift} must be in [0, {config.data.resolution // 2})")
  classifier_model.create(config.model, config.data.channels)


def check_labels(source: data.Source, config, split_key: str):
  """A classifier needs labelled images, of at most config.model.num_classes classes."""
  split = f"config.data.{split_key}='{config.data[split_key]}'"
  if source.num_classes is None:
    raise UserError(f"{split} of source '{config.data.source}' has unlabelled images; a classifier needs labels "
                    "(class subfolders, an .npz 'labels' array, or IDX label files)")
  if source.num_classes > config.model.num_classes:
    raise UserError(f"the data has {source.num_classes} classes but config.model.num_classes="
                    f"{config.model.num_classes}; set --config.model.num_classes={source.num_classes}")


def check_same_kind(ckpt: checkpoint.Checkpoints, step: int, config):
  """What only a classifier's state depends on beyond the resume keys: the task and the optimizer."""
  saved = ckpt.saved_config(step)
  was = (saved.get("task"), saved.get("optim", {}).get("optimizer"))
  if was != (config.task, config.optim.optimizer):
    raise UserError(f"{ckpt.directory} holds a checkpoint (step {step}) of task {was[0]!r} with optimizer "
                    f"{was[1]!r}, not {config.task!r} with {config.optim.optimizer!r}; use a new --workdir")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains until config.train.num_steps; returns the final test metrics (also in WORKDIR/metrics.json)."""
  validate(config, jax.device_count())
  t, c = config.train, config.classifier
  test_source = data.load(config.data, split_key="test_split", seed=config.seed, process_index=jax.process_index(),
                          process_count=jax.process_count())
  check_labels(test_source, config, "test_split")

  def setup(run: trainer.Run) -> trainer.Hooks:
    check_labels(run.source, config, "split")
    metrics_path = run.workdir / "metrics.json"
    history = {}  # step -> test metrics, kept across resumes
    if run.is_main and run.start_step and metrics_path.exists():
      history = {h["step"]: h for h in json.loads(metrics_path.read_text()).get("history", [])
                 if h["step"] <= run.start_step}
    eval_fn = run.dp.step(steps.eval_for_parallel, donate=False)
    result = {}

    def run_eval(step, dstate):
      result.clear()
      result.update({"step": step, **evaluate(run.dp, dstate, test_source, config, eval_fn)})
      history[step] = {k: result[k] for k in ("step", "test_accuracy", "test_loss")}
      run.writer.scalars(step, {"test/accuracy": result["test_accuracy"], "test/loss": result["test_loss"]})
      if run.is_main:
        print(f"eval step {step}/{t.num_steps} | test_accuracy {result['test_accuracy']:.4f} "
              f"test_loss {result['test_loss']:.4f} | {result['test_examples']} images", flush=True)
        files.write_text(metrics_path, json.dumps({**result, "train_split": config.data.split,
                                                   "test_split": config.data.test_split,
                                                   "history": [history[k] for k in sorted(history)]}, indent=2) + "\n")

    def finish(step, dstate):
      if not result:  # already trained to num_steps: report the checkpoint's accuracy again.
        run_eval(step, dstate)
      return dict(result)

    return trainer.Hooks(periodic=[(c.eval_every, run_eval)], finish=finish)

  _, result = trainer.train(config, workdir, build_state=build_state, train_step=steps.train_step,
                            step_options=dict(label_smoothing=c.label_smoothing, augment_shift=c.augment_shift),
                            defaults=RESUME_DEFAULTS, setup=setup,
                            check_resume=lambda ckpt, step: check_same_kind(ckpt, step, config))
  return result


def load_state(config, workdir) -> ClassifierState:
  """The latest checkpointed classifier of `workdir`, built for single-device use."""
  # Restoring needs only the structure: shapes from eval_shape skip compiling the initialisers.
  shape = (config.data.resolution, config.data.resolution, config.data.channels)
  model = classifier_model.create(config.model, config.data.channels)
  tx = steps.make_optimizer(config.optim, config.train.num_steps)
  abstract = jax.eval_shape(lambda rng: steps.create_state(rng, model, tx, shape), jax.random.PRNGKey(0))
  template = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract)
  state, _ = checkpoint.restore_latest(
      files.path(workdir) / "checkpoints", template, config, defaults=RESUME_DEFAULTS,
      missing="train the classifier first (python main.py --config configs/classifier.py:PRESET --workdir ...)",
      check=lambda ckpt, step: check_same_kind(ckpt, step, config))
  return state
