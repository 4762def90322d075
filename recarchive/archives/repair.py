"""`recarchive repair ARCHIVE`: put back a damaged or missing manifest.

The manifest is one small file, and one flipped byte in it made every part of an intact
archive unreachable. Everything it says is also held elsewhere, under checksums:

1. `runs/RUN/commits/W.json`, the copy of the manifest its writer committed (sealed like the
   manifest): when one parses, it is put back as it was.
2. Otherwise the parts' done records: each names its data and index files with their sha256,
   and `run.json` the settings and source. A manifest is built again from the records whose
   files still hash to what they say (a fresh compression report included).

What repair cannot vouch for is said, never hidden: files a restored copy names that no longer
match their checksum (restore and verify then fail just those objects), and, for a manifest
rebuilt from records, that no part after the last record found existed (its record may be
what was lost) and that the report's timings are gone. The damaged manifest is kept beside it
as `manifest.json.damaged-UNIXTIME`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from recarchive.archives.errors import ArchiveError, IntegrityError
from recarchive.archives.format import (
    AUTO_CODEC,
    MANIFEST,
    done_folder,
    parse_manifest,
    part_of_done_file,
    run_dir,
    seal_manifest,
    sha256_hex,
)
from recarchive.archives.records import PartRecord
from recarchive.archives.writer import ArchiveSettings, build_manifest
from recarchive.storage import Location, open_location


@dataclass
class RepairReport:
    """What `repair` found and did."""

    archive: str
    action: str = ""                 # intact | restored-commit-copy | rebuilt-from-records
    source: str = ""                 # the file the new manifest came from
    unvouched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"archive": self.archive, "action": self.action, "source": self.source,
                "unvouched": self.unvouched}


def repair(archive_url: str, storage_options: dict[str, Any] | None = None,
           run_id: str | None = None) -> RepairReport:
    """Check the manifest; if it is missing or damaged, put back a commit copy or rebuild it
    from the parts' records (see the module docstring)."""
    location = open_location(archive_url, storage_options)
    report = RepairReport(archive_url)
    damaged = None
    if location.exists(MANIFEST):
        damaged = location.read_bytes(MANIFEST)
        try:
            parse_manifest(damaged, f"{archive_url}/{MANIFEST}")
        except IntegrityError:
            pass
        else:
            report.action = "intact"
            report.source = MANIFEST
            return report
    run = _the_run(location, run_id)
    manifest = _commit_copy(location, run, report)
    if manifest is None:
        manifest = _rebuild(location, run, report)
    if damaged is not None:
        location.write_atomic(f"{MANIFEST}.damaged-{int(time.time())}", damaged)
    location.write_atomic(MANIFEST, seal_manifest(manifest))
    return report


def _the_run(location: Location, run_id: str | None) -> str:
    """The run whose manifest to put back: the one asked for, or the only one there."""
    runs = sorted({item.key.split("/", 1)[0] for item in location.list_files("runs")
                   if item.key.endswith("/run.json") and item.key.count("/") == 1})
    if run_id is not None:
        if run_id not in runs:
            raise ArchiveError(f"{location.url}: no run {run_id!r} here (runs: "
                               f"{', '.join(runs) or 'none'})")
        return run_id
    if not runs:
        raise ArchiveError(f"{location.url}: no runs/*/run.json: not a recarchive archive, or "
                           "nothing of it is left to repair from")
    if len(runs) > 1:
        raise ArchiveError(f"{location.url}: several runs ({', '.join(runs)}); say which with "
                           "--run-id")
    return runs[0]


def _commit_copy(location: Location, run: str,
                 report: RepairReport) -> dict[str, Any] | None:
    """The newest commit copy of `run` that parses, with the files it names checked."""
    folder = f"{run_dir(run)}/commits"
    candidates = []
    for item in location.list_files(folder):
        path = f"{folder}/{item.key}"
        try:
            manifest = parse_manifest(location.read_bytes(path), path)
        except (IntegrityError, OSError):
            report.unvouched.append(f"{path}: a commit copy that is itself damaged; not used")
            continue
        candidates.append((manifest.get("created_unix", 0), path, manifest))
    if not candidates:
        return None
    _, path, manifest = max(candidates, key=lambda c: (c[0], c[1]))
    report.action, report.source = "restored-commit-copy", path
    for entry in manifest["files"]:
        if not _holds(location, entry):
            report.unvouched.append(f"{entry['path']}: missing or does not match its checksum "
                                    "(restore and verify fail the objects it holds)")
    return manifest


def _rebuild(location: Location, run: str, report: RepairReport) -> dict[str, Any]:
    """A manifest built again from `run.json` and the done records whose files hold."""
    record = json.loads(location.read_bytes(f"{run_dir(run)}/run.json"))
    settings = ArchiveSettings(**record["settings"])
    records: dict[int, PartRecord] = {}
    folder = done_folder(run)
    for item in location.list_files(folder):
        part = part_of_done_file(item.key)
        if part is None or part in records:
            continue
        path = f"{folder}/{item.key}"
        try:
            done = PartRecord.from_json(json.loads(location.read_bytes(path)), path)
        except (ValueError, OSError, KeyError, TypeError, AttributeError):
            report.unvouched.append(f"{path}: unreadable done record; not used")
            continue
        if all(_holds(location, entry) for entry in done.files):
            records[part] = done
        else:
            report.unvouched.append(f"{path}: its files do not match their checksums; not used")
    missing = sorted(set(range(max(records, default=-1) + 1)) - set(records))
    if not records or missing:
        raise ArchiveError(f"{location.url}: cannot rebuild the manifest of run {run}: no "
                           f"sound record of part(s) {missing or [0]}; rerun the archive "
                           "command to rebuild them")
    if "model_sha256" in record:  # run.json names the model (since 2026-12)
        models = [record["model_sha256"]] if record["model_sha256"] else []
        if settings.codec == AUTO_CODEC and not any(r.uses_model for r in records.values()):
            models = []  # `auto` keeps its model only where a shard used it
    else:  # earlier runs: the model the parts' report records saw
        models = sorted({shard["model_sha256"] for done in records.values()
                         for shard in done.observed.get("report", {}).get("shards", [])
                         if shard.get("model_sha256")})
    if len(models) > 1:
        raise ArchiveError(f"{location.url}: run {run} holds several models ({models}); "
                           "cannot tell which its shards need")
    version = 2 if all(r.writer for r in records.values()) else 1
    manifest = build_manifest(location, run, record["source"], settings, settings.codec,
                              models[0] if models else None, list(records.values()),
                              format_version=version,
                              model_store=record.get("model_store")).as_dict()
    report.action, report.source = "rebuilt-from-records", folder
    for entry in manifest["files"]:
        if entry["role"] == "model" and not _holds(location, entry):
            report.unvouched.append(f"{entry['path']}: model copy missing or damaged (restore "
                                    "uses the shipped model of the same sha256 if there is one)")
    report.unvouched.append(
        f"no commit copy survived: the manifest names parts 0..{len(records) - 1}, the ones "
        "whose records were found; had a later part's record been lost too, its objects would "
        "be missing without a trace")
    report.unvouched.append("the report's archive time is unknown (its per-shard figures come "
                            "from the records)")
    return manifest


def _holds(location: Location, entry: dict[str, Any]) -> bool:
    try:
        data = location.read_bytes(entry["path"])
    except (OSError, KeyError):
        return False
    return len(data) == entry.get("size") and sha256_hex(data) == entry.get("sha256")
