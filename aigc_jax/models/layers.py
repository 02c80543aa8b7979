"""Layers whose formulation is chosen for speed on XLA:CPU.

XLA:CPU lowers the kernel gradient of a strided ``lax.conv_transpose`` to a
window-dilated convolution that misses its fast convolution path (jax issue
#23783), which makes DCGAN-style generators tens of times slower to train on CPU
than in PyTorch. :class:`UpConv` is a drop-in for the generator's
``nn.ConvTranspose(features, (4, 4), (2, 2), padding='SAME')``: same parameters,
same values to float rounding, but a kernel gradient that runs at matmul speed
and, on larger maps, a forward pass that avoids the lhs-dilated convolution.
:class:`DownConv` does the same for the discriminator's strided convolution. Both
choose their forms per layer shape, as measured on a CPU (benchmarks/).
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.linen.dtypes import promote_dtype
from jax import lax
from jax.custom_derivatives import SymbolicZero

IMPLS = ("auto", "fast", "xla")
KERNEL_GRADS = ("im2col", "matmul", "conv", "dy_im2col")
FORWARDS = ("xla", "phase", "col2im")

# UpConv's forward on inputs up to this size is 'col2im' (one matmul, then the taps summed into
# place): whole train steps at 32x32 and 64x64 are 2 to 5% faster, on one thread and on two, than
# with the convolutions below (benchmarks/downconv_step.py --variants col2im_forward_max_size=0;
# README).
_COL2IM_FORWARD_MAX_SIZE = 16

# On larger inputs, from this size on, XLA:CPU's lhs-dilated convolution (the forward pass of
# conv_transpose) loses to the stride-1 2x2 one in _phase_shift_conv; on 4x4 inputs it wins
# (benchmarks/upconv.py).
_PHASE_FORWARD_MIN_SIZE = 8

# UpConv's kernel gradient: patches of the output gradient. In whole train steps at 32x32 and 64x64
# a tie with per-phase patches of the input ('im2col') on one thread and slightly faster on two
# (benchmarks/downconv_step.py --variants upconv_kernel_grad=im2col; README).
_UPCONV_KERNEL_GRAD = "dy_im2col"


def _conv_transpose(x, kernel, strides, precision):
  """Exactly what ``nn.ConvTranspose(padding='SAME')`` computes."""
  return lax.conv_transpose(x, kernel, strides, "SAME", precision=precision)


def _interleave(y):
  """(N, H, W, 2, 2, C) phases -> (N, 2H, 2W, C), i.e. depth-to-space."""
  n, h, w, _, _, c = y.shape
  return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c)


# With xp = x zero-padded by one pixel, the 4x4 / stride-2 / 'SAME' transposed
# convolution is, per output phase (a, b) in {0, 1}^2,
#   y[:, 2m + a, 2l + b] = sum_{dy, dx in {0, 1}}
#       xp[:, m + a + dy, l + b + dx] @ kernel[2 dy + a, 2 dx + b].
# The two functions below are that identity, linear in the kernel, written so
# that their transposes (the kernel gradient) are plain matmuls or a stride-1
# convolution, both of which XLA:CPU runs fast.


def _phase_matmuls(x, kernel, precision):
  """Sixteen (pixels x in) @ (in x out) matmuls, one per kernel tap.

  Runs in at least float32: XLA:CPU's bfloat16 matmuls are several times
  slower than its float32 ones (its convolutions are not).
  """
  n, h, w, _ = x.shape
  out_dtype = jnp.result_type(x, kernel)
  compute_dtype = jnp.promote_types(out_dtype, jnp.float32)
  x, kernel = x.astype(compute_dtype), kernel.astype(compute_dtype)
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))

  def phase(a, b):
    taps = [
      jnp.einsum(
        "nhwi,io->nhwo",
        xp[:, a + dy : a + dy + h, b + dx : b + dx + w],
        kernel[2 * dy + a, 2 * dx + b],
        precision=precision,
      )
      for dy in range(2)
      for dx in range(2)
    ]
    return functools.reduce(operator.add, taps)

  y = jnp.stack([jnp.stack([phase(a, b) for b in range(2)], 3) for a in range(2)], 3)
  return _interleave(y).astype(out_dtype)


def _phase_conv(x, kernel, precision):
  """One stride-1 3x3 convolution producing the four phases as channels."""
  cin, cout = kernel.shape[2:]
  w3 = jnp.stack(
    [
      jnp.pad(kernel[a::2, b::2], ((a, 1 - a), (b, 1 - b), (0, 0), (0, 0)))
      for a in range(2)
      for b in range(2)
    ],
    axis=3,
  ).reshape(3, 3, cin, 4 * cout)
  y = lax.conv_general_dilated(
    x,
    w3,
    (1, 1),
    ((1, 1), (1, 1)),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    precision=precision,
  )
  n, h, w, _ = y.shape
  return _interleave(y.reshape(n, h, w, 2, 2, cout))


def _phase_shift_conv(x, kernel, precision):
  """One stride-1 2x2 'VALID' convolution of the padded input into the four
  phases as channels, z[p, q, (a, b)] = sum xp[p + dy, q + dx] @ kernel[2 dy + a, 2 dx + b];
  phase (a, b) then reads z shifted by (a, b). No zero taps, unlike _phase_conv."""
  n, h, w, cin = x.shape
  cout = kernel.shape[-1]
  k2 = kernel.reshape(2, 2, 2, 2, cin, cout).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, cin, 4 * cout)
  z = lax.conv_general_dilated(
    jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))),
    k2,
    (1, 1),
    "VALID",
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    precision=precision,
  ).reshape(n, h + 1, w + 1, 2, 2, cout)
  y = jnp.stack([jnp.stack([z[:, a : a + h, b : b + w, a, b] for b in range(2)], 3) for a in range(2)], 3)
  return _interleave(y)


def _im2col_matmul(patches, kernel, precision, kernel_tangent=True):
  """``patches @ kernel`` for (pixels, K) patches and a (K, out) kernel. As a kernel tangent
  (``kernel_tangent``) it is written so that its transpose in the kernel, the kernel gradient, is
  the product whose result has the longer minor axis: XLA:CPU runs (out, K) = dy^T @ patches 1.5
  to 2.3x faster than (K, out) when K > out and about 2x slower when K < out. It picks (K, out) by
  itself; for (out, K) the barrier keeps its algebraic simplifier from folding the small transpose
  back into the dot (benchmarks/matmul_orientation.py). Elsewhere (a forward pass, or linear in the
  patches) that form would only add a transposed copy of the kernel, so it is a plain matmul."""
  if not kernel_tangent or patches.shape[-1] < kernel.shape[-1]:
    return jnp.dot(patches, kernel, precision=precision)
  if patches.size <= _DY_T_MAX_PATCHES and _cpu_threads() > 1:
    # Transposed, dy^T becomes a materialized (out, pixels) operand of the same (out, K) product,
    # which XLA:CPU splits better across threads; on one thread, or with more pixels, it loses.
    y = jnp.einsum("ok,mk->om", lax.optimization_barrier(kernel.T), patches, precision=precision)
    return lax.optimization_barrier(y).T
  return jnp.einsum("ok,mk->mo", lax.optimization_barrier(kernel.T), patches, precision=precision)


# Patch matrices up to this many elements (4096 pixels x 1024, the 32x32 DCGAN's) take the
# (out, pixels) dy^T operand when XLA:CPU has more than one thread: faster whole 32x32 steps on two
# threads, 64x64 (16,384-pixel products above the limit) unchanged, slower on one thread (README).
_DY_T_MAX_PATCHES = 4096 * 1024


def _cpu_threads() -> int:
  """The CPUs this process may run on, which is how many threads XLA:CPU's pool starts with."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _phase_im2col(x, kernel, precision):
  """Per output phase, the four taps' shifted inputs side by side as (pixels, 4 in) patches, then
  one matmul with that phase's (4 in, out) kernel taps (see :func:`_im2col_matmul`)."""
  n, h, w, cin = x.shape
  cout = kernel.shape[-1]
  out_dtype = jnp.result_type(x, kernel)
  compute_dtype = jnp.promote_types(out_dtype, jnp.float32)
  x, kernel = x.astype(compute_dtype), kernel.astype(compute_dtype)
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))

  def phase(a, b):
    patches = jnp.stack([xp[:, a + dy : a + dy + h, b + dx : b + dx + w] for dy in range(2) for dx in range(2)], 3)
    y = _im2col_matmul(patches.reshape(n * h * w, 4 * cin), kernel[a::2, b::2].reshape(4 * cin, cout), precision)
    return y.reshape(n, h, w, cout)

  y = jnp.stack([jnp.stack([phase(a, b) for b in range(2)], 3) for a in range(2)], 3)
  return _interleave(y).astype(out_dtype)


def _dy_im2col(x, kernel, precision):
  """The transposed convolution as the transpose of DownConv's im2col form (see
  :func:`_input_tangent`), here linear in the kernel: its transpose, the kernel gradient, builds
  the patches from the output gradient, (pixels of x, 16 out), one matmul with x."""
  return _input_tangent(x, kernel, precision, "im2col", kernel_tangent=True)


_KERNEL_TANGENTS = {"im2col": _phase_im2col, "matmul": _phase_matmuls, "conv": _phase_conv,
                    "dy_im2col": _dy_im2col}


def _col2im(x, kernel, precision):
  """The transpose of DownConv's im2col form: (pixels of x, in) @ (in, 16 out), one thick matmul that
  YNNPACK runs near peak, then the 16 taps' products added into the padded output at their shifts.
  Unlike the convolutions, it computes no zero or discarded outputs on small inputs. In at least
  float32, like a convolution's accumulator, so that the taps' partial sums are not rounded to
  bfloat16 (XLA:CPU's bfloat16 matmuls are slower anyway)."""
  out_dtype = jnp.result_type(x, kernel)
  compute_dtype = jnp.promote_types(out_dtype, jnp.float32)
  return _input_tangent(x.astype(compute_dtype), kernel.astype(compute_dtype), precision, "im2col").astype(out_dtype)


_FORWARDS = {"xla": lambda x, kernel, precision: _conv_transpose(x, kernel, (2, 2), precision),
             "phase": _phase_shift_conv, "col2im": _col2im}


def _input_tangent(x_dot, kernel, precision, form, kernel_tangent=False):
  """``conv_transpose(x_dot, kernel)`` written as the transpose of a DownConv form, so that its own
  transpose, UpConv's input gradient, is that form: the input gradient of a 4x4 / stride-2 'SAME'
  transposed convolution is the strided convolution of the output gradient with the kernel flipped
  in space and its in/out axes swapped."""
  if form == "xla":
    return _conv_transpose(x_dot, kernel, (2, 2), precision)
  n, h, w, _ = x_dot.shape
  flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
  out = jax.ShapeDtypeStruct((n, 2 * h, 2 * w, kernel.shape[-1]), jnp.result_type(x_dot, kernel))
  return jax.linear_transpose(lambda dy: _downconv_form(form, dy, flipped, precision, kernel_tangent), out)(x_dot)[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _upconv_fast(x, kernel, precision, kernel_grad, forward, input_grad):
  return _FORWARDS[forward](x, kernel, precision)


@functools.partial(_upconv_fast.defjvp, symbolic_zeros=True)
def _upconv_fast_jvp(precision, kernel_grad, forward, input_grad, primals, tangents):
  """Each tangent is linear in its argument and takes the form whose transpose is fast on CPU: the
  input tangent that of a DownConv form (the input gradient is a strided convolution), the kernel
  tangent one of :data:`KERNEL_GRADS` (XLA's own kernel gradient is the slow op)."""
  x, kernel = primals
  x_dot, kernel_dot = tangents
  y = _FORWARDS[forward](x, kernel, precision)
  terms = []
  if not isinstance(x_dot, SymbolicZero):
    terms.append(_input_tangent(x_dot, kernel, precision, input_grad))
  if not isinstance(kernel_dot, SymbolicZero):
    # Remat keeps x as the only residual instead of its shifted copies.
    tangent = jax.checkpoint(_KERNEL_TANGENTS[kernel_grad], static_argnums=(2,))
    terms.append(tangent(x, kernel_dot, precision))
  return y, functools.reduce(operator.add, terms)


def resolve_impl(impl: str) -> str:
  """'auto' -> 'fast' on CPU, where it pays, and XLA's own op elsewhere."""
  if impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
  if impl == "auto":
    return "fast" if jax.default_backend() == "cpu" else "xla"
  return impl


def upconv(
  x: jax.Array,
  kernel: jax.Array,
  strides: Sequence[int] = (2, 2),
  *,
  impl: str = "auto",
  precision: Any = None,
  kernel_grad: str | None = None,
  forward: str | None = None,
  input_grad: str | None = None,
) -> jax.Array:
  """``lax.conv_transpose(x, kernel, strides, 'SAME')`` on NHWC / HWIO.

  The fast path covers the 4x4 / stride-2 up-sampling case; other kernel
  sizes and strides use XLA's op, so the result is always correct.
  ``kernel_grad`` (one of :data:`KERNEL_GRADS`), ``forward`` (one of :data:`FORWARDS`) and ``input_grad``
  (one of :data:`DOWNCONV_FORMS`) override the per-shape choices of formulation, for benchmarks
  and tests.
  """
  if kernel_grad is not None and kernel_grad not in KERNEL_GRADS:
    raise ValueError(f"kernel_grad must be one of {KERNEL_GRADS}, got {kernel_grad!r}")
  if forward is not None and forward not in FORWARDS:
    raise ValueError(f"forward must be one of {FORWARDS}, got {forward!r}")
  if input_grad is not None and input_grad not in DOWNCONV_FORMS:
    raise ValueError(f"input_grad must be one of {DOWNCONV_FORMS}, got {input_grad!r}")
  strides = tuple(strides)
  if resolve_impl(impl) == "fast" and kernel.shape[:2] == (4, 4) and strides == (2, 2):
    if kernel_grad is None:
      kernel_grad = _UPCONV_KERNEL_GRAD
    if forward is None:
      size = min(x.shape[-3:-1])
      forward = "col2im" if size <= _COL2IM_FORWARD_MAX_SIZE else "phase" if size >= _PHASE_FORWARD_MIN_SIZE else "xla"
    if input_grad is None:  # DownConv's fastest forward form on the output gradient's shape.
      input_grad = _fast_downconv_forms(x.shape[:-3] + (2 * x.shape[-3], 2 * x.shape[-2], kernel.shape[-1]))[0]
    return _upconv_fast(x, kernel, precision, kernel_grad, forward, input_grad)
  return _conv_transpose(x, kernel, strides, precision)


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class UpConv(nn.Module):
  """Drop-in for ``nn.ConvTranspose(..., padding='SAME')`` on NHWC inputs.

  Parameters ('kernel' of shape (kh, kw, in, out), 'bias') and forward values
  (to float rounding) match ``nn.ConvTranspose``, so checkpoints move freely
  between the two; only how the forward pass and the gradients are computed
  differs (see :func:`upconv`).

  Attributes:
    impl: 'xla' uses ``lax.conv_transpose`` throughout, 'fast' the CPU-friendly
      forms, 'auto' picks 'fast' on the CPU backend only.
  """

  features: int
  kernel_size: int | Sequence[int] = (4, 4)
  strides: int | Sequence[int] = (2, 2)
  use_bias: bool = False
  kernel_init: Callable = nn.initializers.normal(0.02)
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  impl: str = "auto"

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    batch_shape = inputs.shape[:-3]
    if len(batch_shape) != 1:
      inputs = inputs.reshape((-1,) + inputs.shape[-3:])
    kernel = self.param(
      "kernel",
      self.kernel_init,
      _pair(self.kernel_size) + (inputs.shape[-1], self.features),
      self.param_dtype,
    )
    bias = None
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
    inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    y = upconv(inputs, kernel, _pair(self.strides), impl=self.impl, precision=self.precision)
    if bias is not None:
      y = y + bias
    if len(batch_shape) != 1:
      y = y.reshape(batch_shape + y.shape[1:])
    return y


# ----------------------------------------------------------------------------------------------------
# DownConv: the discriminator's 4x4 / stride-2 / 'SAME' convolution.
#
# With xp = x padded as 'SAME' pads it (to an even size 2 * out + 2) and s = space_to_depth(xp), i.e.
# s[n, i, j, (ry, rx, c)] = xp[n, 2i + ry, 2j + rx, c], the strided convolution is the stride-1
# 2x2 'VALID' convolution
#   y[n, i, j] = sum_{qy, qx in {0, 1}} s[n, i + qy, j + qx] @ k2[qy, qx],
#   k2[qy, qx, (ry, rx, c), o] = kernel[2 qy + ry, 2 qx + rx, c, o].
# Its transposes are stride-1 too, so no gradient needs XLA's window-dilated convolutions.

DOWNCONV_FORMS = ("xla", "s2d_conv", "s2d_matmul", "im2col")


def _same_pads(size: int) -> tuple[int, tuple[int, int]]:
  """Output size and (low, high) padding of a 4-wide, stride-2 'SAME' window."""
  out = -(-size // 2)
  total = max(2 * (out - 1) + 4 - size, 0)
  return out, (total // 2, total - total // 2)


def _space_to_depth(x):
  """Pads as 'SAME' does and folds 2x2 pixel blocks into channels: (N, Ho + 1, Wo + 1, 4 C)."""
  n, h, w, c = x.shape
  ho, pad_h = _same_pads(h)
  wo, pad_w = _same_pads(w)
  x = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
  return x.reshape(n, ho + 1, 2, wo + 1, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, ho + 1, wo + 1, 4 * c)


def _fold_kernel(kernel):
  """(4, 4, C, O) -> (2, 2, 4 C, O), matching :func:`_space_to_depth`'s channel order."""
  c, o = kernel.shape[2:]
  return kernel.reshape(2, 2, 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, o)


def _downconv_xla(x, kernel, precision):
  """Exactly what ``nn.Conv(features, (4, 4), (2, 2), padding='SAME')`` computes."""
  return lax.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=precision)


def _downconv_s2d_conv(x, kernel, precision):
  return lax.conv_general_dilated(_space_to_depth(x), _fold_kernel(kernel), (1, 1), "VALID",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)


def _downconv_s2d_matmul(x, kernel, precision):
  """Four (pixels x 4C) @ (4C x O) matmuls on shifted views of the space-to-depth input, each built
  from two of :func:`_downconv_views` (channels (ry, rx, C), as :func:`_fold_kernel` orders them)."""
  views, k2 = _downconv_views(x), _fold_kernel(kernel)
  n, ho, wo, c2 = views[0, 0, 0].shape
  # Stacked on a new axis, not concatenated: XLA:CPU then fuses the views' padding into the copy.
  def tap(qy, qx):
    s = jnp.stack([views[qy, 0, qx], views[qy, 1, qx]], axis=3).reshape(n, ho, wo, 2 * c2)
    return jnp.einsum("nhwi,io->nhwo", s, k2[qy, qx], precision=precision)

  return functools.reduce(operator.add, [tap(qy, qx) for qy in range(2) for qx in range(2)])


def _padded_window(x, windows):
  """A window of x zero-padded, without the padded array: ``windows`` holds (axis, low padding,
  start, count, step) per windowed axis, in padded coordinates. One slice of x, then one pad, which
  XLA:CPU fuses into whatever reads the window; a padded copy of x read through slices is built as
  its own pass (benchmarks/im2col_patches.py)."""
  index, config, shape = [slice(None)] * x.ndim, [(0, 0, 0)] * x.ndim, list(x.shape)
  empty = False
  for axis, low, start, count, step in windows:
    shape[axis] = count
    inside = [k for k in range(count) if 0 <= start - low + k * step < x.shape[axis]]
    if not inside:  # all padding (inputs of one or two pixels)
      empty = True
      continue
    first, last = inside[0], inside[-1]
    index[axis] = slice(start - low + first * step, start - low + last * step + 1, step)
    config[axis] = (first, count - 1 - last, 0)
  if empty:
    return jnp.zeros(shape, x.dtype)
  return lax.pad(x[tuple(index)], jnp.zeros((), x.dtype), config)


# Builds the views from a padded copy of the input instead (the earlier form; for benchmarks).
_PAD_FIRST = False
# im2col patches of an even output width from 4 C-wide runs (see _downconv_patches); False: pairs.
_PATCH_QUADS = True
# The input of the windowed views is materialized first. Without the barrier XLA:CPU fuses the
# producer of x (BatchNorm and LeakyReLU) into the patch copy, which then recomputes it for each of
# the 4 patches that read a pixel.
_VIEWS_BARRIER = True


def _downconv_views(x):
  """{(qy, ry, qx): (N, Ho, Wo, 2 C)}: padded rows 2 (i + qy) + ry and the column pair 2 (j + qx),
  2 (j + qx) + 1 of the 'SAME'-padded input, i.e. kernel taps ky = 2 qy + ry, kx = 2 qx + rx for
  rx in {0, 1}, with (rx, C) as the channels. Pairs of horizontal taps are adjacent in memory, so
  each view is a unit-stride window (see :func:`_padded_window`)."""
  n, h, w, c = x.shape
  ho, pads_h = _same_pads(h)
  wo, pads_w = _same_pads(w)
  if _PAD_FIRST:
    xp = jnp.pad(x, ((0, 0), pads_h, pads_w, (0, 0))).reshape(n, ho + 1, 2, wo + 1, 2 * c)
    return {(qy, ry, qx): xp[:, qy : qy + ho, ry, qx : qx + wo]
            for qy in range(2) for ry in range(2) for qx in range(2)}
  if _VIEWS_BARRIER:
    x = lax.optimization_barrier(x)
  pad_h, pad_w = pads_h[0], pads_w[0]
  return {(qy, ry, qx): _padded_window(x, [(1, pad_h, 2 * qy + ry, ho, 2), (2, pad_w, 2 * qx, 2 * wo, 1)])
          .reshape(n, ho, wo, 2 * c) for qy in range(2) for ry in range(2) for qx in range(2)}


def _downconv_patches(x):
  """The sixteen strided views of the 'SAME'-padded input side by side, (N, Ho, Wo, 16 C).

  A patch row is 4 runs of 4 C contiguous input values (kx = 0..3 of one kernel row), and the
  runs of even and of odd output columns are each a unit-stride window of the padded rows read as
  (Wo / 2, 4 C): so with an even output width the patches are 8 such windows stacked on new axes
  (:data:`_PATCH_QUADS`). Otherwise they are the 8 pair views of :func:`_downconv_views` (2 C
  runs), which XLA:CPU builds 1.4 to 2.5x faster than 16 strided views joined by ``concatenate``;
  the longer runs are 1.2 to 3.3x faster again, most on 3 channels (benchmarks/im2col_patches.py)."""
  n, h, w, c = x.shape
  ho, (pad_h, _) = _same_pads(h)
  wo, (pad_w, _) = _same_pads(w)
  if _PATCH_QUADS and wo % 2 == 0 and not _PAD_FIRST:
    if _VIEWS_BARRIER:
      x = lax.optimization_barrier(x)
    runs = [[_padded_window(x, [(1, pad_h, ky, ho, 2), (2, pad_w, 2 * parity, 2 * wo, 1)])
             .reshape(n, ho, wo // 2, 4 * c) for ky in range(4)] for parity in range(2)]
    patches = jnp.stack([jnp.stack(runs[parity], axis=3) for parity in range(2)], axis=3)  # (N, Ho, Wo/2, 2, 4, 4C)
    return patches.reshape(n, ho, wo, 16 * c)
  views = _downconv_views(x)
  patches = jnp.stack([views[qy, ry, qx] for qy in range(2) for ry in range(2) for qx in range(2)], axis=3)
  return patches.reshape(n, ho, wo, 16 * c)


def _downconv_im2col(x, kernel, precision, kernel_tangent=False):
  """:func:`_downconv_patches` as (pixels, 16 C), then one matmul (see :func:`_im2col_matmul`)."""
  patches = _downconv_patches(x)
  n, ho, wo, k = patches.shape
  y = _im2col_matmul(patches.reshape(n * ho * wo, k), kernel.reshape(k, -1), precision, kernel_tangent)
  return y.reshape(n, ho, wo, -1)


_DOWNCONV = {"xla": _downconv_xla, "s2d_conv": _downconv_s2d_conv, "s2d_matmul": _downconv_s2d_matmul,
             "im2col": _downconv_im2col}


def _downconv_form(form, x, kernel, precision, kernel_tangent=False):
  """``_DOWNCONV[form]``; ``kernel_tangent`` marks a use whose transpose in the kernel is taken (see
  :func:`_im2col_matmul`)."""
  if form == "im2col":
    return _downconv_im2col(x, kernel, precision, kernel_tangent)
  return _DOWNCONV[form](x, kernel, precision)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _downconv_mixed(x, kernel, precision, forward, input_grad, kernel_grad):
  return _DOWNCONV[forward](x, kernel, precision)


@functools.partial(_downconv_mixed.defjvp, symbolic_zeros=True)
def _downconv_mixed_jvp(precision, forward, input_grad, kernel_grad, primals, tangents):
  """Each tangent is linear in its argument, so each can take its own formulation and with it the
  formulation of its transpose: the input and kernel gradients."""
  x, kernel = primals
  x_dot, kernel_dot = tangents
  y = _DOWNCONV[forward](x, kernel, precision)
  terms = []
  if not isinstance(x_dot, SymbolicZero):
    terms.append(_DOWNCONV[input_grad](x_dot, kernel, precision))
  if not isinstance(kernel_dot, SymbolicZero):
    # Remat keeps x as the residual, not the im2col patches or space-to-depth copies built from it.
    tangent = jax.checkpoint(functools.partial(_downconv_form, kernel_grad, kernel_tangent=True), static_argnums=(2,))
    terms.append(tangent(x, kernel_dot, precision))
  return y, functools.reduce(operator.add, terms)


def downconv(x, kernel, *, impl="auto", precision=None, forms=None):
  """``lax.conv_general_dilated(x, kernel, (2, 2), 'SAME')`` on NHWC / HWIO with a 4x4 kernel.

  ``forms`` = (forward, input_grad, kernel_grad), each one of :data:`DOWNCONV_FORMS`, overrides the
  choice that ``impl`` makes (for benchmarks and tests).
  """
  if kernel.shape[:2] != (4, 4):
    raise ValueError(f"downconv needs a 4x4 kernel, got {kernel.shape[:2]}")
  if forms is None:
    forms = _fast_downconv_forms(x.shape) if resolve_impl(impl) == "fast" else ("xla",) * 3
  for f in forms:
    if f not in DOWNCONV_FORMS:
      raise ValueError(f"downconv form must be one of {DOWNCONV_FORMS}, got {f!r}")
  if len(set(forms)) == 1:  # plain autodiff: its kernel gradient is the transpose of this
    return _downconv_form(forms[0], x, kernel, precision, kernel_tangent=True)
  return _downconv_mixed(x, kernel, precision, *forms)


# Chosen per layer shape on a 2-core x86 CPU (jax 0.12, XLA:CPU, huge pages on; see
# aigc_jax/host_memory.py), over the DCGAN discriminators at 32x32 and 64x64.
_S2D_MATMUL_MIN_CHANNELS = 256
_IMAGE_MAX_CHANNELS = 4
_IM2COL_FORWARD_MAX_SIZE = 8
_S2D_CONV_INPUT_GRAD_MIN_SIZE = 32
_IM2COL_KERNEL_GRAD_MIN_SIZE = 16
_IM2COL_WIDE_MIN_CHANNELS = 128  # with maps up to _IM2COL_WIDE_MAX_SIZE: im2col forward and input gradient
_IM2COL_WIDE_MAX_SIZE = 16


def _fast_downconv_forms(x_shape):
  """(forward, input_grad, kernel_grad) forms for an NHWC input of this shape.

  XLA:CPU's strided convolution is its fastest forward on most DCGAN layers, but loses to matmuls
  on small maps and to the space-to-depth convolution on the image; its input gradient (an
  lhs-dilated convolution) loses to the space-to-depth forms past the image layer, its kernel
  gradient to one im2col matmul on the image and from 16x16 maps on; on deep, small maps four thick
  matmuls win throughout, and on 8x8 and 16x16 maps of 128 to 255 channels the im2col forward and
  input gradient do. Settled on whole train steps (benchmarks/downconv_step.py --variants), since a
  form's cost in a step (memory traffic, cache) differs from its cost alone (benchmarks/conv_forms.py).
  UpConv's input gradient takes the forward form chosen here for its output gradient's shape.
  """
  channels, size = x_shape[-1], min(x_shape[-3:-1])
  if channels >= _S2D_MATMUL_MIN_CHANNELS:
    return ("s2d_matmul",) * 3
  if channels <= _IMAGE_MAX_CHANNELS:
    return ("s2d_conv", "xla", "im2col")
  wide = channels >= _IM2COL_WIDE_MIN_CHANNELS and size <= _IM2COL_WIDE_MAX_SIZE
  forward = "im2col" if size <= _IM2COL_FORWARD_MAX_SIZE or wide else "xla"
  if size >= _S2D_CONV_INPUT_GRAD_MIN_SIZE:
    input_grad = "s2d_conv"
  else:
    input_grad = "im2col" if wide else "s2d_matmul"
  kernel_grad = "im2col" if size >= _IM2COL_KERNEL_GRAD_MIN_SIZE else "xla"
  return (forward, input_grad, kernel_grad)


class DownConv(nn.Module):
  """Drop-in for ``nn.Conv(features, (4, 4), strides=(2, 2), padding='SAME')`` on NHWC inputs.

  Same parameters ('kernel' (4, 4, in, out), optional 'bias') and values as ``nn.Conv``, so
  checkpoints move freely between the two; ``impl`` chooses how the convolution and its gradients
  are formulated ('auto': the fastest measured on the CPU backend, XLA's own op elsewhere).
  """

  features: int
  use_bias: bool = False
  kernel_init: Callable = nn.initializers.normal(0.02)
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  impl: str = "auto"

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    batch_shape = inputs.shape[:-3]
    if len(batch_shape) != 1:
      inputs = inputs.reshape((-1,) + inputs.shape[-3:])
    kernel = self.param("kernel", self.kernel_init, (4, 4, inputs.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
    inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    y = downconv(inputs, kernel, impl=self.impl, precision=self.precision)
    if bias is not None:
      y = y + bias
    if len(batch_shape) != 1:
      y = y.reshape(batch_shape + y.shape[1:])
    return y
