"""Random grey crops of scikit-image's bundled photographs, for training and measuring on natural images offline.

  python -m benchmarks.applications.photo_crops --out runs/photo_crops.npz
  python main.py --config configs/enhance.py:files_x2 --config.data.path=runs/photo_crops.npz \
      --config.data.channels=1 --config.data.resolution=32 --workdir runs/sr2_photos

Networks train on crops of TRAIN; applications.py measures on TEST (whole photos, or crops of them),
so training and test photographs are disjoint. This one writes training data, not results: its --out
is the .npz file (applications.py writes it into its own --out by itself).
"""

import argparse

import numpy as np

TRAIN = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
         "grass", "gravel", "brick", "cat", "clock", "text", "cell")
TEST = ("camera", "coins", "moon", "page")
# The classical denoisers' strengths are tuned on crops of these: the 10 training photos from before
# TRAIN grew. Tuning on TRAIN with text and cell in it picked TV weight 0.2 instead of 0.1, which
# lost 1.6 dB on the TEST photos: a weaker baseline by accident, not a better network.
TUNE = TRAIN[:10]


def grey(name) -> np.ndarray:
  from skimage import color, data

  im = getattr(data, name)()
  if im.ndim == 3:
    im = np.round(color.rgb2gray(im[..., :3]) * 255)
  return im.astype(np.uint8)


def crops(names, per_photo: int, size: int, seed: int = 0, augment: bool = False) -> np.ndarray:
  """uint8 [len(names) * per_photo, size, size, 1]: uniformly placed crops of each photo in turn;
  with `augment`, each crop also gets one of the 8 flips and quarter turns (the dihedral group)."""
  rng = np.random.default_rng(seed)
  out = []
  for name in names:
    im = grey(name)
    ys = rng.integers(0, im.shape[0] - size, per_photo)
    xs = rng.integers(0, im.shape[1] - size, per_photo)
    out += [im[y:y + size, x:x + size] for y, x in zip(ys, xs)]
  if augment:
    turns, flips = rng.integers(0, 4, len(out)), rng.integers(0, 2, len(out))
    out = [np.rot90(c[:, ::-1] if f else c, t) for c, t, f in zip(out, turns, flips)]
  return np.ascontiguousarray(np.stack(out))[..., None]


def write(path, size: int = 32, per_photo: int = 1000, seed: int = 0) -> int:
  """Training crops of TRAIN, flipped and turned at random, as an .npz the `files` data source reads;
  returns how many."""
  images = crops(TRAIN, per_photo, size, seed, augment=True)
  np.savez(path, images=images, labels=np.full(len(images), -1, np.int32))
  return len(images)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--per_photo", type=int, default=1000)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  n = write(args.out, args.size, args.per_photo, args.seed)
  print(f"wrote {n} crops of {args.size}x{args.size} from {len(TRAIN)} photos to {args.out}")


if __name__ == "__main__":
  main()
