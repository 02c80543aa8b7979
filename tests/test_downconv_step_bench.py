"""benchmarks/downconv_step.py's --variants: what each item overrides, and one-line errors for bad ones."""

import jax
import numpy as np
import pytest

from aigc_jax.models import layers
from benchmarks import downconv_step


def test_variant_items_parse_into_forms_and_layer_knobs():
  table, knobs = downconv_step.parse_variant(
      "16x64=xla/s2d_matmul/im2col+upconv_kernel_grad=im2col+dy_t_max_patches=0+phase_forward_min_size=16"
      "+pad_first=1+views_barrier=0+patch_quads=0+col2im_forward_max_size=0")
  assert table == {(16, 64): ("xla", "s2d_matmul", "im2col")}
  assert knobs == {"_UPCONV_KERNEL_GRAD": "im2col", "_DY_T_MAX_PATCHES": 0, "_PHASE_FORWARD_MIN_SIZE": 16,
                   "_PAD_FIRST": True, "_VIEWS_BARRIER": False, "_PATCH_QUADS": False,
                   "_COL2IM_FORWARD_MAX_SIZE": 0}
  for attr in knobs:  # the names a variant sets are the ones layers.py reads
    assert hasattr(layers, attr)


@pytest.mark.parametrize("item, says", [
    ("upconv_kernel_grad=bogus", "one of"), ("dy_t_max_patches=many", "integer"),
    ("phase_forward_min_size=-1", "integer"), ("pad_first=yes", "0 or 1"), ("16x64=xla/xla", "three of"),
    ("sixteen=xla/xla/xla", "SIDExCHANNELS"), ("16x64=xla/xla/fft", "three of")])
def test_bad_variant_items_exit_with_a_message(item, says):
  with pytest.raises(SystemExit, match=says):
    downconv_step.parse_variant(item)


def test_upconv_kernel_grad_knob_changes_the_compiled_gradient(monkeypatch):
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 8))
  kernel = jax.random.normal(jax.random.key(1), (4, 4, 8, 4))

  texts, grads = {}, {}
  for form in ("dy_im2col", "im2col"):
    monkeypatch.setattr(layers, "_UPCONV_KERNEL_GRAD", form)

    def kernel_grad(x, kernel):  # a new function each time: jit caches traces per function
      return jax.grad(lambda k: layers.upconv(x, k, impl="fast").sum())(kernel)

    texts[form] = jax.jit(kernel_grad).lower(x, kernel).as_text()
    grads[form] = np.asarray(kernel_grad(x, kernel))
  assert texts["dy_im2col"] != texts["im2col"]
  np.testing.assert_allclose(grads["dy_im2col"], grads["im2col"], rtol=1e-4, atol=1e-4)
