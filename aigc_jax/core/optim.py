"""Optimizers the tasks share: Adam with an optional warm-up schedule and gradient clipping."""

import optax

SCHEDULES = ("constant", "cosine", "linear")


def make_schedule(optim_config, lr: float, num_steps: int) -> optax.Schedule:
  """Constant, or warm-up then cosine or linear decay to 0 at num_steps."""
  warmup = optim_config.warmup_steps
  if optim_config.schedule == "constant":
    return optax.constant_schedule(lr)
  if optim_config.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1), max(num_steps, 2))
  if optim_config.schedule == "linear":
    return optax.join_schedules([optax.linear_schedule(0.0, lr, max(warmup, 1)),
                                 optax.linear_schedule(lr, 0.0, max(num_steps - warmup, 1))], [warmup])
  raise ValueError(f"unknown schedule '{optim_config.schedule}'; use one of {SCHEDULES}")


def make_optimizer(optim_config, lr: float, num_steps: int) -> optax.GradientTransformation:
  """Adam (b1=0.5 for GANs) with an optional schedule and global-norm gradient clipping."""
  adam = optax.adam(make_schedule(optim_config, lr, num_steps), b1=optim_config.b1, b2=optim_config.b2)
  if optim_config.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(optim_config.grad_clip), adam)
  return adam
