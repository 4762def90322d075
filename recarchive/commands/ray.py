"""What `recarchive archive|restore --ray-address ...` and `jobs/*.py` run: connect, run the
distributed driver, show progress (stderr: a live bar on a terminal, else one line per part)
and print a summary (stdout; with `--json`, one JSON object and nothing else on stdout)."""

from __future__ import annotations

import io
import json
import sys
from typing import Any, TextIO

from recarchive.api import REPORT_OBSERVERS, REPORT_ON_COMMIT
from recarchive.archives.writer import ArchiveSettings
from recarchive.commands.archive import print_archive_summary, print_restore_report
from recarchive.commands.options import parse_shards, parse_storage_options
from recarchive.commands.progress import ProgressDisplay, count_in_background
from recarchive.distributed.archive import archive_on_ray
from recarchive.distributed.cluster import connect
from recarchive.distributed.pool import PoolSettings
from recarchive.distributed.restore import restore_on_ray
from recarchive.report.load import load_report
from recarchive.report.terminal import print_report
from recarchive.storage import open_location


def _connect(ray_address: str, progress: ProgressDisplay) -> None:
    progress.log(f"connected to Ray: {_resources_text(connect(ray_address))}")


def pool_settings(actors: int | None, gpus_per_actor: float | None,
                  cpus_per_actor: float | None) -> PoolSettings:
    return PoolSettings(actors=actors, gpus_per_actor=gpus_per_actor,
                        cpus_per_actor=1.0 if cpus_per_actor is None else cpus_per_actor)


def archive_ray_command(source: str, destination: str, settings: ArchiveSettings, *,
                        ray_address: str, actors: int | None = None,
                        gpus_per_actor: float | None = None,
                        cpus_per_actor: float | None = None, run_id: str | None = None,
                        model_store: str | None = None,
                        storage_options: str | None = None, as_json: bool = False,
                        out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = parse_storage_options(storage_options)
    with ProgressDisplay("archive", out, as_json=as_json, terminal=err,
                         part_lines=False) as progress:
        _connect(ray_address, progress)
        count_in_background(open_location(source, options), progress)
        result = archive_on_ray(source, destination, settings, run_id=run_id,
                                source_options=options, destination_options=options,
                                listener=progress, observers=REPORT_OBSERVERS,
                                on_commit=REPORT_ON_COMMIT, model_store=model_store,
                                pool=pool_settings(actors, gpus_per_actor, cpus_per_actor),
                                log=progress.log)
    manifest = result.manifest
    if as_json:
        buffer = io.StringIO()
        print_archive_summary(manifest, destination, True, buffer)
        print(json.dumps(dict(json.loads(buffer.getvalue()), ray=result.summary())), file=out)
        return 0
    print_archive_summary(manifest, destination, False, out)
    if manifest.get("already_complete"):
        return 0
    ray_summary = result.summary()
    print(f"on Ray: {ray_summary['parts_built']} parts built, {ray_summary['parts_reused']} "
          f"reused, {ray_summary['retries']} retried, {len(ray_summary['actors'])} actors "
          f"({_actors_text(ray_summary['actors'])})", file=out)
    print(report_summary(destination, options), file=out)
    return 0


def restore_ray_command(archive_url: str, destination: str, *, ray_address: str,
                        actors: int | None = None, gpus_per_actor: float | None = None,
                        cpus_per_actor: float | None = None, shards: str | None = None,
                        objects: str | None = None, storage_options: str | None = None,
                        rename_unsafe: bool = False, as_json: bool = False,
                        out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = parse_storage_options(storage_options)
    with ProgressDisplay("restore", out, as_json=as_json, terminal=err,
                         part_lines=False) as progress:
        _connect(ray_address, progress)
        report = restore_on_ray(archive_url, destination, shards=parse_shards(shards),
                                objects=objects, archive_options=options,
                                destination_options=options, rename_unsafe=rename_unsafe,
                                listener=progress,
                                pool=pool_settings(actors, gpus_per_actor, cpus_per_actor),
                                log=progress.log)
    print_restore_report(report, "restored", as_json, out, destination)
    return 1 if report.problems or report.failed else 0


def report_summary(archive_url: str, options: dict[str, Any] | None = None) -> str:
    """The archive's compression report (`recarchive report`'s terminal table)."""
    buffer = io.StringIO()
    print_report(load_report(archive_url, options), buffer, width=110)
    return buffer.getvalue().rstrip()


def _resources_text(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(k, 0):g} {k}" for k in ("CPU", "GPU"))


def _actors_text(actors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['slot']}: pid {a['pid']} {a['device']}"
                     + (f" GPU {','.join(a['gpu_ids'])}" if a["gpu_ids"] else "")
                     for a in actors)
