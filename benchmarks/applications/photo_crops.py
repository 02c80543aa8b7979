"""Random grey crops of scikit-image's bundled photographs, for training and measuring on natural images offline.

  python -m benchmarks.applications.photo_crops --out runs/photo_crops.npz
  python main.py --config configs/enhance.py:files_x2 --config.data.path=runs/photo_crops.npz \
      --config.data.channels=1 --config.data.resolution=32 --workdir runs/sr2_photos

Networks train on crops of TRAIN; applications.py measures on TEST (whole photos, or crops of them),
so training and test photographs are disjoint. This one writes training data, not results: its --out
is the .npz file (applications.py writes it into its own --out by itself).

Every photo is used at its native resolution (`native`): scikit-image's moon is a 256x256 photograph
stored at 512x512 with each pixel repeated 2x2. At 512, x2 super-resolution of it is solved exactly
by nearest-neighbour upscaling, and a random missing pixel by copying its neighbour, so it would
measure how well a method reproduces the repetition rather than the photograph.
"""

import argparse

import numpy as np

from benchmarks.applications import text_pages as text_pages_module

TRAIN = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
         "grass", "gravel", "brick", "cat", "clock", "text", "cell")
TEST = ("camera", "coins", "moon", "page")
# The classical denoisers' strengths are tuned on crops of these: the 10 training photos from before
# TRAIN grew. Tuning on TRAIN with text and cell in it picked TV weight 0.2 instead of 0.1, which
# lost 1.6 dB on the TEST photos: a weaker baseline by accident, not a better network.
TUNE = TRAIN[:10]
# None of TRAIN is printed text, and TEST's page is: 16 rendered pages (2,000 crops at the default
# per_photo, a seventh of the photos' 14,000) show the networks what print looks like.
TEXT_PAGES = 16


def native(im: np.ndarray) -> np.ndarray:
  """`im` [H, W] with pixel repetition undone: while every aligned 2x2 block is one value (a picture
  upscaled by repeating its pixels), keeps one pixel per block."""
  while im.shape[0] % 2 == 0 and im.shape[1] % 2 == 0 and min(im.shape) > 1:
    small = im[::2, ::2]
    if not all(np.array_equal(small, im[dy::2, dx::2]) for dy in (0, 1) for dx in (0, 1)):
      break
    im = small
  return im


def grey(name) -> np.ndarray:
  """scikit-image's photo `name` as uint8 [H, W] grey levels, at its native resolution."""
  from skimage import color, data

  im = getattr(data, name)()
  if im.ndim == 3:
    im = np.round(color.rgb2gray(im[..., :3]) * 255)
  return native(im.astype(np.uint8))


def crops(names, per_photo: int, size: int, seed: int = 0, augment: bool = False, pictures=()) -> np.ndarray:
  """uint8 [len(names) * per_photo, size, size, 1]: uniformly placed crops of each photo in turn
  (then of each of `pictures`, uint8 [H, W] arrays); with `augment`, each crop also gets one of the
  8 flips and quarter turns (the dihedral group)."""
  rng = np.random.default_rng(seed)
  out = []
  for im in [grey(name) for name in names] + list(pictures):
    ys = rng.integers(0, im.shape[0] - size, per_photo)
    xs = rng.integers(0, im.shape[1] - size, per_photo)
    out += [im[y:y + size, x:x + size] for y, x in zip(ys, xs)]
  if augment:
    turns, flips = rng.integers(0, 4, len(out)), rng.integers(0, 2, len(out))
    out = [np.rot90(c[:, ::-1] if f else c, t) for c, t, f in zip(out, turns, flips)]
  return np.ascontiguousarray(np.stack(out))[..., None]


def write(path, size: int = 32, per_photo: int = 1000, seed: int = 0, text_pages: int = TEXT_PAGES) -> int:
  """Training crops of TRAIN and of `text_pages` rendered pages of text (text_pages.py), per_photo
  of each photo and per_photo // 8 of each page, flipped and turned at random, as an .npz the
  `files` data source reads; returns how many."""
  images = crops(TRAIN, per_photo, size, seed, augment=True)
  if text_pages:
    pages = text_pages_module.pages(text_pages, seed=seed)
    images = np.concatenate([images, crops((), max(per_photo // 8, 1), size, seed + 1, augment=True,
                                           pictures=pages)])
  np.savez(path, images=images, labels=np.full(len(images), -1, np.int32), text_pages=np.int32(text_pages))
  return len(images)


def text_pages_in(path) -> int:
  """How many rendered text pages `write` cropped into `path` (0 for files from before it could)."""
  with np.load(path) as f:
    return int(f["text_pages"]) if "text_pages" in f else 0


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--per_photo", type=int, default=1000)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--text_pages", type=int, default=TEXT_PAGES, help="rendered pages of text to crop too")
  args = p.parse_args()
  n = write(args.out, args.size, args.per_photo, args.seed, args.text_pages)
  print(f"wrote {n} crops of {args.size}x{args.size} from {len(TRAIN)} photos and {args.text_pages} rendered "
        f"text pages to {args.out}")


if __name__ == "__main__":
  main()
