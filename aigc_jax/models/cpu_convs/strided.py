"""DownConv's forms: the 4x4 / stride-2 / 'SAME' convolution as XLA:CPU runs it fastest, and which
form each part of it takes per input shape (see the package docstring)."""

import functools
import operator

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

DOWNCONV_FORMS = ("xla", "s2d_conv", "s2d_matmul", "im2col")
NHWC = ("NHWC", "HWIO", "NHWC")

# Chosen per layer shape on a 2-core x86 CPU (jax 0.12, XLA:CPU, huge pages on; see
# aigc_jax/core/host_memory.py), over the DCGAN discriminators at 32x32 and 64x64.
_S2D_MATMUL_MIN_CHANNELS = 256
_IMAGE_MAX_CHANNELS = 4
_IM2COL_FORWARD_MAX_SIZE = 8
_S2D_CONV_INPUT_GRAD_MIN_SIZE = 32
_IM2COL_KERNEL_GRAD_MIN_SIZE = 16
_IM2COL_WIDE_MIN_CHANNELS = 128  # with maps up to _IM2COL_WIDE_MAX_SIZE: im2col forward and input gradient
_IM2COL_WIDE_MAX_SIZE = 16
# Patch matrices up to this many elements (4096 pixels x 1024, the 32x32 DCGAN's) take the
# (out, pixels) dY^T operand when XLA:CPU has more than one thread.
_DY_T_MAX_PATCHES = 4096 * 1024


def downconv_forms(x_shape) -> tuple[str, str, str]:
  """(forward, input_grad, kernel_grad) forms of DownConv for an NHWC input of this shape.

  XLA's strided convolution is the fastest forward on most DCGAN layers, but loses to matmuls on
  small maps and to space-to-depth on the image; its input gradient loses to the space-to-depth
  forms past the image layer, its kernel gradient to im2col on the image and from 16x16 maps on;
  on deep, small maps four thick matmuls win throughout, and on 8x8 and 16x16 maps of 128 to 255
  channels the im2col forward and input gradient do. UpConv's input gradient takes the forward
  form chosen here for its output gradient's shape.
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


# ------------------------------------------------------------------------------------------- DownConv
# With xp = x padded as 'SAME' pads it (to an even size 2 * out + 2) and s = space_to_depth(xp), i.e.
# s[n, i, j, (ry, rx, c)] = xp[n, 2i + ry, 2j + rx, c], the strided convolution is the stride-1
# 2x2 'VALID' convolution
#   y[n, i, j] = sum_{qy, qx in {0, 1}} s[n, i + qy, j + qx] @ k2[qy, qx],
#   k2[qy, qx, (ry, rx, c), o] = kernel[2 qy + ry, 2 qx + rx, c, o].


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
  return lax.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=NHWC, precision=precision)


def _downconv_s2d_conv(x, kernel, precision):
  return lax.conv_general_dilated(_space_to_depth(x), _fold_kernel(kernel), (1, 1), "VALID",
                                  dimension_numbers=NHWC, precision=precision)


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
  XLA:CPU fuses into whatever reads the window (a padded copy would be its own pass)."""
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


def _downconv_views(x):
  """{(qy, ry, qx): (N, Ho, Wo, 2 C)}: padded rows 2 (i + qy) + ry and the column pair 2 (j + qx),
  2 (j + qx) + 1 of the 'SAME'-padded input, i.e. kernel taps ky = 2 qy + ry, kx = 2 qx + rx for
  rx in {0, 1}, with (rx, C) as the channels: unit-stride windows (see :func:`_padded_window`).
  The input is materialized first: without the barrier XLA:CPU fuses its producer (BatchNorm,
  LeakyReLU) into the copies, recomputing it for each of the 4 patches that read a pixel."""
  n, h, w, c = x.shape
  ho, (pad_h, _) = _same_pads(h)
  wo, (pad_w, _) = _same_pads(w)
  x = lax.optimization_barrier(x)
  return {(qy, ry, qx): _padded_window(x, [(1, pad_h, 2 * qy + ry, ho, 2), (2, pad_w, 2 * qx, 2 * wo, 1)])
          .reshape(n, ho, wo, 2 * c) for qy in range(2) for ry in range(2) for qx in range(2)}


def _downconv_patches(x):
  """The sixteen strided views of the 'SAME'-padded input side by side, (N, Ho, Wo, 16 C).

  A patch row is 4 runs of 4 C contiguous input values (kx = 0..3 of one kernel row), and the runs
  of even and of odd output columns are each a unit-stride window of the padded rows read as
  (Wo / 2, 4 C): with an even output width the patches are 8 such windows stacked on new axes.
  Otherwise they are the 8 pair views of :func:`_downconv_views` (2 C runs).
  """
  n, h, w, c = x.shape
  ho, (pad_h, _) = _same_pads(h)
  wo, (pad_w, _) = _same_pads(w)
  if wo % 2 == 0:
    x = lax.optimization_barrier(x)  # as in _downconv_views
    runs = [[_padded_window(x, [(1, pad_h, ky, ho, 2), (2, pad_w, 2 * parity, 2 * wo, 1)])
             .reshape(n, ho, wo // 2, 4 * c) for ky in range(4)] for parity in range(2)]
    patches = jnp.stack([jnp.stack(runs[parity], axis=3) for parity in range(2)], axis=3)  # (N, Ho, Wo/2, 2, 4, 4C)
    return patches.reshape(n, ho, wo, 16 * c)
  views = _downconv_views(x)
  patches = jnp.stack([views[qy, ry, qx] for qy in range(2) for ry in range(2) for qx in range(2)], axis=3)
  return patches.reshape(n, ho, wo, 16 * c)


def _im2col_matmul(patches, kernel, precision, kernel_tangent: bool, threads: int):
  """``patches @ kernel`` for (pixels, K) patches and a (K, out) kernel. As a kernel tangent it is
  written so that its transpose in the kernel, the kernel gradient, is the product whose result has
  the longer minor axis: XLA:CPU runs (out, K) = dy^T @ patches 1.5 to 2.3x faster than (K, out)
  when K > out and about 2x slower when K < out. It picks (K, out) by itself; for (out, K) the
  barrier keeps its simplifier from folding the small transpose back into the dot. Elsewhere (a
  forward pass, or linear in the patches) it is a plain matmul."""
  if not kernel_tangent or patches.shape[-1] < kernel.shape[-1]:
    return jnp.dot(patches, kernel, precision=precision)
  if patches.size <= _DY_T_MAX_PATCHES and threads > 1:
    # Transposed, dy^T becomes a materialized (out, pixels) operand of the same (out, K) product,
    # which XLA:CPU splits better across threads; on one thread, or with more pixels, it loses.
    y = jnp.einsum("ok,mk->om", lax.optimization_barrier(kernel.T), patches, precision=precision)
    return lax.optimization_barrier(y).T
  return jnp.einsum("ok,mk->mo", lax.optimization_barrier(kernel.T), patches, precision=precision)


def _downconv_im2col(x, kernel, precision, kernel_tangent=False, threads=1):
  patches = _downconv_patches(x)
  n, ho, wo, k = patches.shape
  y = _im2col_matmul(patches.reshape(n * ho * wo, k), kernel.reshape(k, -1), precision, kernel_tangent, threads)
  return y.reshape(n, ho, wo, -1)


_DOWNCONV = {"xla": _downconv_xla, "s2d_conv": _downconv_s2d_conv, "s2d_matmul": _downconv_s2d_matmul,
             "im2col": _downconv_im2col}


def downconv_form(form, x, kernel, precision, kernel_tangent=False, threads=1):
  """``_DOWNCONV[form]``; ``kernel_tangent`` marks a use whose transpose in the kernel is taken."""
  if form == "im2col":
    return _downconv_im2col(x, kernel, precision, kernel_tangent, threads)
  return _DOWNCONV[form](x, kernel, precision)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5, 6))
def _downconv_mixed(x, kernel, precision, forward, input_grad, kernel_grad, threads):
  return _DOWNCONV[forward](x, kernel, precision)


@functools.partial(_downconv_mixed.defjvp, symbolic_zeros=True)
def _downconv_mixed_jvp(precision, forward, input_grad, kernel_grad, threads, primals, tangents):
  x, kernel = primals
  x_dot, kernel_dot = tangents
  y = _DOWNCONV[forward](x, kernel, precision)
  terms = []
  if not isinstance(x_dot, SymbolicZero):
    terms.append(_DOWNCONV[input_grad](x_dot, kernel, precision))
  if not isinstance(kernel_dot, SymbolicZero):
    # Remat keeps x as the residual, not the im2col patches or space-to-depth copies built from it.
    tangent = jax.checkpoint(functools.partial(downconv_form, kernel_grad, kernel_tangent=True, threads=threads),
                             static_argnums=(2,))
    terms.append(tangent(x, kernel_dot, precision))
  return y, functools.reduce(operator.add, terms)


def downconv(x, kernel, *, precision=None, threads: int = 1, forms=None):
  """``lax.conv_general_dilated(x, kernel, (2, 2), 'SAME')`` on NHWC / HWIO with a 4x4 kernel, in
  :func:`downconv_forms`' forms, or ``forms`` = (forward, input_grad, kernel_grad) (tests, benchmarks)."""
  if kernel.shape[:2] != (4, 4):
    raise ValueError(f"downconv needs a 4x4 kernel, got {kernel.shape[:2]}")
  forms = downconv_forms(x.shape) if forms is None else tuple(forms)
  for f in forms:
    if f not in DOWNCONV_FORMS:
      raise ValueError(f"downconv form must be one of {DOWNCONV_FORMS}, got {f!r}")
  if len(set(forms)) == 1:  # plain autodiff: its kernel gradient is the transpose of this
    return downconv_form(forms[0], x, kernel, precision, kernel_tangent=True, threads=threads)
  return _downconv_mixed(x, kernel, precision, *forms, threads)

