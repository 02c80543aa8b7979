"""UpConv's forms: the 4x4 / stride-2 / 'SAME' transposed convolution as XLA:CPU runs it fastest,
its input gradient as a DownConv form and its kernel gradient as an im2col matmul (see the package
docstring)."""

import functools
import operator

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from aigc_jax.models.cpu_convs.strided import (
  DOWNCONV_FORMS,
  NHWC,
  downconv_form,
  downconv_forms,
)

UPCONV_FORWARDS = ("col2im", "phase")
# UpConv's forward on inputs up to this size is col2im, above it the phase convolution.
_COL2IM_FORWARD_MAX_SIZE = 16


def upconv_forward(x_shape) -> str:
  """UpConv's forward form: col2im on inputs up to 16x16 (no zero or discarded outputs, one matmul
  that YNNPACK runs near peak), the phase convolution on larger ones."""
  return "col2im" if min(x_shape[-3:-1]) <= _COL2IM_FORWARD_MAX_SIZE else "phase"


# With xp = x zero-padded by one pixel, the 4x4 / stride-2 / 'SAME' transposed convolution is, per
# output phase (a, b) in {0, 1}^2,
#   y[:, 2m + a, 2l + b] = sum_{dy, dx in {0, 1}} xp[:, m + a + dy, l + b + dx] @ kernel[2 dy + a, 2 dx + b].


def _interleave(y):
  """(N, H, W, 2, 2, C) phases -> (N, 2H, 2W, C), i.e. depth-to-space."""
  n, h, w, _, _, c = y.shape
  return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c)


def _phase_shift_conv(x, kernel, precision):
  """One stride-1 2x2 'VALID' convolution of the padded input into the four phases as channels,
  z[p, q, (a, b)] = sum xp[p + dy, q + dx] @ kernel[2 dy + a, 2 dx + b]; phase (a, b) then reads
  z shifted by (a, b)."""
  n, h, w, cin = x.shape
  cout = kernel.shape[-1]
  k2 = kernel.reshape(2, 2, 2, 2, cin, cout).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, cin, 4 * cout)
  z = lax.conv_general_dilated(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k2, (1, 1), "VALID",
                               dimension_numbers=NHWC, precision=precision).reshape(n, h + 1, w + 1, 2, 2, cout)
  y = jnp.stack([jnp.stack([z[:, a : a + h, b : b + w, a, b] for b in range(2)], 3) for a in range(2)], 3)
  return _interleave(y)


def _input_tangent(x_dot, kernel, precision, form, kernel_tangent=False, threads=1):
  """``conv_transpose(x_dot, kernel)`` written as the transpose of a DownConv form, so that its own
  transpose, UpConv's input gradient, is that form: the input gradient of a 4x4 / stride-2 'SAME'
  transposed convolution is the strided convolution of the output gradient with the kernel flipped
  in space and its in/out axes swapped."""
  if form == "xla":
    return lax.conv_transpose(x_dot, kernel, (2, 2), "SAME", precision=precision)
  n, h, w, _ = x_dot.shape
  flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
  out = jax.ShapeDtypeStruct((n, 2 * h, 2 * w, kernel.shape[-1]), jnp.result_type(x_dot, kernel))
  as_downconv = lambda dy: downconv_form(form, dy, flipped, precision, kernel_tangent, threads)
  return jax.linear_transpose(as_downconv, out)(x_dot)[0]


def _col2im(x, kernel, precision):
  """The transpose of DownConv's im2col form: (pixels of x, in) @ (in, 16 out), then the 16 taps'
  products added into the padded output at their shifts. In at least float32, like a convolution's
  accumulator, so that the taps' partial sums are not rounded to bfloat16."""
  out_dtype = jnp.result_type(x, kernel)
  compute_dtype = jnp.promote_types(out_dtype, jnp.float32)
  return _input_tangent(x.astype(compute_dtype), kernel.astype(compute_dtype), precision, "im2col").astype(out_dtype)


def _dy_im2col(x, kernel, precision, threads):
  """The transposed convolution linear in the kernel, whose transpose (the kernel gradient) builds
  the patches from the output gradient, (pixels of x, 16 out), one matmul with x."""
  return _input_tangent(x, kernel, precision, "im2col", kernel_tangent=True, threads=threads)


_FORWARDS = {"phase": _phase_shift_conv, "col2im": _col2im}


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _upconv_cpu(x, kernel, precision, forward, input_grad, threads):
  return _FORWARDS[forward](x, kernel, precision)


@functools.partial(_upconv_cpu.defjvp, symbolic_zeros=True)
def _upconv_cpu_jvp(precision, forward, input_grad, threads, primals, tangents):
  x, kernel = primals
  x_dot, kernel_dot = tangents
  y = _FORWARDS[forward](x, kernel, precision)
  terms = []
  if not isinstance(x_dot, SymbolicZero):
    terms.append(_input_tangent(x_dot, kernel, precision, input_grad))
  if not isinstance(kernel_dot, SymbolicZero):
    # Remat keeps x as the only residual instead of the patches built from it.
    tangent = jax.checkpoint(_dy_im2col, static_argnums=(2, 3))
    terms.append(tangent(x, kernel_dot, precision, threads))
  return y, functools.reduce(operator.add, terms)


def upconv(x, kernel, *, precision=None, threads: int = 1, forward=None, input_grad=None):
  """``lax.conv_transpose(x, kernel, (2, 2), 'SAME')`` on NHWC / HWIO with a 4x4 kernel, in the
  forms :func:`upconv_forward` and :func:`downconv_forms` choose, or ``forward`` (one of
  :data:`UPCONV_FORWARDS`) and ``input_grad`` (one of :data:`DOWNCONV_FORMS`) (tests, benchmarks)."""
  if kernel.shape[:2] != (4, 4):
    raise ValueError(f"upconv needs a 4x4 kernel, got {kernel.shape[:2]}")
  forward = upconv_forward(x.shape) if forward is None else forward
  if forward not in UPCONV_FORWARDS:
    raise ValueError(f"forward must be one of {UPCONV_FORWARDS}, got {forward!r}")
  if input_grad is None:  # DownConv's forward form on the output gradient's shape.
    input_grad = downconv_forms(x.shape[:-3] + (2 * x.shape[-3], 2 * x.shape[-2], kernel.shape[-1]))[0]
  if input_grad not in DOWNCONV_FORMS:
    raise ValueError(f"input_grad must be one of {DOWNCONV_FORMS}, got {input_grad!r}")
  return _upconv_cpu(x, kernel, precision, forward, input_grad, threads)
