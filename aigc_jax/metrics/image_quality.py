"""PSNR and SSIM per image, over the whole image or a region, matching scikit-image's definitions.

`ssim` is skimage.metrics.structural_similarity with its defaults (7x7 uniform window, sample
covariance, K1=0.01, K2=0.03, mean over the window centres at least 3 pixels from the border),
averaged over channels; `region` restricts the mean to those centres inside the region, which is
how "SSIM over the masked pixels only" is defined here. Inputs are [N, H, W, C] in any range with
`data_range` its width (2 for [-1, 1]).
"""

import jax
import jax.numpy as jnp


def psnr(a, b, data_range: float = 2.0, region=None):
  """[N] PSNR in dB; `region` [N, H, W, 1] (1 = counted) restricts the mean squared error."""
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  err = (a - b) ** 2
  if region is None:
    mse = jnp.mean(err, axis=(1, 2, 3))
  else:
    weight = jnp.broadcast_to(jnp.asarray(region, jnp.float32), err.shape)
    mse = jnp.sum(err * weight, axis=(1, 2, 3)) / jnp.maximum(jnp.sum(weight, axis=(1, 2, 3)), 1.0)
  return 10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, 1e-12))


def _box(x, win):
  """Mean over every valid win x win window of [N, H, W, C]."""
  s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, win, win, 1), (1, 1, 1, 1), "VALID")
  return s / (win * win)


def ssim_map(a, b, data_range: float = 2.0, win: int = 7):
  """SSIM at each valid window centre: [N, H - win + 1, W - win + 1, C]."""
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  n = win * win
  cov = n / (n - 1)
  ux, uy = _box(a, win), _box(b, win)
  vx = cov * (_box(a * a, win) - ux * ux)
  vy = cov * (_box(b * b, win) - uy * uy)
  vxy = cov * (_box(a * b, win) - ux * uy)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def ssim(a, b, data_range: float = 2.0, region=None, win: int = 7):
  """[N] mean SSIM; `region` [N, H, W, 1] restricts the mean to window centres inside it."""
  s = ssim_map(a, b, data_range, win)
  if region is None:
    return jnp.mean(s, axis=(1, 2, 3))
  pad = (win - 1) // 2
  r = jnp.asarray(region, jnp.float32)[:, pad: pad + s.shape[1], pad: pad + s.shape[2]]
  r = jnp.broadcast_to(r, s.shape)
  return jnp.sum(s * r, axis=(1, 2, 3)) / jnp.maximum(jnp.sum(r, axis=(1, 2, 3)), 1.0)


def crop_border(images, border: int):
  """Drops `border` pixels on every side, as super-resolution papers do before PSNR/SSIM."""
  return images if border <= 0 else images[:, border:-border, border:-border]
