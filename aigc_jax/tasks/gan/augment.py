"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) in pure JAX.

The discriminator sees every image, real or generated, through the same random colour,
translation and cutout transforms, and the generator's gradient flows back through them. D then
cannot memorise a small training set pixel by pixel, while G is not taught to produce augmented
images (the transforms are applied after G, to both sides alike).

Images are NHWC in [-1, 1]. Random draws are made for the global batch and sliced per device under
pmap (as steps.noise does), so the parallel step sees the augmentations a single device would.
"""

import jax
import jax.numpy as jnp

from aigc_jax.core import parallel

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
  """'color,translation,cutout' -> ('color', 'translation', 'cutout'); '' -> ()."""
  parts = tuple(p.strip() for p in policy.split(",") if p.strip())
  bad = [p for p in parts if p not in POLICIES]
  if bad:
    raise ValueError(f"unknown augmentation '{bad[0]}' in '{policy}'; use a comma-separated subset of "
                     f"{','.join(POLICIES)}, or '' for none")
  return parts


def uniform(rng, shape, axis_name, minval=0.0, maxval=1.0):
  """U[minval, maxval) of `shape` for this device's slice of the global batch (axis 0)."""
  return parallel.per_device(lambda k, s: jax.random.uniform(k, s, minval=minval, maxval=maxval), rng, shape,
                             axis_name)


def _randint(rng, shape, low, high, axis_name):
  return jnp.floor(uniform(rng, shape, axis_name, low, high)).astype(jnp.int32)


def color(rng, x, axis_name=None):
  """Random brightness (+[-0.5, 0.5)), saturation (x[0, 2)) and contrast (x[0.5, 1.5)) per image."""
  n = x.shape[0]
  kb, ks, kc = jax.random.split(rng, 3)
  x = x + (uniform(kb, (n, 1, 1, 1), axis_name) - 0.5).astype(x.dtype)
  mean = jnp.mean(x, axis=3, keepdims=True)
  x = (x - mean) * (uniform(ks, (n, 1, 1, 1), axis_name) * 2).astype(x.dtype) + mean
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (uniform(kc, (n, 1, 1, 1), axis_name) + 0.5).astype(x.dtype) + mean


def translation(rng, x, ratio: float = 0.125, axis_name=None):
  """Shifts each image by up to ratio * size pixels per axis, filling with zeros."""
  n, h, w, _ = x.shape
  sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  ky, kx = jax.random.split(rng)
  dy = _randint(ky, (n,), 0, 2 * sh + 1, axis_name)
  dx = _randint(kx, (n,), 0, 2 * sw + 1, axis_name)
  padded = jnp.pad(x, ((0, 0), (sh, sh), (sw, sw), (0, 0)))
  crop = lambda im, y0, x0: jax.lax.dynamic_slice(im, (y0, x0, 0), (h, w, x.shape[3]))
  return jax.vmap(crop)(padded, dy, dx)


def cutout(rng, x, ratio: float = 0.5, axis_name=None):
  """Zeroes one ratio * size square per image at a random place (it may hang over the border)."""
  n, h, w, _ = x.shape
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  ky, kx = jax.random.split(rng)
  cy = _randint(ky, (n,), 0, h + (1 - ch % 2), axis_name)
  cx = _randint(kx, (n,), 0, w + (1 - cw % 2), axis_name)
  ys = jnp.arange(h)[None, :] - (cy[:, None] - ch // 2)
  xs = jnp.arange(w)[None, :] - (cx[:, None] - cw // 2)
  inside = ((ys >= 0) & (ys < ch))[:, :, None] & ((xs >= 0) & (xs < cw))[:, None, :]
  return x * (~inside)[..., None].astype(x.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(rng, x, policy: tuple[str, ...], axis_name=None):
  """Applies the transforms in `policy` in order, each with its own key."""
  for i, name in enumerate(policy):
    x = TRANSFORMS[name](jax.random.fold_in(rng, i), x, axis_name=axis_name)
  return x
