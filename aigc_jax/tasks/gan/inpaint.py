"""Inpainting by GAN inversion (Yeh et al. 2017) with any trained DCGAN workdir.

For damaged images y with trusted-pixel masks M, find latent codes z that minimise
  context(z) = mean |M * (G(z) - y)|            (agree with the known pixels)
  prior(z)   = lam * softplus(-D(G(z)))          (look real to the discriminator: -log D)
with Adam under jit, from several random restarts per image; keep each image's restart with the
lowest context loss, and paste its G(z) into the holes only (known pixels stay exactly as given).
Images of another size than the generator's are resized to it for the search and G(z) is resized
back. Yeh et al. additionally Poisson-blend the fill; this pastes it directly.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from aigc_jax.core import files, images
from aigc_jax.core.errors import UserError
from aigc_jax.data import damage, inputs
from aigc_jax.tasks.gan.state import GANState, load_state


@dataclasses.dataclass(frozen=True)
class Generator:
  state: GANState
  resolution: int
  channels: int


def load_generator(config, workdir) -> Generator:
  """The latest GAN checkpoint of `workdir` (trained by `python main.py --config configs/dcgan.py:...`)."""
  if config.task != "gan":
    raise UserError(f"GAN inversion needs a GAN config (configs/dcgan.py); got task '{config.task}'")
  if not (files.path(workdir) / "checkpoints").exists():
    raise UserError(f"no GAN checkpoint in {files.path(workdir) / 'checkpoints'}; train one first with "
                    "python main.py --config configs/dcgan.py:PRESET --workdir W")
  return Generator(load_state(config, workdir)[0], config.data.resolution, config.data.channels)


def _resize(x, h, w):
  return jax.image.resize(x, (x.shape[0], h, w, x.shape[3]), "linear", antialias=True)


@jax.jit(static_argnames=("restarts", "num_steps", "lr", "prior_weight"))
def _invert(state, damaged, known, key, *, restarts, num_steps, lr, prior_weight):
  n = damaged.shape[0]
  res = state.generator.resolution
  y = _resize(damaged, res, res)
  m = (_resize(known, res, res) > 0.999).astype(jnp.float32)  # a pixel is known only if all it covers is.
  y = jnp.tile(y, (restarts, 1, 1, 1))
  m = jnp.tile(m, (restarts, 1, 1, 1))
  z0 = jax.random.normal(key, (restarts * n, state.z_dim))
  g_vars = {"params": state.g_params, "batch_stats": state.g_stats}
  d_vars = {"params": state.d_params, "batch_stats": state.d_stats}

  def losses(z):
    g = state.generator.apply(g_vars, z, train=False)
    context = jnp.sum(jnp.abs(m * (g - y)), axis=(1, 2, 3)) / jnp.maximum(jnp.sum(m, axis=(1, 2, 3)), 1.0)
    prior = jax.nn.softplus(-state.discriminator.apply(d_vars, g, train=False))
    return context, prior, g

  tx = optax.adam(lr)

  def body(_, carry):
    z, opt = carry
    grads = jax.grad(lambda z: jnp.sum(sum_loss(*losses(z)[:2])))(z)
    upd, opt = tx.update(grads, opt, z)
    return optax.apply_updates(z, upd), opt

  sum_loss = lambda context, prior: context + prior_weight * prior
  z, _ = jax.lax.fori_loop(0, num_steps, body, (z0, tx.init(z0)))
  context, _, g = losses(z)
  context0 = losses(z0)[0]
  best = jnp.argmin(context.reshape(restarts, n), axis=0)
  g = g.reshape(restarts, n, *g.shape[1:])[best, jnp.arange(n)]
  return g, context0.reshape(restarts, n)[best, jnp.arange(n)], context.reshape(restarts, n)[best, jnp.arange(n)]


def inpaint(gen: Generator, damaged, known, *, seed: int = 0, restarts: int = 4, num_steps: int = 300,
            lr: float = 0.05, prior_weight: float = 0.003, return_losses: bool = False):
  """Fills the holes of `damaged` [N, H, W, C] in [-1, 1] (trusted pixels: `known` [N, H, W, 1] = 1).

  Returns the blended images [N, H, W, C]; with `return_losses`, also the context loss of the
  chosen restart before and after the search (per image), which the search must lower.
  """
  damaged, known = jnp.asarray(damaged, jnp.float32), jnp.asarray(known, jnp.float32)
  if damaged.shape[-1] != gen.channels:
    raise UserError(f"images have {damaged.shape[-1]} channel(s) but the generator makes {gen.channels}")
  g, before, after = _invert(gen.state, damaged, known, jax.random.PRNGKey(seed), restarts=restarts,
                             num_steps=num_steps, lr=lr, prior_weight=prior_weight)
  fill = _resize(g, damaged.shape[1], damaged.shape[2])
  out = known * damaged + (1.0 - known) * jnp.clip(fill, -1.0, 1.0)
  return (out, before, after) if return_losses else out


def run(config, workdir, input_path, mask, output, overwrite: bool = False, seed: int = 0):
  """--mode=repair with a GAN config: fills the holes of every input image by inversion; returns the folder."""
  out = images.results_folder(output, overwrite)
  items = inputs.read_inputs(input_path)
  if mask is None or mask in damage.NOISE_KINDS:
    raise UserError("GAN-inversion inpainting fills holes: pass --mask with one of "
                    f"{', '.join(damage.MASK_KINDS)} or a mask image")
  inputs.check_channels(items, config.data.channels, workdir)
  prepared = inputs.damage_inputs(items, mask, seed)
  gan = load_generator(config, workdir)
  repaired = [inpaint(gan, d, m)[0] for d, m, _ in prepared]
  images.save_results(out, overwrite, inputs.strips(items, prepared, repaired))
  return out
