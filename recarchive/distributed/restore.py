"""The distributed restore driver: one task per archive part that holds selected objects.

The driver reads the manifest only (key ranges and shard counts per part) to choose parts;
each actor reads that part's index and only the row groups its objects need, decodes them with
its codec (model loaded once per actor, on its device) and writes the objects to the
destination, which may be any fsspec URL every actor can reach (not `memory://`, which is
private to each process). Writes are atomic and a part's objects always get the same bytes, so a
part redone after its actor died just writes the same files again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from recarchive.archives.events import Listener, PartEvent, Planned, ignore
from recarchive.archives.reader import ArchiveReader
from recarchive.archives.restore import RestoreReport, check_shards
from recarchive.distributed.archive import refuse_process_local
from recarchive.distributed.pool import ActorPool, PoolSettings, Task
from recarchive.distributed.progress import drain, event_queue
from recarchive.storage import open_location


def plan_restore(reader: ArchiveReader, shards: set[int] | None,
                 objects: str | None) -> list[tuple[int, list[int]]]:
    """(part, its selected global shards) for every part that can hold selected objects;
    with no shard selection every part is listed (its skipped objects are reported too)."""
    plan = []
    for part in reader.index_parts(objects):
        first = int(reader.shard_offsets[part.part])
        own = range(first, first + int(part.shards))
        chosen = [s for s in own if shards is None or s in shards]
        if chosen or shards is None:
            plan.append((int(part.part), chosen))
    return plan


def restore_on_ray(archive_url: str, destination_url: str, *, shards: set[int] | None = None,
                   objects: str | None = None, archive_options: dict[str, Any] | None = None,
                   destination_options: dict[str, Any] | None = None,
                   rename_unsafe: bool = False, listener: Listener = ignore,
                   pool: PoolSettings | None = None,
                   log: Callable[[str], None] = print) -> RestoreReport:
    """Restore the selected objects (all by default) of an archive, parts spread over actors.

    Selects what `recarchive.archives.restore` selects (`objects`: fnmatch glob on keys;
    `shards`: global shard numbers) and returns the same kind of report, summed over parts.
    `listener` hears what the actors finish (the total only when everything is restored).
    """
    started = time.time()
    reader = ArchiveReader(archive_url, archive_options)
    refuse_process_local(reader.location, open_location(destination_url, destination_options))
    check_shards(reader, shards)
    plan = plan_restore(reader, shards, objects)
    report = RestoreReport()
    report.archive_bytes_read = reader.location.read.bytes
    log(f"restore {archive_url} -> {destination_url}: {len(plan)} of {len(reader.parts)} "
        "parts hold selected objects")
    tasks = (Task(part, (archive_url, archive_options, destination_url, destination_options,
                         part, chosen, objects, shards is None, rename_unsafe))
             for part, chosen in plan)
    if shards is None and objects is None:
        totals = reader.manifest.totals
        listener(Planned(objects=totals["objects"], bytes=totals["source_bytes"]))
    progress = event_queue()
    with ActorPool(pool or PoolSettings(), (None, progress), log) as actors:
        log(f"starting {actors.describe()}")
        for _, done in actors.map("restore", tasks, on_wait=lambda: drain(progress, listener)):
            report.objects += done["objects"]
            report.kinds.update(done["kinds"])
            report.written_bytes += done["written_bytes"]
            report.raw_pixel_bytes += done["raw_pixel_bytes"]
            report.shards_decoded += done["shards_decoded"]
            report.archive_bytes_read += done["archive_bytes_read"]
            report.byte_exact += done["byte_exact"]
            report.skipped += done["skipped"]
            report.failed += done["failed"]
            report.problems += done["problems"]
            report.notes += [n for n in done["notes"] if n not in report.notes]
            where = f"actor {done['slot']} ({done['device']}"
            where += f", GPU {','.join(done['gpu_ids'])})" if done["gpu_ids"] else ")"
            listener(PartEvent(done["part"], False, done["objects"]))
            log(f"part {done['part']}: {done['objects']} objects restored by {where} in "
                f"{done['seconds']:.2f} s ({done['written_bytes'] / 1e6:.2f} MB written); "
                f"{report.objects} objects so far")
    report.skipped.sort(key=lambda item: item["key"])
    report.seconds = time.time() - started
    return report
