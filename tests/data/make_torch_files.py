"""Writes the torch.save fixtures the weight-loader tests read; needs PyTorch, the tests do not.

  python tests/data/make_torch_files.py   # with torch installed (these were written by torch 2.13.0+cpu)

Both formats (zip, and legacy via _use_new_zipfile_serialization=False) of one small state dict
with pytorch-fid-style keys, plus a float16 tensor, a transposed view and an offset view sharing one
storage, and an nn.Parameter; expected values go to torch_saved_expected.npz.
"""

import collections
import os

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
conv = torch.nn.Conv2d(3, 4, 3, bias=False)
bn = torch.nn.BatchNorm2d(4, eps=1e-3)
bn.running_mean.uniform_(-1, 1)
bn.running_var.uniform_(0.5, 2)
fc = torch.nn.Linear(4, 6)
base = torch.randn(3, 4)
state = collections.OrderedDict()
for prefix, module in (("Conv2d_1a_3x3.conv.", conv), ("Conv2d_1a_3x3.bn.", bn), ("fc.", fc)):
  for key, value in module.state_dict().items():
    state[prefix + key] = value
state["half"] = torch.randn(5).half()
state["transposed"] = base.t()
state["offset_view"] = base.view(-1)[4:8]
state["parameter"] = torch.nn.Parameter(torch.arange(3.0))
torch.save(state, os.path.join(here, "torch_saved_zip.pth"))
torch.save(state, os.path.join(here, "torch_saved_legacy.pth"), _use_new_zipfile_serialization=False)
np.savez(os.path.join(here, "torch_saved_expected.npz"), **{k: v.detach().numpy() for k, v in state.items()})
print(torch.__version__, list(state))
