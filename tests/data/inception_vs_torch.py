"""End-to-end check of the extractor against pytorch-fid's network written in PyTorch, on random weights.

Not part of the test suite (it needs PyTorch, the project does not). Two steps, two interpreters:

  python tests/data/inception_vs_torch.py reference DIR   # with torch: random weights, torch.save, outputs
  python tests/data/inception_vs_torch.py compare DIR     # with this project: load the file, extract, compare

`reference` draws random weights under pytorch-fid's state-dict names, saves them with torch.save in
the pre-1.6 format (as pytorch-fid's 2019 file) and the zip format, and runs pytorch-fid's forward
pass (torchvision's Inception3 blocks with the FIDInceptionA/C/E_1/E_2 pooling, written here with
torch.nn.functional) on uint8 images of several sizes after pytorch-fid's preprocessing.
`compare` loads both files with aigc_jax's torch-free reader and prints the largest differences.
"""

import os
import sys

SIZES = [(2, 32, 32, 3), (2, 40, 28, 1), (2, 299, 299, 3), (1, 512, 384, 3)]


def reference(out_dir):
  import collections

  import numpy as np
  import torch
  import torch.nn.functional as F

  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
  gen = torch.Generator().manual_seed(0)
  state = collections.OrderedDict()

  def basic_params(name, cin, cout, kh, kw):
    state[f"{name}.conv.weight"] = torch.randn(cout, cin, kh, kw, generator=gen) * (2.0 / (cin * kh * kw)) ** 0.5
    state[f"{name}.bn.weight"] = torch.rand(cout, generator=gen) + 0.5
    state[f"{name}.bn.bias"] = torch.rand(cout, generator=gen) * 0.4 - 0.2
    state[f"{name}.bn.running_mean"] = torch.rand(cout, generator=gen) * 0.4 - 0.2
    state[f"{name}.bn.running_var"] = torch.rand(cout, generator=gen) * 1.5 + 0.5
    state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)

  def basic(x, name, stride=1, padding=0):
    x = F.conv2d(x, state[f"{name}.conv.weight"], stride=stride, padding=padding)
    x = F.batch_norm(x, state[f"{name}.bn.running_mean"], state[f"{name}.bn.running_var"],
                     state[f"{name}.bn.weight"], state[f"{name}.bn.bias"], training=False, eps=0.001)
    return F.relu(x)

  def avg(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

  # (name, in, out, kernel) in torchvision's order.
  def block_a(p, cin, pool):
    return [(f"{p}.branch1x1", cin, 64, 1, 1), (f"{p}.branch5x5_1", cin, 48, 1, 1), (f"{p}.branch5x5_2", 48, 64, 5, 5),
            (f"{p}.branch3x3dbl_1", cin, 64, 1, 1), (f"{p}.branch3x3dbl_2", 64, 96, 3, 3),
            (f"{p}.branch3x3dbl_3", 96, 96, 3, 3), (f"{p}.branch_pool", cin, pool, 1, 1)]

  def block_c(p, c7):
    return [(f"{p}.branch1x1", 768, 192, 1, 1), (f"{p}.branch7x7_1", 768, c7, 1, 1), (f"{p}.branch7x7_2", c7, c7, 1, 7),
            (f"{p}.branch7x7_3", c7, 192, 7, 1), (f"{p}.branch7x7dbl_1", 768, c7, 1, 1),
            (f"{p}.branch7x7dbl_2", c7, c7, 7, 1), (f"{p}.branch7x7dbl_3", c7, c7, 1, 7),
            (f"{p}.branch7x7dbl_4", c7, c7, 7, 1), (f"{p}.branch7x7dbl_5", c7, 192, 1, 7),
            (f"{p}.branch_pool", 768, 192, 1, 1)]

  def block_e(p, cin):
    return [(f"{p}.branch1x1", cin, 320, 1, 1), (f"{p}.branch3x3_1", cin, 384, 1, 1),
            (f"{p}.branch3x3_2a", 384, 384, 1, 3), (f"{p}.branch3x3_2b", 384, 384, 3, 1),
            (f"{p}.branch3x3dbl_1", cin, 448, 1, 1), (f"{p}.branch3x3dbl_2", 448, 384, 3, 3),
            (f"{p}.branch3x3dbl_3a", 384, 384, 1, 3), (f"{p}.branch3x3dbl_3b", 384, 384, 3, 1),
            (f"{p}.branch_pool", cin, 192, 1, 1)]

  layers = ([("Conv2d_1a_3x3", 3, 32, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3), ("Conv2d_2b_3x3", 32, 64, 3, 3),
             ("Conv2d_3b_1x1", 64, 80, 1, 1), ("Conv2d_4a_3x3", 80, 192, 3, 3)]
            + block_a("Mixed_5b", 192, 32) + block_a("Mixed_5c", 256, 64) + block_a("Mixed_5d", 288, 64)
            + [("Mixed_6a.branch3x3", 288, 384, 3, 3), ("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1),
               ("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3)]
            + block_c("Mixed_6b", 128) + block_c("Mixed_6c", 160) + block_c("Mixed_6d", 160) + block_c("Mixed_6e", 192)
            + [("Mixed_7a.branch3x3_1", 768, 192, 1, 1), ("Mixed_7a.branch3x3_2", 192, 320, 3, 3),
               ("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1), ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
               ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1), ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3)]
            + block_e("Mixed_7b", 1280) + block_e("Mixed_7c", 2048))
  for layer in layers:
    basic_params(*layer)
  state["fc.weight"] = torch.randn(1008, 2048, generator=gen) * 2048 ** -0.5
  state["fc.bias"] = torch.rand(1008, generator=gen) * 0.2 - 0.1

  def fid_a(x, p):
    b1 = basic(x, f"{p}.branch1x1")
    b5 = basic(basic(x, f"{p}.branch5x5_1"), f"{p}.branch5x5_2", padding=2)
    b3 = basic(basic(basic(x, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2", padding=1), f"{p}.branch3x3dbl_3",
               padding=1)
    return torch.cat([b1, b5, b3, basic(avg(x), f"{p}.branch_pool")], 1)

  def b_block(x, p):
    b3 = basic(x, f"{p}.branch3x3", stride=2)
    bd = basic(basic(basic(x, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2", padding=1), f"{p}.branch3x3dbl_3",
               stride=2)
    return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)

  def fid_c(x, p):
    b1 = basic(x, f"{p}.branch1x1")
    b7 = basic(x, f"{p}.branch7x7_1")
    b7 = basic(basic(b7, f"{p}.branch7x7_2", padding=(0, 3)), f"{p}.branch7x7_3", padding=(3, 0))
    bd = basic(x, f"{p}.branch7x7dbl_1")
    bd = basic(bd, f"{p}.branch7x7dbl_2", padding=(3, 0))
    bd = basic(bd, f"{p}.branch7x7dbl_3", padding=(0, 3))
    bd = basic(bd, f"{p}.branch7x7dbl_4", padding=(3, 0))
    bd = basic(bd, f"{p}.branch7x7dbl_5", padding=(0, 3))
    return torch.cat([b1, b7, bd, basic(avg(x), f"{p}.branch_pool")], 1)

  def d_block(x, p):
    b3 = basic(basic(x, f"{p}.branch3x3_1"), f"{p}.branch3x3_2", stride=2)
    b7 = basic(x, f"{p}.branch7x7x3_1")
    b7 = basic(basic(b7, f"{p}.branch7x7x3_2", padding=(0, 3)), f"{p}.branch7x7x3_3", padding=(3, 0))
    b7 = basic(b7, f"{p}.branch7x7x3_4", stride=2)
    return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)

  def fid_e(x, p, pool):
    b1 = basic(x, f"{p}.branch1x1")
    b3 = basic(x, f"{p}.branch3x3_1")
    b3 = torch.cat([basic(b3, f"{p}.branch3x3_2a", padding=(0, 1)), basic(b3, f"{p}.branch3x3_2b", padding=(1, 0))], 1)
    bd = basic(basic(x, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2", padding=1)
    bd = torch.cat([basic(bd, f"{p}.branch3x3dbl_3a", padding=(0, 1)),
                    basic(bd, f"{p}.branch3x3dbl_3b", padding=(1, 0))], 1)
    pooled = avg(x) if pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
    return torch.cat([b1, b3, bd, basic(pooled, f"{p}.branch_pool")], 1)

  def forward(images_uint8):
    x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 255.0  # as ToTensor
    if x.shape[1] == 1:
      x = x.repeat(1, 3, 1, 1)  # as PIL's convert('RGB')
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    x = basic(x, "Conv2d_1a_3x3", stride=2)
    x = basic(x, "Conv2d_2a_3x3")
    x = basic(x, "Conv2d_2b_3x3", padding=1)
    x = F.max_pool2d(x, 3, stride=2)
    x = basic(x, "Conv2d_3b_1x1")
    x = basic(x, "Conv2d_4a_3x3")
    x = F.max_pool2d(x, 3, stride=2)
    for p in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
      x = fid_a(x, p)
    x = b_block(x, "Mixed_6a")
    for p in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
      x = fid_c(x, p)
    x = d_block(x, "Mixed_7a")
    x = fid_e(x, "Mixed_7b", "avg")
    x = fid_e(x, "Mixed_7c", "max")
    pool3 = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
    return pool3, F.linear(pool3, state["fc.weight"], state["fc.bias"])

  os.makedirs(out_dir, exist_ok=True)
  torch.save(state, os.path.join(out_dir, "legacy.pth"), _use_new_zipfile_serialization=False)
  torch.save(state, os.path.join(out_dir, "zip.pth"))
  rng = np.random.default_rng(0)
  out = {}
  with torch.no_grad():
    for i, shape in enumerate(SIZES):
      images = rng.integers(0, 256, shape, dtype=np.uint8)
      features, logits = forward(images)
      out[f"images{i}"], out[f"features{i}"], out[f"logits{i}"] = images, features.numpy(), logits.numpy()
  np.savez(os.path.join(out_dir, "reference.npz"), **out)
  print(f"torch {torch.__version__}: wrote {out_dir}/legacy.pth, zip.pth, reference.npz")


def compare(out_dir):
  import numpy as np

  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
  import jax

  from aigc_jax.metrics.inception import InceptionExtractor, load_fid_inception

  ref = np.load(os.path.join(out_dir, "reference.npz"))
  extractor = InceptionExtractor(os.path.join(out_dir, "legacy.pth"), batch_size=2)
  for i in range(len(SIZES)):
    features, logits = extractor(ref[f"images{i}"])
    f_ref, l_ref = ref[f"features{i}"], ref[f"logits{i}"]
    print(f"{ref[f'images{i}'].shape}: features max |diff| {np.abs(features - f_ref).max():.2e} "
          f"(max |value| {np.abs(f_ref).max():.2e}), logits max |diff| {np.abs(logits - l_ref).max():.2e} "
          f"(max |value| {np.abs(l_ref).max():.2e})")
    np.testing.assert_allclose(features, f_ref, rtol=1e-4, atol=1e-4 * np.abs(f_ref).max())
    np.testing.assert_allclose(logits, l_ref, rtol=1e-4, atol=1e-4 * np.abs(l_ref).max())
  from_zip = load_fid_inception(os.path.join(out_dir, "zip.pth"))
  for a, b in zip(jax.tree.leaves(from_zip), jax.tree.leaves(extractor._variables)):
    np.testing.assert_array_equal(a, np.asarray(b))
  print("matches: the legacy file's outputs within 1e-4, the zip file's weights identical")


if __name__ == "__main__":
  {"reference": reference, "compare": compare}[sys.argv[1]](sys.argv[2])
