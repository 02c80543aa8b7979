"""Random grey crops of scikit-image's bundled photographs, for training super-resolution offline.

  python benchmarks/photo_crops.py --out runs/photo_crops.npz
  python main.py --config configs/enhance.py:files_x2 --config.data.path=runs/photo_crops.npz \
      --config.data.channels=1 --config.data.resolution=32 --workdir runs/sr2_photos

Training photos and the held-out ones `benchmarks/applications.py --photos` measures on are disjoint.
"""

import argparse

import numpy as np

TRAIN = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
         "grass", "gravel", "brick")
TEST = ("camera", "coins", "moon", "page")


def grey(name) -> np.ndarray:
  from skimage import color, data

  im = getattr(data, name)()
  if im.ndim == 3:
    im = np.round(color.rgb2gray(im[..., :3]) * 255)
  return im.astype(np.uint8)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--per_photo", type=int, default=1000)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  rng = np.random.default_rng(args.seed)
  crops = []
  for name in TRAIN:
    im = grey(name)
    ys = rng.integers(0, im.shape[0] - args.size, args.per_photo)
    xs = rng.integers(0, im.shape[1] - args.size, args.per_photo)
    crops += [im[y:y + args.size, x:x + args.size] for y, x in zip(ys, xs)]
  crops = np.stack(crops)[..., None]
  np.savez(args.out, images=crops, labels=np.full(len(crops), -1, np.int32))
  print(f"wrote {len(crops)} crops of {args.size}x{args.size} from {len(TRAIN)} photos to {args.out}")


if __name__ == "__main__":
  main()
