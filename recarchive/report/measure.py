"""What a report needs, recorded while a part is built (it cannot be recovered later without
decoding every shard again): per-shard coding time and payload, per-image coded bits and time,
and classical baselines on a few sampled rasters. `PartRecorder.finish` gives the part's
`"report"` record (kept in its done record, so a resumed run reuses it with the part). It
observes the archive through its events (`recarchive.archives.events`); the archive does not
know it.

Per-image bits (`BITS_METHOD`): each block's share of its shard's payload, as the codec
measured it (`recarchive.codecs.costs`); an image gets the bits of its blocks, padding
included. Blob shards share their bits by object length, or by
each object's own stream where the shard says (JPEG-XL shards of whole rasters: exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recarchive.archives.events import ObjectAdded, ShardWritten
from recarchive.archives.format import SHARD_PIXELS
from recarchive.codecs.costs import block_bits
from recarchive.report import classical

BITS_METHOD = "codec-measured"  # "order0-weighted" in records before 2026-12-02
RECORD_VERSION = 1
# histogram of per-image bits/dim: fixed bins so part records merge by adding counts
BIN_WIDTH = 0.05
BINS = 200  # [0, 10) bits/dim; larger values count as overflow
# archive-time baselines: the first few rasters of each dataset in each part, small ones only
# (JPEG-XL effort 9 and WebP method 6 take seconds on a photo; `report --baselines N` measures
# any size)
SAMPLE_PER_DATASET = 4
SAMPLE_MAX_PIXELS = 256 * 256


def dataset_of(key: str) -> str:
    """Top-level prefix of a key; '' for keys at the root (named after the source later)."""
    return key.split("/", 1)[0] if "/" in key else ""


def histogram_bin(bits_per_dim: float) -> int:
    """Bin index of a per-image bits/dim; BINS means overflow."""
    return min(BINS, max(0, int(bits_per_dim / BIN_WIDTH)))


@dataclass
class _Object:
    dataset: str
    kind: str
    size: int
    raw: int  # pixel dims (H*W*C) of rasters, bytes of blobs, 0 for skipped
    bits: float = 0.0
    seconds: float = 0.0


@dataclass
class PartRecorder:
    """A part observer (`recarchive.archives.events`): object i is the part's i-th index row.
    Build one per part with `PartRecorder.for_part`."""

    name = "report"  # the done record's key for `finish`
    objects: dict[int, _Object] = field(default_factory=dict)
    shards: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    _bits: dict[int, float] = field(default_factory=dict)
    _seconds: dict[int, float] = field(default_factory=dict)
    # pixel shards' objects and their blocks in each (a shard's pixel dims, at `finish`)
    _shard_blocks: list[tuple[dict[str, Any], dict[int, int]]] = field(default_factory=list)
    _blocks_of: dict[int, int] = field(default_factory=dict)

    @classmethod
    def for_part(cls, part: int) -> PartRecorder:
        return cls()

    def __call__(self, event: ObjectAdded | ShardWritten) -> None:
        if isinstance(event, ObjectAdded):
            self.object_added(event)
        elif event.kind == SHARD_PIXELS:
            self.pixel_shard(event)
        else:
            self.blob_shard(event)

    def object_added(self, event: ObjectAdded) -> None:
        """The object's index row is final (kind, shape), with its ingest time."""
        row = event.row
        self.objects[event.index] = _Object(dataset_of(row.key), row.kind, row.size, row.dims)
        self._seconds[event.index] = self._seconds.get(event.index, 0.0) + event.seconds
        if event.pixels is not None:
            self.sample(event.index, row.key, event.pixels)

    def sample(self, index: int, key: str, pixels: np.ndarray) -> None:
        """Measure classical codecs on this raster if its dataset still needs samples."""
        dataset = dataset_of(key)
        taken = sum(1 for s in self.samples if s["dataset"] == dataset)
        if taken >= SAMPLE_PER_DATASET or pixels.shape[0] * pixels.shape[1] > SAMPLE_MAX_PIXELS:
            return
        try:
            sizes = classical.coded_bytes(pixels)
        except classical.BaselineError as error:
            sizes = {"error": str(error)}
        self.samples.append({"index": index, "key": key, "dataset": dataset,
                             "dims": int(pixels.size), "bytes": sizes})

    def pixel_shard(self, event: ShardWritten) -> None:
        """A coded pixel shard: `owners[i]` is the object index of block i."""
        blocks = event.blocks
        assert blocks is not None
        bits = block_bits(blocks, event.payload_bytes, event.block_bits)
        objects = self._share(event.owners, bits, event.seconds / len(blocks))
        self.shards.append({"shard": event.number, "kind": "pixels", "codec": event.codec,
                            "model_sha256": event.model_sha256,
                            "channels": int(blocks.shape[3]), "blocks": len(blocks),
                            "objects": objects, "raw_bytes": int(blocks.size),
                            "payload_bytes": event.payload_bytes,
                            "seconds": round(event.seconds, 6)})
        ids, counts = np.unique(event.owners, return_counts=True)
        held = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        self._shard_blocks.append((self.shards[-1], held))
        for index, count in held.items():
            self._blocks_of[index] = self._blocks_of.get(index, 0) + count

    def blob_shard(self, event: ShardWritten) -> None:
        """A fallback shard of whole objects, concatenated and compressed."""
        lengths = event.lengths or []
        raw = sum(lengths)
        weights = (np.asarray(event.block_bits, float) if event.block_bits is not None
                   else np.asarray(lengths, float) if raw else np.ones(len(lengths)))
        share = weights / weights.sum()
        self._share(event.owners, 8.0 * event.payload_bytes * share, 0.0,
                    event.seconds * share)
        self.shards.append({"shard": event.number, "kind": "blob", "codec": event.codec,
                            "model_sha256": None, "channels": 0, "blocks": 0,
                            "objects": len(event.owners), "raw_bytes": raw, "dims": raw,
                            "payload_bytes": event.payload_bytes,
                            "seconds": round(event.seconds, 6)})

    def _share(self, owners: np.ndarray, bits: np.ndarray, seconds_each: float,
               seconds: np.ndarray | None = None) -> int:
        """Add per-item bits and seconds to their objects; return how many objects."""
        ids, inverse = np.unique(owners, return_inverse=True)
        bit_sums = np.bincount(inverse, weights=bits)
        time_sums = (np.bincount(inverse) * seconds_each if seconds is None
                     else np.bincount(inverse, weights=seconds))
        for position, index in enumerate(ids.tolist()):
            self._bits[index] = self._bits.get(index, 0.0) + float(bit_sums[position])
            self._seconds[index] = self._seconds.get(index, 0.0) + float(time_sums[position])
        return len(ids)

    def finish(self) -> dict[str, Any]:
        """The part's report record (JSON-ready)."""
        for shard, held in self._shard_blocks:  # its objects' pixels, shared by their blocks
            shard["dims"] = round(sum(self.objects[index].raw * count / self._blocks_of[index]
                                      for index, count in held.items()))
        datasets: dict[str, dict[str, Any]] = {}
        for index, item in sorted(self.objects.items()):
            item.bits = self._bits.get(index, 0.0)
            item.seconds = self._seconds.get(index, 0.0)
            entry = datasets.setdefault(item.dataset, _empty_dataset())
            entry["objects"] += 1
            entry["source_bytes"] += item.size
            entry["seconds"] += item.seconds
            if item.kind == "raster":
                entry["rasters"] += 1
                entry["raster_dims"] += item.raw
                entry["raster_bits"] += item.bits
                per_dim = item.bits / item.raw
                entry["bpd_sum"] += per_dim
                entry["bpd_min"] = min(entry["bpd_min"], per_dim)
                entry["bpd_max"] = max(entry["bpd_max"], per_dim)
                cell = str(histogram_bin(per_dim))
                entry["hist"][cell] = entry["hist"].get(cell, 0) + 1
            elif item.kind == "blob":
                entry["blobs"] += 1
                entry["blob_bytes"] += item.raw
                entry["blob_bits"] += item.bits
            else:
                entry["skipped"] += 1
        for entry in datasets.values():
            if not entry["rasters"]:
                entry["bpd_min"] = entry["bpd_max"] = None
        for entry in datasets.values():
            for name in ("raster_bits", "blob_bits", "bpd_sum"):
                entry[name] = round(entry[name], 6)
            entry["seconds"] = round(entry["seconds"], 6)
        samples = [{k: v for k, v in s.items() if k != "index"}
                   | {"ours_bits": round(self._bits.get(s["index"], 0.0), 3)}
                   for s in self.samples]
        return {"version": RECORD_VERSION, "bits_method": BITS_METHOD, "datasets": datasets,
                "shards": self.shards, "samples": samples}


def _empty_dataset() -> dict[str, Any]:
    return {"objects": 0, "rasters": 0, "blobs": 0, "skipped": 0, "source_bytes": 0,
            "raster_dims": 0, "raster_bits": 0.0, "blob_bytes": 0, "blob_bits": 0.0,
            "seconds": 0.0, "bpd_sum": 0.0, "bpd_min": float("inf"), "bpd_max": 0.0,
            "hist": {}}
