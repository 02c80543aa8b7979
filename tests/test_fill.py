"""The smooth classical fill the repair U-Net starts from (models/fill.py), and UNet(fill=True)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.core.errors import UserError
from aigc_jax.data import damage
from aigc_jax.metrics import image_quality
from aigc_jax.models import fill, unet
from aigc_jax.tasks.image2image import train as i2i_train
from configs import repair as repair_configs


def _holes(kind, h=32, w=32, n=4, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), n)
  return jax.vmap(lambda k: damage.mask(k, kind, h, w))(keys)


@pytest.mark.parametrize("h,w", [(32, 32), (28, 28), (7, 13), (1, 5)])
def test_known_pixels_stay_and_a_constant_image_is_filled_with_its_constant(h, w):
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, h, w, 2), minval=-1, maxval=1)
  known = (jax.random.uniform(jax.random.PRNGKey(2), (3, h, w, 1)) > 0.5).astype(jnp.float32)
  known = known.at[:, 0, 0].set(1.0)  # at least one known pixel per image
  out = fill.smooth_fill(x * known, known)
  assert out.shape == x.shape
  k = np.asarray(known[..., 0]) == 1
  np.testing.assert_array_equal(np.asarray(out)[k], np.asarray(x)[k])
  const = jnp.full((3, h, w, 2), 0.3)
  np.testing.assert_allclose(fill.smooth_fill(const * known, known), const, atol=1e-6)


def test_a_linear_ramp_is_harmonic_and_is_filled_back_exactly():
  """Laplace's equation holds for a ramp, so a converged fill of any interior hole restores it."""
  h = w = 32
  ramp = jnp.broadcast_to(jnp.linspace(-1, 1, w)[None, None, :, None], (4, h, w, 1))
  known = _holes("center", n=4) * _holes("boxes", n=4, seed=3)
  known = known.at[:, :2].set(1).at[:, -2:].set(1).at[:, :, :2].set(1).at[:, :, -2:].set(1)  # holes interior
  out = fill.relax(ramp, known, fill.smooth_fill(ramp * known, known), 400)
  np.testing.assert_allclose(out, ramp, atol=2e-3)
  # The multigrid start alone already gets most of the way there; a plain mid-grey start does not.
  coarse = float(jnp.max(jnp.abs(fill.smooth_fill(ramp * known, known) - ramp)))
  grey = float(jnp.max(jnp.abs(fill.relax(ramp, known, ramp * known, 16) - ramp)))
  assert coarse < 0.1 < grey


def test_no_known_pixel_gives_mid_grey():
  out = fill.smooth_fill(jnp.ones((1, 8, 8, 1)), jnp.zeros((1, 8, 8, 1)))
  np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("kind", damage.MASK_KINDS)
def test_fill_beats_mid_grey_holes_on_smooth_images(kind):
  y, x = jnp.meshgrid(jnp.linspace(0, 3, 32), jnp.linspace(0, 3, 32), indexing="ij")
  clean = jnp.broadcast_to(jnp.sin(x + 0.5 * y)[None, ..., None] * 0.8, (4, 32, 32, 1))
  known = _holes(kind)
  hole = 1 - known
  filled = fill.smooth_fill(clean * known, known)
  assert float(jnp.mean(image_quality.psnr(filled, clean, region=hole))) > float(
      jnp.mean(image_quality.psnr(clean * known, clean, region=hole))) + 10


def test_unet_with_fill_starts_as_the_fill_and_keeps_odd_sizes():
  net = unet.UNet(out_channels=1, features=8, depth=2, fill=True, fill_sweeps=4)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 17, 30, 1), minval=-1, maxval=1)
  known = (jax.random.uniform(jax.random.PRNGKey(1), (2, 17, 30, 1)) > 0.4).astype(jnp.float32)
  g_in = jnp.concatenate([x * known, known], -1)
  params = net.init(jax.random.PRNGKey(2), g_in)
  np.testing.assert_allclose(net.apply(params, g_in), fill.smooth_fill(x * known, known, 4), atol=1e-6)
  with pytest.raises(ValueError, match="known mask"):
    net.apply(params, jnp.concatenate([g_in, g_in], -1))


def test_fill_with_noise_kinds_is_a_one_line_config_error():
  config = repair_configs.get_config("smoke")
  config.damage.kinds = "boxes,gaussian"
  with pytest.raises(UserError, match="model.fill=True.*gaussian"):
    i2i_train.validate(config, 1)
  config.model.fill = False
  i2i_train.validate(config, 1)


def test_outputs_past_the_range_still_get_a_gradient_and_users_get_them_clipped():
  """The residual path is not clipped inside the network (a clip there stopped learning for good);
  apply_generator clips."""
  from aigc_jax.tasks.image2image import steps as i2i_steps

  config = repair_configs.get_config("smoke")
  state = i2i_train.build_state(config)
  # Push every output far below -1 through the last layer's bias.
  params = jax.tree.map(lambda p: p, state.g_params)
  params["out"]["bias"] = jnp.full_like(params["out"]["bias"], -5.0)
  state = state.replace(g_params=params)
  clean = jax.random.uniform(jax.random.PRNGKey(0), (4, 32, 32, 1), minval=-0.5, maxval=0.5)
  g_in, _, known = i2i_steps.degrade(state, jax.random.PRNGKey(1), clean)
  out = i2i_steps.apply_generator(state, g_in)
  assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
  grad = jax.grad(lambda p: i2i_steps.pixel_loss(i2i_steps.restore(state, p, g_in), clean, known, "l2", "holes"))(
      params)
  assert float(grad["out"]["bias"][0]) < -1.0  # pulls the bias back up


def test_biharmonic_sweeps_converge_to_the_biharmonic_solution_skimage_also_finds():
  """Converged, every hole pixel satisfies the 13-point squared-Laplacian stencil, and the result is
  skimage's inpaint_biharmonic (a sparse direct solve) on all but a few pixels (holes kept two pixels
  from the border, where the two treat the edge differently)."""
  from skimage.restoration import inpaint_biharmonic

  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (1, 20, 20, 1)).astype(np.float32)
  known = np.ones((1, 20, 20, 1), np.float32)
  known[0, 2:-2, 2:-2, 0] = rng.uniform(size=(16, 16)) > 0.5
  known[0, 8:13, 6:12, 0] = 0  # and one box
  ours = np.asarray(fill.relax_biharmonic(jnp.asarray(image), jnp.asarray(known),
                                          fill.smooth_fill(image * known, known), 3000))[0, ..., 0]
  u = np.pad(ours, 2, mode="reflect")
  at = lambda dy, dx: u[2 + dy:22 + dy, 2 + dx:22 + dx]
  stencil = (20 * ours - 8 * (at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1))
             + 2 * (at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1)) + at(-2, 0) + at(2, 0) + at(0, -2) + at(0, 2))
  assert np.abs(stencil[known[0, ..., 0] == 0]).max() < 1e-4
  theirs = inpaint_biharmonic(image[0, ..., 0].astype(np.float64), known[0, ..., 0] < 0.5)
  close = np.abs(ours - theirs) < 2e-3
  assert close.mean() > 0.98 and np.abs(ours - theirs).mean() < 2e-3
