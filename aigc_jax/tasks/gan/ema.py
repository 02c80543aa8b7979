"""Exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al. 2019).

The average, not the last iterate, is what sampling and evaluation use when it is enabled: GAN
iterates oscillate around a good generator, and averaging them removes much of that noise.
"""

import jax
import jax.numpy as jnp


def update(ema_params, params, step, decay: float, start: int = 0):
  """The average after the update that produced `params` at `step` (counted from 1).

  Until `start` the average is a copy of the weights (warm-up: early weights are poor and
  would linger for ~1 / (1 - decay) steps); from then on ema = decay * ema + (1 - decay) * params.
  """
  d = jnp.where(step <= start, 0.0, decay).astype(jnp.float32)
  return jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(p.dtype), ema_params, params)
