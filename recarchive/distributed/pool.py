"""A pool of worker actors with bounded in-flight tasks, retrying tasks whose actor died.

Backpressure: at most `depth` tasks per actor are in flight (one running, the next already
queued on the actor so it never waits for the driver), and the task iterator is advanced only
when a slot frees. The driver therefore holds at most `actors × depth` parts of the listing,
however large the bucket: its memory does not grow with the dataset.

Faults: a task that fails because its actor (or its worker or node) died is sent again, to a
fresh actor that replaces the dead one, up to `max_attempts` times in all; a task that raises
an error of its own (bad settings, unwritable destination) fails the whole run at once, since
redoing it would fail the same way.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ray

from recarchive.distributed.actors import PartWorker
from recarchive.storage import credentials_problem

# The actor, its process, its worker or its node went away: the work itself is not at fault.
ACTOR_LOST = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
              ray.exceptions.OutOfMemoryError, ray.exceptions.NodeDiedError)


class DistributedError(ValueError):
    """A part could not be done by any actor within the allowed attempts (a ValueError, so
    the CLI reports it as one line and exit status 1, like archive errors)."""


def worker_setup_problem(error: BaseException) -> str | None:
    """One line for a worker that cannot work because of how its node is set up (the package
    or a dependency missing, no storage credentials), which no retry mends; None otherwise."""
    missing = re.search(r"No module named '([\w.]+)'", str(error))
    if missing:
        return (f"Ray workers cannot import {missing.group(1)!r}: install recarchive and its "
                "dependencies on every node (the image in deploy/), or submit the job with "
                "`ray job submit --working-dir .` and a runtime_env that installs them")
    problem = credentials_problem(error)
    return f"a Ray worker: {problem}" if problem else None


@dataclass(frozen=True)
class PoolSettings:
    """How many actors, what each reserves, and how hard to retry.

    `actors=None`: as many as the cluster's CPUs (or GPUs, for GPU actors) allow.
    `gpus_per_actor=None`: 1 where the cluster has GPUs, else 0 (CPU actors); fractions share
    a GPU between actors.
    """

    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None
    depth: int = 2
    max_attempts: int = 3

    def resolve(self, resources: dict[str, float]) -> tuple[int, float, float]:
        """(actors, cpus, gpus per actor) for a cluster with `resources`."""
        gpus = self.gpus_per_actor
        if gpus is None:
            gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
        if gpus < 0 or self.cpus_per_actor < 0 or self.depth < 1 or self.max_attempts < 1:
            raise ValueError(f"pool settings out of range: {self}")
        count = self.actors
        if count is None:
            fits = [math.floor(resources.get("CPU", 1) / self.cpus_per_actor)
                    if self.cpus_per_actor else 1 << 30]
            if gpus:
                fits.append(math.floor(resources.get("GPU", 0) / gpus))
            count = max(1, min(fits))
        if count < 1:
            raise ValueError(f"actors must be >= 1, got {count}")
        return count, float(self.cpus_per_actor), float(gpus)


@dataclass
class Task:
    """One unit of work: `key` names it in logs (the part number), `args` go to the method."""

    key: int
    args: tuple[Any, ...]
    attempt: int = 1


class ActorPool:
    """`PartWorker` actors created with `actor_args`; use as a context manager (the actors are
    killed on exit, also when the run fails)."""

    def __init__(self, settings: PoolSettings, actor_args: tuple[Any, ...] = (),
                 log: Callable[[str], None] = print) -> None:
        self.settings = settings
        resources = ray.cluster_resources()
        self.count, self.cpus, self.gpus = settings.resolve(resources)
        self.actor_args = actor_args
        self.log = log
        for name, each in (("CPU", self.cpus), ("GPU", self.gpus)):
            if self.count * each > resources.get(name, 0):
                log(f"warning: {self.count} actors x {each:g} {name} exceed the cluster's "
                    f"{resources.get(name, 0):g} {name}: some actors wait until an autoscaler "
                    "adds nodes (or forever, on a fixed cluster)")
        self._remote = ray.remote(PartWorker)
        self.actors = [self._start(slot) for slot in range(self.count)]
        self.generation = [0] * self.count
        self.retries = 0
        self.replaced = 0
        self.infos: dict[int, dict[str, Any]] = {}

    def _start(self, slot: int) -> Any:
        return self._remote.options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0,
                                    max_task_retries=0).remote(slot, *self.actor_args)

    def describe(self) -> str:
        return (f"{self.count} actors ({self.cpus:g} CPU, {self.gpus:g} GPU each), "
                f"{self.settings.depth} parts in flight per actor")

    def warm(self) -> list[dict[str, Any]]:
        """Wait until every actor has started (and built its codec); their `info()`."""
        try:
            infos = ray.get([actor.info.remote() for actor in self.actors])
        except ACTOR_LOST as error:
            problem = worker_setup_problem(error)
            if problem:
                raise DistributedError(problem) from None
            raise
        for info in infos:
            self.infos[info["slot"]] = info
        return infos

    def map(self, method: str, tasks: Iterable[Task], on_wait: Callable[[], None] | None = None,
            wait_seconds: float = 0.5) -> Iterator[tuple[Task, dict[str, Any]]]:
        """Run `method(*task.args)` on the actors; yield (task, result) as they finish, in any
        order. Raises the task's own error, or `DistributedError` when attempts run out.
        `on_wait` is called every `wait_seconds` while tasks run, and before each result
        (the driver's progress)."""
        pending = iter(tasks)
        exhausted = False
        retry: deque[Task] = deque()
        in_flight: dict[Any, tuple[Task, int, int]] = {}  # ref -> task, slot, generation
        load = [0] * self.count
        while True:
            while retry or not exhausted:
                slot = min(range(self.count), key=load.__getitem__)
                if load[slot] >= self.settings.depth:
                    break
                if retry:
                    task = retry.popleft()
                else:
                    task = next(pending, None)
                    if task is None:
                        exhausted = True
                        break
                ref = getattr(self.actors[slot], method).remote(*task.args)
                in_flight[ref] = (task, slot, self.generation[slot])
                load[slot] += 1
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1,
                                timeout=wait_seconds if on_wait else None)
            if on_wait is not None:
                on_wait()
            if not ready:
                continue
            task, slot, generation = in_flight.pop(ready[0])
            ref = ready[0]
            load[slot] -= 1
            try:
                result = ray.get(ref)
            except ACTOR_LOST as error:
                problem = worker_setup_problem(error)
                if problem:  # every attempt would die the same way
                    raise DistributedError(problem) from None
                retry.append(self._lost(task, slot, generation, error))
                continue
            except ray.exceptions.RayTaskError as error:
                cause = getattr(error, "cause", None)
                problem = worker_setup_problem(cause if cause is not None else error)
                if problem:
                    raise DistributedError(problem) from None
                if isinstance(cause, Exception):
                    raise cause from None
                raise
            self.infos[slot] = {k: result[k] for k in
                                ("slot", "pid", "host", "gpu_ids", "device",
                                 "cuda_visible_devices", "peak_rss_mb") if k in result}
            yield task, result

    def _lost(self, task: Task, slot: int, generation: int, error: Exception) -> Task:
        """The actor of `slot` died under `task`: replace it (once per death) and give the task
        another attempt."""
        if task.attempt >= self.settings.max_attempts:
            raise DistributedError(
                f"part {task.key}: its actor died on all {task.attempt} attempts (last: "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                "nothing was finalized, rerun with the same run id to resume") from error
        if generation == self.generation[slot]:
            dead = self.infos.get(slot, {}).get("pid", "?")
            self.log(f"actor {slot} (pid {dead}) died ({type(error).__name__}); starting a "
                     "fresh actor in its place")
            ray.kill(self.actors[slot], no_restart=True)
            self.actors[slot] = self._start(slot)
            self.generation[slot] += 1
            self.replaced += 1
        self.retries += 1
        self.log(f"part {task.key}: attempt {task.attempt} lost with its actor; retrying")
        return Task(task.key, task.args, task.attempt + 1)

    def close(self) -> None:
        for actor in self.actors:
            # already gone, or Ray shutting down: nothing left to free
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)

    def __enter__(self) -> ActorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
