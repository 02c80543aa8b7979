"""What every task's train state shares: the checkpointed arrays, and a host-side initialisation.

A task's state is a `flax.struct.PyTreeNode` whose array fields are pytree leaves and whose
networks and optimizers are static fields. Mixing in `Checkpointed` and naming the array fields in
`ARRAYS` gives it the two methods the trainer and the checkpoint loader use: `arrays` (what is
saved, restored and placed on devices) and `with_arrays` (the state with those replaced).
"""

from typing import ClassVar

import jax


class Checkpointed:
  """Mixin for train states: `ARRAYS` names the fields that are saved; a field that is None is not."""

  ARRAYS: ClassVar[tuple[str, ...]] = ()

  @property
  def arrays(self) -> dict:
    """The checkpointed part of the state."""
    return {k: getattr(self, k) for k in self.ARRAYS if getattr(self, k) is not None}

  def with_arrays(self, arrays: dict):
    return self.replace(**arrays)


def initialise(create, rng_seed: int, *static_args, **static_kwargs):
  """`create(PRNGKey(rng_seed), *static_args, **static_kwargs)` compiled once and fetched to the host.

  Every argument but the key is static (networks, optimizers, shapes). Partitionable threefry is
  for sharded randomness; the host-side init compiles about 5x faster without it, and the initial
  values of existing runs depend on this choice, so it stays off here.
  """
  n = len(static_args)
  fn = jax.jit(create, static_argnums=tuple(range(1, n + 1)), static_argnames=tuple(static_kwargs))
  with jax.threefry_partitionable(False):
    return jax.device_get(fn(jax.random.PRNGKey(rng_seed), *static_args, **static_kwargs))
