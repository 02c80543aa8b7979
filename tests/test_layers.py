"""UpConv must be interchangeable with nn.ConvTranspose(padding='SAME').

XLA:CPU compiles slowly, so each case builds one jitted function that runs the
reference and every fast variant, on NumPy data.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax.linen.dtypes import promote_dtype

from aigc_jax.models import layers
from aigc_jax.models.layers import UpConv

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


def functional(kernel_grad, forward, input_grad=None):
  """UpConv's computation with the kernel-gradient, forward and input-gradient formulations forced."""

  def apply(variables, x):
    p = variables["params"]
    x, kernel, bias = promote_dtype(x, p["kernel"], p.get("bias"))
    y = layers.upconv(x, kernel, impl="fast", kernel_grad=kernel_grad, forward=forward, input_grad=input_grad)
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
    candidates = {f"{kg}/{fw}": functional(kg, fw) for kg in layers.KERNEL_GRADS for fw in layers.FORWARDS}
    candidates.update({f"input_grad={ig}": functional("im2col", "phase", ig) for ig in layers.DOWNCONV_FORMS})
    candidates["module"] = UpConv(features, use_bias=use_bias, impl="fast")
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
    ((2, 4, 4, 2), 12),  # im2col patches narrower than the features: the other matmul orientation
    ((2, 3, 3, 40), 2),  # the same for dy_im2col, whose patches come from the output gradient
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
      for m in (reference, UpConv)
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
    modules = (reference(16, use_bias), UpConv(16, use_bias=use_bias))
    want, got = (jax.eval_shape(m.init, key, x) for m in modules)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert avals(got) == avals(want)
    assert got["params"]["kernel"].shape == (4, 4, 8, 16)
    assert ("bias" in got["params"]) == use_bias
  want, got = jax.jit(lambda key: [m.init(key, x) for m in modules])(key)
  assert_trees_close(got, want, rtol=0, atol=0)


def test_auto_selects_fast_on_cpu():
  assert jax.default_backend() == "cpu"
  assert layers.resolve_impl("auto") == "fast"
  assert layers.resolve_impl("fast") == "fast"
  assert layers.resolve_impl("xla") == "xla"
  x, params, _ = random_case((1, 2, 2, 3), 4, use_bias=False)
  jaxpr = lambda impl: str(jax.make_jaxpr(UpConv(4, impl=impl).apply)({"params": params}, x))
  assert "custom_jvp_call" in jaxpr("auto")
  assert "custom_jvp_call" not in jaxpr("xla")


def test_rejects_unknown_options():
  with pytest.raises(ValueError, match="impl"):
    jax.eval_shape(UpConv(4, impl="cuda").init, jax.random.key(0), jnp.ones((1, 2, 2, 3)))
  with pytest.raises(ValueError, match="kernel_grad"):
    layers.upconv(jnp.ones((1, 2, 2, 3)), jnp.ones((4, 4, 3, 4)), kernel_grad="fft")
  with pytest.raises(ValueError, match="forward"):
    layers.upconv(jnp.ones((1, 2, 2, 3)), jnp.ones((4, 4, 3, 4)), forward="fft")
  with pytest.raises(ValueError, match="input_grad"):
    layers.upconv(jnp.ones((1, 2, 2, 3)), jnp.ones((4, 4, 3, 4)), input_grad="fft")


def test_auto_forward_per_input_size(monkeypatch):
  """col2im up to 16x16 inputs, the phase convolution above; without col2im, conv_transpose's own
  lhs-dilated convolution on 4x4 inputs and the phase form from 8x8 on."""
  k = jnp.ones((4, 4, 3, 4))
  chosen = []
  monkeypatch.setattr(layers, "_upconv_fast", lambda x, kernel, precision, kernel_grad, forward, input_grad:
                      chosen.append(forward))

  def forwards(sizes):
    chosen.clear()
    for size in sizes:
      layers.upconv(jnp.ones((1, size, size, 3)), k, impl="fast")
    return chosen

  assert forwards([1, 4, 8, 16, 17, 32]) == ["col2im"] * 4 + ["phase"] * 2
  monkeypatch.setattr(layers, "_COL2IM_FORWARD_MAX_SIZE", 0)
  assert forwards([4, 8, 32]) == ["xla", "phase", "phase"]
  monkeypatch.undo()
  hlo = lambda size: str(jax.make_jaxpr(lambda x: layers.upconv(x, k, impl="fast", forward="xla"))(
      jnp.ones((1, size, size, 3))))
  assert "lhs_dilation=(2, 2)" in hlo(4)


@pytest.mark.parametrize(
  "kernel_size, strides", [((3, 3), (1, 1)), ((3, 3), (2, 2)), ((4, 4), (1, 1))]
)
def test_other_settings_fall_back_to_xla(kernel_size, strides):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 5, 5, 3)), jnp.float32)
  params = {"kernel": jnp.asarray(rng.standard_normal(kernel_size + (3, 4)), jnp.float32)}
  modules = [m(4, kernel_size=kernel_size, strides=strides) for m in (reference, UpConv)]
  want, got = jax.jit(lambda p, x: [m.apply({"params": p}, x) for m in modules])(params, x)
  np.testing.assert_array_equal(got, want)
  fast = UpConv(4, kernel_size=kernel_size, strides=strides, impl="fast")
  assert "custom_jvp_call" not in str(jax.make_jaxpr(fast.apply)({"params": params}, x))


@pytest.mark.parametrize("shape", [(4, 4, 3), (2, 3, 4, 4, 3)])
def test_batch_dims_like_conv_transpose(shape):
  x, params, cot = random_case(shape, 5, use_bias=True)
  modules = [m(5, use_bias=True) for m in (reference, UpConv)]
  run = jax.jit(lambda p, x, c: [value_and_vjp(m, p, x, c) for m in modules])
  want, got = run(params, x, cot)
  assert_trees_close(got, want, **TOL)


def test_jvp_and_second_order():
  x, params, _ = random_case((2, 3, 3, 4), 5, use_bias=False)
  k = params["kernel"]
  tangents = (jnp.ones_like(x), jnp.ones_like(k))
  f_ref = lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME")
  fns = [lambda x, k: layers.upconv(x, k, impl="fast")]
  fns += [lambda x, k, ig=ig, kg=kg: layers.upconv(x, k, impl="fast", input_grad=ig, kernel_grad=kg)
          for ig, kg in zip(layers.DOWNCONV_FORMS, layers.KERNEL_GRADS * 2)]

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

  got = jax.pmap(grads(UpConv(6, use_bias=True)), in_axes=(None, 0))(params, x)
  want = jax.jit(jax.vmap(grads(reference(6, use_bias=True)), in_axes=(None, 0)))(params, x)
  assert_trees_close(got, want, **TOL)


# ---------------------------------------------------------------------------------------- DownConv

from aigc_jax.models.layers import DownConv  # noqa: E402

# Every pure formulation, and mixes that route each gradient through a different one.
DOWN_FORMS = [(f,) * 3 for f in layers.DOWNCONV_FORMS] + [
  ("xla", "s2d_matmul", "xla"),
  ("s2d_conv", "xla", "s2d_matmul"),
  ("s2d_matmul", "s2d_conv", "xla"),
  ("xla", "s2d_conv", "im2col"),
  ("im2col", "s2d_matmul", "xla"),
]


def down_reference(features, use_bias=False):
  return nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias,
                 kernel_init=nn.initializers.normal(0.02))


def down_functional(forms):
  def apply(variables, x):
    p = variables["params"]
    y = layers.downconv(x, p["kernel"], forms=forms)
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
    for impl in ("auto", "fast", "xla"):
      got[impl] = value_and_vjp(DownConv(features, use_bias=use_bias, impl=impl), params, x, cot)
    return want, got

  want, got = run(params, x, cot)
  assert want[0].shape == cot.shape
  for name, result in got.items():
    assert jax.tree.structure(result) == jax.tree.structure(want), name
    assert_trees_close(result, want, **TOL)


@pytest.mark.parametrize("width", [1, 2, 3, 6, 7, 8])
def test_downconv_patch_builds_agree(width, monkeypatch):
  """Patches from 4 C runs (even output widths), from pair views that pad their own windows, and
  from a padded copy (the earlier form) are the same, bit for bit, down to inputs of one pixel."""
  builds = {"quads": {}, "pairs": {"_PATCH_QUADS": False}, "pad_first": {"_PAD_FIRST": True}}
  for height in range(1, 10):
    x = jax.random.normal(jax.random.key(height), (2, height, width, 3))
    got = {}
    for name, knobs in builds.items():
      with monkeypatch.context() as m:
        for attr, value in knobs.items():
          m.setattr(layers, attr, value)
        got[name] = np.asarray(layers._downconv_patches(x))
    assert got["quads"].shape == (2, -(-height // 2), -(-width // 2), 48)
    np.testing.assert_array_equal(got["quads"], got["pad_first"])
    np.testing.assert_array_equal(got["pairs"], got["pad_first"])


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
    got = [vjp(jax.vmap(lambda x, k, f=f: layers.downconv(x, k, forms=f), in_axes=(0, None))) for f in DOWN_FORMS]
    module = DownConv(7)
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

  fns = [lambda x, k, f=f: layers.downconv(x, k, forms=f) for f in DOWN_FORMS]

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
    modules = (down_reference(16, use_bias), DownConv(16, use_bias=use_bias))
    want, got = jax.jit(lambda key: [m.init(key, x) for m in modules])(key)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert got["params"]["kernel"].shape == (4, 4, 3, 16)
    assert_trees_close(got, want, rtol=0, atol=0)


def test_downconv_auto_picks_per_shape():
  """Each formulation is chosen for some DCGAN layer on CPU, and plain XLA elsewhere."""
  forms = layers._fast_downconv_forms
  assert forms((64, 8, 8, 256)) == ("s2d_matmul",) * 3
  assert forms((64, 32, 32, 3)) == ("s2d_conv", "xla", "im2col")
  assert forms((64, 32, 32, 64)) == ("xla", "s2d_conv", "im2col")
  assert forms((64, 16, 16, 64)) == ("xla", "s2d_matmul", "im2col")
  assert forms((64, 8, 8, 128)) == ("im2col", "im2col", "xla")
  assert forms((64, 16, 16, 128)) == ("im2col",) * 3
  assert forms((64, 32, 32, 128)) == ("xla", "s2d_conv", "im2col")
  x, k = jnp.ones((1, 2, 2, 256)), jnp.ones((4, 4, 256, 2))
  assert "custom_jvp_call" not in str(jax.make_jaxpr(lambda x, k: layers.downconv(x, k, impl="xla"))(x, k))
  assert "dot_general" in str(jax.make_jaxpr(lambda x, k: layers.downconv(x, k, impl="auto"))(x, k))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k, out", [(48, 64), (512, 64), (64, 32)])
def test_im2col_kernel_gradient_puts_the_longer_axis_minor(k, out, threads, monkeypatch):
  """The compiled kernel gradient's matmul yields (K, out) or (out, K), whichever has the longer
  minor axis (the fast orientation on XLA:CPU); with more than one thread, (out, K) takes dy^T as
  an (out, pixels) operand. It equals patches^T @ dy either way."""
  monkeypatch.setattr(layers, "_cpu_threads", lambda: threads)
  rng = np.random.default_rng(0)
  patches, kernel = jnp.asarray(rng.standard_normal((96, k))), jnp.zeros((k, out))
  dy = jnp.asarray(rng.standard_normal((96, out)))
  grad = lambda patches, dy: jax.linear_transpose(lambda w: layers._im2col_matmul(patches, w, None), kernel)(dy)[0]
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
  jaxpr = str(jax.make_jaxpr(lambda p, k: layers._im2col_matmul(p, k, None, kernel_tangent=False))(patches, kernel))
  assert "transpose" not in jaxpr and "optimization_barrier" not in jaxpr
  x, k = jnp.ones((2, 8, 8, 32)), jnp.ones((4, 4, 32, 64))
  forward = jax.make_jaxpr(lambda x, k: layers._downconv_im2col(x, k, None))(x, k)
  barriers = [tuple(v.aval.shape) for e in forward.eqns if e.primitive.name == "optimization_barrier"
              for v in e.invars]
  assert barriers == [x.shape]  # only the input of the patches (layers._VIEWS_BARRIER), never the kernel


def test_downconv_rejects_unknown_options():
  x, k = jnp.ones((1, 4, 4, 3)), jnp.ones((4, 4, 3, 2))
  with pytest.raises(ValueError, match="impl"):
    layers.downconv(x, k, impl="cuda")
  with pytest.raises(ValueError, match="form"):
    layers.downconv(x, k, forms=("xla", "fft", "xla"))
  with pytest.raises(ValueError, match="4x4"):
    layers.downconv(x, jnp.ones((3, 3, 3, 2)))
