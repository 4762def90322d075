"""One report dict (the JSON rendering; `schema.json` documents it) from an archive's manifest
and its parts' done records, and the side-by-side comparison of two reports.

Definitions used throughout:
- raw bytes: decoded pixels (H*W*C, no padding) of rasters plus the bytes of fallback objects;
  one raster dimension is one raw byte, so bits/dim = 8 * bytes / raw bytes.
- codec bits/dim: codec payload bits / pixel dims of the rasters (padding is a cost, not a dim).
- archived bytes: codec + fallback payloads plus a share of the overhead (everything else the
  manifest names: index, Parquet structure and checksums, models, bookkeeping; not the manifest
  itself nor the report files), shared among datasets by object count.
- seconds: worker time spent on a dataset's objects (ingest, coding, writing the shard), summed
  over parts; the archive's wall time is `archive.archive_seconds`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from recarchive.archives.format import JPEG_CODEC, JPEGXL_CODEC
from recarchive.archives.records import IndexRow, Manifest, PartRecord
from recarchive.report.classical import NAMES
from recarchive.report.measure import BIN_WIDTH, BINS, BITS_METHOD, PartRecorder, _Object

SCHEMA_NAME = "recarchive-report"
COMPARISON_NAME = "recarchive-report-comparison"
SCHEMA_VERSION = 1
SHARD_ROWS = 1000  # the JSON lists this many shards; codec rows cover them all
ALL = "all"



def source_name(source: str) -> str:
    """What root-level keys are called: the last path element of the archive's source."""
    tail = source.rstrip("/").rsplit("/", 1)[-1]
    return tail.split("://")[-1] or "(root)"


def part_record_from_index(record: PartRecord, rows: list[IndexRow]) -> dict[str, Any]:
    """A report record for a part built before reports were recorded: payload bits shared by
    block count (rasters) and length (blobs), no times, shards or samples."""
    stats = record.stats
    recorder = PartRecorder()
    blocks = sum(r.num_blocks for r in rows if r.is_raster) or 1
    lengths = sum(r.blob_length for r in rows if r.is_blob) or 1
    for index, row in enumerate(rows):
        recorder.objects[index] = _Object(_prefix(row.key), row.kind, row.size, row.dims)
        if row.is_raster:
            recorder._bits[index] = 8.0 * stats.pixel_payload_bytes * row.num_blocks / blocks
        elif row.is_blob:
            recorder._bits[index] = 8.0 * stats.blob_payload_bytes * row.blob_length / lengths
    result = recorder.finish()
    result.update(bits_method="proportional-to-blocks", timed=False)
    return result


def _prefix(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def build_report(manifest: Manifest, records: list[PartRecord], *, url: str,
                 read_index: Callable[[PartRecord], list[IndexRow]] | None = None,
                 generated_by: str = "archive") -> dict[str, Any]:
    """The report of an archive. `read_index(record)` gives a part's index rows; it is only
    called for parts whose done record has no `"report"` (built before reports existed)."""
    records = sorted(records, key=lambda r: r.part)
    root = source_name(manifest.source)
    merged: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    shards: list[dict[str, Any]] = []
    methods, untimed, offset = set(), 0, 0
    for record in records:
        part = record.observed.get("report")
        if part is None:
            if read_index is None:
                raise ValueError(f"part {record.part} has no report record")
            part = part_record_from_index(record, read_index(record))
        methods.add(part["bits_method"])
        untimed += 0 if part.get("timed", True) else 1
        for prefix, entry in part["datasets"].items():
            _merge(merged.setdefault(prefix or root, _zero_entry()), entry)
        for sample in part["samples"]:
            samples.setdefault(sample["dataset"] or root, []).append(sample)
        for shard in part["shards"]:
            shards.append(dict(shard, shard=offset + shard["shard"], part=record.part,
                               row_group=shard["shard"]))
        offset += record.shards
    totals = manifest.totals
    files = [f for f in manifest.files if f.get("role") != "report"]
    archive = _archive_section(manifest, url, files, shards, records, methods, untimed)
    overhead = archive["overhead_bytes"]
    objects = max(1, totals["objects"])
    datasets = [_dataset_row(name, merged[name], overhead * merged[name]["objects"] / objects,
                             baseline_summary(samples.get(name, []), "archive"))
                for name in sorted(merged)]
    everything = _zero_entry()
    for entry in merged.values():
        _merge(everything, entry)
    all_samples = [s for group in samples.values() for s in group]
    return {
        "schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION,
        "generated_by": generated_by, "generated_unix": round(time.time(), 3),
        "archive": archive,
        "totals": _dataset_row(ALL, everything, overhead, baseline_summary(all_samples, "archive")),
        "datasets": datasets,
        "codecs": _codec_rows(shards, totals, manifest.codec),
        "shards": {"total": archive["shards"], "listed": [_shard_row(s) for s in
                                                            shards[:SHARD_ROWS]]},
        "methods": {"per_image_bits": "; ".join(sorted(methods)), **METHOD_NOTES},
    }


# How the report's figures are made: the same for every report, so an archive stores only
# `per_image_bits` and `with_method_notes` puts these back when it is read
METHOD_NOTES = {
    "histogram": f"per-image codec bits/dim in bins of {BIN_WIDTH} from 0 to "
                 f"{BIN_WIDTH * BINS:g}; larger values count as overflow",
    "overhead": "everything the manifest names beyond codec and fallback payloads, shared "
                "among datasets by object count (manifest and report excluded)",
    "baselines": "each sampled image coded as its own file: PNG (zlib 9, filter search), WebP "
                 "lossless (method 6), JPEG-XL lossless (effort 9), zstd -19 of the raw "
                 "pixels; ours = the same images' codec bits",
}


def without_method_notes(report: dict[str, Any]) -> dict[str, Any]:
    """The report as an archive stores it (the constant notes left out)."""
    methods = {k: v for k, v in report["methods"].items() if k not in METHOD_NOTES}
    return {**report, "methods": methods}


def with_method_notes(report: dict[str, Any]) -> dict[str, Any]:
    """A stored report with its constant notes back (older archives stored them)."""
    return {**report, "methods": {**report["methods"], **METHOD_NOTES}}


def _zero_entry() -> dict[str, Any]:
    return {"objects": 0, "rasters": 0, "blobs": 0, "skipped": 0, "source_bytes": 0,
            "raster_dims": 0, "raster_bits": 0.0, "blob_bytes": 0, "blob_bits": 0.0,
            "seconds": 0.0, "bpd_sum": 0.0, "bpd_min": None, "bpd_max": None, "hist": {}}


def _merge(into: dict[str, Any], entry: dict[str, Any]) -> None:
    for name in ("objects", "rasters", "blobs", "skipped", "source_bytes", "raster_dims",
                 "raster_bits", "blob_bytes", "blob_bits", "seconds", "bpd_sum"):
        into[name] += entry[name]
    for name, pick in (("bpd_min", min), ("bpd_max", max)):
        if entry[name] is not None:
            into[name] = entry[name] if into[name] is None else pick(into[name], entry[name])
    for cell, count in entry["hist"].items():
        into["hist"][cell] = into["hist"].get(cell, 0) + count


def _ratio(top: float, bottom: float) -> float | None:
    return round(top / bottom, 4) if bottom else None


def _rate(raw: float, seconds: float) -> float | None:
    return round(raw / seconds / 1e6, 3) if seconds > 0 else None


def _dataset_row(name: str, e: dict[str, Any], overhead: float,
                 baselines: dict[str, Any] | None) -> dict[str, Any]:
    codec_payload, fallback_payload = e["raster_bits"] / 8, e["blob_bits"] / 8
    payload = codec_payload + fallback_payload
    archived = payload + overhead
    raw = e["raster_dims"] + e["blob_bytes"]
    counts = [0] * (BINS + 1)
    for cell, count in e["hist"].items():
        counts[int(cell)] += count
    return {
        "name": name, "objects": e["objects"], "skipped": e["skipped"],
        "source_bytes": e["source_bytes"], "raw_bytes": raw,
        "payload_bytes": round(payload), "overhead_bytes": round(overhead),
        "archived_bytes": round(archived),
        "bits_per_dim": _ratio(8 * archived, raw), "ratio": _ratio(raw, archived),
        "source_ratio": _ratio(e["source_bytes"], archived),
        "codec": {"objects": e["rasters"], "dims": e["raster_dims"],
                  "payload_bytes": round(codec_payload),
                  "bits_per_dim": _ratio(e["raster_bits"], e["raster_dims"])},
        "fallback": {"objects": e["blobs"], "raw_bytes": e["blob_bytes"],
                     "payload_bytes": round(fallback_payload),
                     "ratio": _ratio(e["blob_bytes"], fallback_payload)},
        "seconds": round(e["seconds"], 3), "throughput_mb_s": _rate(raw, e["seconds"]),
        "image_bits_per_dim": {
            "images": e["rasters"],
            "mean": _ratio(e["bpd_sum"], e["rasters"]),
            "min": None if e["bpd_min"] is None else round(e["bpd_min"], 4),
            "max": None if e["bpd_max"] is None else round(e["bpd_max"], 4),
            "bin_width": BIN_WIDTH, "counts": counts[:BINS], "overflow": counts[BINS],
        },
        "baselines": {"archive": baselines, "restored": None},
    }


def baseline_summary(samples: list[dict[str, Any]], source: str) -> dict[str, Any] | None:
    """Classical codecs against ours on the sampled images (those every present codec took)."""
    usable = [s for s in samples if "error" not in s["bytes"]]
    if not usable:
        return None
    dims = sum(s["dims"] for s in usable)
    ours = sum(s["ours_bits"] for s in usable)
    sizes: dict[str, int | None] = {}
    for name in NAMES:
        values = [s["bytes"].get(name) for s in usable]
        sizes[name] = None if any(v is None for v in values) else sum(values)
    return summarize_baselines(source, len(usable), len(samples) - len(usable), dims, ours, sizes)


def summarize_baselines(source: str, images: int, excluded: int, dims: int, ours_bits: float,
                        sizes: dict[str, int | None]) -> dict[str, Any]:
    per_dim = {name: None if size is None else round(8 * size / dims, 4)
               for name, size in sizes.items()}
    present = {name: value for name, value in per_dim.items() if value is not None}
    best = min(present, key=present.__getitem__) if present else None
    ours = ours_bits / dims
    return {
        "source": source, "images": images, "excluded": excluded, "dims": dims,
        "ours_bits": round(ours_bits, 3), "bytes": sizes, "ours_bits_per_dim": round(ours, 4),
        "bits_per_dim": per_dim, "best": best,
        "saving_vs_best_pct": None if best is None
        else round(100 * (1 - ours / present[best]), 2),
    }


def merge_baselines(summaries: list[dict[str, Any]], source: str) -> dict[str, Any] | None:
    """The totals row's baselines from the datasets' ones."""
    if not summaries:
        return None
    sizes = {name: None if any(s["bytes"][name] is None for s in summaries)
             else sum(s["bytes"][name] for s in summaries) for name in NAMES}
    return summarize_baselines(source, sum(s["images"] for s in summaries),
                               sum(s["excluded"] for s in summaries),
                               sum(s["dims"] for s in summaries),
                               sum(s["ours_bits"] for s in summaries), sizes)


def _archive_section(manifest: Manifest, url: str, files: list[dict[str, Any]],
                     shards: list[dict[str, Any]], records: list[PartRecord], methods: set[str],
                     untimed: int) -> dict[str, Any]:
    totals = manifest.totals
    sizes: dict[str, int] = {}
    for entry in files:
        sizes[entry["role"]] = sizes.get(entry["role"], 0) + entry["size"]
    payload = totals["pixel_payload_bytes"] + totals["blob_payload_bytes"]
    archive_bytes = sum(sizes.values())
    models = manifest.models
    return {
        "url": url, "run_id": manifest.run_id, "source": manifest.source,
        "format_version": manifest.format_version, "created_unix": manifest.created_unix,
        "codec": manifest.codec, "models": [m["sha256"] for m in models],
        "label": manifest.codec + "".join(f"@{m['sha256'][:12]}" for m in models),
        "settings": manifest.settings, "archive_seconds": manifest.archive_seconds,
        "parts": len(records), "shards": sum(r.shards for r in records),
        "objects": totals["objects"], "source_bytes": totals["source_bytes"],
        "archive_bytes": archive_bytes, "payload_bytes": payload,
        "overhead_bytes": archive_bytes - payload,
        "overhead": {"index_bytes": sizes.get("index", 0),
                     "data_file_bytes": sizes.get("data", 0) - payload,
                     "model_bytes": sizes.get("model", 0),
                     "bookkeeping_bytes": sizes.get("bookkeeping", 0)},
        "parts_without_measurements": untimed,
        "bits_method": BITS_METHOD if methods <= {BITS_METHOD} else "; ".join(sorted(methods)),
        "fidelity": _fidelity(manifest),
        **({"auto": auto_section(totals, manifest.auto_model)} if manifest.auto_model else {}),
    }


def auto_section(totals: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """What `--codec auto` chose: the rasters the model coded and what they saved against
    their own JPEG-XL streams, the rest as JPEG-XL, and whether the model was kept."""
    model, streams = totals.get("auto_model_bytes", 0), totals.get("auto_model_jpegxl_bytes", 0)
    return {
        "model_sha256": decision["model_sha256"], "kept": decision["kept"],
        "candidates": totals.get("auto_candidates", 0),
        "model_rasters": totals.get("auto_model_rasters", 0), "model_bytes": model,
        "model_jpegxl_bytes": streams,
        "saved_pct": round(100.0 * (streams - model) / streams, 3) if streams else None,
        "above_jpegxl": totals.get("auto_model_above_jpegxl", 0),
        "jpegxl_rasters": totals.get("whole_rasters", 0),
        "saved_bytes": decision["saved_bytes"], "copy_bytes": decision["copy_bytes"],
        "parts_rebuilt": decision["parts_rebuilt"],
    }


def _fidelity(manifest: Manifest) -> dict[str, Any]:
    """How objects come back: rasters rebuilt byte for byte from their pixels, objects kept
    as bytes, JPEGs recompressed losslessly (format 1 archives restored rasters as PNG)."""
    totals = manifest.totals
    jpegs = totals.get("jpegs", 0)
    return {
        "mode": (manifest.fidelity or "png") if manifest.format_version >= 2 else "png",
        "rasters": totals["rasters"],
        "byte_exact_rasters": totals.get("byte_exact_rasters", 0),
        "bytes_path_objects": totals["blobs"] - jpegs,
        "jpegs": jpegs,
        "jpeg_raw_bytes": totals.get("jpeg_raw_bytes", 0),
        "jpeg_payload_bytes": totals.get("jpeg_payload_bytes", 0),
        "shards_recoded": totals.get("shards_recoded", 0),
    }


def _shard_row(shard: dict[str, Any]) -> dict[str, Any]:
    dims = shard["raw_bytes"]
    return {**shard, "bits_per_dim": _ratio(8 * shard["payload_bytes"], dims),
            "throughput_mb_s": _rate(dims, shard["seconds"])}


def _codec_rows(shards: list[dict[str, Any]], totals: dict[str, Any],
                codec_name: str) -> list[dict[str, Any]]:
    """Per codec and model (the fallback is `zstd`): shards, sizes, time; bits/dim over the
    pixel dims of the rasters (fallback: over raw bytes)."""
    rows: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    if not shards:  # parts without measurements: totals only
        for kind, codec, payload, dims, count in (
                ("pixels", codec_name, "pixel_payload_bytes", "raw_pixel_bytes", "pixel_shards"),
                ("blob", "zstd", "blob_payload_bytes", "blob_raw_bytes", "blob_shards")):
            if totals[count]:
                rows[(kind, codec, None)] = {
                    "kind": kind, "codec": codec, "model_sha256": None,
                    "shards": totals[count], "blocks": None, "raw_bytes": totals[dims],
                    "payload_bytes": totals[payload], "seconds": None}
    for shard in shards:
        key = (shard["kind"], shard["codec"], shard["model_sha256"])
        row = rows.setdefault(key, {"kind": shard["kind"], "codec": shard["codec"],
                                    "model_sha256": shard["model_sha256"], "shards": 0,
                                    "blocks": 0, "raw_bytes": 0, "payload_bytes": 0,
                                    "seconds": 0.0, "objects": 0, "dims": 0})
        row["shards"] += 1
        row["objects"] += shard["objects"]
        # pixel dims and objects per codec (records before 2026-12-02: from the totals)
        row["dims"] = (row["dims"] + shard["dims"] if "dims" in shard and row["dims"] is not None
                       else None)
        row["blocks"] += shard["blocks"]
        row["raw_bytes"] += shard["raw_bytes"]
        row["payload_bytes"] += shard["payload_bytes"]
        row["seconds"] += shard["seconds"]
    result = []
    for row in rows.values():
        pixels = row["kind"] == "pixels"
        seconds = row["seconds"]
        dims, objects = row.pop("dims", None), row.pop("objects", None)
        if dims is None:
            jpegs, whole = totals.get("jpegs", 0), totals.get("whole_rasters", 0)
            dims = totals["raw_pixel_bytes"] if pixels else row["raw_bytes"]
            objects = (totals["rasters"] - whole if pixels
                       else jpegs if row["codec"] == JPEG_CODEC
                       else whole if row["codec"] == JPEGXL_CODEC else totals["blobs"] - jpegs)
        result.append({**row, "objects": objects,
                       "dims": dims, "seconds": None if seconds is None else round(seconds, 3),
                       "bits_per_dim": _ratio(8 * row["payload_bytes"], dims),
                       "ratio": _ratio(dims, row["payload_bytes"]),
                       "throughput_mb_s": None if seconds is None
                       else _rate(row["raw_bytes"], seconds)})
    return result


# --- comparing two archives ----------------------------------------------------------------

METRICS = (
    ("codec bits/dim", lambda d: d["codec"]["bits_per_dim"]),
    ("archive bits/dim", lambda d: d["bits_per_dim"]),
    ("ratio", lambda d: d["ratio"]),
    ("archived bytes", lambda d: d["archived_bytes"]),
    ("seconds", lambda d: d["seconds"]),
    ("throughput MB/s", lambda d: d["throughput_mb_s"]),
)


def _pairs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Datasets matched by name; two single-dataset archives are paired whatever their names
    (root-level keys are named after each archive's source folder)."""
    left = {d["name"]: d for d in a["datasets"]}
    right = {d["name"]: d for d in b["datasets"]}
    if len(left) == 1 and len(right) == 1 and not set(left) & set(right):
        (name_a, da), (name_b, db) = next(iter(left.items())), next(iter(right.items()))
        return [(name_a if name_a == name_b else f"{name_a} | {name_b}", da, db)]
    return [(name, left.get(name), right.get(name)) for name in sorted(set(left) | set(right))]


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two reports side by side: per dataset (and all), each metric for A and B and B's change
    against A in percent."""
    rows = []
    for name, da, db in [*_pairs(a, b), (ALL, a["totals"], b["totals"])]:
        metrics = []
        for metric, get in METRICS:
            va = None if da is None else get(da)
            vb = None if db is None else get(db)
            change = (round(100 * (vb - va) / va, 2) if va and vb is not None else None)
            metrics.append({"metric": metric, "a": va, "b": vb, "change_pct": change})
        rows.append({"name": name, "metrics": metrics})
    settings_a, settings_b = a["archive"]["settings"], b["archive"]["settings"]
    differ = {name: [settings_a.get(name), settings_b.get(name)]
              for name in sorted(set(settings_a) | set(settings_b))
              if settings_a.get(name) != settings_b.get(name)}
    return {"schema": COMPARISON_NAME, "schema_version": SCHEMA_VERSION, "a": a, "b": b,
            "settings_differ": differ, "datasets": rows}


def to_json(report: dict[str, Any], *, compact: bool = False) -> str:
    """Indented for people (`report --json`); compact where it is stored (the archive)."""
    if compact:
        return json.dumps(report, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
    return json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n"
