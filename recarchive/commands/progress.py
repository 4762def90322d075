"""Progress of archive, restore and verify, drawn from the events the work emits
(`recarchive.archives.events`), the same in process and on Ray (where the driver forwards
what its actors report per shard).

On a terminal: a live bar (rich) with objects, bytes, blocks, rate and time left, on stderr.
Without a terminal (logs, CI, pipes): one line per part. Under `--json`: nothing, so stdout
holds only the JSON result.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from recarchive.archives.events import Advanced, Event, PartEvent, Planned
from recarchive.storage import Location

PART_STATES = {"archive": "(built)", "restore": "restored", "verify": "checked"}


class ProgressDisplay:
    """A listener for one command's events; use it as a context manager around the work."""

    def __init__(self, command: str, out: TextIO, *, as_json: bool = False,
                 terminal: TextIO | None = None, part_lines: bool = True) -> None:
        """`out`: where part lines go without a terminal; `terminal`: the live bar's stream
        (stderr by default); `part_lines=False` where the caller logs parts itself (Ray)."""
        self.command = command
        self.out = out
        self.terminal = terminal if terminal is not None else sys.stderr
        self.live = not as_json and _is_terminal(self.terminal)
        self.lines = part_lines and not as_json and not self.live
        self.objects = self.bytes = self.blocks = 0
        self.total: Planned | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._progress = Progress(
                TextColumn(f"[bold]{self.command}[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("objects · {task.fields[detail]}"), TimeRemainingColumn(),
                console=Console(file=self.terminal, force_terminal=True), transient=False)
            self._task = self._progress.add_task(self.command, total=None, detail="")
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, Planned):
                self.total = event
            elif isinstance(event, Advanced):
                self.objects += event.objects
                self.bytes += event.bytes
                self.blocks += event.blocks
            elif isinstance(event, PartEvent) and self.lines:
                state = PART_STATES[self.command]
                if self.command == "archive":
                    state = "(reused)" if event.reused else "(built)"
                print(f"part {event.part}: {event.objects} objects {state}", file=self.out,
                      flush=True)
            if self._progress is not None:
                self._refresh()

    def log(self, line: str) -> None:
        """A line of the run's log (the Ray driver's), above the bar when there is one."""
        text = f"[recarchive] {line}"
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.terminal, flush=True)

    def detail(self) -> str:
        """Bytes, blocks and rate so far: the text beside the bar."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        size = decimal(self.bytes)
        if self.total is not None:
            size += f" of {decimal(self.total.bytes)}"
        blocks = f" · {self.blocks:,} blocks" if self.blocks else ""
        return f"{size}{blocks} · {self.bytes / elapsed / 1e6:,.2f} MB/s"

    def _refresh(self) -> None:
        assert self._progress is not None and self._task is not None
        self._progress.update(self._task, completed=self.objects,
                              total=self.total.objects if self.total else None,
                              detail=self.detail())


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def count_in_background(source: Location, listener: ProgressDisplay) -> threading.Thread:
    """List the source beside the archive (whose own listing streams, part by part) and tell
    the display the total when the count is done: the bar's length and time left."""

    def count() -> None:
        objects = size = 0
        try:
            for item in source.list_files():
                objects += 1
                size += item.size
        except Exception:  # noqa: BLE001 - only the bar's length is lost; the archive goes on
            return
        listener(Planned(objects=objects, bytes=size))

    thread = threading.Thread(target=count, name="recarchive-count", daemon=True)
    if listener.live:
        thread.start()
    return thread
