"""An archive's report: read from the archive when it holds one (written at commit time: one
small file), else computed from the manifest and the parts' done records (older archives:
from the index). With `baselines`, classical codecs also run on that many rasters per
dataset, restored now.
"""

from __future__ import annotations

from typing import Any

from recarchive.archives.reader import ArchiveReader
from recarchive.archives.records import IndexRow, PartRecord, index_rows
from recarchive.report.build import build_report
from recarchive.report.embed import embedded_report
from recarchive.report.restored import add_restored_baselines


def compute_report(reader: ArchiveReader) -> dict[str, Any]:
    """The report from the archive's own records (what `finalize` embeds)."""
    records = reader.done_records()

    def read_index(record: PartRecord) -> list[IndexRow]:
        return index_rows(reader.index_table(reader.parts[record.part]))

    return build_report(reader.manifest, records, url=reader.url, read_index=read_index,
                        generated_by="report")


def load_report(url: str, storage_options: dict[str, Any] | None = None,
                baselines: int | None = None) -> dict[str, Any]:
    reader = ArchiveReader(url, storage_options)
    report = embedded_report(reader) or compute_report(reader)
    if baselines:
        add_restored_baselines(report, reader, baselines)
    return report
