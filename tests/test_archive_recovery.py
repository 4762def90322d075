"""Durable commits and recovery: resume trusts a part only by its sha256, two writers of one
run cannot damage each other, a finished archive's command reruns as a no-op, `repair` puts a
damaged manifest back, and restore/verify go on past damage, naming what they lost."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from recarchive import cli
from recarchive.archives import ArchiveError, ArchiveSettings, archive, restore, verify
from recarchive.archives import writer as writer_module
from recarchive.archives.events import Event, PartEvent
from recarchive.archives.format import MANIFEST, parse_manifest
from recarchive.archives.repair import repair
from recarchive.archives.writer import (
    build_part,
    finalize,
    plan_parts,
    source_objects,
    start_run,
)
from recarchive.storage import open_location
from tests.test_archive_helpers import demo_objects, make_bucket_on, parts_into

SETTINGS = ArchiveSettings(codec="jpegxl", shard_blocks=8, part_objects=4)


class Crash(RuntimeError):
    pass


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    objects = demo_objects(with_photos=False)
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "src"), objects)
    return tmp_path / "src", objects


def restored_ok(archive_dir: Path, objects: dict[str, bytes], out: Path) -> None:
    report = restore(str(archive_dir), str(out))
    assert not report.failed and not report.problems, report.problems
    for key, data in objects.items():
        assert sha((out / key).read_bytes()) == sha(data), key


def manifest_of(archive_dir: Path) -> dict:
    return parse_manifest((archive_dir / MANIFEST).read_bytes(), "test")


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def test_resume_rebuilds_a_finished_part_whose_file_no_longer_hashes(source, tmp_path):
    src, objects = source
    target = tmp_path / "arch"
    events: list[PartEvent] = []

    def crash_after_two(event: Event) -> None:
        if not isinstance(event, PartEvent):
            return
        events.append(event)
        if len(events) == 2:
            raise Crash("interrupted")

    with pytest.raises(Crash):
        archive(str(src), str(target), SETTINGS, listener=crash_after_two)
    first = target / events[0].record.files[0]["path"]
    flip_byte(first, first.stat().st_size // 2)  # same size, other bytes
    again: list[PartEvent] = []
    archive(str(src), str(target), SETTINGS, listener=parts_into(again))
    assert [e.reused for e in again[:2]] == [False, True]
    assert again[0].record.files[0]["path"] != events[0].record.files[0]["path"]
    assert not verify(str(target)).problems
    restored_ok(target, objects, tmp_path / "out")


def test_rerunning_a_finished_archive_is_a_no_op(source, tmp_path, capsys):
    src, _ = source
    target = tmp_path / "arch"
    command = ["archive", str(src), str(target), "--codec", "jpegxl", "--part-objects"]
    assert cli.main([*command, "4"]) == 0
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert cli.main([*command, "4"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    # the same destination with other settings is another run: refused, nothing touched
    assert cli.main([*command, "5"]) == 1
    assert "another run" in capsys.readouterr().err


def test_two_writers_of_one_run_cannot_damage_each_other(source, tmp_path, monkeypatch):
    """Writer B builds its parts while writer A runs the same command to the end; B's commit
    then loses, touches nothing of A's archive and names the files it left behind."""
    src, objects = source
    target = tmp_path / "arch"
    source_location, destination = open_location(str(src)), open_location(str(target))
    run_id, codec = start_run(destination, str(src), SETTINGS, None)
    # B and A run at once: neither finds the other's parts finished when it starts them
    monkeypatch.setattr(writer_module, "finished_part", lambda *args: None)
    b_records = [build_part(source_location, destination, run_id, plan, codec, SETTINGS).record
                 for plan in plan_parts(source_objects(source_location, destination), SETTINGS)]
    a_manifest = archive(str(src), str(target), SETTINGS)
    monkeypatch.undo()
    winner = (target / MANIFEST).read_bytes()
    with pytest.raises(ArchiveError, match="another writer completed") as lost:
        finalize(destination, run_id, str(src), SETTINGS, codec, b_records)
    b_files = [f["path"] for r in b_records for f in r.files]
    assert all(path in str(lost.value) for path in b_files)
    assert (target / MANIFEST).read_bytes() == winner
    named = {f["path"] for f in a_manifest["files"]}
    assert not named & set(b_files)
    assert not verify(str(target)).problems
    restored_ok(target, objects, tmp_path / "out")


def test_repair_puts_back_the_commit_copy_of_a_damaged_manifest(source, tmp_path, capsys):
    src, objects = source
    target = tmp_path / "arch"
    archive(str(src), str(target), SETTINGS)
    good = (target / MANIFEST).read_bytes()
    flip_byte(target / MANIFEST, len(good) // 2)
    assert cli.main(["ls", str(target)]) == 1
    assert "recarchive repair" in capsys.readouterr().err
    assert cli.main(["repair", str(target)]) == 0
    out = capsys.readouterr().out
    assert "put back from runs/" in out and "cannot vouch" not in out
    assert (target / MANIFEST).read_bytes() == good
    assert list(target.glob("manifest.json.damaged-*"))
    assert not verify(str(target)).problems
    assert cli.main(["repair", str(target)]) == 0
    assert "intact" in capsys.readouterr().out


def test_repair_rebuilds_from_records_when_no_copy_survives(source, tmp_path, capsys):
    src, objects = source
    target = tmp_path / "arch"
    original = archive(str(src), str(target), SETTINGS)
    (target / MANIFEST).unlink()
    for copy in target.rglob("commits/*.json"):
        copy.unlink()
    report = repair(str(target))
    assert report.action == "rebuilt-from-records"
    assert any("no commit copy" in item for item in report.unvouched)
    rebuilt = manifest_of(target)
    assert rebuilt["parts"] == original["parts"] and rebuilt["totals"] == original["totals"]
    assert not verify(str(target)).problems
    restored_ok(target, objects, tmp_path / "out")


def test_repair_says_which_files_of_a_restored_copy_are_damaged(source, tmp_path):
    src, _ = source
    target = tmp_path / "arch"
    manifest = archive(str(src), str(target), SETTINGS)
    flip_byte(target / MANIFEST, 10)
    data = target / manifest["parts"][1]["data"]
    flip_byte(data, 100)
    report = repair(str(target))
    assert report.action == "restored-commit-copy"
    assert any(manifest["parts"][1]["data"] in item for item in report.unvouched)


def test_restore_goes_past_a_damaged_shard_and_names_what_it_lost(source, tmp_path, capsys):
    src, objects = source
    target = tmp_path / "arch"
    manifest = archive(str(src), str(target), SETTINGS)
    damaged = manifest["parts"][1]
    data = target / damaged["data"]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    index_gone = manifest["parts"][2]
    (target / index_gone["index"]).unlink()
    code = cli.main(["restore", str(target), str(tmp_path / "out"), "--json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    lost_keys = {item["key"] for item in report["failed"]}
    part1 = sorted(objects, key=lambda k: k.split("/"))[4:8]
    assert all(key in lost_keys for key in part1 if key != "edge/empty.bin")
    assert any(index_gone["min_key"] in key and "objects of part 2" in key for key in lost_keys)
    restored = {p.relative_to(tmp_path / "out").as_posix()
                for p in (tmp_path / "out").rglob("*") if p.is_file()}
    expected_back = {k for k in objects
                     if not damaged["min_key"] <= k <= damaged["max_key"]
                     and not index_gone["min_key"] <= k <= index_gone["max_key"]}
    assert expected_back and expected_back <= restored
    for key in restored:
        assert sha((tmp_path / "out" / key).read_bytes()) == sha(objects[key])
    verified = verify(str(target))
    assert {item["key"] for item in verified.failed} >= set(part1) - {"edge/empty.bin"}


def test_a_damaged_model_copy_is_replaced_by_the_shipped_model(tmp_path, capsys):
    objects = {k: v for k, v in demo_objects(with_photos=False).items()
               if k.startswith("cifar10/") or k == "edge/readme.txt"}
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "src"), objects)
    target = tmp_path / "arch"
    manifest = archive(str(tmp_path / "src"), str(target),
                       ArchiveSettings(codec="bitswap", codec_options={"model": "bitswap-cifar"}))
    model = target / manifest["models"][0]["path"]
    flip_byte(model, model.stat().st_size // 3)
    assert cli.main(["restore", str(target), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "used the shipped model" in out
    for key, data in objects.items():
        assert sha((tmp_path / "out" / key).read_bytes()) == sha(data), key
    report = verify(str(target))
    assert len(report.problems) == 1 and manifest["models"][0]["path"] in report.problems[0]
    assert not report.failed
