"""`recarchive report ARCHIVE [ARCHIVE_B] [--json] [--html FILE] [--baselines N]`.

A report is read from the archive when it holds one (written at commit time: one small file),
else computed from the manifest and the parts' done records (older archives: from the index).
With `--baselines N`, classical codecs also run on N rasters per dataset restored now. Two
archives give a side-by-side comparison.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from recarchive.archive.commands import parse_storage_options
from recarchive.archive.reader import ArchiveReader
from recarchive.report.build import build_report, compare, to_json
from recarchive.report.embed import embedded_report


def compute_report(reader: ArchiveReader) -> dict[str, Any]:
    """The report from the archive's own records (what `finalize` embeds)."""
    records = reader.done_records()

    def read_index(record: dict[str, Any]) -> list[dict[str, Any]]:
        return reader.index_table(reader.parts[record["part"]]).to_pylist()

    return build_report(reader.manifest, records, url=reader.url, read_index=read_index,
                        generated_by="report")


def load_report(url: str, storage_options: dict[str, Any] | None = None,
                baselines: int | None = None) -> dict[str, Any]:
    reader = ArchiveReader(url, storage_options)
    report = embedded_report(reader) or compute_report(reader)
    if baselines:
        from recarchive.report.restored import add_restored_baselines

        add_restored_baselines(report, reader, baselines)
    return report


def report_command(archive_url: str, other_url: str | None = None, *, as_json: bool = False,
                   html: str | None = None, baselines: int | None = None,
                   storage_options: str | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = parse_storage_options(storage_options)
    report = load_report(archive_url, options, baselines)
    if other_url:
        report = compare(report, load_report(other_url, options, baselines))
    if html:
        from recarchive.report.html import render

        Path(html).write_text(render(report), encoding="utf-8")
    if as_json:
        out.write(to_json(report))
        return 0
    from recarchive.report.terminal import print_comparison, print_report

    if other_url:
        print_comparison(report, out)
    else:
        print_report(report, out)
    if html:
        print(f"HTML report: {html}", file=out)
    return 0
