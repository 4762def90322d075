"""The distributed archive driver: the steps of `recarchive.archives.writer.archive`, with the
parts built on actors.

The driver lists the source and plans parts as a stream (the pool pulls a part only when an
actor has room), collects each finished part's small `done` record, and writes the manifest
with `finalize` only after every part is done; an error or a lost part ends the run before
that, leaving finished parts for a resume and no manifest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from recarchive.archives.errors import ArchiveError
from recarchive.archives.events import (
    CommitHook,
    Listener,
    ObserverFactory,
    PartEvent,
    ignore,
)
from recarchive.archives.format import run_dir
from recarchive.archives.records import PartRecord
from recarchive.archives.writer import (
    ArchiveSettings,
    completed_run,
    decide_model,
    discard_part,
    finalize,
    plan_parts,
    rebuild_plans,
    source_objects,
    start_run,
)
from recarchive.distributed.actors import peak_rss_mb
from recarchive.distributed.pool import ActorPool, PoolSettings, Task
from recarchive.distributed.progress import drain, event_queue
from recarchive.storage import LocalKeyAudit, Location, open_location


@dataclass
class RayArchiveResult:
    """The manifest plus how the run went: parts built now or reused, retries, actors."""

    manifest: dict[str, Any]
    parts_built: int = 0
    parts_reused: int = 0
    retries: int = 0
    actors_replaced: int = 0
    objects_built: int = 0
    source_bytes_built: int = 0
    parts_seconds: float = 0.0        # first part handed out -> last part back (actors warm)
    actors: list[dict[str, Any]] = field(default_factory=list)
    driver_peak_rss_mb: float = 0.0

    def summary(self) -> dict[str, Any]:
        rate = self.objects_built / self.parts_seconds if self.parts_seconds else None
        return {"parts_built": self.parts_built, "parts_reused": self.parts_reused,
                "retries": self.retries, "actors_replaced": self.actors_replaced,
                "parts_seconds": round(self.parts_seconds, 3),
                "objects_per_s": round(rate, 2) if rate else None,
                "actors": self.actors, "driver_peak_rss_mb": self.driver_peak_rss_mb}


def archive_on_ray(source_url: str, destination_url: str,
                   settings: ArchiveSettings | None = None, *, run_id: str | None = None,
                   source_options: dict[str, Any] | None = None,
                   destination_options: dict[str, Any] | None = None,
                   listener: Listener = ignore,
                   observers: Sequence[ObserverFactory] = (),
                   on_commit: CommitHook | None = None,
                   model_store: str | None = None,
                   pool: PoolSettings | None = None,
                   log: Callable[[str], None] = print) -> RayArchiveResult:
    """Archive `source_url` into `destination_url` on the connected Ray cluster.

    The same archive as the in-process `archive` (byte for byte, for the same run id and
    settings): only where parts are built differs. `listener` hears what the actors finish,
    as the in-process run's would; `observers` run on the actors, `on_commit` on the driver
    (`recarchive.api` has the report's). Call `cluster.connect` first.
    """
    settings = settings or ArchiveSettings()
    started = time.time()
    source = open_location(source_url, source_options)
    destination = open_location(destination_url, destination_options)
    refuse_process_local(source, destination)
    if not source.fs.exists(source.root):
        raise ArchiveError(f"{source_url}: source does not exist")
    done = completed_run(destination, source_url, settings, run_id)
    if done is not None:
        log(f"{destination_url}: already complete (run {done['run_id']}); nothing to do")
        return RayArchiveResult(manifest=dict(done, already_complete=True))
    store = open_location(model_store, destination_options) if model_store else None
    run_id, codecs = start_run(destination, source_url, settings, run_id, store)
    log(f"run {run_id}: {source_url} -> {destination_url} (codec {settings.codec}, "
        f"{settings.part_objects} objects per part)")
    result = RayArchiveResult(manifest={})
    audit = LocalKeyAudit()
    records: dict[int, PartRecord] = {}
    progress = event_queue()
    with ActorPool(pool or PoolSettings(), (settings, progress, tuple(observers)),
                   log) as actors:
        log(f"starting {actors.describe()}")
        actors.warm()
        for info in sorted(actors.infos.values(), key=lambda i: i["slot"]):
            log(f"actor {info['slot']}: pid {info['pid']} on {info['host']}, GPU ids "
                f"{info['gpu_ids'] or '-'}, device {info['device']}")
        tasks = (Task(plan.number, (source_url, source_options, destination_url,
                                    destination_options, run_id, plan))
                 for plan in plan_parts(source_objects(source, destination, audit), settings))
        parts_started = time.perf_counter()
        objects_done = 0
        for _, done in actors.map("build", tasks, on_wait=lambda: drain(progress, listener)):
            records[done["part"]] = done["record"]
            objects_done += done["objects"]
            if done["reused"]:
                result.parts_reused += 1
            else:
                result.parts_built += 1
                result.objects_built += done["objects"]
                result.source_bytes_built += done["source_bytes"]
            elapsed = time.perf_counter() - parts_started
            log(_progress_line(done, len(records), objects_done, elapsed))
            listener(PartEvent(done["part"], done["reused"], done["objects"], done["record"]))
        decision = decide_model(codecs, list(records.values()), store)
        if decision is not None and not decision.kept and decision.rebuild:
            log(f"the model saved {decision.saved_bytes:,} bytes against JPEG-XL, less than "
                f"its copy ({decision.copy_bytes:,}); rebuilding {len(decision.rebuild)} "
                "part(s) without it")
            again = (Task(plan.number, (source_url, source_options, destination_url,
                                        destination_options, run_id, plan, False))
                     for plan in rebuild_plans(source, destination, settings,
                                               list(records.values()), decision.rebuild))
            for _, done in actors.map("build", again, on_wait=lambda: drain(progress, ignore)):
                discard_part(destination, records[done["part"]])
                records[done["part"]] = done["record"]
        result.parts_seconds = time.perf_counter() - parts_started
        result.retries, result.actors_replaced = actors.retries, actors.replaced
        result.actors = [actors.infos[s] for s in sorted(actors.infos)]
    if not records:
        raise ArchiveError(f"{source_url}: no objects to archive")
    remove_orphan_temporaries(destination, run_id)
    result.manifest = finalize(destination, run_id, source_url, settings, codecs,
                               list(records.values()), started, audit.summary(), on_commit,
                               store, decision)
    result.driver_peak_rss_mb = peak_rss_mb()
    log(f"run {run_id}: manifest written; {result.parts_built} parts built, "
        f"{result.parts_reused} reused, {result.retries} retried")
    return result


def refuse_process_local(*locations: Location) -> None:
    """Actors run in other processes (and machines): a filesystem that lives inside one
    process (`memory://`) would silently split the archive between them."""
    for location in locations:
        protocols = location.fs.protocol
        if "memory" in ((protocols,) if isinstance(protocols, str) else tuple(protocols)):
            raise ArchiveError(f"{location.url}: memory:// is private to each process; Ray "
                               "actors need storage they all reach (a shared folder, s3://, "
                               "gs://, ...)")


def _progress_line(done: dict[str, Any], parts: int, objects: int, elapsed: float) -> str:
    state = "reused" if done["reused"] else "built"
    seconds = max(done["seconds"], 1e-9)
    where = f"actor {done['slot']} ({done['device']}"
    where += f", GPU {','.join(done['gpu_ids'])})" if done["gpu_ids"] else ")"
    return (f"part {done['part']}: {done['objects']} objects {state} by {where} in "
            f"{done['seconds']:.2f} s ({done['objects'] / seconds:.1f} objects/s, "
            f"{done['source_bytes'] / seconds / 1e6:.2f} MB/s); {parts} parts, {objects} "
            f"objects done in {elapsed:.1f} s ({objects / max(elapsed, 1e-9):.1f} objects/s)")


def remove_orphan_temporaries(destination: Location, run_id: str) -> None:
    """Delete temporary files that killed actors left mid-write in the run's folders (local
    filesystems write through `.tmp-*` files; object stores PUT whole objects). Only called
    once every part is finished, when no actor of this run is writing."""
    fs = destination.fs
    for folder in ("data", "index", "done"):
        path = destination.path(f"{run_dir(run_id)}/{folder}")
        try:
            names = fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            base = str(name).rstrip("/").rsplit("/", 1)[-1]
            if base.startswith(".tmp-") and base.endswith(".part"):
                fs.rm(str(name))
