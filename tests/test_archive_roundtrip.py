"""Archive -> restore round trips for every kind of object, on local folders, memory:// and S3
(moto over HTTP), through the Python API and the CLI."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recarchive import cli
from recarchive.archives import (
    ArchiveError,
    ArchiveSettings,
    archive,
    list_objects,
    restore,
    verify,
)
from recarchive.storage import open_location
from tests.test_archive_helpers import (
    assert_same_raster,
    demo_objects,
    make_bucket_on,
    moto_s3,
)

RASTERS = {
    "photos/skimage_chelsea_CC0.png", "photos/skimage_coffee_CC0.png",
    "cifar10/cifar10_test_00.png", "cifar10/cifar10_test_01.png",
    "cifar10/cifar10_test_02.png", "cifar10/cifar10_test_03.png",
    "edge/odd_45x33.png", "edge/gray.png", "edge/rgba.png", "edge/palette.png",
    "edge/nested/deeper/gray_alpha.png", "edge/metadata.png", "edge/image.bmp",
    "edge/image.tiff", "edge/image.ppm",
}
BLOBS = {
    "edge/lossy.webp": "lossy WebP", "edge/photo.jpg": "JPEG recompressed losslessly",
    "edge/gray16.png": "16-bit", "edge/lossless.webp": "WEBP container cannot be rebuilt",
    "edge/empty.bin": "zero-byte", "edge/readme.txt": "not an image",
    "edge/corrupt.png": "chunk runs past the end", "edge/bomb.png": "decompression bomb",
}
SMALL = ArchiveSettings(codec="order0", shard_blocks=16, part_objects=5,
                        blob_shard_bytes=64)


@pytest.fixture(scope="module")
def s3_options():
    with moto_s3() as options:
        yield options


def check_restored(objects: dict[str, bytes], restored: dict[str, bytes]) -> None:
    """Every object back byte for byte (rasters rebuilt from their pixels and recipes)."""
    assert set(restored) == set(objects)
    for key, data in objects.items():
        assert restored[key] == data, key


def read_tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file()}


def test_every_kind_round_trips_locally(tmp_path: Path) -> None:
    objects = demo_objects()
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "bucket"), objects)
    manifest = archive(str(tmp_path / "bucket"), str(tmp_path / "archive"), SMALL)
    assert manifest["totals"]["rasters"] == len(RASTERS)
    assert manifest["totals"]["blobs"] == len(BLOBS)
    assert len(manifest["parts"]) == -(-len(objects) // SMALL.part_objects)
    assert manifest["totals"]["pixel_shards"] > len(manifest["parts"])  # photos span shards

    rows = {row["key"]: row for row in list_objects(str(tmp_path / "archive"))}
    assert {k for k, r in rows.items() if r["kind"] == "raster"} == RASTERS
    for key, why in BLOBS.items():
        assert rows[key]["kind"] == "blob" and why in rows[key]["reason"], (key, rows[key])
    assert rows["edge/odd_45x33.png"]["shape"] == [33, 45, 3]
    assert rows["edge/palette.png"]["mode"] == "P" and rows["edge/palette.png"]["shape"][2] == 1
    assert rows["photos/skimage_coffee_CC0.png"]["blocks"] == 13 * 19

    report = restore(str(tmp_path / "archive"), str(tmp_path / "restored"))
    assert report.objects == len(objects) and not report.problems
    check_restored(objects, read_tree(tmp_path / "restored"))
    assert not verify(str(tmp_path / "archive")).problems


def test_round_trip_through_s3(tmp_path: Path, s3_options) -> None:
    """Source bucket and archive on S3 (HTTP to moto), restored to S3 and to a local folder."""
    objects = demo_objects(with_photos=False)
    source = open_location("s3://source-bucket/data", s3_options)
    source.fs.mkdir("source-bucket")
    source.fs.mkdir("archives")
    make_bucket_on(source.fs, "source-bucket/data", objects)
    archive("s3://source-bucket/data", "s3://archives/a1", SMALL,
            source_options=s3_options, destination_options=s3_options)
    names = {o.key for o in open_location("s3://archives/a1", s3_options).list_files()}
    assert "manifest.json" in names and any(n.endswith(".parquet") for n in names)
    restore("s3://archives/a1", str(tmp_path / "out"), archive_options=s3_options)
    check_restored(objects, read_tree(tmp_path / "out"))
    restore("s3://archives/a1", "s3://archives/restored", archive_options=s3_options,
            destination_options=s3_options)
    back = open_location("s3://archives/restored", s3_options)
    check_restored(objects, {o.key: back.read_bytes(o.key) for o in back.list_files()})
    assert not verify("s3://archives/a1", s3_options).problems


def test_round_trip_in_memory() -> None:
    objects = demo_objects(with_photos=False)
    name = uuid.uuid4().hex
    make_bucket_on(open_location("memory://").fs, f"/{name}/bucket", objects)
    archive(f"memory://{name}/bucket", f"memory://{name}/archive", SMALL)
    restore(f"memory://{name}/archive", f"memory://{name}/out")
    out = open_location(f"memory://{name}/out")
    check_restored(objects, {o.key: out.read_bytes(o.key) for o in out.list_files()})


def test_archive_inside_its_source_leaves_itself_out(tmp_path: Path) -> None:
    objects = demo_objects(with_photos=False)
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path), objects)
    manifest = archive(str(tmp_path), str(tmp_path / "the-archive"), SMALL)
    assert manifest["totals"]["objects"] == len(objects)


def test_blocks_span_shards_and_parts_exactly(tmp_path: Path) -> None:
    """Random images of many sizes and modes, tiny shards: every block range is right."""
    rng = np.random.default_rng(5)
    objects = {}
    for n in range(12):
        mode = ["L", "LA", "RGB", "RGBA"][n % 4]
        channels = len(mode)
        height, width = rng.integers(1, 90, size=2)
        pixels = rng.integers(0, 256, (height, width, channels), np.uint8)
        image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        objects[f"r/{n:02d}.png"] = buffer.getvalue()
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "b"), objects)
    archive(str(tmp_path / "b"), str(tmp_path / "a"),
            ArchiveSettings(codec="order0", shard_blocks=3, part_objects=7))
    restore(str(tmp_path / "a"), str(tmp_path / "o"))
    check_restored({k: v for k, v in objects.items()}, read_tree(tmp_path / "o"))


def test_cli_archive_ls_restore_verify(tmp_path: Path, capsys) -> None:
    objects = demo_objects(with_photos=False)
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "bucket"), objects)
    archive_dir = str(tmp_path / "archive")
    assert cli.main(["archive", str(tmp_path / "bucket"), archive_dir, "--shard-blocks", "8",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["objects"] == len(objects) and summary["codec"] == "auto"  # the default

    assert cli.main(["ls", archive_dir, "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["key"] for r in listed) == sorted(objects)

    assert cli.main(["restore", archive_dir, str(tmp_path / "some"), "--objects",
                     "edge/*.png"]) == 0
    assert "restored" in capsys.readouterr().out
    restored = read_tree(tmp_path / "some")
    assert set(restored) == {k for k in objects if k.startswith("edge/") and k.endswith(".png")}

    assert cli.main(["verify", archive_dir]) == 0
    assert "verified" in capsys.readouterr().out
    assert cli.main(["ls", archive_dir]) == 0
    text = capsys.readouterr().out
    assert "edge/photo.jpg" in text and "JPEG" in text


def test_cli_with_s3_storage_options(tmp_path: Path, s3_options, capsys) -> None:
    objects = {"x/cifar.png": demo_objects(with_photos=False)["cifar10/cifar10_test_00.png"],
               "x/note.txt": b"note"}
    source = open_location("s3://cli-src/in", s3_options)
    source.fs.mkdir("cli-src")
    make_bucket_on(source.fs, "cli-src/in", objects)
    options = json.dumps({"client_kwargs": s3_options["client_kwargs"]})
    assert cli.main(["archive", "s3://cli-src/in", "s3://cli-src/arch",
                     "--storage-options", options]) == 0
    assert cli.main(["restore", "s3://cli-src/arch", str(tmp_path / "o"),
                     "--storage-options", options]) == 0
    capsys.readouterr()
    check = read_tree(tmp_path / "o")
    assert check["x/note.txt"] == b"note"
    assert_same_raster(objects["x/cifar.png"], check["x/cifar.png"], "x/cifar.png")


def index_rows(archive_dir: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [row for path in sorted(archive_dir.rglob("index/*.parquet"))
            for row in pq.read_table(path).to_pylist()]


@pytest.mark.parametrize("digest_bytes", [None, 32])
def test_index_keeps_a_sha256_prefix_of_each_object(tmp_path: Path, digest_bytes) -> None:
    """Default 8 bytes; 32 stores the full sha256. The manifest records the length, the index
    has no per-object pixel digest, and the archive round-trips either way."""
    import hashlib

    objects = demo_objects(with_photos=False)
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "b"), objects)
    settings = SMALL if digest_bytes is None else replace(SMALL, object_digest_bytes=digest_bytes)
    manifest = archive(str(tmp_path / "b"), str(tmp_path / "a"), settings)
    length = digest_bytes or 8
    assert manifest["object_digest_bytes"] == manifest["settings"]["object_digest_bytes"] == length
    rows = index_rows(tmp_path / "a")
    assert {row["key"] for row in rows} == set(objects)
    for row in rows:
        assert "pixels_sha256" not in row and "sha256" not in row
        assert row["sha256_prefix"] == hashlib.sha256(objects[row["key"]]).digest()[:length]
    if digest_bytes == 32:
        assert all(row["sha256_prefix"] == hashlib.sha256(objects[row["key"]]).digest()
                   for row in rows)
    restore(str(tmp_path / "a"), str(tmp_path / "o"))
    check_restored(objects, read_tree(tmp_path / "o"))
    assert not verify(str(tmp_path / "a")).problems


@pytest.mark.parametrize("digest_bytes", [7, 33, 0])
def test_object_digest_bytes_outside_8_to_32_are_refused(tmp_path: Path, capsys,
                                                         digest_bytes: int) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.txt").write_bytes(b"a")
    with pytest.raises(ArchiveError, match=rf"object_digest_bytes must be an integer from 8 to "
                       rf"32 .*got {digest_bytes}"):
        archive(str(tmp_path / "b"), str(tmp_path / "a"),
                ArchiveSettings(codec="jpegxl", object_digest_bytes=digest_bytes))
    assert not (tmp_path / "a").exists()
    assert cli.main(["archive", str(tmp_path / "b"), str(tmp_path / "a"),
                     "--object-digest-bytes", str(digest_bytes)]) == 2
    assert f"expected 8 to 32 (32 = the full sha256), got {digest_bytes}" in \
        capsys.readouterr().err


def test_cli_object_digest_bytes(tmp_path: Path, capsys) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.txt").write_bytes(b"hello")
    assert cli.main(["archive", str(tmp_path / "b"), str(tmp_path / "a"),
                     "--object-digest-bytes", "16", "--json"]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["object_digest_bytes"] == 16
    (row,) = index_rows(tmp_path / "a")
    assert len(row["sha256_prefix"]) == 16
