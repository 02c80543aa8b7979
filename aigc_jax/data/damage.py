"""Synthetic damage for training and measuring repair: masks (holes) and noise.

Everything is a pure JAX function of a key and a shape, so a train step can damage its batch on
the fly from `fold_in(rng, step)` and a benchmark can reproduce the exact damage from a seed.
A mask is float32 [H, W, 1] with 1 where a pixel can be trusted as it is and 0 where it is
missing or corrupted: holes are 0 inside, noise makes the whole mask 0 (every pixel may be wrong),
so `1 - mask` is always the region a repair has to fix and a blend may replace. Images are in
[-1, 1]; missing pixels are set to 0 (mid-grey) before the network sees them.
"""

import jax
import jax.numpy as jnp

from aigc_jax.core import parallel
from aigc_jax.core.errors import UserError

MASK_KINDS = ("center", "boxes", "strokes", "pixels")
NOISE_KINDS = ("gaussian", "salt_pepper")
KINDS = MASK_KINDS + NOISE_KINDS


def _grid(h, w):
  return jnp.arange(h, dtype=jnp.float32)[:, None], jnp.arange(w, dtype=jnp.float32)[None, :]


def center_mask(h: int, w: int):
  """A hole of half the height and half the width in the middle: 25% of the pixels."""
  known = jnp.ones((h, w), jnp.float32)
  known = known.at[h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2].set(0.0)
  return known[..., None]


def boxes_mask(key, h: int, w: int, max_boxes: int = 3, min_frac: float = 0.15, max_frac: float = 0.4):
  """1 to `max_boxes` rectangles, each side a uniform fraction of the image side."""
  kn, ks, kp = jax.random.split(key, 3)
  n = jax.random.randint(kn, (), 1, max_boxes + 1)
  sizes = jax.random.uniform(ks, (max_boxes, 2), minval=min_frac, maxval=max_frac) * jnp.array([h, w])
  sizes = jnp.maximum(jnp.round(sizes), 1.0)
  corners = jax.random.uniform(kp, (max_boxes, 2)) * (jnp.array([h, w], jnp.float32) - sizes)
  corners = jnp.floor(corners)
  y, x = _grid(h, w)
  inside = ((y[None] >= corners[:, 0, None, None]) & (y[None] < corners[:, 0, None, None] + sizes[:, 0, None, None])
            & (x[None] >= corners[:, 1, None, None]) & (x[None] < corners[:, 1, None, None] + sizes[:, 1, None, None]))
  inside = inside & (jnp.arange(max_boxes) < n)[:, None, None]
  return (1.0 - jnp.any(inside, axis=0).astype(jnp.float32))[..., None]


def strokes_mask(key, h: int, w: int, max_strokes: int = 3, vertices: int = 5, width_frac=(0.06, 0.12)):
  """Free-form brush strokes (Yu et al. 2019): random walks of thick line segments."""
  kn, ks, ka, kl, kw = jax.random.split(key, 5)
  n = jax.random.randint(kn, (), 1, max_strokes + 1)
  side = float(min(h, w))
  start = jax.random.uniform(ks, (max_strokes, 2)) * jnp.array([h, w], jnp.float32)
  angles = jax.random.uniform(ka, (max_strokes, vertices), minval=0.0, maxval=2 * jnp.pi)
  lengths = jax.random.uniform(kl, (max_strokes, vertices), minval=0.1, maxval=0.3) * side
  steps_ = jnp.stack([jnp.sin(angles), jnp.cos(angles)], -1) * lengths[..., None]
  points = jnp.concatenate([start[:, None], start[:, None] + jnp.cumsum(steps_, axis=1)], axis=1)
  points = jnp.clip(points, 0.0, jnp.array([h - 1, w - 1], jnp.float32))
  radius = jax.random.uniform(kw, (max_strokes,), minval=width_frac[0], maxval=width_frac[1]) * side
  a, b = points[:, :-1], points[:, 1:]  # [S, V, 2] segments
  y, x = _grid(h, w)
  p = jnp.stack(jnp.broadcast_arrays(y, x), -1)  # [H, W, 2]
  ab = b - a
  t = jnp.einsum("hwk,svk->svhw", p, ab) - jnp.einsum("svk,svk->sv", a, ab)[..., None, None]
  t = jnp.clip(t / jnp.maximum(jnp.sum(ab * ab, -1), 1e-6)[..., None, None], 0.0, 1.0)
  closest = a[..., None, None, :] + t[..., None] * ab[..., None, None, :]
  dist2 = jnp.sum((p - closest) ** 2, -1)  # [S, V, H, W]
  hit = dist2 <= radius[:, None, None, None] ** 2
  hit = hit & (jnp.arange(max_strokes) < n)[:, None, None, None]
  return (1.0 - jnp.any(hit, axis=(0, 1)).astype(jnp.float32))[..., None]


def pixels_mask(key, h: int, w: int, min_rate: float = 0.3, max_rate: float = 0.7):
  """Each pixel missing independently, at a rate drawn uniformly per image."""
  kr, kp = jax.random.split(key)
  rate = jax.random.uniform(kr, (), minval=min_rate, maxval=max_rate)
  return (jax.random.uniform(kp, (h, w, 1)) >= rate).astype(jnp.float32)


def mask(key, kind: str, h: int, w: int):
  """One [H, W, 1] known-pixel mask of `kind`."""
  if kind == "center":
    return center_mask(h, w)
  if kind == "boxes":
    return boxes_mask(key, h, w)
  if kind == "strokes":
    return strokes_mask(key, h, w)
  if kind == "pixels":
    return pixels_mask(key, h, w)
  raise ValueError(f"unknown mask kind '{kind}'; use one of {MASK_KINDS}")


def noise(key, image, kind: str, sigma: float = 0.2, amount: float = 0.1):
  """`image` [H, W, C] in [-1, 1] with noise; `sigma` is the Gaussian std in those units
  (0.2 = 25.5 grey levels of 255), `amount` the salt-and-pepper fraction of pixels."""
  if kind == "gaussian":
    return jnp.clip(image + sigma * jax.random.normal(key, image.shape), -1.0, 1.0)
  if kind == "salt_pepper":
    ku, ks = jax.random.split(key)
    hit = jax.random.uniform(ku, image.shape[:2] + (1,)) < amount
    salt = jnp.where(jax.random.uniform(ks, image.shape[:2] + (1,)) < 0.5, -1.0, 1.0)
    return jnp.where(hit, salt, image)
  raise ValueError(f"unknown noise kind '{kind}'; use one of {NOISE_KINDS}")


def damage_one(key, image, kinds: tuple[str, ...], sigma: float = 0.2, amount: float = 0.1):
  """Damages one image with a kind drawn uniformly from `kinds`: (damaged, known mask).

  Holes are filled with 0; noise gives an all-zero mask (no pixel can be trusted as it is).
  """
  h, w, _ = image.shape
  kchoice, kdamage = jax.random.split(key)
  choice = jax.random.randint(kchoice, (), 0, len(kinds))
  outs, masks = [], []
  for kind in kinds:
    if kind in MASK_KINDS:
      m = mask(kdamage, kind, h, w)
      outs.append(image * m)
      masks.append(m)
    else:
      outs.append(noise(kdamage, image, kind, sigma, amount))
      masks.append(jnp.zeros((h, w, 1), jnp.float32))
  return jnp.stack(outs)[choice], jnp.stack(masks)[choice]


def damage_batch(key, images, kinds: tuple[str, ...], sigma: float = 0.2, amount: float = 0.1, axis_name=None):
  """Per-image keys split from `key`: image i of the global batch gets the same damage whether
  the batch is whole (jit) or split over a pmap axis, where this device keeps its slice."""
  keys = parallel.per_device(lambda k, shape: jax.random.split(k, shape[0]), key, images.shape[:1], axis_name)
  return jax.vmap(lambda k, x: damage_one(k, x, kinds, sigma, amount))(keys, images)


def parse_kinds(text: str, allowed=KINDS) -> tuple[str, ...]:
  """'center,strokes' -> ('center', 'strokes'), rejecting unknown names with a UserError."""
  kinds = tuple(k.strip() for k in text.split(",") if k.strip())
  bad = [k for k in kinds if k not in allowed]
  if not kinds or bad:
    raise UserError(f"damage kinds '{text}' must be a comma-separated list of {', '.join(allowed)}")
  return kinds


def downscale(images, factor: int):
  """Box-filter (area) downscaling of [N, H, W, C] by an integer factor; H and W must divide."""
  n, h, w, c = images.shape
  return images.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
