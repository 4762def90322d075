"""Archive and restore on a Ray cluster: the only package (besides `jobs/`) that imports Ray.

The archive's own steps stay where they are (`recarchive.archives.writer`): the driver lists
the source and plans parts (streaming), a pool of actors runs `build_part` on them, and the
driver writes the manifest last with `finalize`. Restores send one part of the archive to an
actor at a time. What this package adds is scheduling and fault handling:

- `actors`: the worker actor. It builds its codec (and loads its model) once, on its own
  device: Ray gives an actor created with `num_gpus` its GPU ids and sets
  CUDA_VISIBLE_DEVICES, so `torch.device("cuda")` is its device; without CUDA (or without a
  GPU resource) it runs on the CPU.
- `pool`: an actor pool of our own with bounded in-flight tasks (backpressure), retrying a
  part on a fresh actor when its actor dies. Why not Ray Data `map_batches`: a part is already
  a batch whose output goes straight to storage, idempotently; what the driver must control is
  how much of the (possibly huge) listing is pulled in at once, which part goes where, and
  per-part retries and progress, all of which Ray Data would hide behind its own streaming
  executor, object-store blocks and task retries.
- `archive`, `restore`: the drivers; `commands`: what `recarchive archive/restore
  --ray-address` and `jobs/*.py` run; `cluster`: connecting, and private local clusters for
  tests and benchmarks.

Faults: parts are idempotent (the same part number and listing give the same files, written
atomically, the `done/` record last), so a part redone after its actor died overwrites
nothing with anything different, and a rerun with the same run id reuses finished parts. A job
that fails never reaches `finalize`, so it leaves no manifest.
"""

from recarchive.distributed.archive import RayArchiveResult, archive_on_ray
from recarchive.distributed.cluster import LocalCluster, connect
from recarchive.distributed.pool import ActorPool, PoolSettings
from recarchive.distributed.restore import restore_on_ray

__all__ = [
    "ActorPool",
    "LocalCluster",
    "PoolSettings",
    "RayArchiveResult",
    "archive_on_ray",
    "connect",
    "restore_on_ray",
]
