"""Partial restores fetch only what they need, to the byte: the manifest, the index parts whose
key range can match, each data file's footer, and the row groups (shards) the selected objects
live in.

Bytes are measured twice: by the archive's own read counter, and independently, by the kernel
(/proc/self/io rchar) for a local archive and by botocore response hooks (GetObject
Content-Length, real HTTP to moto) for an S3 archive.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recarchive.archives import ArchiveSettings, archive, list_objects, open_archive, restore
from recarchive.storage import open_location
from tests.test_archive_helpers import FIXTURES, assert_same_raster, make_bucket_on, moto_s3

PHOTO = "photo/chelsea.png"


def noise_png(rng: np.random.Generator) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8), "RGB").save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def bucket() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    objects = {f"imgs/{n:04d}.png": noise_png(rng) for n in range(400)}
    objects[PHOTO] = (FIXTURES / "skimage_chelsea_CC0.png").read_bytes()
    return objects


SETTINGS = ArchiveSettings(codec="order0", shard_blocks=20, part_objects=100)


@pytest.fixture(scope="module")
def local_archive(bucket, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("subset")
    make_bucket_on(open_location(str(root)).fs, str(root / "bucket"), bucket)
    archive(str(root / "bucket"), str(root / "archive"), SETTINGS)
    return root / "archive"


def sizes(archive_dir: Path) -> dict[str, int]:
    return {p.relative_to(archive_dir).as_posix(): p.stat().st_size
            for p in archive_dir.rglob("*") if p.is_file()}


def row_group_bytes(archive_dir: Path, part_path: str, groups: set[int]) -> int:
    meta = pq.ParquetFile(archive_dir / part_path).metadata
    return sum(meta.row_group(g).column(c).total_compressed_size
               for g in groups for c in range(meta.num_columns))


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_restore_one_reads_one_index_part_and_one_shard(local_archive, bucket, tmp_path):
    reader = open_archive(str(local_archive))
    assert len(reader.parts) == 5
    key = "imgs/0250.png"
    row = next(r for r in reader.rows(key))
    part = reader.parts[row.part]
    file_sizes = sizes(local_archive)
    total = sum(file_sizes.values())

    restore(str(local_archive), str(tmp_path / "warm"), objects="imgs/0001.png")  # imports
    before = rchar() if Path("/proc/self/io").exists() else None
    report = restore(str(local_archive), str(tmp_path / "one"), objects=key)
    kernel = rchar() - before if before is not None else None

    assert report.objects == 1 and report.shards_decoded == 1
    assert_same_raster(bucket[key], (tmp_path / "one" / key).read_bytes(), key)
    needed = (file_sizes["manifest.json"] + file_sizes[part.index] + part.data_footer_bytes
              + row_group_bytes(local_archive, part.data, {row.shard}))
    assert report.archive_bytes_read == needed
    assert report.archive_bytes_read < total / 5
    if kernel is not None:  # what the process really read from files (plus a little noise)
        assert kernel <= report.archive_bytes_read + 16 * 1024
        assert kernel < total / 5


def test_photo_spanning_shards_reads_only_its_shards(local_archive, bucket, tmp_path):
    reader = open_archive(str(local_archive))
    row = next(reader.rows(PHOTO))
    chain = reader.shard_chain(row.part, row.shard, row.block_start, row.num_blocks)
    assert len(chain) >= 8  # 150 blocks over 20-block shards
    report = restore(str(local_archive), str(tmp_path / "p"), objects=PHOTO)
    assert report.shards_decoded == len(chain)
    part = reader.parts[row.part]
    file_sizes = sizes(local_archive)
    needed = (file_sizes["manifest.json"] + file_sizes[part.index] + part.data_footer_bytes
              + row_group_bytes(local_archive, part.data, {n for n, _, _ in chain}))
    assert report.archive_bytes_read == needed
    assert_same_raster(bucket[PHOTO], (tmp_path / "p" / PHOTO).read_bytes(), PHOTO)


def test_shards_option_restores_the_objects_that_begin_there(local_archive, bucket, tmp_path):
    rows = list(list_objects(str(local_archive)))
    chosen = {1, 3}
    expected = {r["key"] for r in rows if r["shard"] in chosen}
    assert expected
    report = restore(str(local_archive), str(tmp_path / "s"), shards=chosen)
    got = {p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*")
           if p.is_file()}
    assert got == expected and report.objects == len(expected)
    for key in got:
        assert_same_raster(bucket[key], (tmp_path / "s" / key).read_bytes(), key)
    reader = open_archive(str(local_archive))
    part = reader.parts[0]
    assert max(chosen) < part.shards  # both shards lie in part 0: only its index is read
    rows_needed = [r for r in rows if r["shard"] in chosen]
    assert report.archive_bytes_read == (
        sizes(local_archive)["manifest.json"] + sizes(local_archive)[part.index]
        + part.data_footer_bytes
        + row_group_bytes(local_archive, part.data, {r["shard"] for r in rows_needed}))
    # disjoint shard sets partition the objects
    all_shards = {r["shard"] for r in rows}
    halves = [{s for s in all_shards if s % 2 == k} for k in (0, 1)]
    counts = [restore(str(local_archive), str(tmp_path / f"h{k}"), shards=h).objects
              for k, h in enumerate(halves)]
    assert sum(counts) == len(rows)


def test_glob_selects_and_prefix_limits_index_parts(local_archive, tmp_path):
    pattern = "imgs/00[0-4]?.png"
    reader = open_archive(str(local_archive))
    assert [p.part for p in reader.index_parts(pattern)] == [0]
    assert len(reader.index_parts("imgs/*")) == 4  # the photo's part holds no imgs/ key
    assert len(reader.index_parts(None)) == 5
    rows = list(reader.rows(pattern))
    assert len(rows) == 50
    report = restore(str(local_archive), str(tmp_path / "g"), objects=pattern)
    assert report.objects == 50
    file_sizes = sizes(local_archive)
    part = reader.parts[0]
    needed = (file_sizes["manifest.json"] + file_sizes[part.index] + part.data_footer_bytes
              + row_group_bytes(local_archive, part.data, {r.shard for r in rows}))
    assert report.archive_bytes_read == needed
    assert restore(str(local_archive), str(tmp_path / "none"), objects="nomatch/*").objects == 0


def test_s3_partial_restore_measured_by_http_responses(bucket, tmp_path):
    subset = {k: v for k, v in bucket.items() if k < "imgs/0200"}
    with moto_s3() as options:
        source = open_location("s3://subset-src/b", options)
        source.fs.mkdir("subset-src")
        make_bucket_on(source.fs, "subset-src/b", subset)
        archive("s3://subset-src/b", "s3://subset-src/a", SETTINGS,
                source_options=options, destination_options=options)
        store = open_location("s3://subset-src/a", options)
        total = sum(o.size for o in store.list_files())

        import s3fs

        received: list[int] = []

        def count(parsed=None, **_):
            received.append(int(parsed.get("ContentLength", 0)))

        fs = s3fs.S3FileSystem(**{k: v for k, v in options.items()
                                  if k != "skip_instance_cache"})
        fs.ls("subset-src")  # connects, so the client exists
        fs.s3.meta.events.register("after-call.s3.GetObject", count)
        shared = {"client_kwargs": options["client_kwargs"]}  # the cached, hooked instance
        assert open_location("s3://subset-src/a", shared).fs is fs
        report = restore("s3://subset-src/a", str(tmp_path / "o"), objects="imgs/0150.png",
                         archive_options=shared)
        assert report.objects == 1
        http_bytes = sum(received)
        assert http_bytes == report.archive_bytes_read
        assert http_bytes < total / 4, (http_bytes, total)
        manifest = json.loads(store.read_bytes("manifest.json"))
        assert len(manifest["parts"]) == 2
