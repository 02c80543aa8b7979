"""cpu_convs.UpConv / DownConv must be interchangeable with nn.ConvTranspose / nn.Conv(padding='SAME').

XLA:CPU compiles slowly, so each case builds one jitted function that runs the
reference and every kept form, on NumPy data.
"""

import logging
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax.linen.dtypes import promote_dtype
from helpers import smoke_config

from aigc_jax import models
from aigc_jax.core.errors import UserError
from aigc_jax.models import cpu_convs
from aigc_jax.models.cpu_convs import strided, transposed
from aigc_jax.tasks.gan import train

TOL = dict(rtol=1e-5, atol=1e-5)


def reference(features, use_bias=False, **kw):
  return nn.ConvTranspose(
    features,
    kernel_size=kw.pop("kernel_size", (4, 4)),
    strides=kw.pop("strides", (2, 2)),
    padding="SAME",
    use_bias=use_bias,
    kernel_init=nn.initializers.normal(0.02),
    **kw,
  )


def cpu_up(features, use_bias=False, **kw):
  """cpu_convs.UpConv built as ``reference`` builds nn.ConvTranspose."""
  return cpu_convs.UpConv(features, kw.pop("kernel_size", (4, 4)), kw.pop("strides", (2, 2)), use_bias=use_bias,
                          kernel_init=nn.initializers.normal(0.02), **kw)


def functional(forward, input_grad=None, threads=1):
  """UpConv's computation with the forward and input-gradient forms forced (the kernel gradient is
  dy_im2col, in the orientation ``threads`` gives it)."""

  def apply(variables, x):
    p = variables["params"]
    x, kernel, bias = promote_dtype(x, p["kernel"], p.get("bias"))
    y = cpu_convs.upconv(x, kernel, forward=forward, input_grad=input_grad, threads=threads)
    return y if bias is None else y + bias

  return apply


def random_case(shape, features, use_bias, dtype=np.float32, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape).astype(dtype)
  params = {"kernel": 0.1 * rng.standard_normal((4, 4, shape[-1], features))}
  if use_bias:
    params["bias"] = rng.standard_normal(features)
  params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
  cot = rng.standard_normal(shape[:-3] + (2 * shape[-3], 2 * shape[-2], features))
  return jnp.asarray(x), params, jnp.asarray(cot, jnp.float32)


def value_and_vjp(apply, params, x, cot):
  """Output and (param, input) cotangents of ``apply``, a Module or function."""
  apply = getattr(apply, "apply", apply)
  y, vjp = jax.vjp(lambda p, x: apply({"params": p}, x), params, x)
  return (y,) + vjp(cot.astype(y.dtype))


def assert_trees_close(got, want, **tol):
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(
      np.asarray(a, np.float32), np.asarray(b, np.float32), **tol
    ),
    got,
    want,
  )


def check_against_reference(shape, features, use_bias=False, dtype=np.float32, tol=TOL):
  x, params, cot = random_case(shape, features, use_bias, dtype)

  @jax.jit
  def run(params, x, cot):
    want = value_and_vjp(reference(features, use_bias), params, x, cot)
    candidates = {f"{fw}/threads={t}": functional(fw, threads=t) for fw in cpu_convs.UPCONV_FORWARDS for t in (1, 2)}
    candidates.update({f"input_grad={ig}": functional("phase", ig) for ig in cpu_convs.DOWNCONV_FORMS})
    for t in (1, 2):
      candidates[f"module/threads={t}"] = cpu_up(features, use_bias=use_bias, threads=t)
    got = {name: value_and_vjp(f, params, x, cot) for name, f in candidates.items()}
    return want, got

  want, got = run(params, x, cot)
  assert want[0].shape == shape[:-3] + (2 * shape[-3], 2 * shape[-2], features)
  dtypes = lambda tree: jax.tree.map(lambda a: a.dtype, tree)
  for name, result in got.items():
    assert dtypes(result) == dtypes(want), name
    assert_trees_close(result, want, **tol)


@pytest.mark.parametrize(
  "shape, features",
  [
    ((2, 1, 1, 3), 5),  # 1x1 -> 2x2
    ((3, 4, 4, 8), 16),  # 4x4 -> 8x8
    ((2, 16, 16, 6), 3),  # 16x16 -> 32x32
    ((1, 5, 7, 4), 6),  # odd, non-square
    ((4, 3, 2, 7), 2),
    ((2, 6, 6, 32), 40),
    ((2, 4, 4, 2), 12),  # few input channels, many features
    ((2, 3, 3, 40), 2),  # dy_im2col's patches (from the output gradient, 16 x 2) narrower than the input
  ],
)
def test_matches_conv_transpose(shape, features):
  check_against_reference(shape, features)


@pytest.mark.parametrize("shape, features", [((2, 4, 4, 8), 16), ((3, 5, 3, 4), 3)])
def test_matches_conv_transpose_with_bias(shape, features):
  check_against_reference(shape, features, use_bias=True)


@pytest.mark.parametrize("features", [8, 40])
def test_bfloat16_inputs_and_params(features):
  check_against_reference(
    (2, 8, 8, 16), features, dtype=jnp.bfloat16, tol=dict(rtol=2e-2, atol=2e-2)
  )


def test_bfloat16_compute_dtype_keeps_float32_params():
  x, params, cot = random_case((2, 4, 4, 8), 16, use_bias=True)

  @jax.jit
  def run(params, x, cot):
    return [
      value_and_vjp(m(16, use_bias=True, dtype=jnp.bfloat16), params, x, cot)
      for m in (reference, cpu_up)
    ]

  want, got = run(params, x, cot)
  assert got[0].dtype == jnp.bfloat16
  assert got[1]["kernel"].dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(got[0], np.float32), np.asarray(want[0], np.float32))
  assert_trees_close(got[1:], want[1:], rtol=2e-2, atol=2e-2)


def test_param_tree_identical():
  """Same names, shapes and, given the same key, the same initial values."""
  x = jnp.ones((1, 4, 4, 8))
  key = jax.random.key(3, impl="rbg")  # threefry takes seconds to compile on CPU
  avals = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
  for use_bias in (False, True):
    modules = (reference(16, use_bias), cpu_up(16, use_bias=use_bias))
    want, got = (jax.eval_shape(m.init, key, x) for m in modules)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert avals(got) == avals(want)
    assert got["params"]["kernel"].shape == (4, 4, 8, 16)
    assert ("bias" in got["params"]) == use_bias
  want, got = jax.jit(lambda key: [m.init(key, x) for m in modules])(key)
  assert_trees_close(got, want, rtol=0, atol=0)


def test_select_once_per_run(caplog):
  """auto: the CPU forms on the CPU backend, XLA's modules elsewhere; xla and cpu force either. The
  choice is made (and logged) once per (impl, backend, threads), and the threads reach the modules."""
  assert jax.default_backend() == "cpu"
  convs = cpu_convs.select("auto", "cpu", 2)
  assert (convs.conv.func, convs.conv.keywords) == (cpu_convs.DownConv, {"threads": 2})
  assert (convs.conv_transpose.func, convs.conv_transpose.keywords) == (cpu_convs.UpConv, {"threads": 2})
  assert cpu_convs.select("auto", "cpu", 2) is convs
  for impl, backend in [("auto", "gpu"), ("auto", "tpu"), ("xla", "cpu")]:
    assert cpu_convs.select(impl, backend, 2)[:2] == (nn.Conv, nn.ConvTranspose)
  assert cpu_convs.select("cpu", "gpu", 1).conv.keywords == {"threads": 1}
  with caplog.at_level(logging.INFO, logger="absl"):
    for _ in range(3):
      convs = cpu_convs.select("cpu", "cpu", 7)
  assert [r.getMessage() for r in caplog.records] == [f"conv_impl=cpu: {convs.description}"]
  assert "7 threads" in convs.description


def test_create_passes_the_choice_to_the_networks():
  x, params, _ = random_case((1, 2, 2, 3), 4, use_bias=False)
  g, d = models.create(smoke_config().model, (32, 32, 1))
  assert g.conv_transpose.func is cpu_convs.UpConv and d.conv.func is cpu_convs.DownConv
  assert g.conv_transpose.keywords == {"threads": cpu_convs.xla_cpu_threads()}
  g, d = models.create(smoke_config().model, (32, 32, 1), conv_impl="xla")
  assert (g.conv_transpose, d.conv) == (nn.ConvTranspose, nn.Conv)
  jaxpr = lambda m: str(jax.make_jaxpr(m.apply)({"params": params}, x))
  assert "custom_jvp_call" in jaxpr(cpu_up(4))
  assert "custom_jvp_call" not in jaxpr(reference(4))


def test_rejects_unknown_options():
  with pytest.raises(UserError, match=r"^config.conv_impl='fast' is not one of auto, xla, cpu$"):
    cpu_convs.select("fast", "cpu", 2)
  with pytest.raises(UserError, match=r"^config.conv_impl='cuda' is not one of auto, xla, cpu$"):
    train.validate(smoke_config(conv_impl="cuda"), 1)
  with pytest.raises(UserError, match="conv_impl"):
    models.create(smoke_config().model, (32, 32, 1), conv_impl="fast")
  with pytest.raises(ValueError, match="forward"):
    cpu_convs.upconv(jnp.ones((1, 2, 2, 3)), jnp.ones((4, 4, 3, 4)), forward="fft")
  with pytest.raises(ValueError, match="input_grad"):
    cpu_convs.upconv(jnp.ones((1, 2, 2, 3)), jnp.ones((4, 4, 3, 4)), input_grad="fft")
  with pytest.raises(ValueError, match="4x4"):
    cpu_convs.upconv(jnp.ones((1, 2, 2, 3)), jnp.ones((3, 3, 3, 4)))


def test_auto_forward_per_input_size(monkeypatch):
  """col2im (one matmul, no convolution) up to 16x16 inputs, the phase convolution above."""
  k = jnp.ones((4, 4, 3, 4))
  assert [cpu_convs.upconv_forward((1, s, s, 3)) for s in (1, 4, 8, 16, 17, 32)] == ["col2im"] * 4 + ["phase"] * 2
  chosen = []
  monkeypatch.setattr(transposed, "_upconv_cpu", lambda x, kernel, precision, forward, input_grad, threads:
                      chosen.append(forward))
  for size in (4, 16, 17, 32):
    cpu_convs.upconv(jnp.ones((1, size, size, 3)), k)
  assert chosen == ["col2im", "col2im", "phase", "phase"]
  monkeypatch.undo()
  jaxpr = lambda size: str(jax.make_jaxpr(lambda x: cpu_convs.upconv(x, k))(jnp.ones((1, size, size, 3))))
  assert "dot_general" in jaxpr(4) and "conv_general_dilated" not in jaxpr(4)
  assert "conv_general_dilated" in jaxpr(32)


def test_tracing_does_not_read_the_cpu_affinity(monkeypatch):
  """The thread count is a field set once per run (select), never read while a layer is traced."""
  def fail(*args):
    raise AssertionError("read the CPU affinity while tracing")

  monkeypatch.setattr(os, "sched_getaffinity", fail)
  x = jnp.ones((2, 8, 8, 3))
  for module in (cpu_up(16, threads=2), cpu_convs.DownConv(16, (4, 4), (2, 2), threads=2)):
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    jax.make_jaxpr(jax.grad(lambda v, x: jnp.sum(module.apply(v, x) ** 2), argnums=(0, 1)))(variables, x)


@pytest.mark.parametrize(
  "kernel_size, strides", [((3, 3), (1, 1)), ((3, 3), (2, 2)), ((4, 4), (1, 1))]
)
def test_other_settings_fall_back_to_xla(kernel_size, strides):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 5, 5, 3)), jnp.float32)
  params = {"kernel": jnp.asarray(rng.standard_normal(kernel_size + (3, 4)), jnp.float32)}
  modules = [m(4, kernel_size=kernel_size, strides=strides) for m in (reference, cpu_up)]
  want, got = jax.jit(lambda p, x: [m.apply({"params": p}, x) for m in modules])(params, x)
  np.testing.assert_array_equal(got, want)
  assert "custom_jvp_call" not in str(jax.make_jaxpr(modules[1].apply)({"params": params}, x))


@pytest.mark.parametrize("kernel_size, strides, padding",
                         [((3, 3), (1, 1), "SAME"), ((3, 3), (2, 2), "SAME"), ((4, 4), (1, 1), "SAME"),
                          ((4, 4), (2, 2), "VALID")])
def test_downconv_other_settings_fall_back_to_xla(kernel_size, strides, padding):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 7, 7, 3)), jnp.float32)
  params = {"kernel": jnp.asarray(rng.standard_normal(kernel_size + (3, 4)), jnp.float32),
            "bias": jnp.asarray(rng.standard_normal(4), jnp.float32)}
  modules = [m(4, kernel_size, strides, padding=padding) for m in (nn.Conv, cpu_convs.DownConv)]
  want, got = jax.jit(lambda p, x: [m.apply({"params": p}, x) for m in modules])(params, x)
  np.testing.assert_array_equal(got, want)
  assert "optimization_barrier" not in str(jax.make_jaxpr(modules[1].apply)({"params": params}, x))


@pytest.mark.parametrize("shape", [(4, 4, 3), (2, 3, 4, 4, 3)])
def test_batch_dims_like_conv_transpose(shape):
  x, params, cot = random_case(shape, 5, use_bias=True)
  modules = [m(5, use_bias=True) for m in (reference, cpu_up)]
  run = jax.jit(lambda p, x, c: [value_and_vjp(m, p, x, c) for m in modules])
  want, got = run(params, x, cot)
  assert_trees_close(got, want, **TOL)


def test_jvp_and_second_order():
  x, params, _ = random_case((2, 3, 3, 4), 5, use_bias=False)
  k = params["kernel"]
  tangents = (jnp.ones_like(x), jnp.ones_like(k))
  f_ref = lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME")
  fns = [lambda x, k: cpu_convs.upconv(x, k)]
  fns += [lambda x, k, ig=ig, fw=fw, t=t: cpu_convs.upconv(x, k, forward=fw, input_grad=ig, threads=t)
          for ig, fw, t in zip(cpu_convs.DOWNCONV_FORMS, cpu_convs.UPCONV_FORWARDS * 2, (1, 2) * 2)]

  def grad_norm(f):
    return jax.grad(lambda k: jnp.sum(jax.grad(lambda x: jnp.sum(f(x, k) ** 2))(x) ** 2))

  @jax.jit
  def run(x, k):
    return [(jax.jvp(f, (x, k), tangents)[1], grad_norm(f)(k)) for f in [f_ref] + fns]

  want, *got = run(x, k)
  for result in got:
    assert_trees_close(result, want, **TOL)


def test_pmap():
  n = jax.local_device_count()
  x, params, _ = random_case((n, 2, 4, 4, 3), 6, use_bias=True)

  def grads(module):
    return jax.grad(lambda p, x: jnp.sum(module.apply({"params": p}, x) ** 2))

  got = jax.pmap(grads(cpu_up(6, use_bias=True, threads=2)), in_axes=(None, 0))(params, x)
  want = jax.jit(jax.vmap(grads(reference(6, use_bias=True)), in_axes=(None, 0)))(params, x)
  assert_trees_close(got, want, **TOL)


# ---------------------------------------------------------------------------------------- DownConv

# Every pure formulation, and mixes that route each gradient through a different one.
DOWN_FORMS = [(f,) * 3 for f in cpu_convs.DOWNCONV_FORMS] + [
  ("xla", "s2d_matmul", "xla"),
  ("s2d_conv", "xla", "s2d_matmul"),
  ("s2d_matmul", "s2d_conv", "xla"),
  ("xla", "s2d_conv", "im2col"),
  ("im2col", "s2d_matmul", "xla"),
]


def down_reference(features, use_bias=False):
  return nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias,
                 kernel_init=nn.initializers.normal(0.02))


def cpu_down(features, use_bias=False, threads=1):
  return cpu_convs.DownConv(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias,
                            kernel_init=nn.initializers.normal(0.02), threads=threads)


def down_functional(forms, threads=1):
  def apply(variables, x):
    p = variables["params"]
    y = cpu_convs.downconv(x, p["kernel"], forms=forms, threads=threads)
    return y if "bias" not in p else y + p["bias"]

  return apply


def down_case(shape, features, use_bias, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  params = {"kernel": jnp.asarray(0.1 * rng.standard_normal((4, 4, shape[-1], features)), jnp.float32)}
  if use_bias:
    params["bias"] = jnp.asarray(rng.standard_normal(features), jnp.float32)
  out = shape[:-3] + (-(-shape[-3] // 2), -(-shape[-2] // 2), features)
  return x, params, jnp.asarray(rng.standard_normal(out), jnp.float32)


@pytest.mark.parametrize(
  "shape, features, use_bias",
  [
    ((2, 8, 8, 3), 8, False),  # the first DCGAN layer, small
    ((1, 4, 4, 16), 32, False),  # batch 1, 4x4 -> 2x2 (the last layer's shape)
    ((3, 7, 5, 5), 3, True),  # odd sizes pad (1, 2) like 'SAME'; odd channel counts
    ((2, 1, 1, 3), 5, False),  # 1x1 -> 1x1
    ((2, 16, 16, 8), 16, True),  # 'auto' takes the space-to-depth input gradient
    ((1, 2, 2, 256), 3, False),  # 'auto' takes the matmul form throughout
    ((2, 6, 6, 2), 40, False),  # im2col patches (16 x 2) narrower than the features
  ],
)
def test_downconv_matches_conv(shape, features, use_bias):
  """Values, input and kernel gradients of every formulation equal nn.Conv's."""
  x, params, cot = down_case(shape, features, use_bias)

  @jax.jit
  def run(params, x, cot):
    want = value_and_vjp(down_reference(features, use_bias), params, x, cot)
    got = {"/".join(forms): value_and_vjp(down_functional(forms), params, x, cot) for forms in DOWN_FORMS}
    got["im2col/threads=2"] = value_and_vjp(down_functional(("im2col",) * 3, threads=2), params, x, cot)
    for threads in (1, 2):
      got[f"module/threads={threads}"] = value_and_vjp(cpu_down(features, use_bias, threads), params, x, cot)
    return want, got

  want, got = run(params, x, cot)
  assert want[0].shape == cot.shape
  for name, result in got.items():
    assert jax.tree.structure(result) == jax.tree.structure(want), name
    assert_trees_close(result, want, **TOL)


def strided_patches(x):
  """The textbook im2col: the sixteen stride-2 views of the 'SAME'-padded input, joined on channels."""
  n, h, w, c = x.shape
  ho, wo = -(-h // 2), -(-w // 2)
  pad_h, pad_w = max(2 * ho + 2 - h, 0), max(2 * wo + 2 - w, 0)
  xp = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
  views = [xp[:, ky : ky + 2 * ho - 1 : 2, kx : kx + 2 * wo - 1 : 2] for ky in range(4) for kx in range(4)]
  return jnp.concatenate(views, axis=-1)


@pytest.mark.parametrize("width", [1, 2, 3, 6, 7, 8])
def test_downconv_patch_builds_agree(width):
  """Patches from 4 C runs (even output widths) and from pair views (odd ones), each window padding
  itself, equal the textbook im2col bit for bit, down to inputs of one pixel."""
  for height in range(1, 10):
    x = jax.random.normal(jax.random.key(height), (2, height, width, 3))
    got = np.asarray(strided._downconv_patches(x))
    assert got.shape == (2, -(-height // 2), -(-width // 2), 48)
    np.testing.assert_array_equal(got, np.asarray(strided_patches(x)))


def test_downconv_matches_lax_under_vmap_and_leading_batch_dims():
  x, params, cot = down_case((2, 3, 6, 6, 5), 7, use_bias=False)
  lax_conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (2, 2), "SAME",
                                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def vjp(f):
    y, pullback = jax.vjp(f, x, params["kernel"])
    return (y,) + pullback(cot)

  @jax.jit
  def run(x, params, cot):
    want = vjp(jax.vmap(lax_conv, in_axes=(0, None)))
    got = [vjp(jax.vmap(lambda x, k, f=f: cpu_convs.downconv(x, k, forms=f), in_axes=(0, None))) for f in DOWN_FORMS]
    module = cpu_down(7, threads=2)
    got.append(vjp(lambda x, k: module.apply({"params": {"kernel": k}}, x)))  # (2, 3) leading dims
    return want, got

  want, got = run(x, params, cot)
  for result in got:
    assert_trees_close(result, want, **TOL)


def test_downconv_jvp_and_second_order():
  """The mixed formulation's custom_jvp also serves forward mode and gradients of gradients."""
  x, params, _ = down_case((2, 6, 6, 4), 5, use_bias=False)
  k = params["kernel"]
  tangents = (jnp.ones_like(x), jnp.ones_like(k))

  def grad_norm(f):
    return jax.grad(lambda k: jnp.sum(jax.grad(lambda x: jnp.sum(f(x, k) ** 2))(x) ** 2))

  fns = [lambda x, k, f=f: cpu_convs.downconv(x, k, forms=f) for f in DOWN_FORMS]
  fns.append(lambda x, k: cpu_convs.downconv(x, k, forms=("im2col",) * 3, threads=2))

  @jax.jit
  def run(x, k):
    return [(jax.jvp(f, (x, k), tangents)[1], grad_norm(f)(k)) for f in fns]

  want, *got = run(x, k)
  for result in got:
    assert_trees_close(result, want, **TOL)


def test_downconv_param_tree_identical_to_conv():
  x = jnp.ones((1, 8, 8, 3))
  key = jax.random.key(3, impl="rbg")
  for use_bias in (False, True):
    modules = (down_reference(16, use_bias), cpu_down(16, use_bias))
    want, got = jax.jit(lambda key: [m.init(key, x) for m in modules])(key)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert got["params"]["kernel"].shape == (4, 4, 3, 16)
    assert_trees_close(got, want, rtol=0, atol=0)


def test_downconv_auto_picks_per_shape():
  """Each formulation is chosen for some DCGAN layer on CPU, and plain XLA elsewhere."""
  forms = cpu_convs.downconv_forms
  assert forms((64, 8, 8, 256)) == ("s2d_matmul",) * 3
  assert forms((64, 32, 32, 3)) == ("s2d_conv", "xla", "im2col")
  assert forms((64, 32, 32, 64)) == ("xla", "s2d_conv", "im2col")
  assert forms((64, 16, 16, 64)) == ("xla", "s2d_matmul", "im2col")
  assert forms((64, 8, 8, 128)) == ("im2col", "im2col", "xla")
  assert forms((64, 16, 16, 128)) == ("im2col",) * 3
  assert forms((64, 32, 32, 128)) == ("xla", "s2d_conv", "im2col")
  jaxpr = lambda x_shape: str(jax.make_jaxpr(cpu_convs.downconv)(jnp.ones(x_shape), jnp.ones((4, 4, x_shape[-1], 2))))
  assert "dot_general" in jaxpr((1, 2, 2, 256)) and "custom_jvp_call" not in jaxpr((1, 2, 2, 256))
  assert "custom_jvp_call" in jaxpr((1, 8, 8, 3))  # mixed forms


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k, out", [(48, 64), (512, 64), (64, 32)])
def test_im2col_kernel_gradient_puts_the_longer_axis_minor(k, out, threads):
  """The compiled kernel gradient's matmul yields (K, out) or (out, K), whichever has the longer
  minor axis (the fast orientation on XLA:CPU); with more than one thread, (out, K) takes dy^T as
  an (out, pixels) operand. It equals patches^T @ dy either way."""
  rng = np.random.default_rng(0)
  patches, kernel = jnp.asarray(rng.standard_normal((96, k))), jnp.zeros((k, out))
  dy = jnp.asarray(rng.standard_normal((96, out)))
  matmul = lambda patches, w: strided._im2col_matmul(patches, w, None, kernel_tangent=True, threads=threads)
  grad = lambda patches, dy: jax.linear_transpose(lambda w: matmul(patches, w), kernel)(dy)[0]
  hlo = jax.jit(grad).lower(patches, dy).compile().as_text()
  dots = re.findall(r"= (f32\[\d+,\d+\])\S* dot\(", hlo)
  assert dots == [f"f32[{k},{out}]" if k < out else f"f32[{out},{k}]"]
  operands = [tuple(v.aval.shape) for e in jax.make_jaxpr(grad)(patches, dy).eqns
              if e.primitive.name == "dot_general" for v in e.invars]
  assert ((out, 96) in operands) == (k >= out and threads > 1)
  np.testing.assert_allclose(jax.jit(grad)(patches, dy), patches.T @ dy, rtol=1e-5, atol=1e-4)


def test_im2col_forward_use_is_a_plain_matmul():
  """Outside kernel tangents (a forward pass, an input gradient) the kernel is not transposed."""
  patches, kernel = jnp.ones((96, 512)), jnp.ones((512, 64))
  jaxpr = str(jax.make_jaxpr(lambda p, k: strided._im2col_matmul(p, k, None, kernel_tangent=False, threads=2))(
      patches, kernel))
  assert "transpose" not in jaxpr and "optimization_barrier" not in jaxpr
  x, k = jnp.ones((2, 8, 8, 32)), jnp.ones((4, 4, 32, 64))
  forward = jax.make_jaxpr(lambda x, k: strided._downconv_im2col(x, k, None, threads=2))(x, k)
  barriers = [tuple(v.aval.shape) for e in forward.eqns if e.primitive.name == "optimization_barrier"
              for v in e.invars]
  assert barriers == [x.shape]  # only the input of the patches (see _downconv_views), never the kernel


def test_downconv_rejects_unknown_options():
  x, k = jnp.ones((1, 4, 4, 3)), jnp.ones((4, 4, 3, 2))
  with pytest.raises(ValueError, match="form"):
    cpu_convs.downconv(x, k, forms=("xla", "fft", "xla"))
  with pytest.raises(ValueError, match="4x4"):
    cpu_convs.downconv(x, jnp.ones((3, 3, 3, 2)))
