"""Small pieces of the archive: blocks, PNG side data, part planning, manifest sealing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from recarchive.archives.blocks import blocks_per_image, cut_blocks, join_blocks
from recarchive.archives.errors import IntegrityError
from recarchive.archives.format import parse_manifest, seal_manifest
from recarchive.archives.ingest import ingest
from recarchive.archives.rasters import encode_png, pixels_sha256
from recarchive.archives.writer import ArchiveSettings, default_run_id, plan_parts
from recarchive.demo import edge_cases
from recarchive.storage import StoredObject
from tests.test_archive_helpers import assert_same_raster


@given(st.integers(1, 100), st.integers(1, 100), st.sampled_from([1, 2, 3, 4]),
       st.integers(0, 2**32 - 1))
def test_blocks_round_trip_with_edge_padding(height, width, channels, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    blocks = cut_blocks(pixels)
    assert blocks.shape == (blocks_per_image(height, width), 32, 32, channels)
    np.testing.assert_array_equal(join_blocks(blocks, height, width), pixels)
    cols = -(-width // 32)
    last = blocks[cols - 1]  # top-right block: columns past the edge repeat the last column
    inside = width - 32 * (cols - 1)
    np.testing.assert_array_equal(last[: min(32, height), inside:],
                                  np.repeat(last[: min(32, height), inside - 1:inside],
                                            32 - inside, axis=1))


def test_join_refuses_wrong_block_count():
    with pytest.raises(ValueError, match="cannot form"):
        join_blocks(np.zeros((3, 32, 32, 1), np.uint8), 64, 64)


@pytest.mark.parametrize("key", ["edge/metadata.png", "edge/palette.png", "edge/rgba.png",
                                 "edge/nested/deeper/gray_alpha.png", "edge/gray.png",
                                 "edge/image.tiff", "edge/lossless.webp", "edge/image.bmp"])
def test_side_data_survives_png_rewrite(key):
    data = edge_cases()[key]
    kept = ingest(data, fidelity="pixels")
    assert kept.kind == "raster", kept.reason
    png = encode_png(kept.pixels, kept.mode, palette=kept.palette, icc=kept.icc, exif=kept.exif,
                     meta_json=json.dumps(kept.meta))
    assert_same_raster(data if key.endswith(".png") else _as_png(data), png, key)
    assert pixels_sha256(ingest(png, fidelity="pixels").pixels) == pixels_sha256(kept.pixels)


def _as_png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.save(out, "PNG", **({"icc_profile": image.info["icc_profile"]}
                                  if "icc_profile" in image.info else {}))
        return out.getvalue()


def test_metadata_is_kept():
    kept = ingest(edge_cases()["edge/metadata.png"], fidelity="pixels")
    assert kept.icc == b"demo-icc-profile-bytes"
    assert kept.meta["text"] == {"Title": "recarchive demo", "Comment": "exact pixels \u2713"}
    assert b"recarchive" in kept.exif


def test_parts_follow_object_and_byte_limits():
    objects = [StoredObject(f"k{n:03d}", f"/k{n:03d}", size) for n, size in
               enumerate([10, 10, 10, 500, 10, 10, 10, 10, 10])]
    plans = list(plan_parts(iter(objects), ArchiveSettings(part_objects=3, part_bytes=100)))
    assert [len(p.objects) for p in plans] == [3, 1, 3, 2]
    assert [p.number for p in plans] == [0, 1, 2, 3]
    again = list(plan_parts(iter(objects), ArchiveSettings(part_objects=3, part_bytes=100)))
    assert [p.fingerprint for p in plans] == [p.fingerprint for p in again]
    changed = objects[:1] + [StoredObject("k001", "/k001", 10, "mtime=2")] + objects[2:]
    third = list(plan_parts(iter(changed), ArchiveSettings(part_objects=3, part_bytes=100)))
    assert third[0].fingerprint != plans[0].fingerprint
    assert third[1].fingerprint == plans[1].fingerprint


def test_default_run_id_depends_on_source_and_settings():
    a = default_run_id("s3://b/x", ArchiveSettings())
    assert a == default_run_id("s3://b/x", ArchiveSettings())
    assert a != default_run_id("s3://b/y", ArchiveSettings())
    assert a != default_run_id("s3://b/x", ArchiveSettings(shard_blocks=7))


def test_manifest_seal_detects_any_edit():
    sealed = seal_manifest({"format": "recarchive-archive", "format_version": 1, "files": []})
    assert parse_manifest(sealed, "m")["format_version"] == 1
    edited = sealed.replace(b'"files":[]', b'"files":[1]')
    assert edited != sealed
    with pytest.raises(IntegrityError, match="checksum"):
        parse_manifest(edited, "m")


def test_part_planning_streams_an_endless_listing():
    import itertools

    endless = (StoredObject(f"k{n}", f"/k{n}", 1) for n in itertools.count())
    plans = plan_parts(endless, ArchiveSettings(part_objects=1000))
    first, second = next(plans), next(plans)
    assert len(first.objects) == len(second.objects) == 1000
    assert second.objects[0].key == "k1000"
