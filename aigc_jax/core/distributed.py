"""Joins the JAX processes of a multi-host run before anything touches a device.

`jax.distributed.initialize` must run once per process, before the first JAX computation, so
that `jax.devices()` lists the devices of every host. It is called:

  * with no arguments on a Cloud TPU pod (JAX reads the topology from the TPU VM) or when
    config.distributed.auto is set (SLURM, Open MPI, Kubernetes: JAX detects the cluster);
  * with config.distributed.coordinator/num_processes/process_id, or the environment variables
    AIGC_COORDINATOR, AIGC_NUM_PROCESSES and AIGC_PROCESS_ID where the config leaves them unset;
  * not at all for a plain single-process run.
"""

import os

import jax
import ml_collections

from aigc_jax.core.errors import UserError

ENV_COORDINATOR = "AIGC_COORDINATOR"
ENV_NUM_PROCESSES = "AIGC_NUM_PROCESSES"
ENV_PROCESS_ID = "AIGC_PROCESS_ID"


def settings(config: ml_collections.ConfigDict) -> tuple[str, int, int, bool]:
  """(coordinator, num_processes, process_id, auto) from the config, else the environment."""
  d = config.get("distributed") or ml_collections.ConfigDict()
  coordinator = d.get("coordinator", "") or os.environ.get(ENV_COORDINATOR, "")
  num_processes = d.get("num_processes", 0) or _env_int(ENV_NUM_PROCESSES, 0)
  process_id = d.get("process_id", -1)
  if process_id < 0:
    process_id = _env_int(ENV_PROCESS_ID, -1)
  return coordinator.strip(), int(num_processes), int(process_id), bool(d.get("auto", False))


def _env_int(name: str, default: int) -> int:
  value = os.environ.get(name, "").strip()
  if not value:
    return default
  try:
    return int(value)
  except ValueError:
    raise UserError(f"environment variable {name}={value!r} is not an integer") from None


def check(coordinator: str, num_processes: int, process_id: int):
  """Raises UserError for settings that cannot form a cluster, before JAX waits on them."""
  if not coordinator:
    if num_processes > 1 or process_id >= 0:
      raise UserError(f"num_processes={num_processes} and process_id={process_id} need a coordinator: set "
                      f"config.distributed.coordinator or ${ENV_COORDINATOR} to HOST:PORT of process 0")
    return
  host, _, port = coordinator.rpartition(":")
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise UserError(f"coordinator '{coordinator}' (config.distributed.coordinator or ${ENV_COORDINATOR}) is not "
                    "HOST:PORT; use e.g. 10.0.0.1:1234")
  if num_processes <= 0:
    raise UserError(f"num_processes={num_processes} (config.distributed.num_processes or ${ENV_NUM_PROCESSES}) "
                    "must be positive when a coordinator is set")
  if not 0 <= process_id < num_processes:
    raise UserError(f"process_id={process_id} (config.distributed.process_id or ${ENV_PROCESS_ID}) must be in "
                    f"[0, {num_processes}) for {num_processes} processes")


def on_tpu_pod() -> bool:
  """True on a Cloud TPU VM that is one of several hosts; a single TPU VM needs no coordinator."""
  try:
    from jax._src import (
      cloud_tpu_init,  # set while importing jax; private, hence the guard.
    )
  except ImportError:
    return False
  if not getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False):
    return False
  if _env_int("MEGASCALE_NUM_SLICES", 1) > 1:
    return True
  hosts = os.environ.get("TPU_PROCESS_ADDRESSES") or os.environ.get("TPU_WORKER_HOSTNAMES")
  if hosts:  # GKE names the workers in the environment.
    return "," in hosts
  if os.environ.get("TPU_SKIP_MDS_QUERY") is not None:
    return False
  try:  # A GCE TPU VM lists its slice's workers in the metadata server.
    from jax._src.clusters import cloud_tpu_cluster
    endpoints, code = cloud_tpu_cluster.get_metadata("worker-network-endpoints")
  except Exception:  # noqa: BLE001 - no metadata server: not a pod we can join automatically.
    return False
  return code == 200 and "," in endpoints


def initialize(config: ml_collections.ConfigDict) -> bool:
  """Calls jax.distributed.initialize when the run spans processes; returns whether it did."""
  if jax.distributed.is_initialized():  # a launcher or test harness already did it.
    return False
  coordinator, num_processes, process_id, auto = settings(config)
  check(coordinator, num_processes, process_id)
  if coordinator:
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return True
  if auto or on_tpu_pod():
    try:
      jax.distributed.initialize()
    except ValueError as e:  # JAX found no cluster environment to read the settings from.
      reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      why = "config.distributed.auto=True" if auto else "this looks like a Cloud TPU pod"
      raise UserError(f"{why} but JAX could not detect the cluster ({reason}); set "
                      "config.distributed.coordinator, num_processes and process_id instead") from None
    return True
  return False
