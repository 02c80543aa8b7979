"""--mode=probe: how good a representation a GAN's discriminator learned (Radford et al. 2016, sec. 5.1).

Every discriminator layer's activations are max-pooled to a `probe.pool` x `probe.pool` grid,
flattened, concatenated and standardised; an L2-regularised logistic regression (scikit-learn,
C chosen on a validation part of the train split) is fitted on them with the network frozen. The
same probe on the raw pixels and on a randomly initialised discriminator of the same shape, with
the same images and splits, says how much of the accuracy training added.
"""

import functools
import json
import math
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from aigc_jax import data
from aigc_jax.core import files
from aigc_jax.core import images as image_utils
from aigc_jax.core.errors import UserError
from aigc_jax.tasks.gan.state import GANState, build_state, load_state


def parse_cs(text: str) -> list[float]:
  try:
    cs = [float(c) for c in text.split(",") if c.strip()]
  except ValueError:
    cs = []
  if not cs or any(not (c > 0 and math.isfinite(c)) for c in cs):
    raise UserError(f"config.probe.cs='{text}' must be a comma-separated list of positive numbers, e.g. 0.01,0.1,1")
  return cs


def validate(config: ml_collections.ConfigDict):
  p = config.probe
  parse_cs(p.cs)
  if not 0 < p.val_fraction < 1:
    raise UserError(f"config.probe.val_fraction={p.val_fraction} must be in (0, 1)")
  if p.pool <= 0:
    raise UserError(f"config.probe.pool={p.pool} must be positive")
  if p.limit <= 1:
    raise UserError(f"config.probe.limit={p.limit} must be at least 2")


def labelled_images(config, split_key: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, H, W, C] and labels of `config.probe.<split_key>`, in the source's order."""
  d = ml_collections.ConfigDict(config.data.to_dict())
  d.split = config.probe[split_key]
  source = data.load(d, seed=config.seed)
  if source.num_classes is None:
    raise UserError(f"config.probe.{split_key}='{d.split}' of source '{d.source}' has no labels; the probe needs "
                    "labelled images (the digits, IDX files with labels, class subfolders, .npz 'labels')")
  xs, ys = [], []
  for batch in data.eval_batches(source, d, batch_size=500):
    n = int(batch["mask"].sum())
    xs.append(image_utils.to_uint8(batch["image"][:n]))
    ys.append(batch["label"][:n])
  x, y = np.concatenate(xs), np.concatenate(ys)
  return (x[:limit], y[:limit]) if limit else (x, y)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _pooled_features(discriminator, variables, images_uint8, pool: int):
  x = images_uint8.astype(jnp.float32) / 127.5 - 1.0
  _, layers = discriminator.apply(variables, x, train=False, return_features=True)
  pooled = []
  for a in layers:
    n, h, w, c = a.shape
    k = max(1, h // pool)  # window of a max-pool that leaves a pool x pool grid (or 1x1 steps below it)
    a = jax.lax.reduce_window(a, -np.inf, jax.lax.max, (1, k, k, 1), (1, k, k, 1), "VALID")
    pooled.append(a.reshape(n, -1))
  return jnp.concatenate(pooled, axis=1)


def discriminator_features(state: GANState, images_uint8: np.ndarray, pool: int, batch_size: int = 250):
  """Frozen-discriminator features [N, D]: every layer max-pooled to pool x pool, concatenated."""
  variables = {"params": state.d_params, "batch_stats": state.d_stats}
  return image_utils.map_batches(lambda b: _pooled_features(state.discriminator, variables, b, pool), images_uint8,
                            batch_size)


def linear_probe(train_x, train_y, test_x, test_y, cs, val_fraction: float) -> dict:
  """Standardised features, L2 logistic regression; C by validation accuracy, then refit on all train."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.preprocessing import StandardScaler

  n_val = max(1, int(round(len(train_x) * val_fraction)))
  fit_x, fit_y, val_x, val_y = train_x[:-n_val], train_y[:-n_val], train_x[-n_val:], train_y[-n_val:]

  def fit(x, y, c):
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=1000, tol=1e-3).fit(scaler.transform(x), y)
    return lambda z: model.predict(scaler.transform(z))

  val_acc = {c: float(np.mean(fit(fit_x, fit_y, c)(val_x) == val_y)) for c in cs}
  best = max(cs, key=lambda c: (val_acc[c], -c))  # ties: the stronger regularisation
  predict = fit(train_x, train_y, best)
  return {"dim": int(train_x.shape[1]), "c": best, "val_accuracy": val_acc[best],
          "test_accuracy": float(np.mean(predict(test_x) == test_y))}


def run(config, workdir: str, checkpoint: str = "latest", output: str | None = None, overwrite: bool = False) -> dict:
  """Probes pixels, a random discriminator and the trained one of `workdir`; prints a table and a JSON line."""
  validate(config)
  if output:
    files.check_output(output, overwrite, suffixes=(".json",))
  p = config.probe
  cs = parse_cs(p.cs)
  trained, step = load_state(config, workdir, checkpoint)
  log = lambda msg: print(msg, file=sys.stderr, flush=True)
  train_x, train_y = labelled_images(config, "train_split", p.limit)
  test_x, test_y = labelled_images(config, "test_split")
  if len(train_x) * p.val_fraction < 1 or len(train_x) * (1 - p.val_fraction) < 2:
    raise UserError(f"config.probe.train_split='{p.train_split}' has {len(train_x)} images; too few to hold out "
                    f"config.probe.val_fraction={p.val_fraction} for choosing C")
  random_config = ml_collections.ConfigDict(config.to_dict())
  random_config.seed = p.seed if p.seed != config.seed else config.seed + 1
  random = build_state(random_config)

  rows = {}
  flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
  for name, featurize in (("pixels", flat),
                          ("random_d", lambda x: discriminator_features(random, x, p.pool)),
                          ("trained_d", lambda x: discriminator_features(trained, x, p.pool))):
    start = time.perf_counter()
    rows[name] = linear_probe(featurize(train_x), train_y, featurize(test_x), test_y, cs, p.val_fraction)
    rows[name]["seconds"] = round(time.perf_counter() - start, 1)
    log(f"probe: {name} done in {rows[name]['seconds']}s")
  result = {"workdir": str(workdir), "checkpoint": checkpoint, "step": int(step), "train_split": p.train_split,
            "test_split": p.test_split,
            "train_examples": int(len(train_x)), "test_examples": int(len(test_x)), "pool": p.pool, **rows}
  print(f"linear probe: {len(train_x)} train ({p.train_split}, {p.val_fraction:.0%} of them to choose C), "
        f"{len(test_x)} test ({p.test_split}); GAN step {step}")
  print(f"{'features':<12} {'dim':>6} {'C':>8} {'val acc':>8} {'test acc':>9}")
  for name, r in rows.items():
    print(f"{name:<12} {r['dim']:>6} {r['c']:>8g} {r['val_accuracy']:>8.4f} {r['test_accuracy']:>9.4f}")
  line = json.dumps(result)
  print(line, flush=True)
  if output:
    files.write_text(output, line + "\n")
  return result
