"""What the `archive`, `restore`, `verify`, `repair` and `ls` subcommands do in process, as
plain functions: the CLI parses arguments and calls these, which run the work, show its
progress and print a short text or JSON result."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from recarchive.api import archive
from recarchive.archives.repair import repair
from recarchive.archives.restore import RestoreReport, list_objects, restore, verify
from recarchive.archives.writer import ArchiveSettings
from recarchive.commands.options import parse_shards, parse_storage_options
from recarchive.commands.progress import ProgressDisplay, count_in_background
from recarchive.report.build import auto_section
from recarchive.report.fmt import auto_line
from recarchive.storage import open_location


def archive_command(source: str, destination: str, settings: ArchiveSettings, *,
                    run_id: str | None = None, model_store: str | None = None,
                    storage_options: str | None = None,
                    as_json: bool = False, out: TextIO | None = None,
                    terminal: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = parse_storage_options(storage_options)
    with ProgressDisplay("archive", out, as_json=as_json, terminal=terminal) as progress:
        count_in_background(open_location(source, options), progress)
        manifest = archive(source, destination, settings, run_id=run_id,
                           source_options=options, destination_options=options,
                           listener=progress, model_store=model_store)
    print_archive_summary(manifest, destination, as_json, out)
    return 0


def print_archive_summary(manifest: dict[str, Any], destination: str, as_json: bool,
                          out: TextIO) -> None:
    """The archive command's last words: counts, bytes, and how exactly objects come back."""
    totals = manifest["totals"]
    summary = {"archive": destination, "run_id": manifest["run_id"], "codec": manifest["codec"],
               "fidelity": manifest.get("fidelity"), "parts": len(manifest["parts"]), **totals,
               "archive_bytes": sum(f["size"] for f in manifest["files"]),
               "seconds": manifest.get("archive_seconds"),
               "already_complete": bool(manifest.get("already_complete")),
               "local_unsafe_keys": (manifest.get("local_unsafe_keys") or {}).get("count", 0)}
    if as_json:
        print(json.dumps(summary), file=out)
        return
    if summary["already_complete"]:
        print(f"{destination}: already complete (run {manifest['run_id']}, "
              f"{totals['objects']} objects); nothing to do", file=out)
        return
    exact = totals.get("byte_exact_rasters", 0)
    jpegs = totals.get("jpegs", 0)
    print(f"archived {totals['objects']} objects ({totals['rasters']} rasters, {exact} of "
          f"them rebuilt byte for byte from pixels; {totals['blobs']} kept as bytes, {jpegs} "
          f"of them JPEGs recompressed losslessly; {totals['skipped']} skipped) into "
          f"{destination}: {summary['archive_bytes']} bytes", file=out)
    if manifest.get("auto_model"):
        print(auto_line(auto_section(totals, manifest["auto_model"])), file=out)
    unsafe = manifest.get("local_unsafe_keys") or {}
    if unsafe.get("count"):
        shown = "; ".join(f"{item['key']!r} ({item['reason']})" for item in unsafe["examples"][:5])
        print(f"note: {unsafe['count']} keys cannot be restored into a local folder as they are "
              f"(object storage takes them; or restore with --rename-unsafe): {shown}", file=out)


def print_restore_report(report: RestoreReport, verb: str, as_json: bool, out: TextIO,
                         destination: str | None = None) -> None:
    """What a restore or verify did, in process or on Ray: one JSON object, or lines."""
    if as_json:
        print(json.dumps(report.as_dict()), file=out)
        return
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.kinds.items()))
    written = (f", {report.written_bytes} bytes written to {destination}" if destination
               else "")
    print(f"{verb} {report.objects} objects ({kinds}); {report.byte_exact} byte for byte as "
          f"their source; {report.shards_decoded} shards decoded, "
          f"{report.archive_bytes_read} archive bytes read{written}", file=out)
    for item in report.skipped:
        print(f"skipped in source: {item['key']}: {item['reason']}", file=out)
    for note in report.notes:
        print(f"note: {note}", file=out)
    failed = {item["reason"] for item in report.failed}
    for problem in report.problems:
        if problem not in failed:
            print(f"problem: {problem}", file=out)
    for item in report.failed:
        print(f"not restored: {item['key']}: {item['reason']}", file=out)


def restore_command(archive_url: str, destination: str, *, shards: str | None = None,
                    objects: str | None = None, storage_options: str | None = None,
                    rename_unsafe: bool = False, as_json: bool = False,
                    out: TextIO | None = None, terminal: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = parse_storage_options(storage_options)
    with ProgressDisplay("restore", out, as_json=as_json, terminal=terminal) as progress:
        report = restore(archive_url, destination, shards=parse_shards(shards),
                         objects=objects, archive_options=options,
                         destination_options=options, rename_unsafe=rename_unsafe,
                         listener=progress)
    print_restore_report(report, "restored", as_json, out)
    if report.failed or report.problems:
        print(f"recarchive: error: {archive_url}: {len(report.failed)} objects (or key ranges) "
              "could not be restored; everything else was", file=sys.stderr)
        return 1
    return 0


def verify_command(archive_url: str, *, storage_options: str | None = None,
                   as_json: bool = False, out: TextIO | None = None,
                   terminal: TextIO | None = None) -> int:
    out = out or sys.stdout
    with ProgressDisplay("verify", out, as_json=as_json, terminal=terminal) as progress:
        report = verify(archive_url, parse_storage_options(storage_options), progress)
    print_restore_report(report, "verified", as_json, out)
    if report.problems:
        print(f"recarchive: error: {archive_url}: {len(report.problems)} problems",
              file=sys.stderr)
        return 1
    return 0


def repair_command(archive_url: str, *, run_id: str | None = None,
                   storage_options: str | None = None, as_json: bool = False,
                   out: TextIO | None = None) -> int:
    out = out or sys.stdout
    report = repair(archive_url, parse_storage_options(storage_options), run_id)
    if as_json:
        print(json.dumps(report.as_dict()), file=out)
        return 0
    said = {"intact": "manifest intact; nothing to repair (`recarchive verify` checks the rest)",
            "restored-commit-copy": f"manifest put back from {report.source}",
            "rebuilt-from-records": f"manifest rebuilt from the records in {report.source}"}
    print(f"{archive_url}: {said[report.action]}", file=out)
    for item in report.unvouched:
        print(f"cannot vouch for: {item}", file=out)
    return 0


def ls_command(archive_url: str, *, objects: str | None = None,
               storage_options: str | None = None, as_json: bool = False,
               out: TextIO | None = None) -> int:
    out = out or sys.stdout
    for row in list_objects(archive_url, objects, parse_storage_options(storage_options)):
        if as_json:
            print(json.dumps(row), file=out)
            continue
        shape = "x".join(str(v) for v in row["shape"]) if row["shape"] else "-"
        shard = "-" if row["shard"] is None else str(row["shard"])
        note = f"  ({row['reason']})" if row["reason"] else ""
        print(f"{row['kind']:7} {row['size']:>10} {row['mode'] or '-':4} {shape:>13} "
              f"shard {shard:>5}  {row['key']}{note}", file=out)
    return 0
