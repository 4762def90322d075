"""The report inside the archive: written by `finalize` just before the manifest (which names
it with role "report"), and read back by `recarchive report`.

The file is `runs/RUN/report-<sha256[:16]>.json`, compact JSON named by its content, so two
writers racing to commit the same run never overwrite the file the winner's manifest names.
Only the facts are stored: the HTML page is a rendering of them (`recarchive report ARCHIVE
--html FILE` draws it from this file in a moment, without decoding anything), and storing it
too cost a fixed 17 kB per archive, a tenth of the whole index overhead on CIFAR-10 test.
Archives of earlier releases that hold a `.html` copy as well still read and verify.
A report that cannot be built only warns: the archive itself is complete without it.
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import pyarrow.parquet as pq

from recarchive.archives.format import MANIFEST, run_dir, sha256_hex
from recarchive.archives.records import IndexRow, Manifest, PartRecord, index_rows
from recarchive.report.build import (
    build_report,
    to_json,
    with_method_notes,
    without_method_notes,
)
from recarchive.storage import Location

ROLE = "report"


def embed_report(destination: Location, manifest: Manifest,
                 records: list[PartRecord]) -> list[dict[str, Any]]:
    """Write the report file; return its manifest entries (none if it could not be built, or
    if the archive is already complete: its files are left alone)."""
    if destination.exists(MANIFEST):
        return []

    def read_index(record: PartRecord) -> list[IndexRow]:
        path = record.file("index")["path"]
        return index_rows(pq.read_table(io.BytesIO(destination.read_bytes(path))))

    try:
        report = build_report(manifest, records, url=destination.url or destination.root,
                              read_index=read_index)
        contents = {"json": to_json(without_method_notes(report), compact=True).encode()}
    except Exception as error:  # noqa: BLE001 - the archive must not fail for its report
        warnings.warn(f"{destination.url}: compression report not written: "
                      f"{type(error).__name__}: {error}", stacklevel=2)
        return []
    entries = []
    for suffix, content in contents.items():
        digest = sha256_hex(content)
        path = f"{run_dir(manifest.run_id)}/report-{digest[:16]}.{suffix}"
        destination.write_atomic(path, content)
        entries.append({"role": ROLE, "path": path, "size": len(content), "sha256": digest})
    return entries


def report_files(files: list[dict[str, Any]]) -> dict[str, str]:
    """{"json": path} of the report a manifest's `files` name (empty if none; archives of
    earlier releases also name an "html" copy)."""
    return {f["path"].rsplit(".", 1)[-1]: f["path"] for f in files
            if f.get("role") == ROLE}


def embedded_report(reader: Any) -> dict[str, Any] | None:
    """The report written into the archive at commit time, checked against the manifest."""
    path = report_files(reader.manifest.files).get("json")
    if path is None:
        return None
    report = with_method_notes(json.loads(reader.read_checked(path)))
    report["archive"]["url"] = reader.url  # where it is read from now
    return report
