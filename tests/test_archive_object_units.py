"""Objects read alone (format 4): a REC archive's index locates each object's unit in its data
file, and restoring one object fetches the manifest, its index part, the data file's footer,
its shard's small columns, the model once and the unit's bytes, never the shard's payload;
locally and on S3 (moto over HTTP, counted from the HTTP responses). Whole restores and verify
still decode whole shards, to the same bytes; damage to a unit fails its object, by name; a
REC archive written before units restores as it did.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recarchive.archives import ArchiveSettings, archive, open_archive, restore, verify
from recarchive.archives.errors import IntegrityError
from recarchive.archives.format import (
    INDEX_SCHEMA,
    MANIFEST,
    UNIT_COLUMNS,
    UNITS_VERSION,
    check_index_schema,
)
from recarchive.archives.reader import HEAD_COLUMNS
from recarchive.codecs.rec import RecCodec
from recarchive.datasets import data_dir
from recarchive.storage import open_location
from tests.test_archive_fidelity import restored_files, write_folder
from tests.test_archive_helpers import make_bucket_on, moto_s3

HERE = Path(__file__).parent / "data"
TINY_REC = HERE / "rec-tiny.safetensors"  # untrained: ~6.5 kB a block, units easy to see
TINY_REC_SHA256 = "eff3875ccc85013d3acdf0300219beb41ac949b70f8a28861641931ee118f472"
PINNED_V2 = HERE / "archive_v2_rec"  # format 2, REC shards of units, no unit columns
BIG = "b/big.png"      # 3×3 blocks: two block rows in shard 0, the third in shard 1
SETTINGS = ArchiveSettings(codec="rec", shard_blocks=8, codec_options={"model": str(TINY_REC)})


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, "PNG")
    return out.getvalue()


def thumbnails(count: int) -> dict[str, bytes]:
    """`count` CIFAR-10 test images as PNGs: the 16 fixtures, then flipped copies of them."""
    images = np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")
    images = np.concatenate([images, images[:, :, ::-1], images[:, ::-1]])[:count]
    return {f"c/{n:02d}.png": png(image) for n, image in enumerate(images)}


@pytest.fixture(scope="module")
def bucket() -> dict[str, bytes]:
    images = np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")
    tiles = np.concatenate([np.concatenate(list(images[r * 3:r * 3 + 3]), axis=1)
                            for r in range(3)])
    return {BIG: png(tiles[:90, :80]), **thumbnails(16)}


@pytest.fixture(scope="module")
def rec_archive(bucket, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("units")
    write_folder(root / "bucket", bucket)
    archive(str(root / "bucket"), str(root / "archive"), SETTINGS)
    return root / "archive"


def file_sizes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in folder.rglob("*") if p.is_file()}


def head_bytes(meta: pq.FileMetaData, group: int) -> int:
    """Bytes of a row group's small columns (what decoding a unit needs of its shard)."""
    chunks = [meta.row_group(group).column(c) for c in range(meta.num_columns)]
    return sum(c.total_compressed_size for c in chunks if c.path_in_schema in HEAD_COLUMNS)


def payload_chunk_bytes(meta: pq.FileMetaData, group: int) -> int:
    chunks = [meta.row_group(group).column(c) for c in range(meta.num_columns)]
    return next(c.total_compressed_size for c in chunks if c.path_in_schema == "payload")


def test_one_object_is_read_from_its_unit_alone(rec_archive, bucket, tmp_path):
    reader = open_archive(str(rec_archive))
    assert reader.version == UNITS_VERSION
    key = "c/09.png"
    row = next(reader.rows(key))
    assert row.has_units and len(row.unit_offsets) == 1 and row.unit_sha256 is None
    part = reader.parts[row.part]
    meta = pq.read_metadata(rec_archive / part.data)
    report = restore(str(rec_archive), str(tmp_path / "one"), objects=key)
    assert not report.failed and (tmp_path / "one" / key).read_bytes() == bucket[key]
    assert report.units_decoded == 1 and report.shards_decoded == 0
    sizes = file_sizes(rec_archive)
    model = sizes[f"runs/{reader.manifest.run_id}/models/{TINY_REC_SHA256}.bin"]
    from_data_file = part.data_footer_bytes + head_bytes(meta, row.shard) + row.unit_lengths[0]
    assert report.model_bytes_read == model
    assert report.archive_bytes_read == (sizes[MANIFEST] + sizes[part.index] + from_data_file
                                         + model)
    # the unit is one object of the shard's several: a small share of what the shard costs
    assert from_data_file < payload_chunk_bytes(meta, row.shard) / 2


def test_an_object_across_shards_reads_units_only_where_they_are_a_small_share(
        rec_archive, bucket, tmp_path):
    reader = open_archive(str(rec_archive))
    row = next(reader.rows(BIG))
    chain = reader.shard_chain(row.part, row.shard, row.block_start, row.num_blocks)
    assert [(start, stop) for _, start, stop in chain] == [(0, 6), (0, 3)]
    report = restore(str(rec_archive), str(tmp_path / "big"), objects=BIG)
    assert not report.failed and (tmp_path / "big" / BIG).read_bytes() == bucket[BIG]
    # its first shard holds it alone (read whole), its second 3 of 8 blocks (its unit alone)
    assert report.shards_decoded == 1 and report.units_decoded == 1


def test_whole_restore_and_verify_decode_whole_shards_to_the_same_bytes(rec_archive, bucket,
                                                                         tmp_path):
    report = restore(str(rec_archive), str(tmp_path / "all"))
    assert report.units_decoded == 0 and report.shards_decoded == 4
    assert restored_files(tmp_path / "all") == bucket
    checked = verify(str(rec_archive))
    assert not checked.problems and checked.units_decoded == 0
    manifest = json.loads((rec_archive / MANIFEST).read_text())
    assert manifest["format_version"] == UNITS_VERSION
    assert manifest["totals"]["unit_objects"] == len(bucket)
    # each shard's payload lies verbatim at the end of its column chunk, and its units tile
    # it after the packed unit lengths, in the order of its objects
    reader = open_archive(str(rec_archive))
    data = (rec_archive / reader.parts[0].data).read_bytes()
    parquet = pq.ParquetFile(rec_archive / reader.parts[0].data)
    units: dict[int, list[tuple[int, int]]] = {}
    for row in reader.rows():
        chain = reader.shard_chain(0, row.shard, row.block_start, row.num_blocks)
        for (number, _, _), offset, length in zip(chain, row.unit_offsets, row.unit_lengths,
                                                  strict=True):
            units.setdefault(number, []).append((offset, length))
    assert sorted(units) == [0, 1, 2, 3]
    for number, spans in units.items():
        payload = parquet.read_row_group(number, columns=["payload"]).column(0)[0].as_py()
        stop = reader.payload_range(0, number)[1]
        assert data[stop - len(payload):stop] == payload
        assert spans[0][0] > stop - len(payload)  # after the unit lengths
        assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:], strict=False))
        assert spans[-1][0] + spans[-1][1] == stop


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def test_a_damaged_unit_fails_its_object_by_name(rec_archive, bucket, tmp_path):
    copy = tmp_path / "archive"
    shutil.copytree(rec_archive, copy)
    reader = open_archive(str(copy))
    key = "c/09.png"
    row = next(reader.rows(key))
    flip(copy / reader.parts[row.part].data, row.unit_offsets[0] + row.unit_lengths[0] // 2)
    report = restore(str(copy), str(tmp_path / "out"), objects=key)
    assert report.objects == 1 and [f["key"] for f in report.failed] == [key]
    reason = report.failed[0]["reason"]
    assert key in reason and "damaged" in reason and "recarchive verify" in reason
    assert not (tmp_path / "out" / key).exists()
    # an object of another shard is untouched; verify names the damaged shard
    other = "c/00.png"
    assert next(reader.rows(other)).shard != row.shard
    again = restore(str(copy), str(tmp_path / "other"), objects=other)
    assert not again.failed and (tmp_path / "other" / other).read_bytes() == bucket[other]
    problems = "\n".join(verify(str(copy)).problems)
    assert f"shard {row.shard}" in problems and key in problems


def test_pixels_from_a_unit_are_checked_by_the_rebuilt_file(rec_archive, tmp_path, monkeypatch):
    """A unit that decodes (its lanes end empty) to other pixels: the rebuilt file's sha256
    prefix catches it, and the error says the unit is damaged."""
    decode_unit = RecCodec.decode_unit

    def one_pixel_off(self, *args, **kwargs):
        blocks = decode_unit(self, *args, **kwargs).copy()
        blocks[0, 5, 5, 0] ^= 1
        return blocks

    monkeypatch.setattr(RecCodec, "decode_unit", one_pixel_off)
    report = restore(str(rec_archive), str(tmp_path / "out"), objects="c/09.png")
    assert [f["key"] for f in report.failed] == ["c/09.png"]
    assert "sha256 prefix" in report.failed[0]["reason"]
    assert "unit alone" in report.failed[0]["reason"]


def test_fidelity_pixels_checks_blocks_read_by_units(tmp_path, monkeypatch):
    """Without a recipe nothing checks the restored file: the index keeps a digest of each
    object's blocks (unit_sha256), checked whether they came from units or whole shards."""
    objects = thumbnails(4)
    write_folder(tmp_path / "bucket", objects)
    settings = ArchiveSettings(codec="rec", fidelity="pixels",
                               codec_options={"model": str(TINY_REC)})
    archive(str(tmp_path / "bucket"), str(tmp_path / "archive"), settings)
    rows = list(open_archive(str(tmp_path / "archive")).rows())
    assert all(r.has_units and r.recipe is None and len(r.unit_sha256) == 8 for r in rows)
    key = "c/02.png"
    report = restore(str(tmp_path / "archive"), str(tmp_path / "one"), objects=key)
    assert report.units_decoded == 1 and not report.failed and report.byte_exact == 0
    with Image.open(tmp_path / "one" / key) as restored, Image.open(
            io.BytesIO(objects[key])) as source:
        assert np.array_equal(np.asarray(restored), np.asarray(source))
    assert not verify(str(tmp_path / "archive")).problems

    decode_unit = RecCodec.decode_unit

    def one_pixel_off(self, *args, **kwargs):
        blocks = decode_unit(self, *args, **kwargs).copy()
        blocks[0, 7, 3, 2] ^= 4
        return blocks

    monkeypatch.setattr(RecCodec, "decode_unit", one_pixel_off)
    bad = restore(str(tmp_path / "archive"), str(tmp_path / "bad"), objects=key)
    assert [f["key"] for f in bad.failed] == [key]
    assert "do not match their digest" in bad.failed[0]["reason"]
    assert "damaged" in bad.failed[0]["reason"]


def test_rec_archive_written_before_units_still_restores(tmp_path):
    """A format-2 archive of REC shards (objects already coded as units, but no unit columns in
    its index: written before format 4) restores from whole shards, as it did."""
    copy = tmp_path / "archive"
    shutil.copytree(PINNED_V2 / "archive", copy)
    models = copy / "runs" / "pinned-v2-rec" / "models"
    models.mkdir()  # the model copy is not kept twice in the repository
    shutil.copyfile(TINY_REC, models / f"{TINY_REC_SHA256}.bin")
    expected = json.loads((PINNED_V2 / "expected.json").read_text())
    reader = open_archive(str(copy))
    assert reader.version == 2 and not any(r.has_units for r in reader.rows())
    key = "cifar/02.png"
    one = restore(str(copy), str(tmp_path / "one"), objects=key)
    assert one.shards_decoded == 1 and one.units_decoded == 0 and not one.failed
    assert hashlib.sha256((tmp_path / "one" / key).read_bytes()).hexdigest() == expected[key]
    everything = restore(str(copy), str(tmp_path / "all"))
    assert not everything.failed
    assert {k: hashlib.sha256(v).hexdigest()
            for k, v in restored_files(tmp_path / "all").items()} == expected
    assert not verify(str(copy)).problems


def test_other_codecs_stay_format_2_and_format_4_needs_the_unit_columns(tmp_path):
    objects = thumbnails(3)
    write_folder(tmp_path / "bucket", objects)
    manifest = archive(str(tmp_path / "bucket"), str(tmp_path / "archive"),
                       ArchiveSettings(codec="order0"))
    assert manifest["format_version"] == 2 and manifest["totals"]["unit_objects"] == 0
    index = pq.read_schema(tmp_path / "archive" / manifest["parts"][0]["index"])
    assert not set(UNIT_COLUMNS) & set(index.names)
    check_index_schema(INDEX_SCHEMA, "old index", 3)
    with pytest.raises(IntegrityError, match="unit_offsets"):
        check_index_schema(pa.schema(list(INDEX_SCHEMA)), "an index", UNITS_VERSION)


def test_s3_restore_of_one_object_fetches_its_unit_not_its_shard(tmp_path):
    """40 thumbnails in one shard on S3: restoring one fetches, of the data file, its footer,
    its shard's small columns and its unit (each an exact range request, counted from the
    HTTP responses), not the 40 units' payload."""
    import s3fs

    objects = thumbnails(40)
    with moto_s3() as options:
        source = open_location("s3://units/bucket", options)
        source.fs.mkdir("units")
        make_bucket_on(source.fs, "units/bucket", objects)
        archive("s3://units/bucket", "s3://units/archive",
                ArchiveSettings(codec="rec", codec_options={"model": str(TINY_REC)}),
                source_options=options, destination_options=options)
        fs = s3fs.S3FileSystem(**{k: v for k, v in options.items()
                                  if k != "skip_instance_cache"})
        fs.ls("units")  # connects, so the client exists
        fetched: list[tuple[str, str, int]] = []

        def before(params=None, context=None, **_):  # the request as it goes out
            context["counted"] = (params["url_path"], params["headers"].get("Range", ""))

        def after(parsed=None, context=None, **_):
            fetched.append((*context["counted"], int(parsed.get("ContentLength", 0))))

        fs.s3.meta.events.register("before-call.s3.GetObject", before)
        fs.s3.meta.events.register("after-call.s3.GetObject", after)
        shared = {"client_kwargs": options["client_kwargs"]}  # the cached, hooked instance
        assert open_location("s3://units/archive", shared).fs is fs
        reader = open_archive("s3://units/archive", shared)
        key = "c/21.png"
        row = next(reader.rows(key))
        part = reader.parts[row.part]
        with fs.open(f"units/archive/{part.data}", "rb") as handle:
            meta = pq.read_metadata(handle)
        assert meta.num_row_groups == 1
        fetched.clear()
        report = restore("s3://units/archive", str(tmp_path / "out"), objects=key,
                         archive_options=shared)
        assert not report.failed and (tmp_path / "out" / key).read_bytes() == objects[key]
        assert report.units_decoded == 1 and report.shards_decoded == 0
        assert sum(n for _, _, n in fetched) == report.archive_bytes_read
        data_reads = [(rng, n) for path, rng, n in fetched if path.endswith(part.data)]
        offset, length = row.unit_offsets[0], row.unit_lengths[0]
        assert (f"bytes={offset}-{offset + length - 1}", length) in data_reads
        from_data_file = sum(n for _, n in data_reads)
        assert from_data_file == part.data_footer_bytes + head_bytes(meta, 0) + length
        # bounded by unit + footer + every column but the payload, and far below the payload
        chunks = [meta.row_group(0).column(c) for c in range(meta.num_columns)]
        other_columns = sum(c.total_compressed_size for c in chunks
                            if c.path_in_schema != "payload")
        assert from_data_file <= length + part.data_footer_bytes + other_columns
        assert from_data_file < payload_chunk_bytes(meta, 0) / 10
