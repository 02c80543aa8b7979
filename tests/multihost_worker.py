"""One process of test training runs: the smoke preset, joined to others through the config or env.

  python tests/multihost_worker.py WORKDIR OUT_PREFIX [--modes jit,pmap] [--shards N] [key=value ...]

Trains each parallel mode in turn in WORKDIR/<mode> (imports and process start-up cost more CPU
than a smoke run) and writes OUT_PREFIX.<mode>.<process_index>.npz with the final state this
process saw, so the test can check every process ended with the same parameters. With --shards N
in a single process, it feeds the global batches N processes would have built from their own
data shards, so a 1-process run can be compared with an N-process one step for step.
"""

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from helpers import smoke_config  # noqa: E402

from aigc_jax import data  # noqa: E402
from aigc_jax.core import distributed
from aigc_jax.tasks.gan import train


def emulate_shards(shards: int):
  """Makes data.load/data.batches of one process return what `shards` processes read together."""
  load, batches = data.load, data.batches

  class Shards(list):
    """The sources of all emulated processes; sizes as one source would give them."""

    num_examples = property(lambda self: sum(s.num_examples or 0 for s in self) or None)
    num_classes = property(lambda self: self[0].num_classes)

  def sharded_load(cfg, *, seed, process_index=0, process_count=1):
    assert process_count == 1, "--shards emulates processes in a single one"
    return Shards(load(cfg, seed=seed, process_index=i, process_count=shards) for i in range(shards))

  def sharded_batches(sources, cfg, *, batch_size, seed, start_step=0):
    streams = [batches(s, cfg, batch_size=batch_size // shards, seed=seed, start_step=start_step) for s in sources]
    for parts in zip(*streams):
      yield {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

  data.load, data.batches = sharded_load, sharded_batches


def parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("workdir")
  parser.add_argument("out_prefix")
  parser.add_argument("--shards", type=int, default=1)
  parser.add_argument("--modes", default="jit,pmap")
  parser.add_argument("overrides", nargs="*")
  args = parser.parse_intermixed_args()
  config = smoke_config(**dict((k, parse_value(v)) for k, v in (o.split("=", 1) for o in args.overrides)))
  distributed.initialize(config)
  if args.shards > 1:
    emulate_shards(args.shards)
  for mode in args.modes.split(","):
    config.train.parallel = mode
    final = train.train_and_evaluate(config, f"{args.workdir}/{mode}")
    leaves = {jax.tree_util.keystr(k): np.asarray(x) for k, x in jax.tree_util.tree_leaves_with_path(final.arrays)}
    np.savez(f"{args.out_prefix}.{mode}.{jax.process_index()}.npz", **leaves)
    print(f"{mode}: process {jax.process_index()}/{jax.process_count()} devices {jax.device_count()} "
          f"step {int(final.step)}", flush=True)


if __name__ == "__main__":
  main()
