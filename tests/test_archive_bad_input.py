"""Bad input: odd or broken objects become recorded blobs or skips naming the object; damaged,
tampered or foreign archives are refused with an error naming the file, shard or object."""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import uuid
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from fsspec import register_implementation
from fsspec.implementations.memory import MemoryFileSystem
from PIL import Image

from recarchive import cli
from recarchive.archives import (
    ArchiveError,
    ArchiveIncomplete,
    ArchiveSettings,
    FormatVersionError,
    IntegrityError,
    UnsafeKeyError,
    archive,
    list_objects,
    restore,
    verify,
)
from recarchive.archives.format import (
    INDEX_SCHEMA,
    MANIFEST,
    SHARD_SCHEMA,
    parse_manifest,
    seal_manifest,
)
from recarchive.archives.ingest import ingest
from recarchive.archives.reader import ArchiveReader
from recarchive.archives.safety import safe_relative_path
from recarchive.archives.writer import PartPlan, build_part, finalize, start_run
from recarchive.codecs import EncodedShard, get_codec, register_codec
from recarchive.demo import bomb_png, edge_cases, png_chunk
from recarchive.report.restored import measure_restored
from recarchive.storage import StoredObject, open_location
from tests.test_archive_helpers import assert_same_raster, demo_objects, make_bucket_on


def restore_fails(pattern: str, archive_url: str, destination: str) -> None:
    """Restore goes on past the damage and lists the objects it could not restore, each
    with a reason that names what is wrong."""
    report = restore(archive_url, destination)
    reasons = [item["reason"] for item in report.failed]
    assert reasons and all(re.search(pattern, reason) for reason in reasons), reasons


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


RGB = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8))


# --- ingest ------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "kind", "why"), [
    (b"", "blob", "zero-byte"),
    (b"hello", "blob", "not an image"),
    (encode(RGB, "PNG")[:200], "blob", "corrupt PNG"),
    (encode(RGB, "PNG")[:20], "blob", "unreadable image header"),
    (bomb_png(), "blob", "decompression bomb"),
    (encode(RGB, "JPEG"), "blob", "JPEG"),
    (encode(RGB, "GIF"), "blob", "GIF is not"),
    (encode(RGB, "WEBP", quality=60), "blob", "lossy WebP"),
    (encode(RGB.convert("1"), "PNG"), "blob", "mode 1"),
    (encode(Image.fromarray(np.zeros((4, 4), np.uint16)), "PNG"), "blob", "I;16"),
    (encode(Image.fromarray(np.zeros((4, 4, 3), np.uint16).astype(np.uint8)), "TIFF",
            compression="tiff_jpeg"), "blob", "lossy"),
    (b"P5\n# comment\n3 2\n15\n" + bytes(6), "blob", "maxval 15"),
    (b"P5\n3 2\n255\n" + bytes(range(6)), "raster", ""),
    (encode(RGB, "WEBP", lossless=True), "raster", ""),
    (encode(RGB.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG", bits=4),
     "raster", ""),
])
def test_ingest_classifies(data: bytes, kind: str, why: str) -> None:
    kept = ingest(data, fidelity="pixels")
    assert kept.kind == kind, kept.reason
    assert why in kept.reason


@pytest.mark.parametrize(("data", "kind", "why"), [
    (encode(RGB, "PNG")[:200], "blob", "cannot be rebuilt byte for byte"),
    (encode(RGB, "WEBP", lossless=True), "blob", "WEBP container cannot be rebuilt"),
    (encode(RGB, "JPEG"), "blob", "JPEG"),
    (b"P5\n3 2\n255\n" + bytes(range(6)), "raster", ""),
    (encode(RGB, "PNG"), "raster", ""),
    (bomb_png(), "blob", "decompression bomb"),
])
def test_ingest_classifies_for_byte_exact_restores(data: bytes, kind: str, why: str) -> None:
    """The default fidelity: a raster only with a recipe that rebuilds its file."""
    kept = ingest(data)
    assert kept.kind == kind and why in kept.reason, kept.reason
    assert (kept.recipe is not None) == (kind == "raster")
    assert kept.jpeg == data.startswith(b"\xff\xd8")


def test_sub_8_bit_gray_png_is_kept_as_bytes() -> None:
    header = struct.pack(">IIBBBBB", 8, 2, 2, 0, 0, 0, 0)  # 2-bit gray
    raw = zlib.compress(b"\0\x1b\x1b\0\xe4\xe4")
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", raw)
            + png_chunk(b"IEND", b""))
    assert "2-bit" in ingest(data, fidelity="pixels").reason


def test_own_pixel_guard_keeps_big_images_as_bytes_without_decoding() -> None:
    data = edge_cases()["edge/odd_45x33.png"]
    for fidelity in ("exact", "pixels"):
        kept = ingest(data, max_pixels=1000, fidelity=fidelity)
        assert kept.kind == "blob" and "45x33" in kept.reason and kept.pixels is None
        assert ingest(data, max_pixels=1485, fidelity=fidelity).kind == "raster"


def test_animated_png_is_kept_as_bytes() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert "2 frames" in ingest(data, fidelity="pixels").reason
    assert ingest(data).kind == "blob"


# --- unreadable source objects ----------------------------------------------------------


class FlakyFS(MemoryFileSystem):
    """memory:// whose objects named 'secret*' refuse to be read, like access-denied S3 keys."""

    protocol = "flakymem"

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.replace("flakymem://", "memory://", 1))

    def cat_file(self, path, start=None, end=None, **kwargs):
        if "secret" in path:
            raise PermissionError(f"access denied: {path}")
        return super().cat_file(path, start=start, end=end, **kwargs)


register_implementation("flakymem", FlakyFS, clobber=True)


def test_unreadable_object_is_recorded_and_the_rest_restored(tmp_path: Path) -> None:
    root = f"/flaky-{uuid.uuid4().hex}"
    objects = {"a.png": encode(RGB, "PNG"), "b/secret.bin": b"hidden", "c.txt": b"visible"}
    make_bucket_on(FlakyFS(), root + "/src", {k: v for k, v in objects.items()})
    manifest = archive(f"flakymem://{root}/src", str(tmp_path / "arch"))
    assert manifest["totals"]["skipped"] == 1 and manifest["totals"]["objects"] == 3
    rows = {r["key"]: r for r in list_objects(str(tmp_path / "arch"))}
    assert rows["b/secret.bin"]["kind"] == "skipped"
    assert "PermissionError" in rows["b/secret.bin"]["reason"]
    report = restore(str(tmp_path / "arch"), str(tmp_path / "out"))
    assert report.skipped == [{"key": "b/secret.bin", "reason": rows["b/secret.bin"]["reason"]}]
    assert (tmp_path / "out" / "c.txt").read_bytes() == b"visible"
    assert_same_raster(objects["a.png"], (tmp_path / "out" / "a.png").read_bytes(), "a.png")
    assert not (tmp_path / "out" / "b").exists()


def test_oversized_object_is_skipped_with_reason(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(b"x" * 1000)
    (tmp_path / "src" / "small.bin").write_bytes(b"y" * 10)
    archive(str(tmp_path / "src"), str(tmp_path / "arch"), ArchiveSettings(max_object_bytes=100))
    rows = {r["key"]: r for r in list_objects(str(tmp_path / "arch"))}
    assert rows["big.bin"]["kind"] == "skipped" and "max_object_bytes" in rows["big.bin"]["reason"]
    assert rows["small.bin"]["kind"] == "blob"


# --- damaged archives -------------------------------------------------------------------


@pytest.fixture
def built(tmp_path: Path) -> Path:
    objects = demo_objects(with_photos=False)
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "src"), objects)
    archive(str(tmp_path / "src"), str(tmp_path / "arch"),
            ArchiveSettings(codec="order0", shard_blocks=8))  # block shards to forge
    return tmp_path / "arch"


def data_file(archive_dir: Path) -> Path:
    return next(archive_dir.rglob("data/*.parquet"))


def reseal(archive_dir: Path, change) -> None:
    """Edit the manifest and seal it again, as a careful forger (or a future version) would."""
    manifest = json.loads((archive_dir / MANIFEST).read_text())
    change(manifest)
    (archive_dir / MANIFEST).write_bytes(seal_manifest(manifest))


def refresh_checksum(archive_dir: Path, path: Path) -> None:
    data = path.read_bytes()
    relative = path.relative_to(archive_dir).as_posix()

    def change(manifest):
        for entry in manifest["files"]:
            if entry["path"] == relative:
                entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        for part in manifest["parts"]:
            if part["data"] == relative:
                part["data_footer_bytes"] = int.from_bytes(data[-8:-4], "little") + 8

    reseal(archive_dir, change)


def test_flipped_payload_byte_is_caught(built: Path, tmp_path: Path) -> None:
    path = data_file(built)
    meta = pq.ParquetFile(path).metadata
    payload = meta.schema.names.index("payload")
    column = meta.row_group(0).column(payload)
    data = bytearray(path.read_bytes())
    middle = column.data_page_offset + column.total_compressed_size // 2
    data[middle] ^= 0x40
    path.write_bytes(bytes(data))
    restore_fails(r"shard 0 .*payload checksum",
                  str(built), str(tmp_path / "out"))
    problems = verify(str(built)).problems
    assert any("does not match its manifest checksum" in p for p in problems)
    assert any("shard 0" in p for p in problems)


def test_truncated_data_file_is_caught(built: Path, tmp_path: Path) -> None:
    path = data_file(built)
    path.write_bytes(path.read_bytes()[:-100])
    restore_fails(r"data/part-000000-[0-9a-f]+\.parquet",
                  str(built), str(tmp_path / "out"))
    assert cli.main(["verify", str(built)]) == 1


@pytest.mark.parametrize(("footer", "message"), [(3, "impossible"), (100, "damaged")])
def test_wrong_footer_length_in_manifest_is_caught(built: Path, tmp_path: Path, footer: int,
                                                   message: str) -> None:
    reseal(built, lambda m: m["parts"][0].update(data_footer_bytes=footer))
    restore_fails(message,
                  str(built), str(tmp_path / "out"))


def test_missing_data_file_is_caught(built: Path, tmp_path: Path) -> None:
    data_file(built).unlink()
    restore_fails("missing",
                  str(built), str(tmp_path / "out"))


def test_tampered_index_is_caught(built: Path, tmp_path: Path) -> None:
    path = next(built.rglob("index/*.parquet"))
    path.write_bytes(path.read_bytes() + b"x")
    restore_fails(r"index/part-000000-[0-9a-f]+\.parquet does not match",
                  str(built), str(tmp_path / "out"))


def test_payload_rewritten_with_matching_payload_hash_is_caught_after_decoding(
        built: Path, tmp_path: Path) -> None:
    """A forged shard whose payload checksum was updated still fails the raw-block check."""
    path = data_file(built)
    table = pq.read_table(path)
    rows = table.to_pylist()
    target = next(i for i, r in enumerate(rows) if r["kind"] == "pixels")
    codec = get_codec("order0")
    original = codec.decode(EncodedShard(rows[target]["payload"], rows[target]["num_blocks"],
                                         rows[target]["channels"]))
    forged = codec.encode(np.ascontiguousarray(255 - original)).payload
    rows[target]["payload"] = forged
    rows[target]["payload_sha256"] = hashlib.sha256(forged).digest()
    with pq.ParquetWriter(path, SHARD_SCHEMA, write_statistics=["kind", "channels",
                                                                "num_blocks"]) as writer:
        for row in rows:
            writer.write_table(pa.Table.from_pylist([row], schema=SHARD_SCHEMA))
    refresh_checksum(built, path)
    restore_fails("decoded blocks do not match",
                  str(built), str(tmp_path / "out"))


def rewrite_shard(archive_dir: Path, change) -> int:
    """Rewrite the data file with `change(number, row)` applied to the first shard it accepts
    (returns True); payload_sha256 is recomputed and the manifest refreshed, as a careful
    forger would. Returns the changed row group's number."""
    path = data_file(archive_dir)
    rows = pq.read_table(path).to_pylist()
    target = next(i for i, row in enumerate(rows) if change(i, row))
    rows[target]["payload_sha256"] = hashlib.sha256(rows[target]["payload"]).digest()
    with pq.ParquetWriter(path, SHARD_SCHEMA, write_statistics=["kind", "channels",
                                                                "num_blocks"]) as writer:
        for row in rows:
            writer.write_table(pa.Table.from_pylist([row], schema=SHARD_SCHEMA))
    refresh_checksum(archive_dir, path)
    return target


def rewrite_index(archive_dir: Path, change, schema: pa.Schema = INDEX_SCHEMA) -> None:
    """Rewrite the index file with `change(rows)` applied, and refresh the manifest."""
    path = next(archive_dir.rglob("index/*.parquet"))
    rows = pq.read_table(path).to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    refresh_checksum(archive_dir, path)


def test_one_changed_pixel_in_a_forged_shard_is_caught_by_the_shard_checksum(
        built: Path, tmp_path: Path) -> None:
    """The index has no per-object pixel digest: one pixel changed in a shard whose payload
    checksum and manifest entry were updated must still fail restore, verify and the report's
    restored baselines, by the shard's raw sha256."""
    codec = get_codec("order0")

    def flip_one_pixel(number, row) -> bool:
        if row["kind"] != "pixels":
            return False
        blocks = codec.decode(EncodedShard(row["payload"], row["num_blocks"], row["channels"]))
        blocks = np.array(blocks)
        blocks[0, 5, 7, 0] ^= 1
        row["payload"] = codec.encode(blocks).payload
        return True

    number = rewrite_shard(built, flip_one_pixel)
    restore_fails(rf"shard {number}: decoded blocks do not match",
                  str(built), str(tmp_path / "out"))
    problems = verify(str(built)).problems
    assert problems and all(f"shard {number}: decoded blocks do not match" in p
                            for p in problems)
    with pytest.raises(IntegrityError, match=rf"shard {number}: decoded blocks do not match"):
        measure_restored(ArchiveReader(str(built)), per_dataset=1000)


def test_index_shape_that_does_not_fit_its_blocks_is_caught(built: Path,
                                                            tmp_path: Path) -> None:
    """The per-object structural checks stay: channels and shape against the block range."""
    keys = []

    def change(rows) -> None:
        rasters = [row for row in rows if row["kind"] == "raster"]
        rasters[0]["height"] += 32  # one more row of blocks than the object has
        rasters[1]["channels"] = 4 if rasters[1]["channels"] != 4 else 3
        keys.extend(row["key"] for row in rasters[:2])

    rewrite_index(built, change)
    restore_fails(r"object '.*': .*(cannot form|channels)",
                  str(built), str(tmp_path / "out"))
    problems = verify(str(built)).problems
    assert any(keys[0] in p and "cannot form" in p for p in problems)
    assert any(keys[1] in p and "channels" in p for p in problems)


def test_blob_bytes_that_do_not_match_their_prefix_are_caught(built: Path,
                                                             tmp_path: Path) -> None:
    """A blob shard forged consistently (payload and raw sha256 both recomputed) still fails
    on the object's sha256 prefix in the index."""
    index = pq.read_table(next(built.rglob("index/*.parquet"))).to_pylist()
    blob = next(row for row in index if row["kind"] == "blob" and row["blob_length"] > 0)
    assert len(blob["sha256_prefix"]) == 8

    def flip_blob_byte(number, row) -> bool:
        if number != blob["shard"]:
            return False
        assert row["kind"] == "blob"
        raw = bytearray(zstandard.ZstdDecompressor().decompress(
            row["payload"], max_output_size=row["raw_size"]))
        raw[blob["blob_offset"]] ^= 0x01
        row["payload"] = zstandard.ZstdCompressor(level=3).compress(bytes(raw))
        row["raw_sha256"] = hashlib.sha256(raw).digest()
        return True

    rewrite_shard(built, flip_blob_byte)
    report = restore(str(built), str(tmp_path / "out"), objects=blob["key"])
    assert [item["key"] for item in report.failed] == [blob["key"]]
    assert re.search(rf"object '{blob['key']}': restored bytes do not match its sha256 prefix",
                     report.failed[0]["reason"])
    problems = verify(str(built)).problems
    assert any(blob["key"] in p and "sha256 prefix" in p for p in problems)


def test_blob_prefix_edited_in_the_index_is_caught(built: Path, tmp_path: Path) -> None:
    key = []

    def change(rows) -> None:
        row = next(row for row in rows if row["kind"] == "blob")
        row["sha256_prefix"] = bytes([row["sha256_prefix"][0] ^ 0x80]) + row["sha256_prefix"][1:]
        key.append(row["key"])

    rewrite_index(built, change)
    restore_fails(rf"object '{key[0]}': .*sha256 prefix",
                  str(built), str(tmp_path / "out"))


def test_index_without_sha256_prefix_is_refused_naming_the_file(built: Path,
                                                                tmp_path: Path) -> None:
    """An index in the earlier layout (full `sha256` column) is refused, not misread."""
    old = pa.schema([pa.field("sha256", pa.binary()) if f.name == "sha256_prefix" else f
                     for f in INDEX_SCHEMA])

    def rename(rows) -> None:
        for row in rows:
            row["sha256"] = row.pop("sha256_prefix")

    rewrite_index(built, rename, old)
    restore_fails(r"index/part-000000-[0-9a-f]+\.parquet: index lacks the column\(s\) "
                  "sha256_prefix", str(built), str(tmp_path / "out"))
    assert any("lacks the column(s) sha256_prefix" in p for p in verify(str(built)).problems)


def test_manifest_digest_length_must_match_the_index(built: Path, tmp_path: Path) -> None:
    reseal(built, lambda m: m.update(object_digest_bytes=9))
    restore_fails(r"sha256_prefix values are not all 9 bytes",
                  str(built), str(tmp_path / "out"))
    reseal(built, lambda m: m.update(object_digest_bytes=40))
    with pytest.raises(IntegrityError, match=r"object_digest_bytes must be .* 8 to 32.* 40"):
        restore(str(built), str(tmp_path / "out"))
    reseal(built, lambda m: m.pop("object_digest_bytes"))
    with pytest.raises(IntegrityError, match=r"manifest.json: no object_digest_bytes"):
        restore(str(built), str(tmp_path / "out"))


def test_edited_or_truncated_manifest_is_refused(built: Path, tmp_path: Path) -> None:
    text = (built / MANIFEST).read_text()
    edited = text.replace('"shard_blocks":8', '"shard_blocks":9')
    assert edited != text
    (built / MANIFEST).write_text(edited)
    with pytest.raises(IntegrityError, match="manifest checksum"):
        restore(str(built), str(tmp_path / "out"))
    (built / MANIFEST).write_text(text[: len(text) // 2])
    with pytest.raises(IntegrityError, match="not valid JSON"):
        verify(str(built))


def test_missing_manifest_means_incomplete(built: Path, tmp_path: Path, capsys) -> None:
    (built / MANIFEST).unlink()
    with pytest.raises(ArchiveIncomplete, match="rerun"):
        restore(str(built), str(tmp_path / "out"))
    assert cli.main(["ls", str(built)]) == 1
    assert "has not finished" in capsys.readouterr().err


def test_unknown_format_version_is_refused_clearly(built: Path, capsys) -> None:
    reseal(built, lambda m: m.update(format_version=5))
    with pytest.raises(FormatVersionError,
                       match=r"version 5 is not supported.*reads versions 1, 2, 3, 4"):
        verify(str(built))
    assert cli.main(["restore", str(built), str(built.parent / "o")]) == 1
    assert "format version 5" in capsys.readouterr().err
    with pytest.raises(IntegrityError, match="not a recarchive manifest"):
        parse_manifest(b'{"format": "other"}', "x")


def test_cli_reports_a_missing_archive(tmp_path: Path, capsys) -> None:
    assert cli.main(["verify", str(tmp_path / "nothing")]) == 1
    assert "no manifest.json" in capsys.readouterr().err


# --- models -----------------------------------------------------------------------------


class PermutedOrder0:
    """A test codec that needs a model: a byte permutation applied before order-0 coding."""

    name = "permuted"
    channel_layouts = (1, 2, 3, 4)

    def __init__(self, model: str | None = None, model_bytes: bytes | None = None) -> None:
        if model_bytes is None:
            if model is None:
                raise ValueError("permuted codec needs model= or model_bytes=")
            seed = int(model.removeprefix("seed"))
            model_bytes = np.random.default_rng(seed).permutation(256).astype(np.uint8).tobytes()
        self._table = np.frombuffer(model_bytes, np.uint8)
        self._inverse = np.argsort(self._table).astype(np.uint8)
        self._bytes = bytes(model_bytes)
        self._inner = get_codec("order0")

    @property
    def model_sha256(self) -> str:
        return hashlib.sha256(self._bytes).hexdigest()

    def model_bytes(self) -> bytes:
        return self._bytes

    def encode(self, blocks: np.ndarray) -> EncodedShard:
        inner = self._inner.encode(self._table[blocks])
        return EncodedShard(inner.payload, inner.num_blocks, inner.channels, {"v": 1})

    def decode(self, shard: EncodedShard) -> np.ndarray:
        return self._inverse[self._inner.decode(shard)]


@pytest.fixture
def model_archive(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    register_codec("permuted", PermutedOrder0)
    objects = {k: v for k, v in demo_objects(with_photos=False).items() if "cifar" in k}
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "src"), objects)
    archive(str(tmp_path / "src"), str(tmp_path / "arch"),
            ArchiveSettings(codec="permuted", codec_options={"model": "seed7"}))
    return tmp_path / "arch", objects


def test_model_is_copied_in_and_used_on_restore(model_archive, tmp_path: Path) -> None:
    archive_dir, objects = model_archive
    manifest = json.loads((archive_dir / MANIFEST).read_text())
    (model,) = manifest["models"]
    copy = (archive_dir / model["path"]).read_bytes()
    assert hashlib.sha256(copy).hexdigest() == model["sha256"]
    assert any(f["role"] == "model" for f in manifest["files"])
    # restore must not need the zoo: make building by name fail
    register_codec("permuted", lambda model_bytes=None, **kw: PermutedOrder0(
        model_bytes=model_bytes) if model_bytes else (_ for _ in ()).throw(
            AssertionError("restore asked the zoo")))
    restore(str(archive_dir), str(tmp_path / "out"))
    for key, data in objects.items():
        assert_same_raster(data, (tmp_path / "out" / key).read_bytes(), key)


def test_wrong_model_copy_is_refused(model_archive, tmp_path: Path) -> None:
    archive_dir, _ = model_archive
    path = next(archive_dir.rglob("models/*.bin"))
    path.write_bytes(np.random.default_rng(8).permutation(256).astype(np.uint8).tobytes())
    refresh_checksum(archive_dir, path)  # the file checksum is fine; the model is not
    restore_fails(r"shard 0.*model",
                  str(archive_dir), str(tmp_path / "out"))


def test_codec_that_builds_another_model_is_refused(model_archive, tmp_path: Path) -> None:
    archive_dir, _ = model_archive
    register_codec("permuted", lambda model_bytes=None, **kw: PermutedOrder0(model="seed9"))
    restore_fails("wrong model",
                  str(archive_dir), str(tmp_path / "out"))


def test_codec_without_model_bytes_cannot_archive(tmp_path: Path) -> None:
    class NoHandover(PermutedOrder0):
        model_bytes = None  # type: ignore[assignment]

    register_codec("nohandover", lambda **kw: NoHandover(model="seed1"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_bytes(b"a")
    with pytest.raises(ArchiveError, match="model_bytes"):
        archive(str(tmp_path / "src"), str(tmp_path / "arch"),
                ArchiveSettings(codec="nohandover"))


# --- keys escaping the destination ------------------------------------------------------


@pytest.mark.parametrize("key", ["../evil", "a/../../evil", "/etc/passwd", "a//b", "./a",
                                 "a\\..\\b", "C:/x", "", "a/\0"])
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        safe_relative_path(key)


def test_safe_keys_pass() -> None:
    assert safe_relative_path("a/b c/d.png") == "a/b c/d.png"
    assert safe_relative_path("..hidden/x..y") == "..hidden/x..y"


def test_archive_with_escaping_key_is_refused_on_restore(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ok.txt").write_bytes(b"ok")
    destination = open_location(str(tmp_path / "arch"))
    settings = ArchiveSettings()
    run_id, codec = start_run(destination, "crafted", settings, "crafted")
    plan = PartPlan(0, (StoredObject("ok.txt", str(tmp_path / "src" / "ok.txt"), 2),
                        StoredObject("../../escaped.txt", str(tmp_path / "src" / "ok.txt"), 2)))
    event = build_part(open_location(str(tmp_path / "src")), destination, run_id, plan, codec,
                       settings)
    finalize(destination, run_id, "crafted", settings, codec, [event.record])
    out = tmp_path / "deep" / "out"
    restore_fails(r"'\.\./\.\./escaped\.txt'",
                  str(tmp_path / "arch"), str(out))
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "deep" / "escaped.txt"
                                                             ).exists()
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["ok.txt"]  # the rest restored
    # the key itself is no damage: object stores hold it, and the archive keeps it verbatim
    assert not verify(str(tmp_path / "arch")).problems
    renamed = restore(str(tmp_path / "arch"), str(tmp_path / "renamed"), rename_unsafe=True)
    assert not renamed.failed and any("escaped" in note for note in renamed.notes)
    assert not (tmp_path / "escaped.txt").exists()


def test_symlink_in_destination_cannot_lead_outside(tmp_path: Path) -> None:
    (tmp_path / "src" / "link").mkdir(parents=True)
    (tmp_path / "src" / "link" / "x.txt").write_bytes(b"payload")
    archive(str(tmp_path / "src"), str(tmp_path / "arch"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "link").symlink_to(outside)
    restore_fails("through a symlink",
                  str(tmp_path / "arch"), str(tmp_path / "dst"))
    assert list(outside.iterdir()) == []
