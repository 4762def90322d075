"""`recarchive bench archive`: what the archive format costs beyond the codec, and how fast
archives are made and restored.

The workload is CIFAR-10 test written as one PNG object per image in a local folder used as
the bucket (`--limit N` takes the first N). It reports:
- `index_overhead_pct`: every archive byte that is neither a codec payload nor a model copy
  (index, Parquet structure and per-shard checksums, manifest, compression report, run
  bookkeeping) as % of the payload bytes, with its parts (`overhead_index_bytes`,
  `overhead_data_file_bytes`, `overhead_manifest_bytes`, `overhead_report_bytes` and
  `overhead_bookkeeping_bytes` sum to it; `overhead_object_digest_bytes` is the part of the
  index that holds the per-object `sha256_prefix` column, from the Parquet metadata), and
  `codec` naming the codec whose payloads these are. The target is at most 1 %;
- `model_copy_bytes`, `model_copy_pct`: the codec models copied into the archive (`models/`,
  so that it restores without the model zoo). They are a fixed cost per archive (a few MB for
  Bit-Swap, nothing for order0), not a cost per object, so they are reported on their own and
  left out of `index_overhead_pct`; `archive_bytes` counts everything;
- restoring one image (the middle one) as a fresh reader does: `restore_one_bytes_read`,
  every byte fetched from storage (the archive, and a shared store's model copy), next to
  `archive_bytes`; `restore_one_bytes_read_beyond_model`, the same less the model copy read
  once to build the codec (what one more object from the same reader would cost at most);
  `restore_one_seconds`, its wall time (model load and codec build included);
  `restore_one_shards_decoded` and `restore_one_units_decoded`: a REC archive (format 4)
  reads the object's unit alone, its shard's small columns and the data file's footer,
  other codecs its whole shard;
- `--compare-codec C` (e.g. `bitswap` beside `--codec rec`): the same images archived again
  with codec C (`--compare-model` its model), and the same figures of that archive under
  `compare_` (`compare_restore_one_bytes_read`, `..._beyond_model`, `..._seconds`,
  `compare_payload_bytes`, `compare_archive_bytes`...), side by side;
- archive, restore and verify throughput in MB/s of raw pixels;
- `roundtrip_identical`: every restored image equals its source pixels (a failed check fails
  the command); `objects_byte_exact_pct`: restored objects whose bytes (sha256) equal their
  source object's; `pixel_path_pct` and `bytes_path_pct`: objects kept as pixels (coded by the
  codec) and as bytes;
- a JPEG dataset's saving (`--jpeg-images N`, default 100; 0 skips it): the photo corpus's
  validation files saved as quality-90 JPEGs, archived, restored and compared byte for byte;
  `jpeg_saving_pct` is the archive payload against the JPEG files, `jpeg_zstd_saving_pct`
  what zstd alone saved on them (the behaviour before).
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import zstandard
from PIL import Image

from recarchive.api import archive
from recarchive.archives import ArchiveSettings, restore, verify
from recarchive.archives.format import MANIFEST
from recarchive.archives.writer import archive_codecs
from recarchive.datasets import load_cifar10


def _write_bucket(images: np.ndarray, folder: Path) -> list[str]:
    keys = []
    for number, image in enumerate(images):
        key = f"cifar10-test/{number:05d}.png"
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "PNG")
        path.write_bytes(buffer.getvalue())
        keys.append(key)
    return keys


def _folder_bytes(folder: Path) -> dict[str, int]:
    """Bytes on storage by role: data, index, models, manifest, report, bookkeeping."""
    sizes = {"data": 0, "index": 0, "models": 0, "manifest": 0, "report": 0, "bookkeeping": 0}
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        parts = path.relative_to(folder).parts
        role = ("manifest" if parts == (MANIFEST,) else
                parts[2] if len(parts) > 3 and parts[2] in ("data", "index", "models")
                else "report" if len(parts) == 3 and parts[2].startswith("report-")
                else "bookkeeping")
        sizes[role] += path.stat().st_size
    return sizes


def _object_digest_bytes(folder: Path) -> int:
    """Bytes the index files spend on the per-object `sha256_prefix` column (compressed column
    chunks, from the Parquet metadata)."""
    import pyarrow.parquet as pq

    from recarchive.archives.format import OBJECT_DIGEST_COLUMN

    total = 0
    for path in folder.rglob("index/*.parquet"):
        meta = pq.ParquetFile(path).metadata
        names = [meta.schema.column(j).name for j in range(meta.num_columns)]
        for group in range(meta.num_row_groups):
            column = meta.row_group(group).column(names.index(OBJECT_DIGEST_COLUMN))
            total += column.total_compressed_size
    return total


def _same_bytes(source: Path, restored: Path, keys: list[str]) -> int:
    """How many objects restored with exactly their source bytes."""
    def digest(path: Path) -> bytes:
        return hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b""

    return sum(digest(source / key) == digest(restored / key) for key in keys)


def run_jpeg_benchmark(images: int, workdir: str | None = None) -> dict[str, Any]:
    """The saving on a JPEG dataset: validation photos as quality-90 JPEGs, archived and
    restored; every file must come back byte for byte."""
    from recarchive.datasets import data_dir

    root_dir = data_dir() / "photos"
    names = [line.strip() for line in (root_dir / "VALIDATION.txt").read_text().splitlines()
             if line.strip()][:images]
    with tempfile.TemporaryDirectory(prefix="recarchive-bench-jpeg-", dir=workdir) as temp:
        root = Path(temp)
        keys = []
        for name in names:
            key = name.rsplit(".", 1)[0] + ".jpg"
            path = root / "bucket" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(root_dir / name) as image:
                image.convert("RGB").save(path, "JPEG", quality=90)
            keys.append(key)
        files = [(root / "bucket" / key).read_bytes() for key in keys]
        source = sum(len(data) for data in files)
        zstd = sum(len(zstandard.ZstdCompressor(level=9).compress(data)) for data in files)
        started = time.perf_counter()
        manifest = archive(str(root / "bucket"), str(root / "archive"))
        seconds = time.perf_counter() - started
        restore(str(root / "archive"), str(root / "restored"))
        exact = _same_bytes(root / "bucket", root / "restored", keys)
    totals = manifest["totals"]
    payload = totals["pixel_payload_bytes"] + totals["blob_payload_bytes"]
    return {
        "jpeg_dataset": f"photo validation files as quality-90 JPEG ({len(keys)})",
        "jpeg_source_bytes": source, "jpeg_payload_bytes": payload,
        "jpeg_recompressed_objects": totals["jpegs"],
        "jpeg_saving_pct": 100.0 * (1 - payload / source),
        "jpeg_zstd_saving_pct": 100.0 * (1 - zstd / source),
        "jpeg_byte_exact_pct": 100.0 * exact / len(keys),
        "jpeg_roundtrip_byte_exact": exact == len(keys),
        "jpeg_archive_mb_per_s": source / 1e6 / seconds,
    }


def _settings(codec: str, model: str | None, shard_blocks: int) -> ArchiveSettings:
    settings = ArchiveSettings(codec=codec, shard_blocks=shard_blocks,
                               codec_options={"model": model} if model else {})
    archive_codecs(settings)  # import the codec's stack (torch) before any timing
    return settings


def _restore_one(target: Path, out: Path, key: str, model_store: bool) -> dict[str, Any]:
    """Restore one object with a fresh reader; what it read and how long it took."""
    started = time.perf_counter()
    one = restore(str(target), str(out), objects=key)
    seconds = time.perf_counter() - started
    if one.objects != 1 or one.failed:
        raise RuntimeError(f"{target}: restoring {key!r} alone failed: {one.failed}")
    # a shared store's model copy is read from the store, not counted as the archive's bytes
    archive_model = 0 if model_store else one.model_bytes_read
    return {"restore_one_bytes_read": one.archive_bytes_read + one.model_bytes_read
            - archive_model,
            "restore_one_bytes_read_beyond_model": one.archive_bytes_read - archive_model,
            "restore_one_seconds": seconds,
            "restore_one_shards_decoded": one.shards_decoded,
            "restore_one_units_decoded": one.units_decoded}


def _compare(codec: str, model: str | None, shard_blocks: int, bucket: Path, root: Path,
             key: str, model_store: bool) -> dict[str, Any]:
    """The same images archived with another codec: its payload and its one-object restore,
    under `compare_`."""
    settings = _settings(codec, model, shard_blocks)
    target = root / f"archive-{codec}"
    manifest = archive(str(bucket), str(target), settings,
                       model_store=str(root / "models") if model_store else None)
    totals = manifest["totals"]
    one = _restore_one(target, root / f"one-{codec}", key, model_store)
    return {"compare_codec": codec,
            "compare_payload_bytes": totals["pixel_payload_bytes"] + totals["blob_payload_bytes"],
            "compare_archive_bytes": sum(_folder_bytes(target).values()),
            **{f"compare_{name}": value for name, value in one.items()}}


def run_archive_benchmark(limit: int | None = None, shard_blocks: int = 1024,
                          codec: str = "order0", workdir: str | None = None,
                          object_digest_bytes: int | None = None,
                          jpeg_images: int = 100, model_store: bool = False,
                          model: str | None = None, compare_codec: str | None = None,
                          compare_model: str | None = None) -> dict[str, Any]:
    """Archive, restore one, restore all and verify CIFAR-10 test; return the figures.
    `model_store`: the model goes to a shared store beside the archive (not counted in it).
    `model`: the codec's model (its default if None). `compare_codec`: also archive the same
    images with that codec (`compare_model`) and report its one-object restore beside."""
    settings = _settings(codec, model, shard_blocks)
    if compare_codec is not None:
        _settings(compare_codec, compare_model, shard_blocks)
    if object_digest_bytes is not None:
        settings = replace(settings, object_digest_bytes=object_digest_bytes)
    images = load_cifar10("test")
    if limit is not None:
        images = images[:limit]
    with tempfile.TemporaryDirectory(prefix="recarchive-bench-", dir=workdir) as temp:
        root = Path(temp)
        bucket, target = root / "bucket", root / "archive"
        keys = _write_bucket(images, bucket)
        raw = int(images.size)
        started = time.perf_counter()
        manifest = archive(str(bucket), str(target), settings,
                           model_store=str(root / "models") if model_store else None)
        archive_seconds = time.perf_counter() - started
        totals = manifest["totals"]
        sizes = _folder_bytes(target)
        archive_bytes = sum(sizes.values())
        payload = totals["pixel_payload_bytes"] + totals["blob_payload_bytes"]
        data_structure = sizes["data"] - payload
        models = sizes["models"]
        digests = _object_digest_bytes(target)

        one = _restore_one(target, root / "one", keys[len(keys) // 2], model_store)
        compared = (_compare(compare_codec, compare_model, shard_blocks, bucket, root,
                             keys[len(keys) // 2], model_store)
                    if compare_codec is not None else {})
        started = time.perf_counter()
        full = restore(str(target), str(root / "all"))
        restore_seconds = time.perf_counter() - started
        identical = full.objects == len(keys) and all(
            np.array_equal(np.asarray(Image.open(root / "all" / key)), image)
            for key, image in zip(keys, images, strict=True))
        byte_exact = _same_bytes(bucket, root / "all", keys)
        started = time.perf_counter()
        checked = verify(str(target))
        verify_seconds = time.perf_counter() - started

    megabytes = raw / 1e6
    return {
        "dataset": "cifar10-test", "images": len(keys), "codec": codec,
        "shard_blocks": shard_blocks, "storage": "local folder",
        "raw_pixel_bytes": raw, "source_png_bytes": totals["source_bytes"],
        "payload_bytes": payload, "archive_bytes": archive_bytes,
        "index_overhead_pct": 100.0 * (archive_bytes - payload - models) / payload,
        "object_digest_bytes": settings.object_digest_bytes,
        "overhead_index_bytes": sizes["index"],
        "overhead_object_digest_bytes": digests,
        "overhead_data_file_bytes": data_structure,
        "overhead_manifest_bytes": sizes["manifest"],
        "overhead_report_bytes": sizes["report"],
        "overhead_bookkeeping_bytes": sizes["bookkeeping"],
        "model_copy_bytes": models,
        "model_copy_pct": 100.0 * models / payload,
        "payload_bits_per_dim": 8.0 * payload / raw,
        "shards": totals["pixel_shards"] + totals["blob_shards"],
        **one,
        "restore_one_pct_of_archive": 100.0 * one["restore_one_bytes_read"] / archive_bytes,
        **compared,
        "archive_seconds": archive_seconds,
        "archive_mb_per_s": megabytes / archive_seconds,
        "restore_seconds": restore_seconds,
        "restore_mb_per_s": megabytes / restore_seconds,
        "verify_mb_per_s": megabytes / verify_seconds,
        "roundtrip_identical": bool(identical),
        "objects_byte_exact_pct": 100.0 * byte_exact / len(keys),
        "roundtrip_byte_exact": byte_exact == len(keys),
        "pixel_path_pct": 100.0 * totals["rasters"] / totals["objects"],
        "bytes_path_pct": 100.0 * totals["blobs"] / totals["objects"],
        "model_store": model_store,
        **_auto_figures(manifest),
        "verify_problems": len(checked.problems),
        "verify_identical": not checked.problems,
        "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        **(run_jpeg_benchmark(jpeg_images, workdir) if jpeg_images else {}),
    }


def _auto_figures(manifest: dict[str, Any]) -> dict[str, Any]:
    """What `--codec auto` chose (nothing for other codecs)."""
    decision = manifest.get("auto_model")
    if decision is None:
        return {}
    totals = manifest["totals"]
    streams = totals["auto_model_jpegxl_bytes"]
    return {
        "auto_model_kept": decision["kept"], "auto_model_saved_bytes": decision["saved_bytes"],
        "auto_parts_rebuilt": decision["parts_rebuilt"],
        "auto_candidates": totals["auto_candidates"],
        "auto_model_rasters": totals["auto_model_rasters"],
        "auto_model_bytes": totals["auto_model_bytes"],
        "auto_model_jpegxl_bytes": streams,
        "auto_model_saved_pct": 100.0 * (streams - totals["auto_model_bytes"]) / streams
        if streams else 0.0,
        "auto_model_above_jpegxl": totals["auto_model_above_jpegxl"],
        "auto_jpegxl_rasters": totals["whole_rasters"],
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [f"archive benchmark: {result['images']} {result['dataset']} images, codec "
             f"{result['codec']}, {result['shard_blocks']} blocks/shard, {result['storage']}"]
    for key, value in result.items():
        if key in ("dataset", "images", "codec", "shard_blocks", "storage"):
            continue
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:42} {text}")
    return "\n".join(lines)
