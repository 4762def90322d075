"""The worker actor: one codec (one model load) per actor, on the actor's own device, building
archive parts and restoring parts of archives for as long as it lives.

Pinning: an actor created with `num_gpus=g` gets GPU ids from Ray, and Ray sets
CUDA_VISIBLE_DEVICES to them, so inside the actor `torch.device("cuda")` is its (first)
assigned GPU. Where CUDA is not available (a CPU machine with logical GPUs, a CPU build of
torch) the actor keeps its GPU reservation but runs on the CPU, and never calls CUDA.

Fault injection for tests and drills: RECARCHIVE_FAULT="delay=SECONDS,crash=PART" makes every
part take at least SECONDS longer, and makes the actor's process exit when it is given part
number PART (on every attempt, so the job fails). Unset, it does nothing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import resource
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.util.queue import Queue

from recarchive.archives.events import Advanced, ObserverFactory, ignore
from recarchive.archives.format import KIND_SKIPPED
from recarchive.archives.reader import ArchiveReader
from recarchive.archives.records import index_rows
from recarchive.archives.restore import RestoreReport, restore
from recarchive.archives.writer import (
    ArchiveCodecs,
    ArchiveSettings,
    PartPlan,
    archive_codecs,
    build_part,
)
from recarchive.distributed.progress import Forwarder
from recarchive.storage import open_location

FAULT_ENV = "RECARCHIVE_FAULT"


def choose_device(gpu_ids: list[str]) -> str:
    """"cuda" when this actor has a GPU and CUDA works here, else "cpu". torch is imported
    only when there is a GPU id to check (CPU actors of model-free codecs stay small)."""
    if not gpu_ids:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def parse_faults(text: str) -> dict[str, float]:
    faults: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in ("delay", "crash") or not value:
            raise ValueError(f"{FAULT_ENV}: {item!r}: use delay=SECONDS or crash=PART")
        faults[name] = float(value)
    return faults


class _CachedFactory:
    """A codec factory that builds each (options) codec once, on the actor's device.

    `restore` builds its codecs through the registry on every call; with this in place an
    actor loads each model once however many parts it restores.
    """

    def __init__(self, factory: Callable[..., Any], device: str) -> None:
        self.factory, self.device = factory, device
        self.codecs: dict[str, Any] = {}

    def __call__(self, **options: Any) -> Any:
        key = hashlib.sha256(repr(sorted(
            (k, hashlib.sha256(v).hexdigest() if isinstance(v, bytes | bytearray) else repr(v))
            for k, v in options.items())).encode()).hexdigest()
        if key not in self.codecs:
            if self.device != "cpu" and "device" not in options:
                try:
                    self.codecs[key] = self.factory(**options, device=self.device)
                except TypeError:  # a codec without a device option (model-free, CPU-only)
                    self.codecs[key] = self.factory(**options)
            else:
                self.codecs[key] = self.factory(**options)
        return self.codecs[key]


def install_codec_cache(device: str) -> None:
    """Route every registered codec factory of this process through `_CachedFactory`."""
    from recarchive.codecs import registry

    registry.available_codecs()  # registers the built-in codecs
    # the registry has no public getter for a factory yet; read its table once
    for name, factory in list(registry._FACTORIES.items()):
        if not isinstance(factory, _CachedFactory):
            registry.register_codec(name, _CachedFactory(factory, device))


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class PartWorker:
    """Ray actor body (wrapped with `ray.remote` by the pool): see the module docstring."""

    def __init__(self, slot: int, settings: ArchiveSettings | None = None,
                 progress: Queue | None = None,
                 observers: Sequence[ObserverFactory] = ()) -> None:

        self.slot = slot
        self.gpu_ids = [str(i) for i in ray.get_gpu_ids()]
        self.device = choose_device(self.gpu_ids)
        install_codec_cache(self.device)
        self.settings = settings
        self.codecs = archive_codecs(settings) if settings is not None else None
        self.faults = parse_faults(os.environ.get(FAULT_ENV, ""))
        self.forward = Forwarder(progress)  # the work done, to the driver's progress
        self.observers = tuple(observers)  # what parts' done records keep (the report's)

    def info(self) -> dict[str, Any]:
        return {"slot": self.slot, "pid": os.getpid(), "host": socket.gethostname(),
                "gpu_ids": self.gpu_ids, "device": self.device,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "peak_rss_mb": peak_rss_mb()}

    def _fault(self, part: int) -> None:
        if self.faults.get("crash") == part:
            os._exit(17)  # like a killed worker: no exception, no cleanup
        if self.faults.get("delay"):
            time.sleep(self.faults["delay"])

    def build(self, source_url: str, source_options: dict[str, Any] | None,
              destination_url: str, destination_options: dict[str, Any] | None, run_id: str,
              plan: PartPlan, use_model: bool = True) -> dict[str, Any]:
        """Build (or reuse) one part; what the driver needs for the manifest and progress.
        `use_model=False`: without `auto`'s model (it did not earn its copy)."""
        assert self.settings is not None and self.codecs is not None
        started = time.perf_counter()
        self._fault(plan.number)
        source = open_location(source_url, source_options)
        destination = open_location(destination_url, destination_options)
        try:
            codecs = self.codecs if use_model else ArchiveCodecs(self.codecs.blocks)
            event = build_part(source, destination, run_id, plan, codecs, self.settings,
                               self.forward if use_model else ignore, self.observers)
        finally:
            self.forward.flush()
        return {"part": event.part, "reused": event.reused, "objects": event.objects,
                "record": event.record, "seconds": time.perf_counter() - started,
                "source_bytes": sum(item.size for item in plan.objects), **self.info()}

    def restore(self, archive_url: str, archive_options: dict[str, Any] | None,
                destination_url: str, destination_options: dict[str, Any] | None, part: int,
                shards: list[int], objects: str | None, with_skipped: bool,
                rename_unsafe: bool = False) -> dict[str, Any]:
        """Restore the selected objects of one part (`shards`: its global shard numbers that
        are selected); `with_skipped` also lists the part's skipped objects, as the
        in-process restore does when no shards are given."""
        started = time.perf_counter()
        self._fault(part)
        report = RestoreReport()
        if shards:
            try:
                report = restore(archive_url, destination_url, shards=set(shards),
                                 objects=objects, archive_options=archive_options,
                                 destination_options=destination_options,
                                 rename_unsafe=rename_unsafe, listener=self.forward)
            finally:
                self.forward.flush()
        result = report.as_dict()
        if with_skipped:
            reader = ArchiveReader(archive_url, archive_options)
            skipped = [row for row in index_rows(reader.index_table(reader.parts[part]))
                       if row.kind == KIND_SKIPPED
                       and (not objects or fnmatch.fnmatchcase(row.key, objects))]
            result["objects"] += len(skipped)
            self.forward(Advanced(objects=len(skipped), bytes=sum(r.size for r in skipped)))
            self.forward.flush()
            if skipped:
                result["kinds"][KIND_SKIPPED] = len(skipped)
            result["skipped"] += [{"key": r.key, "reason": r.reason or ""}
                                  for r in skipped]
            result["archive_bytes_read"] += reader.location.read.bytes
        result.update(part=part, seconds=time.perf_counter() - started, **self.info())
        return result
