"""In-domain image classifier: the GAN's input pipeline, step style, parallelism, checkpoints and logs.

`train_step` is pure (`state, batch -> state, metrics`) and runs unchanged under `jax.pmap` or a
sharded `jax.jit` through `parallel.DataParallel`. `train_and_evaluate` reports test accuracy every
`classifier.eval_every` steps and at the end, into TensorBoard and WORKDIR/metrics.json, and
resumes from its latest checkpoint like the GAN trainer. `predict` labels a folder, an .npz or one
image with a trained checkpoint.
"""

import csv
import functools
import io
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from aigc_jax import data
from aigc_jax.core import files, trainer, parallel, summary
from aigc_jax.tasks.gan import steps
from aigc_jax.core import images as image_utils
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError
from aigc_jax.models import classifier as classifier_model

OPTIMIZERS = ("adam", "sgd")
OUTPUT_SUFFIXES = (".csv", ".json")


class ClassifierState(struct.PyTreeNode):
  """Everything a step reads and writes; the network and optimizer are static."""

  step: jax.Array
  rng: jax.Array  # base key; step s augments with fold_in(rng, s).
  params: Any
  batch_stats: Any
  opt_state: Any
  model: nn.Module = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @property
  def arrays(self):
    """The checkpointed part of the state."""
    return {k: getattr(self, k) for k in ("step", "rng", "params", "batch_stats", "opt_state")}

  def with_arrays(self, arrays):
    return self.replace(**arrays)


def make_optimizer(optim_config, num_steps: int) -> optax.GradientTransformation:
  """Adam (decoupled weight decay) or SGD with Nesterov momentum (L2 decay); kernels decay, BN and biases not."""
  schedule = steps.make_schedule(optim_config, optim_config.lr, num_steps)
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


def build_state(config: ml_collections.ConfigDict, bn_axis_name=None) -> ClassifierState:
  """The initial host-side state for `config` (deterministic in config.seed)."""
  shape = (config.data.resolution, config.data.resolution, config.data.channels)
  model = classifier_model.create(config.model, config.data.channels, bn_axis_name=bn_axis_name)
  tx = make_optimizer(config.optim, config.train.num_steps)
  with jax.threefry_partitionable(False):
    state = jax.jit(create_state, static_argnums=(1, 2, 3))(jax.random.PRNGKey(config.seed), model, tx, shape)
  return jax.device_get(state)


def _mean(tree, axis_name):
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _sum(tree, axis_name):
  return tree if axis_name is None else jax.lax.psum(tree, axis_name)


def random_shift(rng, images, max_shift: int, axis_name=None):
  """Translates each image by up to `max_shift` pixels, repeating its border.

  Under pmap every device draws offsets for the global batch and keeps its slice, so the parallel
  step augments exactly as the single-device step does.
  """
  n, h, w, c = images.shape
  if axis_name is None:
    offsets = jax.random.randint(rng, (n, 2), 0, 2 * max_shift + 1)
  else:
    offsets = jax.random.randint(rng, (n * jax.lax.axis_size(axis_name), 2), 0, 2 * max_shift + 1)
    offsets = jax.lax.dynamic_slice_in_dim(offsets, jax.lax.axis_index(axis_name) * n, n)
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
  grads = _mean(grads, axis_name)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  metrics = _mean({"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}, axis_name)
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
  return _sum({"loss": jnp.sum(loss), "correct": jnp.sum(correct), "count": jnp.sum(mask)}, axis_name)


def _eval_for_parallel(state, batch, axis_name=None):
  """eval_step in DataParallel's `state, batch -> state, aux` form; no state comes back."""
  return None, eval_step(state, batch, axis_name)


def evaluate(dp: parallel.DataParallel, dstate, source: data.Source, config, eval_fn=None) -> dict:
  """Test loss and accuracy over all of `source` with the device state `dstate`.

  `eval_fn` is dp.step(_eval_for_parallel, donate=False), made once by a caller that evaluates often.
  """
  step = eval_fn or dp.step(_eval_for_parallel, donate=False)
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
  if o.optimizer not in OPTIMIZERS:
    raise UserError(f"config.optim.optimizer='{o.optimizer}' is not one of {', '.join(OPTIMIZERS)}")
  if not o.lr > 0:
    raise UserError(f"config.optim.lr={o.lr} must be positive")
  if not 0 <= c.label_smoothing < 1:
    raise UserError(f"config.classifier.label_smoothing={c.label_smoothing} must be in [0, 1)")
  if c.augment_shift < 0 or c.augment_shift >= config.data.resolution // 2:
    raise UserError(f"config.classifier.augment_shift={c.augment_shift} must be in [0, {config.data.resolution // 2})")
  classifier_model.create(config.model, config.data.channels)


def _check_labels(source: data.Source, config, split_key: str):
  split = f"config.data.{split_key}='{config.data[split_key]}'"
  if source.num_classes is None:
    raise UserError(f"{split} of source '{config.data.source}' has unlabelled images; a classifier needs labels "
                    "(class subfolders, an .npz 'labels' array, or IDX label files)")
  if source.num_classes > config.model.num_classes:
    raise UserError(f"the data has {source.num_classes} classes but config.model.num_classes="
                    f"{config.model.num_classes}; set --config.model.num_classes={source.num_classes}")


def _check_resumable(ckpt: Checkpoints, config) -> int | None:
  """Checkpoints.check_compatible, plus what only a classifier's state depends on."""
  step = ckpt.check_compatible(config)
  if step is not None:
    saved = ckpt.saved_config(step)
    was = (saved.get("task"), saved.get("optim", {}).get("optimizer"))
    if was != (config.task, config.optim.optimizer):
      raise UserError(f"{ckpt.directory} holds a checkpoint (step {step}) of task {was[0]!r} with optimizer "
                      f"{was[1]!r}, not {config.task!r} with {config.optim.optimizer!r}; use a new --workdir")
  return step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains until config.train.num_steps; returns the final test metrics (also in WORKDIR/metrics.json)."""
  validate(config, jax.device_count())
  dp = parallel.DataParallel(config.train.parallel)
  workdir = files.path(workdir)
  where = dict(seed=config.seed, process_index=jax.process_index(), process_count=jax.process_count())
  source = data.load(config.data, **where)
  test_source = data.load(config.data, split_key="test_split", **where)
  _check_labels(source, config, "split")
  _check_labels(test_source, config, "test_split")
  ckpt = Checkpoints(workdir / "checkpoints", keep=config.train.keep_checkpoints)
  start_step = _check_resumable(ckpt, config) or 0
  state = build_state(config, parallel.bn_axis_name(dp.mode))
  if start_step:
    state = state.with_arrays(ckpt.restore(start_step, state.arrays))
    print(f"resumed from step {start_step} in {ckpt.directory}", flush=True)

  # Everything is valid: from here on the work directory is written.
  is_main = jax.process_index() == 0
  metrics_path = workdir / "metrics.json"
  history = {}  # step -> test metrics, kept across resumes
  if is_main:
    files.write_text(workdir / "config.json", config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    if start_step and metrics_path.exists():
      history = {h["step"]: h for h in json.loads(metrics_path.read_text()).get("history", [])
                 if h["step"] <= start_step}
  writer = summary.Writer(workdir / "tensorboard")
  t, c = config.train, config.classifier
  host_batches = data.batches(source, config.data, batch_size=t.batch_size // jax.process_count(),
                              seed=config.seed, start_step=start_step)
  device_batches = parallel.prefetch(host_batches, dp.put_batch)
  step_fn = dp.step(train_step, label_smoothing=c.label_smoothing, augment_shift=c.augment_shift)
  eval_fn = dp.step(_eval_for_parallel, donate=False)
  progress = summary.Progress(start_step, t.num_steps)
  dstate = dp.put_state(state)
  result = {}

  def run_eval(step, dstate):
    nonlocal result
    result = {"step": step, **evaluate(dp, dstate, test_source, config, eval_fn)}
    history[step] = {k: result[k] for k in ("step", "test_accuracy", "test_loss")}
    writer.scalars(step, {"test/accuracy": result["test_accuracy"], "test/loss": result["test_loss"]})
    if is_main:
      print(f"eval step {step}/{t.num_steps} | test_accuracy {result['test_accuracy']:.4f} "
            f"test_loss {result['test_loss']:.4f} | {result['test_examples']} images", flush=True)
      files.write_text(metrics_path, json.dumps({**result, "train_split": config.data.split,
                                                 "test_split": config.data.test_split,
                                                 "history": [history[k] for k in sorted(history)]}, indent=2) + "\n")

  def save(step, dstate):
    ckpt.save(step, dp.get_state(dstate.arrays), config, force=True)

  try:
    dstate, step = trainer.run(step_fn, dstate, device_batches, dp=dp, start_step=start_step, num_steps=t.num_steps,
                            log_every=t.log_every, checkpoint_every=t.checkpoint_every, save=save,
                            hooks=[(c.eval_every, run_eval)], progress=progress, writer=writer, is_main=is_main)
    if not result:  # already trained to num_steps: report the checkpoint's accuracy again.
      run_eval(step, dstate)
  finally:
    ckpt.close()
    writer.close()
  return result


def restore_trained(workdir: str, key: str, config: ml_collections.ConfigDict | None = None):
  """(config, state, step) of the classifier a `key` such as config.eval.classifier_workdir names.

  The config saved with the latest checkpoint is used unless `config` is given; UserError, naming
  `key`, when the workdir holds no finished checkpoint or a run of another task.
  """
  directory = files.path(workdir or "") / "checkpoints"
  if not workdir or not directory.is_dir():
    raise UserError(f"{key}='{workdir}' holds no classifier checkpoints; train one "
                    "(python main.py --config configs/classifier.py:PRESET --workdir DIR) and pass that DIR")
  ckpt = Checkpoints(directory, read_only=True)
  step = ckpt.latest_step()
  if step is None:
    raise UserError(f"{key}='{workdir}' has no finished checkpoint in {directory}")
  if config is None:
    config = ml_collections.ConfigDict(ckpt.saved_config(step))
  if config.get("task") != "classifier":
    raise UserError(f"{key}='{workdir}' holds a '{config.get('task', 'gan')}' run, not a classifier; "
                    "train one with configs/classifier.py")
  return config, load_state(config, workdir), step


def load_state(config, workdir) -> ClassifierState:
  """The latest checkpointed classifier of `workdir`, built for single-device use."""
  ckpt = Checkpoints(files.path(workdir) / "checkpoints", read_only=True)
  step = ckpt.latest_step()
  if step is None:
    raise UserError(f"no checkpoint in {files.path(workdir) / 'checkpoints'}; train the classifier first "
                    "(python main.py --config configs/classifier.py:PRESET --workdir ...)")
  _check_resumable(ckpt, config)
  # Restoring needs only the structure: shapes from eval_shape skip compiling the initialisers.
  shape = (config.data.resolution, config.data.resolution, config.data.channels)
  model = classifier_model.create(config.model, config.data.channels)
  tx = make_optimizer(config.optim, config.train.num_steps)
  abstract = jax.eval_shape(lambda rng: create_state(rng, model, tx, shape), jax.random.PRNGKey(0))
  state = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract)
  return state.with_arrays(ckpt.restore(step, state.arrays))


@functools.partial(jax.jit, static_argnums=0)
def _probabilities(model, variables, images_uint8):
  # The pipeline's uint8 -> [-1, 1] (data.to_unit_range), in the same float32 arithmetic.
  return jax.nn.softmax(model.apply(variables, images_uint8.astype(jnp.float32) / 127.5 - 1.0, train=False))


def predict_probabilities(state: ClassifierState, images_uint8: np.ndarray, batch_size: int = 256) -> np.ndarray:
  """Softmax probabilities [N, num_classes] for uint8 images at the model's resolution."""
  batch_size = min(batch_size, len(images_uint8))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  return image_utils.map_batches(lambda b: _probabilities(state.model, variables, b), images_uint8, batch_size)


def predict(config, workdir, input_path: str, output: str | None = None, *, overwrite: bool = False) -> list[dict]:
  """Labels the images at `input_path`; prints them, or writes `output` as .csv or .json.

  Returns one record per image: name, label, probability of that label, and all probabilities.
  """
  if not input_path:
    raise UserError("--input is required: a folder of images, an .npz with an 'images' array, or one image file")
  if not Path(input_path).expanduser().exists():
    raise UserError(f"--input '{input_path}' does not exist")
  if output:
    if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
      raise UserError(f"--output '{output}' must end in {' or '.join(OUTPUT_SUFFIXES)}")
    if files.path(output).exists() and not overwrite:
      raise UserError(f"{output} exists; pass --overwrite to replace it or choose another --output")
  state = load_state(config, workdir)
  images, _, names = data.read_images(input_path, config.data.channels)
  images = data.fit_images(images, config.data.resolution, config.data.channels, config.data.resize)
  probs = predict_probabilities(state, images)
  labels = probs.argmax(-1)
  records = [{"name": n, "label": int(y), "probability": float(p[y]), "probabilities": [float(v) for v in p]}
             for n, y, p in zip(names, labels, probs)]
  if not output:
    for r in records:
      print(f"{r['name']}\t{r['label']}\t{r['probability']:.4f}")
    return records
  out = files.path(output)
  if out.suffix.lower() == ".json":
    text = json.dumps(records, indent=1) + "\n"
  else:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "label", "probability", *(f"p{k}" for k in range(probs.shape[1]))])
    for r in records:
      w.writerow([r["name"], r["label"], f"{r['probability']:.6f}", *(f"{v:.6f}" for v in r["probabilities"])])
    text = buf.getvalue()
  files.write_text(out, text)
  print(f"wrote {len(records)} predictions to {out}")
  return records
