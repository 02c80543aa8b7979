"""Sample-quality evaluation: during training (`config.eval.every`) and of a checkpoint or a sample file.

An `Evaluator` pairs a feature extractor (`metrics.extractors`) with statistics of the real data,
computed once per extractor and dataset and cached on disk (`metrics.cached_stats`), and turns a set
of generated uint8 images into FID, KID, precision/recall/density/coverage, IS and, with the
in-domain classifier, how recognisable and how class-balanced the samples are.

Generated images come from a fixed noise stream (`config.eval.seed`), not from the training RNG,
so evaluating never changes a training run and scores at different steps are of the same latents.
With several processes every process runs the same (collective-free) evaluation on the same
parameters and data; only process 0 writes logs, and the best-FID checkpoint is saved by all
processes together because Orbax saves are collective.
"""

import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from aigc_jax.core import images as image_utils
from aigc_jax.core import files
from aigc_jax import metrics
from aigc_jax.tasks.gan import steps
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.core.errors import UserError
from aigc_jax.metrics import extractors

METRICS = ("fid", "kid", "prdc", "is", "classes")
CHECKPOINTS = ("latest", "best")
_sample = jax.jit(steps.sample_step)


def _log_to(stream):
  def log(msg):
    print(msg, file=stream, flush=True)
  return log


def metric_names(eval_config) -> list[str]:
  names = [m.strip() for m in eval_config.metrics.split(",") if m.strip()]
  bad = [m for m in names if m not in METRICS]
  if bad or not names:
    raise UserError(f"config.eval.metrics='{eval_config.metrics}' has unknown or no metrics {bad}; use a "
                    f"comma-separated subset of {','.join(METRICS)}")
  if "classes" in names and eval_config.extractor != "classifier":
    raise UserError("config.eval.metrics includes 'classes', which needs --config.eval.extractor=classifier")
  return names


def min_samples(eval_config) -> int:
  """The fewest images every configured metric is defined for."""
  return max(2, eval_config.nearest_k + 1 if "prdc" in metric_names(eval_config) else 2)


def validate(config: ml_collections.ConfigDict):
  """Config checks that need no files; raise UserError naming the value and what is accepted."""
  e = config.eval
  if e.every < 0:
    raise UserError(f"config.eval.every={e.every} must be 0 (off) or a positive number of steps")
  if e.extractor not in extractors.EXTRACTORS:
    raise UserError(f"config.eval.extractor='{e.extractor}' is not one of {', '.join(extractors.EXTRACTORS)}")
  metric_names(e)
  for key in ("batch_size", "kid_subset_size", "kid_subsets", "nearest_k", "real_features"):
    if e[key] <= 0:
      raise UserError(f"config.eval.{key}={e[key]} must be positive")
  if e.num_samples < min_samples(e):
    raise UserError(f"config.eval.num_samples={e.num_samples} is too few; the metrics need at least "
                    f"{min_samples(e)}")
  if e.real_limit < 0:
    raise UserError(f"config.eval.real_limit={e.real_limit} must be 0 (all) or positive")
  if not 0 < e.confidence < 1:
    raise UserError(f"config.eval.confidence={e.confidence} must be in (0, 1)")


def _cache_dir(eval_config) -> Path:
  if eval_config.cache_dir:
    return Path(eval_config.cache_dir).expanduser()
  return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aigc_jax" / "stats"


def _real_data_config(config):
  d = ml_collections.ConfigDict(config.data.to_dict())
  d.split = config.eval.real_split or config.data.split
  return d


def _real_batches(config, log, split: str | None = None, limit: int = 0):
  """uint8 batches of the real split (or `split`), in order, up to `limit` (or config.eval.real_limit) images."""
  from aigc_jax import data

  data_config = _real_data_config(config)
  if split is not None:
    data_config.split = split
  source = data.load(data_config, seed=config.seed)  # all of it on every process: the stats are global.
  limit = limit or config.eval.real_limit or math.inf
  done = 0
  for batch in data.eval_batches(source, data_config, batch_size=config.eval.batch_size):
    keep = int(min(batch["mask"].sum(), limit - done))
    if keep <= 0:
      break
    yield image_utils.to_uint8(batch["image"][:keep])
    done += keep
  log(f"eval: real statistics of {done} images of split '{data_config.split}'")


def _probabilities(logits):
  z = logits - logits.max(-1, keepdims=True)
  p = np.exp(z)
  return p / p.sum(-1, keepdims=True)


class Evaluator:
  """Scores uint8 images against the real data of `config.data` with the extractor of `config.eval`."""

  def __init__(self, config: ml_collections.ConfigDict, log=None):
    validate(config)
    self.config = config
    self.eval_config = e = config.eval
    self.log = log or _log_to(sys.stdout)
    self.names = metric_names(e)
    self.extractor = extractors.from_config(e)
    res, ch = config.data.resolution, config.data.channels
    self.image_shape = (res, res, ch)
    self.extractor.check_images((0, res, res, ch), f"config.data images ({res}x{res}, {ch} channel(s))")
    self.real = self._real_stats()
    if self.real["count"] < min_samples(e):
      raise UserError(f"the real split '{_real_data_config(config).split}' has {int(self.real['count'])} images; "
                      f"the metrics need at least {min_samples(e)}")

  def _real_stats(self) -> dict:
    d, e = self.config.data, self.eval_config
    key = {"extractor": self.extractor.name, "source": d.source, "name": d.name,
           "path": str(Path(d.path).expanduser().resolve()) if d.path else "",
           "split": _real_data_config(self.config).split, "resolution": d.resolution, "channels": d.channels,
           "resize": bool(d.resize), "limit": int(e.real_limit), "features": int(e.real_features),
           "confidence": float(e.confidence), "version": 1}

    def compute():
      stats = metrics.FeatureStats(max_features=e.real_features)
      hist = np.zeros(self.extractor.num_classes)
      confident = 0
      for batch in _real_batches(self.config, self.log):
        feats, logits = self.extractor(batch)
        stats.update(feats)
        p = _probabilities(logits.astype(np.float64))
        hist += np.bincount(p.argmax(-1), minlength=len(hist))
        confident += int((p.max(-1) >= e.confidence).sum())
      if stats.count < 2:
        raise UserError(f"the real split '{key['split']}' has {stats.count} images; FID needs at least 2")
      return {**stats.to_dict(), "class_hist": hist / stats.count, "confident": confident / stats.count}

    if jax.process_count() == 1:
      return metrics.cached_stats(_cache_dir(e), key, compute)
    # Process 0 computes and writes the cache first; it reaches the barrier even when the data is bad,
    # so the others go on to raise the same error instead of waiting for it.
    if jax.process_index() == 0:
      try:
        return metrics.cached_stats(_cache_dir(e), key, compute)
      finally:
        _barrier("eval_real_stats")
    _barrier("eval_real_stats")
    return metrics.cached_stats(_cache_dir(e), key, compute)

  def check_images(self, images: np.ndarray, what: str):
    if images.dtype != np.uint8 or images.ndim != 4:
      raise UserError(f"{what} must be uint8 [N, H, W, C]; got {images.dtype} with shape {images.shape}")
    if len(images) < min_samples(self.eval_config):
      raise UserError(f"{what} has {len(images)} images; the metrics need at least {min_samples(self.eval_config)}")
    if images.shape[1:] != self.image_shape:
      raise UserError(f"{what} are {'x'.join(map(str, images.shape[1:]))} (HxWxC) but the dataset is "
                      f"{'x'.join(map(str, self.image_shape))}; generate at config.data.resolution/channels")
    self.extractor.check_images(images.shape, what)

  def evaluate(self, images: np.ndarray) -> dict:
    """Every configured metric of `images` against the real statistics, as a flat dict of numbers."""
    e, real = self.eval_config, self.real
    feats, logits = self.extractor(images)
    out = {"extractor": self.extractor.name, "num_samples": int(len(images)), "num_real": int(real["count"])}
    real_feats = real.get("features")
    if "fid" in self.names:
      fake = metrics.FeatureStats()
      fake.update(feats)
      out["fid"] = metrics.frechet_distance(real["mu"], real["sigma"], fake.mean, fake.cov)
    if "kid" in self.names:
      size = min(e.kid_subset_size, len(feats), len(real_feats))
      out["kid"], out["kid_std"] = metrics.kernel_inception_distance(real_feats, feats, num_subsets=e.kid_subsets,
                                                                     subset_size=size, seed=0)
    if "prdc" in self.names:
      out.update(metrics.prdc(real_feats, feats, nearest_k=e.nearest_k))
    if "is" in self.names:
      prefix = "classifier_is" if e.extractor == "classifier" else "is"
      score, std = metrics.inception_score(logits, splits=min(10, len(logits)), from_logits=True)
      out[prefix], out[prefix + "_std"] = score, std
    if "classes" in self.names:
      p = _probabilities(logits.astype(np.float64))
      hist = np.bincount(p.argmax(-1), minlength=p.shape[1]) / len(p)
      out["confident"] = float((p.max(-1) >= e.confidence).mean())
      out["real_confident"] = float(real["confident"])
      out["class_tv"] = float(0.5 * np.abs(hist - real["class_hist"]).sum())
      out["class_hist"] = [round(float(h), 4) for h in hist]
    return out


def _barrier(name: str):
  from jax.experimental import multihost_utils
  multihost_utils.sync_global_devices(name)


def generate(state: steps.GANState, num: int, seed: int, batch_size: int, log=None) -> np.ndarray:
  """`num` uint8 images from latents fold_in(PRNGKey(seed), batch index): the same for every call."""
  rng = jax.random.PRNGKey(seed)
  num_batches = math.ceil(num / batch_size)
  report = max(1, num_batches // 4)
  start, out = time.perf_counter(), []
  for i in range(num_batches):
    z = jax.random.normal(jax.random.fold_in(rng, i), (batch_size, state.z_dim))
    out.append(image_utils.to_uint8(_sample(state, z)))
    if log and ((i + 1) % report == 0 or i + 1 == num_batches):
      log(f"eval: sampled {min((i + 1) * batch_size, num)}/{num} images ({time.perf_counter() - start:.1f}s)")
  return np.concatenate(out)[:num]


def format_line(step, values: dict) -> str:
  shown = " ".join(f"{k} {v:.4g}" for k, v in values.items() if isinstance(v, float))
  return f"eval step {step} | {shown} | {values['num_samples']} samples, {values['extractor']}"


class TrainingEval:
  """The `config.eval.every` hook of a GAN run: metrics to stdout, TensorBoard and WORKDIR/eval/metrics.jsonl,
  and WORKDIR/best/ (Orbax, keep 1) holding the state with the lowest FID so far.

  Built before the work directory is written, so a missing classifier or bad eval config stops
  the run before it starts.
  """

  def __init__(self, config, workdir, is_main: bool, writer=None):
    self.config, self.writer, self.is_main = config, writer, is_main  # writer: set once the workdir may be written
    self.log = _log_to(sys.stdout) if is_main else (lambda msg: None)
    self.evaluator = Evaluator(config, log=self.log)
    workdir = files.path(workdir)
    self.history_path = workdir / "eval" / "metrics.jsonl"
    self.best = Checkpoints(workdir / "best", keep=1)
    self.best_fid = self._best_so_far() if "fid" in self.evaluator.names else None

  def _best_so_far(self) -> float:
    """The FID of the checkpoint in best/, from the history line of its step (written before it was saved)."""
    step = self.best.latest_step()
    if step is None or not self.history_path.exists():
      return math.inf
    fids = {}
    for line in self.history_path.read_text().splitlines():
      if line.strip():
        record = json.loads(line)
        fids[record["step"]] = record.get("fid", math.inf)
    return fids.get(step, math.inf)

  def __call__(self, step: int, host_state: steps.GANState):
    e = self.config.eval
    start = time.perf_counter()
    samples = generate(host_state, e.num_samples, e.seed, e.batch_size, self.log)
    values = self.evaluator.evaluate(samples)
    values["seconds"] = round(time.perf_counter() - start, 2)
    self.log(format_line(step, values))
    self.writer.scalars(step, {f"eval/{k}": v for k, v in values.items() if isinstance(v, float)})
    if self.is_main:
      files.append_line(self.history_path, json.dumps({"step": step, **values}))
    if self.best_fid is None:
      return
    fid = values["fid"]
    if jax.process_count() > 1:  # every process must take the same decision: Orbax saves are collective.
      from jax.experimental import multihost_utils
      fid = float(multihost_utils.broadcast_one_to_all(np.float64(fid)))
    if fid < self.best_fid:
      self.best.save(step, host_state.arrays, self.config, force=True)
      self.best.wait()
      self.best_fid = fid
      self.log(f"eval step {step}: best FID so far, saved to {self.best.directory}")

  def close(self):
    self.best.close()


def load_gan_state(config, workdir, checkpoint: str) -> tuple[steps.GANState, int]:
  """The GAN state in WORKDIR/checkpoints (latest) or WORKDIR/best, built for single-device use."""
  from aigc_jax.tasks.gan.train import build_state

  if checkpoint not in CHECKPOINTS:
    raise UserError(f"--checkpoint={checkpoint} is not one of {', '.join(CHECKPOINTS)}")
  directory = files.path(workdir) / ("checkpoints" if checkpoint == "latest" else "best")
  ckpt = Checkpoints(directory, read_only=True)
  step = ckpt.latest_step()
  if step is None:
    hint = ("train first with --mode=train" if checkpoint == "latest"
            else "train with --config.eval.every=N to keep a best-FID checkpoint")
    raise UserError(f"no checkpoint in {directory}; {hint}")
  ckpt.check_compatible(config)
  state = build_state(config)
  return state.with_arrays(ckpt.restore(step, state.arrays)), step


def read_samples(path: str, config=None) -> np.ndarray:
  """The uint8 'images' of an .npz, or with 'data:SPLIT' real images of the config's dataset, as a reference."""
  if path.startswith("data:"):
    limit = config.eval.num_samples
    return np.concatenate(list(_real_batches(config, lambda m: None, split=path[5:], limit=limit)))
  p = Path(path).expanduser()
  if not p.is_file() or p.suffix != ".npz":
    raise UserError(f"--samples '{path}' is not an .npz file (write one with --mode=sample --output F.npz) "
                    "or data:SPLIT")
  try:
    with np.load(p, allow_pickle=False) as f:
      if "images" not in f.files:
        raise UserError(f"--samples '{path}' has no 'images' array; it has {f.files}")
      return f["images"]
  except (OSError, ValueError) as e:
    if isinstance(e, UserError):
      raise
    raise UserError(f"--samples '{path}' is not a readable .npz ({type(e).__name__})") from None


def run(config, workdir: str | None, *, checkpoint: str = "latest", samples: str | None = None,
        output: str | None = None, overwrite: bool = False) -> dict:
  """--mode=eval: metrics of a checkpoint's samples or of a sample file, printed as one JSON line."""
  validate(config)
  if output and Path(output).suffix != ".json":
    raise UserError(f"--output '{output}' must end in .json (a grid of samples goes next to it as .png)")
  if output and files.path(output).exists() and not overwrite:
    raise UserError(f"{output} exists; pass --overwrite to replace it or choose another --output")
  log = _log_to(sys.stderr)
  if samples:
    images = read_samples(samples, config)
    if images.ndim == 3:
      images = images[..., None]
    if len(images) == 0:
      raise UserError(f"--samples '{samples}' holds no images")
    evaluator = Evaluator(config, log=log)
    evaluator.check_images(images, f"--samples '{samples}'")
    result = {"samples": str(samples), **evaluator.evaluate(images)}
  else:
    if not workdir:
      raise UserError("--mode=eval needs --workdir W (a GAN run) or --samples F.npz")
    state, step = load_gan_state(config, workdir, checkpoint)
    evaluator = Evaluator(config, log=log)
    e = config.eval
    images = generate(state, e.num_samples, e.seed, e.batch_size, log)
    result = {"workdir": str(workdir), "checkpoint": checkpoint, "step": int(step), **evaluator.evaluate(images)}
  line = json.dumps(result)
  print(line, flush=True)
  if output:
    out = files.write_text(output, line + "\n")
    grid = out.with_suffix(".png")
    tiles = image_utils.grid(images[:64])
    image_utils.save_png(grid, tiles, scale=max(1, 128 // tiles.shape[0] + 1))
    log(f"eval: wrote {out} and a grid of the first {min(64, len(images))} images to {grid}")
  return result
