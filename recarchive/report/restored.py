"""`recarchive report --baselines N`: classical codecs on N rasters per dataset restored from
the archive now (any size, unlike the small archive-time sample).

Rasters are drawn per dataset by reservoir sampling over the index (seeded, so a rerun picks
the same ones; memory holds N rows per dataset). Only the shards holding them are decoded; each
decoded shard is checked against its raw sha256 (`ArchiveReader.decode_pixels`) and each image
against its channels and shape. "Ours" for a sampled image is its share of its shards' payload
bits by `measure.block_bits` on the decoded shard: decoding measures nothing, so the share
follows the blocks' order-0 information (the archive-time rule where a codec did not measure;
for Bit-Swap shards, whose coder measured each block, the archive-time figures are closer).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from recarchive.archives.reader import ArchiveReader
from recarchive.archives.records import IndexRow
from recarchive.codecs.costs import block_bits
from recarchive.report import classical
from recarchive.report.build import merge_baselines, source_name, summarize_baselines
from recarchive.report.classical import NAMES
from recarchive.report.measure import dataset_of


def sample_rasters(reader: ArchiveReader, per_dataset: int,
                   seed: int = 0) -> dict[str, list[IndexRow]]:
    """Up to `per_dataset` raster index rows per dataset, uniformly at random."""
    rng = random.Random(seed)
    chosen: dict[str, list[IndexRow]] = {}
    seen: dict[str, int] = {}
    root = source_name(reader.manifest.source)
    for row in reader.rows():
        if not row.is_raster:
            continue
        name = dataset_of(row.key) or root
        seen[name] = seen.get(name, 0) + 1
        bucket = chosen.setdefault(name, [])
        if len(bucket) < per_dataset:
            bucket.append(row)
        else:
            slot = rng.randrange(seen[name])
            if slot < per_dataset:
                bucket[slot] = row
    return chosen


class _Shards:
    """Decoded shards of one part with their blocks' bits, kept while the part is sampled."""

    def __init__(self, reader: ArchiveReader, part: int, payloads: dict[tuple[int, int], int]
                 ) -> None:
        self.reader, self.part, self.payloads = reader, part, payloads
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.wholes: dict[int, bytes] = {}

    def get(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        if number not in self.cache:
            payload = self.payloads.get((self.part, number))
            if payload is None:  # not in the report's shard list: read the shard for it
                payload = len(self.reader.read_shard(self.part, number).payload)
            blocks = self.reader.decode_pixels(self.part, number)
            self.cache[number] = (blocks, block_bits(blocks, payload))
        return self.cache[number]


    def payload(self, number: int) -> bytes:
        """A JPEG-XL shard's payload (checked), whose streams decode one object at a time."""
        if number not in self.wholes:
            self.wholes[number] = self.reader.read_shard(self.part, number).payload
        return self.wholes[number]


def _restore(reader: ArchiveReader, shards: _Shards,
             row: IndexRow) -> tuple[np.ndarray, float]:
    """An image's pixels (checked) and its coded bits."""
    if row.num_blocks == 0:  # coded whole: its own stream, and that stream's bits
        pixels = reader.whole_raster(row, shards.payload(row.shard))
        return pixels, 8.0 * row.blob_length
    pieces, bits = [], 0.0
    for number, start, stop in reader.shard_chain(row.part, row.shard, row.block_start,
                                                  row.num_blocks):
        blocks, block_bit = shards.get(number)
        pieces.append(blocks[start:stop])
        bits += float(block_bit[start:stop].sum())
    return reader.object_pixels(row, np.concatenate(pieces)), bits


def measure_restored(reader: ArchiveReader, per_dataset: int, seed: int = 0,
                     payloads: dict[tuple[int, int], int] | None = None
                     ) -> dict[str, dict[str, Any]]:
    """{dataset: baseline summary} over the restored sample; `payloads` maps (part, row group)
    to payload bytes where the report lists them (saves reading those shards twice)."""
    chosen = sample_rasters(reader, per_dataset, seed)
    by_part: dict[int, list[tuple[str, IndexRow]]] = {}
    for name, rows in chosen.items():
        for row in rows:
            by_part.setdefault(row.part, []).append((name, row))
    found: dict[str, list[IndexRow]] = {name: [] for name in chosen}
    for part in sorted(by_part):
        shards = _Shards(reader, part, payloads or {})
        for name, row in sorted(by_part[part], key=lambda item: item[1].shard):
            pixels, bits = _restore(reader, shards, row)
            try:
                sizes: dict[str, Any] = classical.coded_bytes(pixels)
            except classical.BaselineError as error:
                sizes = {"error": str(error)}
            found[name].append({"dims": int(pixels.size), "ours_bits": bits, "bytes": sizes})
        reader.release(part)
    summaries = {}
    for name, samples in found.items():
        usable = [s for s in samples if "error" not in s["bytes"]]
        if not usable:
            continue
        sizes = {n: None if any(s["bytes"][n] is None for s in usable)
                 else sum(s["bytes"][n] for s in usable) for n in NAMES}
        summaries[name] = summarize_baselines(
            "restored", len(usable), len(samples) - len(usable),
            sum(s["dims"] for s in usable), sum(s["ours_bits"] for s in usable), sizes)
    return summaries


def add_restored_baselines(report: dict[str, Any], reader: ArchiveReader, per_dataset: int,
                           seed: int = 0) -> dict[str, Any]:
    """The report with each dataset's (and the totals') `baselines.restored` filled in."""
    payloads = {(s["part"], s["row_group"]): s["payload_bytes"]
                for s in report["shards"]["listed"]}
    summaries = measure_restored(reader, per_dataset, seed, payloads)
    for dataset in report["datasets"]:
        dataset["baselines"]["restored"] = summaries.get(dataset["name"])
    report["totals"]["baselines"]["restored"] = merge_baselines(list(summaries.values()),
                                                                "restored")
    return report
