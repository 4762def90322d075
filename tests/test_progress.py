"""Progress: the events archive, restore and verify emit add up to the work done, and the
commands show them as a live bar on a terminal, one line per part elsewhere, nothing under
--json."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from recarchive.archives import ArchiveSettings, archive, list_objects, restore, verify
from recarchive.archives.events import Advanced, Event, PartEvent, Planned
from recarchive.commands.archive import archive_command, restore_command, verify_command
from recarchive.storage import open_location
from tests.test_archive_helpers import demo_objects, make_bucket_on

SETTINGS = ArchiveSettings(codec="order0", part_objects=4, shard_blocks=8)


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr is in an interactive shell."""

    def isatty(self) -> bool:
        return True


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def total(self) -> Advanced:
        done = Advanced()
        for event in self.events:
            if isinstance(event, Advanced):
                done += event
        return done

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    objects = demo_objects(with_photos=False)
    root = tmp_path_factory.mktemp("progress") / "src"
    make_bucket_on(open_location(str(root)).fs, str(root), objects)
    return root, objects


def test_events_add_up_to_the_work(bucket, tmp_path):
    source, objects = bucket
    heard = Recorder()
    manifest = archive(str(source), str(tmp_path / "a"), SETTINGS, listener=heard)
    totals = manifest["totals"]
    rows = list(list_objects(str(tmp_path / "a")))
    blocks = sum(row["blocks"] or 0 for row in rows)
    assert blocks > 0
    assert heard.total() == Advanced(objects=len(objects), bytes=totals["source_bytes"],
                                     blocks=blocks)
    parts = heard.of(PartEvent)
    assert [p.part for p in parts] == list(range(len(manifest["parts"])))
    assert sum(p.objects for p in parts) == len(objects)
    # objects are reported once coded: before each part ends, its objects were all reported
    seen = 0
    for event in heard.events:
        if isinstance(event, Advanced):
            seen += event.objects
        elif isinstance(event, PartEvent):
            assert seen == sum(p.objects for p in parts[:event.part + 1])

    again = Recorder()  # a rerun of a finished archive does nothing, and says nothing
    archive(str(source), str(tmp_path / "a"), SETTINGS, listener=again)
    assert again.events == []

    restored = Recorder()
    report = restore(str(tmp_path / "a"), str(tmp_path / "out"), listener=restored)
    assert restored.of(Planned) == [Planned(objects=len(objects),
                                            bytes=totals["source_bytes"])]
    assert restored.total() == Advanced(objects=report.objects, bytes=totals["source_bytes"],
                                        blocks=blocks)
    checked = Recorder()
    verify(str(tmp_path / "a"), listener=checked)
    assert checked.of(Planned) == restored.of(Planned)
    assert checked.total() == restored.total()
    assert len(checked.of(PartEvent)) == len(manifest["parts"])

    chosen = Recorder()
    restore(str(tmp_path / "a"), str(tmp_path / "cats"), objects="cifar10/*", listener=chosen)
    picked = [row for row in rows if row["key"].startswith("cifar10/")]
    assert chosen.of(Planned) == [Planned(len(picked), sum(r["size"] for r in picked))]
    assert chosen.total().objects == len(picked)


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_a_terminal_gets_a_live_bar_with_the_figures(bucket, tmp_path):
    source, objects = bucket
    out, terminal = io.StringIO(), Terminal()
    assert archive_command(str(source), str(tmp_path / "a"), SETTINGS, out=out,
                           terminal=terminal) == 0
    shown = plain(terminal.getvalue())
    final = shown.rstrip("\n").split("\r")[-1]  # the bar's last frame
    assert "archive" in final and f"{len(objects)}/{len(objects)} objects" in final, shown
    assert "MB/s" in final and "blocks" in final and " of " in final  # total from the count
    assert "part 0" not in out.getvalue()  # the bar replaces the part lines
    assert out.getvalue().startswith(f"archived {len(objects)} objects")

    terminal = Terminal()
    assert restore_command(str(tmp_path / "a"), str(tmp_path / "out"), out=io.StringIO(),
                           terminal=terminal) == 0
    assert f"{len(objects)}/{len(objects)} objects" in plain(terminal.getvalue())
    terminal = Terminal()
    assert verify_command(str(tmp_path / "a"), out=io.StringIO(), terminal=terminal) == 0
    assert f"{len(objects)}/{len(objects)} objects" in plain(terminal.getvalue())


def test_without_a_terminal_one_line_per_part_and_json_alone(bucket, tmp_path):
    source, objects = bucket
    out, stream = io.StringIO(), io.StringIO()
    archive_command(str(source), str(tmp_path / "a"), SETTINGS, out=out, terminal=stream)
    parts = -(-len(objects) // SETTINGS.part_objects)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:parts]] == [f"part {n}" for n in range(parts)]
    assert all(line.endswith("objects (built)") for line in lines[:parts])
    assert stream.getvalue() == ""

    out, stream = io.StringIO(), Terminal()
    verify_command(str(tmp_path / "a"), as_json=True, out=out, terminal=stream)
    assert stream.getvalue() == ""  # --json: quiet, even on a terminal
    assert json.loads(out.getvalue())["objects"] == len(objects)

    out = io.StringIO()
    restore_command(str(tmp_path / "a"), str(tmp_path / "out"), out=out, terminal=io.StringIO())
    assert out.getvalue().splitlines()[0] == f"part 0: {SETTINGS.part_objects} objects restored"
