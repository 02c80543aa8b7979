"""Rendered pages of printed text, photographed: training images for the kind of picture none of
photo_crops.TRAIN shows (dark glyphs a few pixels high on light paper), made offline with Pillow's
own scalable font.

A page is lines of random words at one font size, rendered at 4x and area-downscaled (a lens's
anti-aliasing), on paper lit unevenly, tilted by a few degrees, softened by a Gaussian blur and
given sensor noise. The random draws below are fixed choices, not tuned on any test image.
"""

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:()-=_'"
RENDER = 4  # drawn at this multiple of the page size, then area-downscaled


def words(rng, n: int) -> str:
  lengths = rng.integers(1, 11, n)
  return " ".join("".join(rng.choice(list(LETTERS), k)) for k in lengths)


def page(rng, size: int = 256) -> np.ndarray:
  """uint8 [size, size]: one page of text, 7 to 20 pixels per line of type."""
  from PIL import Image, ImageDraw, ImageFont
  from scipy.ndimage import gaussian_filter

  font_px = int(rng.integers(7, 21))
  font = ImageFont.load_default(size=font_px * RENDER)
  big = Image.new("L", (size * RENDER, size * RENDER), 255)
  draw = ImageDraw.Draw(big)
  line = int(font_px * RENDER * rng.uniform(1.2, 1.8))
  y = int(rng.integers(-line, line))
  while y < size * RENDER:
    x = int(rng.integers(-4 * font_px * RENDER, font_px * RENDER))
    draw.text((x, y), words(rng, 4 * size // font_px), fill=0, font=font)
    y += line
  big = big.rotate(float(rng.uniform(-3, 3)), resample=Image.BICUBIC, fillcolor=255)
  ink = np.asarray(big, np.float32).reshape(size, RENDER, size, RENDER).mean((1, 3)) / 255  # 1 paper, 0 ink
  ink = gaussian_filter(ink, rng.uniform(0.3, 1.0), mode="nearest")
  yy, xx = np.mgrid[0:size, 0:size] / size
  paper = rng.uniform(140, 240) + rng.uniform(-40, 40) * yy + rng.uniform(-40, 40) * xx
  dark = rng.uniform(0, 70)
  im = dark + (paper - dark) * ink + rng.normal(0, rng.uniform(0, 4), (size, size))
  return np.clip(np.round(im), 0, 255).astype(np.uint8)


def pages(n: int, size: int = 256, seed: int = 0) -> list:
  rng = np.random.default_rng(seed)
  return [page(rng, size) for _ in range(n)]
