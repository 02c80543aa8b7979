"""One PNG of FID against CPU seconds for several runs, drawn with PIL (matplotlib is no dependency).

`draw(path, curves, title)` with curves {run: [(cpu_s, fid), ...]}: CPU seconds on a linear x axis,
FID on a log y axis (the runs span an order of magnitude), one coloured line with dots per run and
a legend naming each run with its last FID.
"""

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000000", "#aec7e8"]
SIZE, MARGIN = (960, 600), (80, 30, 260, 60)  # left, top, right (legend), bottom


def _ticks_log(lo: float, hi: float):
  out = []
  for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
    out += [m * 10**e for m in (1, 2, 5) if lo <= m * 10**e <= hi]
  if len(out) < 3:  # a narrow range: 5 geometric steps, rounded to 2 significant digits
    out = [float(f"{lo * (hi / lo) ** (i / 4):.2g}") for i in range(5)]
  return out


def _ticks_linear(hi: float, n: int = 6):
  step = 10 ** math.floor(math.log10(max(hi, 1e-9) / n))
  step = next(s * step for s in (1, 2, 5, 10) if hi / (s * step) <= n)
  return [i * step for i in range(int(hi // step) + 1)]


def draw(path, curves: dict, title: str = "classifier-FID against CPU seconds") -> Path:
  """Writes the plot to `path` (PNG) and returns it; runs without points are left out of it."""
  curves = {k: sorted(v) for k, v in curves.items() if v}
  im = Image.new("RGB", SIZE, "white")
  d = ImageDraw.Draw(im)
  font = ImageFont.load_default()
  left, top, right, bottom = MARGIN
  x0, y0, x1, y1 = left, top, SIZE[0] - right, SIZE[1] - bottom
  d.text((x0, 8), title, fill="black", font=font)
  if not curves:
    im.save(path)
    return Path(path)
  xs = [x for pts in curves.values() for x, _ in pts]
  ys = [max(y, 1e-3) for pts in curves.values() for _, y in pts]
  xmax = max(xs) * 1.03 or 1.0
  ylo, yhi = min(ys) / 1.15, max(ys) * 1.15
  px = lambda x: x0 + (x1 - x0) * x / xmax
  py = lambda y: y1 - (y1 - y0) * (math.log(max(y, 1e-3)) - math.log(ylo)) / (math.log(yhi) - math.log(ylo))
  d.rectangle([x0, y0, x1, y1], outline="black")
  for t in _ticks_linear(xmax):
    d.line([px(t), y1, px(t), y1 + 4], fill="black")
    d.line([px(t), y0, px(t), y1], fill="#eeeeee")
    d.text((px(t) - 10, y1 + 8), f"{t:g}", fill="black", font=font)
  for t in _ticks_log(ylo, yhi):
    d.line([x0 - 4, py(t), x0, py(t)], fill="black")
    d.line([x0, py(t), x1, py(t)], fill="#eeeeee")
    d.text((x0 - 40, py(t) - 6), f"{t:g}", fill="black", font=font)
  d.rectangle([x0, y0, x1, y1], outline="black")
  d.text(((x0 + x1) // 2 - 60, y1 + 28), "process CPU seconds of training", fill="black", font=font)
  d.text((8, y0 - 18), "FID (log)", fill="black", font=font)
  for i, (name, pts) in enumerate(curves.items()):
    colour = COLOURS[i % len(COLOURS)]
    xy = [(px(x), py(y)) for x, y in pts]
    if len(xy) > 1:
      d.line(xy, fill=colour, width=2)
    for x, y in xy:
      d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    ly = y0 + 10 + 18 * i
    d.line([x1 + 12, ly + 6, x1 + 36, ly + 6], fill=colour, width=3)
    d.text((x1 + 42, ly), f"{name} ({pts[-1][1]:.2f})", fill="black", font=font)
  im.save(path)
  return Path(path)
