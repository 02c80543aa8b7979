"""Adaptive discriminator augmentation (ADA, Karras et al. 2020): augmentation applied with a probability p
that a controller tunes from how sure D is about real images.

As in stylegan2-ada-pytorch (training/training_loop.py): every `interval` steps p moves by
sign(r_t - target) * batch_size * interval / (kimg * 1000), where r_t = E[sign(D(x_real))] over those
steps; target 0.6, interval 4, kimg 500 there (config.augment.ada_target, ada_interval, ada_kimg).
p is clamped at 0 as there, and also at 1. With the relativistic loss D's logits have no fixed
zero, so r_t is the mean sign of D(x_real) - D(G(z)), the quantity R3GAN reports as
'Loss/signs/real'.

The transforms are DiffAugment's (augment.py, config.augment.policy), each applied to each image
with probability p, to real and generated images alike, in the D and the G step (as ADA's
augment_pipe). p and the sign statistics of the current interval are arrays in the train state
(`GANState.ada`): `update` is a pure function of them and the step's metrics, the state is
checkpointed with the rest, and under pmap the sign statistic is averaged over devices first, so
every device holds the same p and a resumed run continues as an uninterrupted one.
"""

import jax
import jax.numpy as jnp

from aigc_jax.tasks.gan import augment as augment_lib

FIELDS = ("p", "signs", "count")


def init(p: float = 0.0) -> dict:
  """The controller's state: probability p, and the sum and count of sign statistics since the last adjustment."""
  return {"p": jnp.asarray(p, jnp.float32), "signs": jnp.zeros((), jnp.float32), "count": jnp.zeros((), jnp.int32)}


def augment(rng, x, p, policy: tuple[str, ...], axis_name=None):
  """Each transform of `policy` applied to each image with probability p (draws for the global batch)."""
  for i, name in enumerate(policy):
    key = jax.random.fold_in(rng, i)
    on = augment_lib.uniform(jax.random.fold_in(key, 1), (x.shape[0], 1, 1, 1), axis_name) < p
    x = jnp.where(on, augment_lib.TRANSFORMS[name](jax.random.fold_in(key, 0), x, axis_name=axis_name), x)
  return x


def sign_statistic(real_logits, fake_logits, relativistic: bool):
  """This device's E[sign(D(real))] (relativistic: E[sign(D(real) - D(fake))]), to be averaged over devices."""
  return jnp.mean(jnp.sign(real_logits - fake_logits if relativistic else real_logits))


def update(state: dict, sign_mean, global_batch: int, *, target: float, interval: int = 4, kimg: float = 500.0
           ) -> dict:
  """The controller after one more step whose (device-averaged) sign statistic is `sign_mean`.

  Every `interval` calls p moves by sign(mean statistic - target) * global_batch * interval / (kimg * 1000),
  then the statistics restart.
  """
  signs = state["signs"] + sign_mean.astype(jnp.float32)
  count = state["count"] + 1
  due = count >= interval
  step = jnp.sign(signs / count.astype(jnp.float32) - target) * (global_batch * interval / (kimg * 1000.0))
  return {"p": jnp.where(due, jnp.clip(state["p"] + step, 0.0, 1.0), state["p"]),
          "signs": jnp.where(due, 0.0, signs), "count": jnp.where(due, 0, count)}
