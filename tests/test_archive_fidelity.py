"""Every object back byte for byte: a hostile bucket (rasters of every container, JPEGs,
multi-frame files, bombs, unicode keys, symlinks) archived and restored on local folders and
on the S3 server; `--fidelity pixels`; the pinned format-1 archive still restores."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recarchive.archives import ArchiveSettings, archive, restore, verify
from recarchive.archives.containers import split_container
from recarchive.archives.restore import list_objects
from recarchive.cli import main
from recarchive.storage import open_location
from tests.hostile import hostile_objects, object_store_objects
from tests.test_archive_helpers import moto_s3

PINNED_V1 = Path(__file__).parent / "data" / "archive_v1"

# what must go through the pixel path (the codec) and still come back byte for byte
PIXEL_PATH = {
    "png/pillow-default.png": "RGB", "png/level0.png": "RGB", "png/level9.png": "RGB",
    "png/optimized.png": "RGB", "png/ancillary-chunks.png": "RGB", "png/xmp.png": "RGB",
    "png/after-iend.png": "RGB", "png/interlaced.png": "RGB", "png/rgba.png": "RGBA",
    "edge/palette.png": "P", "edge/metadata.png": "RGB",
    "bmp/32-bit-alpha.bmp": "RGBA", "bmp/24-bit.bmp": "RGB", "bmp/8-bit-gray.bmp": "P",
    "pnm/comment.ppm": "RGB", "pnm/gray.pgm": "L", "pnm/rgba.pam": "RGBA",
    "tiff/tags.tiff": "RGB",
}
# kept as bytes, and why (a fragment of the recorded reason)
BYTES_PATH = {
    "png/16-bit.png": "16-bit", "png/apng.png": "", "png/bomb.png": "bomb",
    "tiff/multi-page.tiff": "", "gif/animated.gif": "GIF", "webp/animated.webp": "",
    "webp/lossless-xmp.webp": "WEBP", "edge/readme.txt": "not an image",
    "jpeg/truncated.jpg": "", "jpeg/cmyk.jpg": "JPEG not recompressed losslessly",
}
JPEGS = ("jpeg/baseline.jpg", "jpeg/progressive.jpg", "edge/photo.jpg")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_folder(folder: Path, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def restored_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The hostile bucket in a local folder (plus symlinks), archived with defaults."""
    root = tmp_path_factory.mktemp("hostile")
    objects = hostile_objects()
    write_folder(root / "src", objects)
    os.symlink(root / "src" / "png" / "pillow-default.png", root / "src" / "link-to-file.png")
    objects["link-to-file.png"] = objects["png/pillow-default.png"]
    os.symlink(root / "src" / "nowhere", root / "src" / "dangling-link")
    manifest = archive(str(root / "src"), str(root / "archive"),
                       ArchiveSettings(codec="jpegxl", part_objects=16))
    rows = {row["key"]: row for row in list_objects(str(root / "archive"))}
    return {"root": root, "objects": objects, "manifest": manifest, "rows": rows}


def test_every_object_restores_to_its_original_bytes(hostile) -> None:
    root, objects = hostile["root"], hostile["objects"]
    report = restore(str(root / "archive"), str(root / "restored"))
    restored = restored_files(root / "restored")
    assert {k: sha(v) for k, v in restored.items()} == {k: sha(v) for k, v in objects.items()}
    assert report.byte_exact == len(objects)
    assert [item["key"] for item in report.skipped] == ["dangling-link"]
    assert not report.failed and not report.problems
    totals = hostile["manifest"]["totals"]
    assert totals["objects"] == len(objects) + 1  # every listed object: archived or skipped


def test_rasters_take_the_pixel_path_and_the_rest_say_why(hostile) -> None:
    rows = hostile["rows"]
    for key, mode in PIXEL_PATH.items():
        assert rows[key]["kind"] == "raster", (key, rows[key]["reason"])
        assert rows[key]["mode"] == mode, key
    assert rows["bmp/32-bit-alpha.bmp"]["shape"][2] == 4  # the fourth byte is a channel
    for key, why in BYTES_PATH.items():
        assert rows[key]["kind"] == "blob", key
        assert rows[key]["reason"] and why in rows[key]["reason"], (key, rows[key]["reason"])
    for key in JPEGS:
        assert rows[key]["reason"].startswith("JPEG recompressed losslessly"), key
    totals = hostile["manifest"]["totals"]
    assert totals["byte_exact_rasters"] == totals["rasters"] >= len(PIXEL_PATH)
    assert totals["jpegs"] == len(JPEGS)
    assert totals["jpeg_payload_bytes"] < 0.95 * totals["jpeg_raw_bytes"]


def test_verify_rebuilds_every_object_and_the_cli_reports_byte_exact(hostile, capsys) -> None:
    report = verify(str(hostile["root"] / "archive"))
    assert not report.problems and report.byte_exact == len(hostile["objects"])
    assert main(["verify", str(hostile["root"] / "archive")]) == 0
    assert f"{len(hostile['objects'])} byte for byte" in capsys.readouterr().out


def test_a_tampered_recipe_is_caught_on_restore(hostile, tmp_path) -> None:
    """The rebuilt file is checked against the object's digest before it is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recarchive.archives.format import parse_manifest, seal_manifest

    archive_dir = tmp_path / "archive"
    shutil.copytree(hostile["root"] / "archive", archive_dir)
    manifest = parse_manifest((archive_dir / "manifest.json").read_bytes(), "test")
    entry = next(p for p in manifest["parts"] if p["min_key"] <= "png/pillow-default.png"
                 <= p["max_key"])
    path = archive_dir / entry["index"]
    table = pq.read_table(path)
    rows = table.to_pylist()
    victim = next(r for r in rows if r["key"] == "png/pillow-default.png")
    recipe = bytearray(victim["recipe"])
    recipe[-1] ^= 1
    victim["recipe"] = bytes(recipe)
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out)
    path.write_bytes(out.getvalue())
    for item in manifest["files"]:
        if item["path"] == entry["index"]:
            item["size"], item["sha256"] = len(out.getvalue()), sha(out.getvalue())
    (archive_dir / "manifest.json").write_bytes(seal_manifest(manifest))
    report = restore(str(archive_dir), str(tmp_path / "restored"))
    assert [item["key"] for item in report.failed] == ["png/pillow-default.png"]
    assert not (tmp_path / "restored" / "png" / "pillow-default.png").exists()
    others = restored_files(tmp_path / "restored")
    assert all(sha(data) == sha(hostile["objects"][key]) for key, data in others.items())


def test_fidelity_pixels_keeps_pixels_and_formats(tmp_path) -> None:
    objects = {k: v for k, v in hostile_objects().items()
               if k in ("bmp/32-bit-alpha.bmp", "bmp/24-bit.bmp", "tiff/tags.tiff",
                        "png/ancillary-chunks.png", "edge/palette.png", "jpeg/baseline.jpg")}
    write_folder(tmp_path / "src", objects)
    manifest = archive(str(tmp_path / "src"), str(tmp_path / "archive"),
                       ArchiveSettings(codec="jpegxl", fidelity="pixels"))
    assert manifest["fidelity"] == "pixels"
    restore(str(tmp_path / "archive"), str(tmp_path / "restored"))
    restored = restored_files(tmp_path / "restored")
    assert restored["jpeg/baseline.jpg"] == objects["jpeg/baseline.jpg"]
    for key in ("bmp/24-bit.bmp", "tiff/tags.tiff", "png/ancillary-chunks.png",
                "edge/palette.png"):
        with Image.open(io.BytesIO(objects[key])) as a, Image.open(io.BytesIO(restored[key])) as b:
            assert a.format == b.format and a.mode == b.mode, key
            assert np.array_equal(np.asarray(a), np.asarray(b)), key
    # Pillow reads a 32-bit BMP as RGB; the file written back holds the fourth byte
    again = split_container(restored["bmp/32-bit-alpha.bmp"])
    assert again.format == "BMP" and again.mode == "RGBA"
    data = again.pixels
    assert np.array_equal(data[..., 3], np.asarray(
        np.linspace(0, 255, data.shape[1], dtype=np.uint8)[None, :].repeat(data.shape[0], 0)))


def test_pinned_format_1_archive_still_restores(tmp_path) -> None:
    """An archive written before format 2: rasters come back as PNG with the same pixels
    (what format 1 promised), other objects byte for byte."""
    expected = json.loads((PINNED_V1 / "expected.json").read_text())
    report = restore(str(PINNED_V1 / "archive"), str(tmp_path / "out"))
    assert not report.problems and report.objects == len(expected)
    for key, want in expected.items():
        data = (tmp_path / "out" / key).read_bytes()
        if "pixels_sha256" in want:
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "PNG" and image.mode == want["mode"]
                assert sha(np.asarray(image).tobytes()) == want["pixels_sha256"], key
        else:
            assert sha(data) == want["sha256"], key
    assert not verify(str(PINNED_V1 / "archive")).problems


def test_hostile_bucket_on_s3_keeps_every_key_and_byte(tmp_path) -> None:
    """S3 to S3 over HTTP (moto): keys that path normalization merges or drops, and the
    hostile objects, all come back under their exact keys."""
    objects = {**{k: v for k, v in hostile_objects().items() if not k.startswith("encoders/")},
               **object_store_objects()}
    with moto_s3() as options:
        bucket = f"src-{uuid.uuid4().hex[:8]}"
        source = open_location(f"s3://{bucket}/data", options)
        source.fs.mkdir(bucket)
        for key, data in objects.items():
            source.write_object(key, data)
        manifest = archive(f"s3://{bucket}/data", f"s3://{bucket}-archive/a",
                           ArchiveSettings(codec="jpegxl", part_objects=20), source_options=options,
                           destination_options=options)
        assert manifest["totals"]["objects"] == len(objects)
        # said when the archive is made: which keys a local folder could not hold
        unsafe = {item["key"] for item in manifest["local_unsafe_keys"]["examples"]}
        assert unsafe == {"coll/./x.png", "coll/sub/../x.png", "photos/dbl//slash.png",
                          "photos/trailing/", "x"}
        assert manifest["local_unsafe_keys"]["count"] == len(unsafe)
        report = restore(f"s3://{bucket}-archive/a", f"s3://{bucket}-back/r",
                         archive_options=options, destination_options=options)
        assert not report.failed and report.byte_exact == len(objects)
        back = open_location(f"s3://{bucket}-back/r", options)
        listed = {item.key: sha(back.read_object(item)) for item in back.list_files()}
        assert listed == {key: sha(data) for key, data in objects.items()}  # none merged
        # a local folder refuses, by name, the keys it cannot hold, and restores the rest
        local = restore(f"s3://{bucket}-archive/a", str(tmp_path / "local"),
                        archive_options=options)
        refused = {"coll/./x.png", "coll/sub/../x.png", "photos/dbl//slash.png",
                   "photos/trailing/", "x"}
        assert {item["key"] for item in local.failed} == refused
        assert all(item["key"] in item["reason"] for item in local.failed)
        here = restored_files(tmp_path / "local")
        assert here == {k: v for k, v in objects.items() if k not in refused}
        renamed = restore(f"s3://{bucket}-archive/a", str(tmp_path / "renamed"),
                          archive_options=options, rename_unsafe=True)
        assert not renamed.failed and len(renamed.notes) == len(refused)
        assert sorted(map(sha, restored_files(tmp_path / "renamed").values())) == sorted(
            map(sha, objects.values()))
