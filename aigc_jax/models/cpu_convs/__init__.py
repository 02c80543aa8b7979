"""XLA:CPU forms of the 4x4 / stride-2 / 'SAME' convolutions of DCGAN-style networks, behind one switch.

XLA:CPU lowers the kernel gradient of a strided ``lax.conv_transpose`` to a window-dilated
convolution that misses its fast path (jax issue #23783), and several other parts of these layers
to convolutions slower than a matmul. :class:`DownConv` (for ``nn.Conv``) and :class:`UpConv` (for
``nn.ConvTranspose``) have the same fields, parameters and values, with each part written in a form
XLA:CPU runs fast. A ``jax.custom_jvp`` gives the forward pass and each tangent its own form; each
tangent is linear in its argument, so its transpose (the input or kernel gradient in reverse mode)
is the transpose of that form. Kernel tangents are rematerialized: the input is the only residual.
Other kernel sizes, strides or paddings use XLA's op.

DownConv forms (``strided.py``, :data:`DOWNCONV_FORMS`), with ``xp`` the 'SAME'-padded input:
- ``xla``: ``lax.conv_general_dilated``, what ``nn.Conv`` computes.
- ``s2d_conv``: 2x2 pixel blocks of ``xp`` folded into channels (space-to-depth), then one stride-1
  2x2 'VALID' convolution; its gradients are stride-1 convolutions too.
- ``s2d_matmul``: the same as four (pixels, 4 C) @ (4 C, out) matmuls on shifted views.
- ``im2col``: the sixteen strided views of ``xp`` side by side as (pixels, 16 C) patches, built from
  unit-stride windows that pad themselves (4 C-wide runs for even output widths, 2 C-wide pairs
  for odd ones) after an optimization barrier on the input, then one matmul.

UpConv forms (``transposed.py``): forward ``col2im`` (the transpose of DownConv's ``im2col``: one
(pixels, in) @ (in, 16 out) matmul, then the taps added into place, in at least float32) or
``phase`` (one stride-1 2x2 convolution into the four output phases as channels); input tangent the
transpose of a DownConv form, so the input gradient *is* that form, run on the output gradient;
kernel tangent ``dy_im2col``, whose transpose is DownConv's im2col kernel gradient with the roles
swapped (patches of the output gradient times the input).

Selection, once per run: :func:`select` (called by ``aigc_jax.models.create`` with
``config.conv_impl``, one of :data:`IMPLS`, the backend and :func:`xla_cpu_threads`) returns the
networks' ``conv`` / ``conv_transpose`` factories and logs its choice: 'auto' takes these modules on
the CPU backend and ``nn.Conv`` / ``nn.ConvTranspose`` elsewhere, 'xla' and 'cpu' force either. The
thread count is bound into the modules as a field; nothing reads the CPU affinity while tracing.

Then per layer, from its input shape (C channels, S the smaller side), measured on a 2-core x86 CPU
over the 32x32 and 64x64 DCGANs, in whole train steps (:func:`downconv_forms`,
:func:`upconv_forward`; benchmarks/speed/conv_forms.py, conv_step.py, matmul_orientation.py):
- DownConv (forward / input gradient / kernel gradient): C >= 256: ``s2d_matmul`` throughout;
  C <= 4 (the image): ``s2d_conv`` / ``xla`` / ``im2col``. Otherwise the forward is ``im2col`` on
  S <= 8, or on S <= 16 with C >= 128, else ``xla``; the input gradient ``s2d_conv`` from S = 32,
  ``im2col`` on S <= 16 with C >= 128, else ``s2d_matmul``; the kernel gradient ``im2col`` from
  S = 16, else ``xla``. Three equal forms are plain autodiff through that form.
- UpConv: forward ``col2im`` up to S = 16, ``phase`` above; input gradient the DownConv forward
  form for the output gradient's shape; kernel gradient ``dy_im2col``.
- An im2col kernel gradient, dK = P^T dY for (pixels, K) patches P, is computed as (dY^T P)^T, with
  a barrier before the transpose, when K >= out (XLA:CPU runs the product fastest when its result
  has the longer minor axis), else as P^T dY; with more than one thread and at most 4096 x 1024
  patch elements, dY^T is materialized as an (out, pixels) operand, which splits better across
  threads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from absl import logging
from flax import linen as nn
from flax.linen.dtypes import promote_dtype
from jax import lax

from aigc_jax.core.errors import UserError
from aigc_jax.models.cpu_convs.strided import (
  DOWNCONV_FORMS,
  NHWC,
  downconv,
  downconv_forms,
)
from aigc_jax.models.cpu_convs.transposed import UPCONV_FORWARDS, upconv, upconv_forward

__all__ = ["IMPLS", "DOWNCONV_FORMS", "UPCONV_FORWARDS", "Convs", "DownConv", "UpConv", "check_impl", "downconv",
           "downconv_forms", "select", "upconv", "upconv_forward", "xla_cpu_threads"]

IMPLS = ("auto", "xla", "cpu")

# ------------------------------------------------------------------------------------------ selection


class Convs(NamedTuple):
  """What the networks receive: ``conv`` stands for ``nn.Conv``, ``conv_transpose`` for ``nn.ConvTranspose``."""

  conv: Callable[..., nn.Module]
  conv_transpose: Callable[..., nn.Module]
  description: str


def check_impl(impl: str) -> None:
  if impl not in IMPLS:
    raise UserError(f"config.conv_impl='{impl}' is not one of {', '.join(IMPLS)}")


def xla_cpu_threads() -> int:
  """The CPUs this process may run on, which is how many threads XLA:CPU's pool starts with."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.cache
def select(impl: str, backend: str, threads: int) -> Convs:
  """The convolutions for ``impl`` on ``backend`` with ``threads`` XLA:CPU threads; logged once per choice."""
  check_impl(impl)
  if impl == "xla" or (impl == "auto" and backend != "cpu"):
    convs = Convs(nn.Conv, nn.ConvTranspose, f"XLA's convolutions (nn.Conv, nn.ConvTranspose) on {backend}")
  else:
    convs = Convs(functools.partial(DownConv, threads=threads), functools.partial(UpConv, threads=threads),
                  f"XLA:CPU forms of the 4x4 / stride-2 convolutions (cpu_convs.DownConv, UpConv) for {threads} "
                  f"thread{'s' if threads > 1 else ''}, on {backend}")
  logging.info("conv_impl=%s: %s", impl, convs.description)
  return convs


# -------------------------------------------------------------------------------------------- modules


def _pair(v: int | Sequence[int]) -> tuple[int, ...]:
  return (v, v) if isinstance(v, int) else tuple(v)


class _CpuConv(nn.Module):
  """Fields, defaults and parameters ('kernel' (kh, kw, in, out), 'bias') of ``nn.Conv`` /
  ``nn.ConvTranspose``, NHWC inputs with any leading batch dimensions; ``threads``: XLA:CPU's."""

  features: int
  kernel_size: int | Sequence[int]
  strides: int | Sequence[int] = 1
  padding: str = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  threads: int = 1

  def _cpu_form(self, x, kernel):
    raise NotImplementedError

  def _xla(self, x, kernel, strides):
    raise NotImplementedError

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    batch_shape = inputs.shape[:-3]
    if len(batch_shape) != 1:
      inputs = inputs.reshape((-1,) + inputs.shape[-3:])
    kernel_size, strides = _pair(self.kernel_size), _pair(self.strides)
    kernel = self.param("kernel", self.kernel_init, kernel_size + (inputs.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
    inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    if kernel_size == (4, 4) and strides == (2, 2) and self.padding == "SAME":
      y = self._cpu_form(inputs, kernel)
    else:
      y = self._xla(inputs, kernel, strides)
    if bias is not None:
      y = y + bias
    if len(batch_shape) != 1:
      y = y.reshape(batch_shape + y.shape[1:])
    return y


class DownConv(_CpuConv):
  """Stands in for ``nn.Conv``: :func:`downconv` for 4x4 / stride-2 / 'SAME', XLA's op otherwise."""

  def _cpu_form(self, x, kernel):
    return downconv(x, kernel, precision=self.precision, threads=self.threads)

  def _xla(self, x, kernel, strides):
    return lax.conv_general_dilated(x, kernel, strides, self.padding, dimension_numbers=NHWC,
                                    precision=self.precision)


class UpConv(_CpuConv):
  """Stands in for ``nn.ConvTranspose``: :func:`upconv` for 4x4 / stride-2 / 'SAME', XLA's op otherwise."""

  def _cpu_form(self, x, kernel):
    return upconv(x, kernel, precision=self.precision, threads=self.threads)

  def _xla(self, x, kernel, strides):
    return lax.conv_transpose(x, kernel, strides, self.padding, precision=self.precision)
