"""The Python API (`recarchive.archive`, `recarchive.restore`, ...): the archive package's
functions, with what the product keeps beside every archive wired in.

An archive made here (or by the commands, which call this) carries its compression report:
measured while each part is built (`report.measure.PartRecorder`, a part observer; its record
goes into the part's done record) and written just before the manifest (`report.embed`). The
archive package itself knows nothing of reports (`archives.events`), so these are the arrows
that point down into both.
"""

from __future__ import annotations

from typing import Any

from recarchive.archives import writer
from recarchive.archives.events import Listener, ObserverFactory, ignore
from recarchive.archives.writer import ArchiveSettings
from recarchive.report.embed import embed_report
from recarchive.report.measure import PartRecorder

REPORT_OBSERVERS: tuple[ObserverFactory, ...] = (PartRecorder.for_part,)
REPORT_ON_COMMIT = embed_report


def archive(source_url: str, destination_url: str, settings: ArchiveSettings | None = None,
            *, run_id: str | None = None, source_options: dict[str, Any] | None = None,
            destination_options: dict[str, Any] | None = None,
            listener: Listener = ignore, model_store: str | None = None) -> dict[str, Any]:
    """Archive every object below `source_url` into `destination_url`, with its compression
    report; return the manifest. Rerunning resumes an interrupted run, and is a no-op for a
    finished one. `listener` hears the work as it is done (`recarchive.archives.events`);
    `model_store` keeps the model once for many archives (`writer.archive`)."""
    return writer.archive(source_url, destination_url, settings, run_id=run_id,
                          source_options=source_options,
                          destination_options=destination_options, listener=listener,
                          observers=REPORT_OBSERVERS, on_commit=REPORT_ON_COMMIT,
                          model_store=model_store)
