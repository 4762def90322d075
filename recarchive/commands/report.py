"""`recarchive report ARCHIVE [ARCHIVE_B] [--json] [--html FILE] [--baselines N]`: one
archive's report, or two side by side, in the terminal, as JSON, or as an HTML page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from recarchive.commands.options import parse_storage_options
from recarchive.report.build import compare, to_json
from recarchive.report.html import render
from recarchive.report.load import load_report
from recarchive.report.terminal import print_comparison, print_report


def report_command(archive_url: str, other_url: str | None = None, *, as_json: bool = False,
                   html: str | None = None, baselines: int | None = None,
                   storage_options: str | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = parse_storage_options(storage_options)
    report = load_report(archive_url, options, baselines)
    if other_url:
        report = compare(report, load_report(other_url, options, baselines))
    if html:
        Path(html).write_text(render(report), encoding="utf-8")
    if as_json:
        out.write(to_json(report))
        return 0
    if other_url:
        print_comparison(report, out)
    else:
        print_report(report, out)
    if html:
        print(f"HTML report: {html}", file=out)
    return 0
