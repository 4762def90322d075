"""`--codec jpegxl`: rasters coded whole as JPEG-XL lossless streams (format 3), every object
still back byte for byte, partial restores read only their shards, damage fails only the
objects it holds."""

from __future__ import annotations

import hashlib
import shutil

import imagecodecs
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recarchive import cli
from recarchive.api import archive
from recarchive.archives import (
    ArchiveSettings,
    jpegxl,
    list_objects,
    open_archive,
    restore,
    verify,
)
from recarchive.archives.format import JPEGXL_CODEC
from recarchive.report.load import load_report
from recarchive.storage import open_location
from tests.hostile import hostile_objects
from tests.test_archive_helpers import make_bucket_on

SETTINGS = ArchiveSettings(codec="jpegxl", shard_blocks=16, blob_shard_bytes=20_000)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("jxl")
    objects = hostile_objects()
    make_bucket_on(open_location(str(root / "src")).fs, str(root / "src"), objects)
    manifest = archive(str(root / "src"), str(root / "a"), SETTINGS)
    return {"root": root, "objects": objects, "manifest": manifest}


def test_every_object_comes_back_byte_for_byte(built, tmp_path):
    manifest, objects = built["manifest"], built["objects"]
    totals = manifest["totals"]
    assert manifest["format_version"] == 3 and manifest["codec"] == "jpegxl"
    assert totals["whole_rasters"] >= 10 and totals["whole_rasters"] <= totals["rasters"]
    report = restore(str(built["root"] / "a"), str(tmp_path / "out"))
    assert not report.failed
    for key, data in objects.items():
        if (tmp_path / "out" / key).exists():
            assert hashlib.sha256((tmp_path / "out" / key).read_bytes()).digest() == \
                hashlib.sha256(data).digest(), key
    skipped = {item["key"] for item in report.skipped}
    assert {key for key in objects if not (tmp_path / "out" / key).exists()} == skipped
    assert not verify(str(built["root"] / "a")).problems


def test_whole_rasters_are_their_own_checked_streams(built):
    """Each whole raster's index range is one JPEG-XL stream of its shard's payload, which
    decodes alone to the raster's shape; the shard's params hold nothing per object."""
    archive_dir = built["root"] / "a"
    reader = open_archive(str(archive_dir))
    whole = [row for row in reader.rows() if row.is_whole_raster]
    assert len(whole) == built["manifest"]["totals"]["whole_rasters"]
    ends: dict[tuple[int, int], int] = {}
    for row in whole:  # in index order: each stream starts where the one before it ended
        where = (row.part, row.shard)
        shard = reader.read_shard(*where)
        assert shard.codec == JPEGXL_CODEC and shard.codec_params == {}
        assert row.blob_offset == 0  # the index keeps lengths only
        start = ends.get(where, 0)
        stream = shard.payload[start:start + row.blob_length]
        ends[where] = start + row.blob_length
        pixels = np.asarray(imagecodecs.jpegxl_decode(stream))
        assert pixels.size == row.height * row.width * row.channels
    for (part, number), end in ends.items():
        assert end == len(reader.read_shard(part, number).payload)
    report = load_report(str(archive_dir))
    codec_rows = {row["codec"]: row for row in report["codecs"]}
    assert codec_rows[JPEGXL_CODEC]["objects"] == len(whole)
    assert codec_rows[JPEGXL_CODEC]["payload_bytes"] == sum(r.blob_length for r in whole)


def test_one_object_reads_only_its_shard_and_damage_stays_local(built, tmp_path):
    archive_dir = built["root"] / "a"
    rows = [row for row in list_objects(str(archive_dir)) if row["blocks"] == 0
            and row["kind"] == "raster"]
    key = rows[-1]["key"]
    one = restore(str(archive_dir), str(tmp_path / "one"), objects=key)
    assert one.objects == 1 and one.byte_exact == 1 and one.shards_decoded == 1
    total = sum(f["size"] for f in built["manifest"]["files"])
    assert one.archive_bytes_read < total / 2
    # damage one JPEG-XL stream: the objects of its shard fail by key, the rest come back
    damaged = tmp_path / "damaged"
    shutil.copytree(archive_dir, damaged)
    data = next(iter(sorted(damaged.glob("runs/*/data/*.parquet"))))
    table = pq.read_table(data).to_pylist()
    target = next(i for i, shard in enumerate(table) if shard["codec"] == JPEGXL_CODEC)
    payload = table[target]["payload"]
    raw = bytearray(data.read_bytes())
    at = raw.find(payload[len(payload) // 2: len(payload) // 2 + 16])
    assert at > 0
    raw[at + 3] ^= 0x10
    data.write_bytes(bytes(raw))
    report = restore(str(damaged), str(tmp_path / "partly"))
    assert report.failed and all("shard" in item["reason"] or "checksum" in item["reason"]
                                 or "JPEG-XL" in item["reason"] for item in report.failed)
    restored = {p.relative_to(tmp_path / "partly").as_posix()
                for p in (tmp_path / "partly").rglob("*") if p.is_file()}
    assert restored and len(restored) + len(report.failed) + len(report.skipped) == \
        report.objects


def test_cli_takes_jpegxl(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    pixels = np.random.default_rng(3).integers(0, 256, (40, 50, 3), np.uint8)
    Image.fromarray(pixels).save(source / "x.png")
    assert cli.main(["archive", str(source), str(tmp_path / "a"), "--codec", "jpegxl"]) == 0
    assert "1 rasters" in capsys.readouterr().out
    assert cli.main(["restore", str(tmp_path / "a"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "x.png").read_bytes() == (source / "x.png").read_bytes()


def test_a_raster_jpegxl_cannot_hold_goes_to_blocks(monkeypatch, tmp_path):
    monkeypatch.setattr(jpegxl, "compress", lambda pixels: "declined in this test")
    source = tmp_path / "src"
    source.mkdir()
    pixels = np.random.default_rng(4).integers(0, 256, (40, 50, 3), np.uint8)
    Image.fromarray(pixels).save(source / "x.png")
    manifest = archive(str(source), str(tmp_path / "a"), SETTINGS)
    assert manifest["totals"]["whole_rasters"] == 0 and manifest["format_version"] == 2
    report = restore(str(tmp_path / "a"), str(tmp_path / "out"))
    assert report.byte_exact == 1
