"""Sample quality against real data: an `Evaluator` scores a set of generated uint8 images.

It pairs a feature extractor (`metrics.extractors`) with statistics of the real data, computed
once per extractor and dataset and cached on disk (`metrics.cached_stats`), and turns generated
images into FID, KID, precision/recall/density/coverage, IS and, with the in-domain classifier,
how recognisable and how class-balanced the samples are. It knows no model: whoever has images
(a GAN's sampler, a sample file) passes them in. With several processes every process computes the
same statistics; process 0 fills the cache first.
"""

import math
import os
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from aigc_jax import data, metrics
from aigc_jax.core import images as image_utils
from aigc_jax.core.errors import UserError
from aigc_jax.metrics import extractors

METRICS = ("fid", "kid", "prdc", "is", "classes")


def log_to(stream):
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
    self.log = log or log_to(sys.stdout)
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
  multihost_utils.sync_global_devices(name)


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


def format_line(step, values: dict) -> str:
  shown = " ".join(f"{k} {v:.4g}" for k, v in values.items() if isinstance(v, float))
  return f"eval step {step} | {shown} | {values['num_samples']} samples, {values['extractor']}"
