"""Interrupted archive runs leave nothing that looks complete, and a rerun resumes: finished
parts are reused (not rebuilt), unfinished or changed ones are rebuilt."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from recarchive import cli
from recarchive.archives import (
    ArchiveError,
    ArchiveIncomplete,
    ArchiveSettings,
    archive,
    list_objects,
    open_archive,
    restore,
    verify,
)
from recarchive.archives import writer as writer_module
from recarchive.archives.events import Event, PartEvent
from recarchive.archives.format import MANIFEST
from recarchive.archives.records import PartRecord
from recarchive.archives.writer import ArchiveCodecs, finalize
from recarchive.codecs import get_codec
from recarchive.storage import open_location
from tests.test_archive_helpers import demo_objects, make_bucket_on, parts_into

SETTINGS = ArchiveSettings(codec="jpegxl", shard_blocks=8, part_objects=4)


class Crash(RuntimeError):
    pass


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    objects = demo_objects(with_photos=False)
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "src"), objects)
    return tmp_path / "src", objects


def parts_of(objects: dict) -> int:
    return -(-len(objects) // SETTINGS.part_objects)


def crash_after(parts: int):
    events: list[PartEvent] = []

    def on_part(event: Event) -> None:
        if not isinstance(event, PartEvent):
            return
        events.append(event)
        if len(events) == parts:
            raise Crash(f"simulated crash after {parts} parts")

    return on_part, events


def file_state(archive_dir: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(archive_dir).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in archive_dir.rglob("*.parquet")}


def check_complete(archive_dir: Path, objects: dict[str, bytes], out: Path) -> None:
    assert not verify(str(archive_dir)).problems
    report = restore(str(archive_dir), str(out))
    assert report.objects == len(objects)
    kinds = {row["key"]: row["kind"] for row in list_objects(str(archive_dir))}
    assert set(kinds) == set(objects)
    for key, data in objects.items():
        assert (out / key).read_bytes() == data, key  # every object byte for byte


def test_crash_leaves_no_manifest_and_rerun_reuses_finished_parts(source, tmp_path, capsys):
    src, objects = source
    target = tmp_path / "arch"
    on_part, events = crash_after(2)
    with pytest.raises(Crash):
        archive(str(src), str(target), SETTINGS, listener=on_part)
    assert not (target / MANIFEST).exists()
    with pytest.raises(ArchiveIncomplete):
        open_archive(str(target))
    assert cli.main(["verify", str(target)]) == 1
    assert "rerun" in capsys.readouterr().err
    before = file_state(target)
    assert len(before) == 4  # data + index of the two finished parts

    events2: list[PartEvent] = []
    manifest = archive(str(src), str(target), SETTINGS, listener=parts_into(events2))
    assert [e.reused for e in events2] == [True, True] + [False] * (parts_of(objects) - 2)
    after = file_state(target)
    assert all(after[name] == state for name, state in before.items())  # untouched
    assert len(manifest["parts"]) == parts_of(objects)
    check_complete(target, objects, tmp_path / "out")


def test_crash_inside_a_part_rebuilds_only_that_part(source, tmp_path, monkeypatch):
    src, objects = source
    target = tmp_path / "arch"
    real = writer_module.PartBuilder.finish
    calls = []

    def failing_finish(self):
        calls.append(self.part)
        if self.part == 1:
            raise Crash("killed while finishing part 1")
        return real(self)

    monkeypatch.setattr(writer_module.PartBuilder, "finish", failing_finish)
    with pytest.raises(Crash):
        archive(str(src), str(target), SETTINGS)
    monkeypatch.setattr(writer_module.PartBuilder, "finish", real)
    events: list[PartEvent] = []
    archive(str(src), str(target), SETTINGS, listener=parts_into(events))
    assert [e.part for e in events if not e.reused] == list(range(1, parts_of(objects)))
    assert [e.part for e in events if e.reused] == [0]
    check_complete(target, objects, tmp_path / "out")


def test_files_written_without_done_record_are_rebuilt(source, tmp_path, monkeypatch):
    """A crash between a part's data/index files and its done record: the part is redone."""
    src, objects = source
    target = tmp_path / "arch"
    location_class = type(open_location(str(target)))
    real = location_class.write_atomic

    def failing_write(self, relative, data, durable=True):
        if "done/part-000000-" in relative:
            raise Crash("killed before the done record")
        return real(self, relative, data, durable)

    monkeypatch.setattr(location_class, "write_atomic", failing_write)
    with pytest.raises(Crash):
        archive(str(src), str(target), SETTINGS)
    assert any(target.rglob("data/part-000000-*.parquet"))
    monkeypatch.setattr(location_class, "write_atomic", real)
    events: list[PartEvent] = []
    archive(str(src), str(target), SETTINGS, listener=parts_into(events))
    assert not events[0].reused
    check_complete(target, objects, tmp_path / "out")


def test_changed_source_object_rebuilds_its_part(source, tmp_path):
    src, objects = source
    target = tmp_path / "arch"
    on_part, _ = crash_after(3)
    with pytest.raises(Crash):
        archive(str(src), str(target), SETTINGS, listener=on_part)
    first_key = sorted(objects, key=lambda k: k.split("/"))[0]
    changed = dict(objects)
    changed[first_key] = objects[first_key]  # same bytes, same size, but a new mtime
    os.utime(src / first_key, ns=(1, 1))
    events: list[PartEvent] = []
    archive(str(src), str(target), SETTINGS, listener=parts_into(events))
    assert [e.reused for e in events[:3]] == [False, True, True]
    check_complete(target, changed, tmp_path / "out")


def test_same_run_id_with_other_settings_is_refused(source, tmp_path):
    src, _ = source
    on_part, _ = crash_after(1)
    with pytest.raises(Crash):
        archive(str(src), str(tmp_path / "arch"), SETTINGS, run_id="r1", listener=on_part)
    other = ArchiveSettings(codec="jpegxl", shard_blocks=16, part_objects=4)
    with pytest.raises(ArchiveError, match="run 'r1' was started with other settings"):
        archive(str(src), str(tmp_path / "arch"), other, run_id="r1")
    with pytest.raises(ArchiveError, match="letters, digits"):
        archive(str(src), str(tmp_path / "arch"), other, run_id="../x")


def test_cli_rerun_resumes_with_run_id(source, tmp_path, capsys, monkeypatch):
    src, objects = source
    target = str(tmp_path / "arch")
    on_part, _ = crash_after(2)
    with pytest.raises(Crash):
        archive(str(src), target,
                ArchiveSettings(codec="jpegxl", shard_blocks=1024, part_objects=4),
                run_id="nightly", listener=on_part)
    capsys.readouterr()
    assert cli.main(["archive", str(src), target, "--run-id", "nightly", "--part-objects",
                     "4", "--codec", "jpegxl"]) == 0
    out = capsys.readouterr().out
    assert "part 0: 4 objects (reused)" in out and "part 2: 4 objects (built)" in out
    check_complete(Path(target), objects, tmp_path / "out")


def test_complete_archive_is_never_overwritten(source, tmp_path):
    src, _ = source
    target = tmp_path / "arch"
    manifest = archive(str(src), str(target), SETTINGS)
    before = (target / MANIFEST).read_bytes()
    assert archive(str(src), str(target), SETTINGS)["already_complete"]  # a no-op
    with pytest.raises(ArchiveError, match="already complete"):
        archive(str(src), str(target),
                ArchiveSettings(codec="jpegxl", shard_blocks=16, part_objects=4))
    destination = open_location(str(target))
    records = [PartRecord.from_json(json.loads(destination.read_bytes(f["path"])))
               for f in manifest["files"] if "/done/" in f["path"]]
    with pytest.raises(ArchiveError, match="another writer completed"):
        finalize(destination, manifest["run_id"], str(src), SETTINGS,
                 ArchiveCodecs(get_codec("order0")),
                 records)
    assert (target / MANIFEST).read_bytes() == before


def test_empty_and_missing_sources_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchiveError, match="no objects"):
        archive(str(tmp_path / "empty"), str(tmp_path / "a"))
    with pytest.raises(ArchiveError, match="does not exist"):
        archive(str(tmp_path / "missing"), str(tmp_path / "b"))
