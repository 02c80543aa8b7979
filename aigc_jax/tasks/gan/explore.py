"""--mode=explore: pictures that show what a trained GAN has learned, from its latest checkpoint.

Writes into --output (default WORKDIR/explore):
  interpolations.png  rows of spherical interpolations between two latents (one class per row
                      for conditional models): smooth rows mean a smooth latent space.
  classes.png         conditional models: one row per class, one latent per column, so a column
                      shows what the class changes and a row what the latent changes.
  nearest.png         each generated image (left column, framed) next to its nearest training
                      images in classifier feature space (--classifier_workdir), or in pixel space
                      without one: near-copies there mean the generator memorised.
  saliency.png        for real (top rows) and generated images: the image, |d logit / d input|,
                      then per discriminator layer |sum_c activation * d logit / d activation|
                      upsampled to the image: where each layer looks to decide real or fake.
  explore.json        what was computed, with the nearest-neighbour distances.
"""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax import data
from aigc_jax.core import files, images
from aigc_jax.core.errors import UserError
from aigc_jax.metrics import classifier
from aigc_jax.tasks.gan import steps
from aigc_jax.tasks.gan.state import load_state

MAX_TRAIN_IMAGES = 20_000  # nearest-neighbour search set, in the source's order


def slerp(z0, z1, t):
  """Spherical interpolation: Gaussian latents concentrate on a sphere, and a straight line cuts inside it."""
  t = jnp.asarray(t)[:, None]
  n0, n1 = z0 / jnp.linalg.norm(z0), z1 / jnp.linalg.norm(z1)
  omega = jnp.arccos(jnp.clip(jnp.dot(n0, n1), -1.0, 1.0))
  so = jnp.sin(omega)
  lerp = (1.0 - t) * z0 + t * z1
  return jnp.where(so < 1e-6, lerp, (jnp.sin((1.0 - t) * omega) / so) * z0 + (jnp.sin(t * omega) / so) * z1)


def interpolations(state, rng, rows: int = 8, cols: int = 10):
  """[rows * cols] images: row r goes from one latent to another (class r mod K if conditional)."""
  k0, k1 = jax.random.split(rng)
  z0 = jax.random.normal(k0, (rows, state.z_dim))
  z1 = jax.random.normal(k1, (rows, state.z_dim))
  t = jnp.linspace(0.0, 1.0, cols)
  z = jnp.concatenate([slerp(z0[r], z1[r], t) for r in range(rows)])
  labels = jnp.repeat(jnp.arange(rows) % state.num_classes, cols) if state.num_classes else None
  return jax.jit(steps.sample_step)(state, z, labels)


def class_grid(state, rng, cols: int = 10):
  """[K * cols] images: row = class, column = latent."""
  z = jnp.tile(jax.random.normal(rng, (cols, state.z_dim)), (state.num_classes, 1))
  labels = jnp.repeat(jnp.arange(state.num_classes), cols)
  return jax.jit(steps.sample_step)(state, z, labels)


def nearest(query_feats, train_feats, k: int):
  """Indices [Q, k] and Euclidean distances of the k nearest training features to each query."""
  q, t = np.asarray(query_feats, np.float64), np.asarray(train_feats, np.float64)
  d2 = (q**2).sum(1)[:, None] - 2 * q @ t.T + (t**2).sum(1)[None, :]
  idx = np.argsort(d2, axis=1)[:, :k]
  return idx, np.sqrt(np.maximum(np.take_along_axis(d2, idx, 1), 0.0))


def layer_saliency(state, images_in, labels=None):
  """Input saliency [N, H, W] and per-layer maps {name: [N, H, W]} of D's logit, each scaled to [0, 1].

  Layers are D's direct sub-modules with feature-map outputs (BatchNorm excluded); a zero
  perturbation added to each output by a method interceptor gives d logit / d activation.
  """
  d = state.discriminator
  variables = {"params": state.d_params, "batch_stats": state.d_stats}
  kw = {} if labels is None else {"labels": labels}

  def run(x, deltas, record):
    def interceptor(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      m = context.module
      if (context.method_name == "__call__" and m.scope is not None and len(m.scope.path) == 1
          and not isinstance(m, nn.BatchNorm) and hasattr(out, "ndim") and out.ndim == 4):
        name = m.scope.path[0]
        if record is not None:
          record[name] = out
        if deltas is not None and name in deltas:
          out = out + deltas[name].astype(out.dtype)
      return out

    with nn.intercept_methods(interceptor):
      out = d.apply(variables, x, train=False, **kw)
    return out[0] if isinstance(out, tuple) else out

  acts = {}
  run(images_in, None, acts)
  acts = {k: jax.lax.stop_gradient(v) for k, v in acts.items()}
  zeros = {k: jnp.zeros(v.shape, jnp.float32) for k, v in acts.items()}
  g_in, g_layers = jax.grad(lambda x, dl: jnp.sum(run(x, dl, None)), argnums=(0, 1))(images_in, zeros)
  h, w = images_in.shape[1:3]

  def norm(m):
    m = m - m.min(axis=(1, 2), keepdims=True)
    return m / (m.max(axis=(1, 2), keepdims=True) + 1e-12)

  maps = {}
  for name in acts:
    m = jnp.abs(jnp.sum(acts[name].astype(jnp.float32) * g_layers[name], axis=-1))
    maps[name] = norm(jax.image.resize(m, (m.shape[0], h, w), "bilinear"))
  return norm(jnp.sum(jnp.abs(g_in), axis=-1)), maps


def _heat(m):
  """[N, H, W] in [0, 1] -> uint8 RGB [N, H, W, 3] (black-red-yellow-white)."""
  m = np.asarray(m, np.float32)
  rgb = np.stack([np.clip(3 * m, 0, 1), np.clip(3 * m - 1, 0, 1), np.clip(3 * m - 2, 0, 1)], -1)
  return (rgb * 255).round().astype(np.uint8)


def _rgb(x_uint8):
  return np.repeat(x_uint8, 3, axis=-1) if x_uint8.shape[-1] == 1 else x_uint8


def _frame(x_uint8):
  """A red border marks generated images in nearest.png."""
  x = _rgb(x_uint8).copy()
  x[:, :1], x[:, -1:], x[:, :, :1], x[:, :, -1:] = [255, 0, 0], [255, 0, 0], [255, 0, 0], [255, 0, 0]
  return x


def _classifier_features(classifier_workdir):
  """A feature function uint8 images -> [N, F] from a classifier trained with --mode=train."""
  net = classifier.load(classifier_workdir, "--classifier_workdir")
  fn = jax.jit(lambda x: net.features_and_logits(x)[0])

  def features(x_uint8):
    return np.concatenate([np.asarray(fn(x_uint8[i:i + 250])) for i in range(0, len(x_uint8), 250)])
  return features, net.resolution, net.channels


def _training_images(config, limit: int):
  source = data.load(config.data, seed=config.seed)
  out, labels, n = [], [], 0
  for b in data.eval_batches(source, config.data, batch_size=250):
    keep = b["mask"]
    out.append(images.to_uint8(b["image"][keep]))
    labels.append(b["label"][keep])
    n += int(keep.sum())
    if n >= limit:
      break
  return np.concatenate(out)[:limit], np.concatenate(labels)[:limit]


def run(config, workdir, output: str | None = None, overwrite: bool = False, seed: int = 0,
        classifier_workdir: str | None = None, num_nearest: int = 8, k: int = 5):
  """Writes the pictures listed in the module docstring; returns the folder."""
  out = files.check_output(output or files.path(workdir) / "explore", overwrite, folder=True)
  feature_fn = None
  if classifier_workdir:
    feature_fn, res, ch = _classifier_features(classifier_workdir)
    if (res, ch) != (config.data.resolution, config.data.channels):
      raise UserError(f"the classifier in {classifier_workdir} takes {res}x{res}x{ch} images, the GAN makes "
                      f"{config.data.resolution}x{config.data.resolution}x{config.data.channels}")
  state, _ = load_state(config, workdir)
  train_images, train_labels = _training_images(config, MAX_TRAIN_IMAGES)
  rng = jax.random.PRNGKey(seed)
  out.mkdir(parents=True, exist_ok=True)
  scale = max(1, 64 // config.data.resolution)
  summary = {"step": int(state.step), "ema": state.ema_params is not None, "classes": state.num_classes}

  interp = images.to_uint8(interpolations(state, jax.random.fold_in(rng, 1)))
  images.save_png(out / "interpolations.png", images.grid(interp, ncols=10), scale=scale)
  if state.num_classes:
    grid = images.to_uint8(class_grid(state, jax.random.fold_in(rng, 2)))
    images.save_png(out / "classes.png", images.grid(grid, ncols=10), scale=scale)

  z = jax.random.normal(jax.random.fold_in(rng, 3), (num_nearest, state.z_dim))
  gen_labels = steps.default_labels(num_nearest, state.num_classes) if state.num_classes else None
  generated = images.to_uint8(jax.jit(steps.sample_step)(state, z, gen_labels))
  if feature_fn is None:
    space = "pixels"
    feats = lambda x: x.reshape(len(x), -1).astype(np.float32) / 127.5 - 1.0
  else:
    space = f"classifier features ({classifier_workdir})"
    feats = feature_fn
  idx, dist = nearest(feats(generated), feats(train_images), k)
  rows = [np.concatenate([_frame(generated[i:i + 1]), _rgb(train_images[idx[i]])]) for i in range(num_nearest)]
  images.save_png(out / "nearest.png", images.grid(np.concatenate(rows), ncols=k + 1), scale=scale)
  summary["nearest"] = {"space": space, "searched": len(train_images), "distances": dist.round(4).tolist(),
                        "indices": idx.tolist()}

  n_sal = 4
  real = train_images[:n_sal].astype(np.float32) / 127.5 - 1.0
  fake = jax.jit(steps.sample_step)(state, z[:n_sal], None if gen_labels is None else gen_labels[:n_sal])
  x = jnp.concatenate([jnp.asarray(real), fake])
  labels = None
  if state.num_classes:
    labels = jnp.concatenate([jnp.asarray(train_labels[:n_sal], jnp.int32), gen_labels[:n_sal]])
  sal_in, sal_layers = layer_saliency(state, x, labels)
  columns = [_rgb(images.to_uint8(x)), _heat(sal_in)] + [_heat(m) for m in sal_layers.values()]
  tiles = np.stack(columns, axis=1).reshape(-1, *columns[0].shape[1:])
  images.save_png(out / "saliency.png", images.grid(tiles, ncols=len(columns)), scale=scale)
  summary["saliency_columns"] = ["image", "input"] + list(sal_layers)
  files.write_text(out / "explore.json", json.dumps(summary, indent=2) + "\n")
  return out
