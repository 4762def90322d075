"""What `recarchive archive|restore --ray-address ...` and `jobs/*.py` run: connect, run the
distributed driver, print progress (stderr, one line per part) and a summary (stdout; with
`--json`, one JSON object and nothing else on stdout)."""

from __future__ import annotations

import io
import json
import sys
from typing import Any, TextIO

from recarchive.archive.commands import (
    parse_shards,
    parse_storage_options,
    print_archive_summary,
)
from recarchive.archive.writer import ArchiveSettings
from recarchive.distributed.archive import archive_on_ray
from recarchive.distributed.cluster import connect
from recarchive.distributed.pool import PoolSettings
from recarchive.distributed.restore import restore_on_ray


def _logger(stream: TextIO):
    def log(line: str) -> None:
        print(f"[recarchive] {line}", file=stream, flush=True)
    return log


def pool_settings(actors: int | None, gpus_per_actor: float | None,
                  cpus_per_actor: float | None) -> PoolSettings:
    return PoolSettings(actors=actors, gpus_per_actor=gpus_per_actor,
                        cpus_per_actor=1.0 if cpus_per_actor is None else cpus_per_actor)


def archive_ray_command(source: str, destination: str, *, ray_address: str,
                        actors: int | None = None, gpus_per_actor: float | None = None,
                        cpus_per_actor: float | None = None, codec: str = "order0",
                        model: str | None = None, shard_blocks: int = 1024,
                        part_objects: int = 4096, max_pixels: int | None = None,
                        object_digest_bytes: int | None = None, run_id: str | None = None,
                        fidelity: str = "exact", verify_shards: bool = True,
                        storage_options: str | None = None,
                        as_json: bool = False, out: TextIO | None = None,
                        err: TextIO | None = None) -> int:
    out, log = out or sys.stdout, _logger(err or sys.stderr)
    options = parse_storage_options(storage_options)
    settings = ArchiveSettings(
        codec=codec, codec_options={"model": model} if model else {},
        shard_blocks=shard_blocks, part_objects=part_objects, fidelity=fidelity,
        verify_shards=verify_shards,
        **({"max_pixels": max_pixels} if max_pixels else {}),
        **({"object_digest_bytes": object_digest_bytes}
           if object_digest_bytes is not None else {}))
    resources = connect(ray_address)
    log(f"connected to Ray: {_resources_text(resources)}")
    result = archive_on_ray(source, destination, settings, run_id=run_id,
                            source_options=options, destination_options=options,
                            pool=pool_settings(actors, gpus_per_actor, cpus_per_actor), log=log)
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
    out, log = out or sys.stdout, _logger(err or sys.stderr)
    options = parse_storage_options(storage_options)
    resources = connect(ray_address)
    log(f"connected to Ray: {_resources_text(resources)}")
    report = restore_on_ray(archive_url, destination, shards=parse_shards(shards),
                            objects=objects, archive_options=options,
                            destination_options=options, rename_unsafe=rename_unsafe,
                            pool=pool_settings(actors, gpus_per_actor, cpus_per_actor), log=log)
    if as_json:
        print(json.dumps(report.as_dict()), file=out)
    else:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.kinds.items()))
        print(f"restored {report.objects} objects ({kinds}); {report.shards_decoded} shards "
              f"decoded, {report.archive_bytes_read} archive bytes read, "
              f"{report.written_bytes} bytes written to {destination}", file=out)
        for item in report.skipped:
            print(f"skipped in source: {item['key']}: {item['reason']}", file=out)
        failed = {item["reason"] for item in report.failed}
        for problem in report.problems:
            if problem not in failed:
                print(f"problem: {problem}", file=out)
        for item in report.failed:
            print(f"not restored: {item['key']}: {item['reason']}", file=out)
    return 1 if report.problems or report.failed else 0


def report_summary(archive_url: str, options: dict[str, Any] | None = None) -> str:
    """The archive's compression report (`recarchive report`'s terminal table); the
    manifest's totals where the report package cannot be loaded."""
    try:
        from recarchive.report.commands import load_report
        from recarchive.report.terminal import print_report
    except ImportError:
        return _totals_summary(archive_url, options)
    buffer = io.StringIO()
    print_report(load_report(archive_url, options), buffer, width=110)
    return buffer.getvalue().rstrip()


def _totals_summary(archive_url: str, options: dict[str, Any] | None) -> str:
    from recarchive.archive.reader import ArchiveReader

    manifest = ArchiveReader(archive_url, options).manifest
    totals = manifest["totals"]
    archived = sum(f["size"] for f in manifest["files"])
    raw = totals["raw_pixel_bytes"] + totals["blob_raw_bytes"]
    pixels = totals["raw_pixel_bytes"]
    bits = 8 * totals["pixel_payload_bytes"] / pixels if pixels else None
    lines = [
        f"report: {archive_url} (run {manifest['run_id']}, codec {manifest['codec']}, "
        f"{len(manifest['parts'])} parts)",
        f"  objects {totals['objects']}: {totals['rasters']} rasters, {totals['blobs']} kept "
        f"as bytes, {totals['skipped']} skipped",
        f"  source {totals['source_bytes']} bytes, raw {raw} bytes, archive {archived} bytes"
        + (f" (ratio {raw / archived:.3f})" if archived else ""),
        f"  pixel shards {totals['pixel_shards']}: {totals['pixel_payload_bytes']} payload "
        "bytes" + (f", {bits:.3f} bits/dim" if bits is not None else ""),
        f"  blob shards {totals['blob_shards']}: {totals['blob_raw_bytes']} -> "
        f"{totals['blob_payload_bytes']} bytes (zstd)",
    ]
    if manifest.get("archive_seconds"):
        lines.append(f"  archived in {manifest['archive_seconds']} s")
    return "\n".join(lines)


def _resources_text(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(k, 0):g} {k}" for k in ("CPU", "GPU"))


def _actors_text(actors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['slot']}: pid {a['pid']} {a['device']}"
                     + (f" GPU {','.join(a['gpu_ids'])}" if a["gpu_ids"] else "")
                     for a in actors)
