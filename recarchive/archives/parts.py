"""Build one part: its objects' blocks packed into coded shards, fallback bytes into zstd
shards, JPEGs into shards of losslessly recompressed streams, all as row groups of one Parquet
data file, plus the part's index table.

Nothing is committed before it was decoded and compared (Lepton's rule):
- a raster kept with a container recipe is rebuilt from its pixels and recipe, and kept as
  pixels only if the rebuilt file has the original's sha256 (else its bytes are kept, with the
  reason);
- a JPEG's recompressed stream is expanded and compared before it is used;
- with `verify_shards` (the default) every coded pixel shard is decoded and compared with its
  blocks before it is written; a shard that does not come back is coded again with the
  model-free order0 codec (itself checked), and counted in `shards_recoded`;
- where the codec codes each object alone (REC: format 4, `units`), each object's unit byte
  ranges are found in the finished data file and checked there against the payload's
  sha256 before the index records them (an object any of whose shards was recoded gets
  none, and restores from whole shards).

The per-object choice (`--codec auto`: a `model_codec` beside whole rasters): a raster the
model fits (`fits_model`) is a candidate; candidates wait, with their checked JPEG-XL stream,
until about a shard's worth of blocks has gathered, are coded once to measure what each costs
(`codecs.costs`), and go to the model's shards only where that is less than their stream,
else to the JPEG-XL shards. The shards written are coded again (a chain's neighbours change,
so costs move a little): `PartStats` counts the model's objects that ended above their stream.

Memory stays bounded by one pending shard per channel layout, one pending blob shard, one
pending JPEG shard, and the part's output file: shards are coded and appended as soon as they
fill.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import zstandard

from recarchive.archives import jpegxl
from recarchive.archives.blocks import block_grid, cut_blocks, shard_ends
from recarchive.archives.containers import rebuild_container
from recarchive.archives.events import (
    Advanced,
    Listener,
    ObjectAdded,
    PartObserver,
    ShardWritten,
    ignore,
)
from recarchive.archives.format import (
    BLOB_CODEC,
    DEFAULT_OBJECT_DIGEST_BYTES,
    FIDELITY_EXACT,
    INDEX_SCHEMA,
    INDEX_SCHEMA_UNITS,
    JPEG_CODEC,
    JPEGXL_CODEC,
    KIND_BLOB,
    KIND_RASTER,
    KIND_SKIPPED,
    SHARD_BLOB,
    SHARD_PIXELS,
    SHARD_SCHEMA,
    SHARD_STAT_COLUMNS,
)
from recarchive.archives.ingest import DEFAULT_MAX_PIXELS, Ingested, ingest
from recarchive.archives.jpeg import recompress
from recarchive.archives.records import IndexRow, PartStats, ShardRow, rows_to_table
from recarchive.archives.units import ShardUnits, blocks_digest, object_runs, payload_offsets
from recarchive.codecs import BlockCodec, CodecError, EncodedShard, get_codec
from recarchive.codecs.base import (
    BLOCK_SIZE,
    SHARDS_TOGETHER,
    BlockGeometry,
    decode_shards,
    encode_shards,
)
from recarchive.codecs.costs import block_bits

# `--codec auto`'s candidates for the model: RGB rasters up to this side (a few blocks; the
# shipped model learnt 32×32 images, and whole photos are smaller with JPEG-XL)
AUTO_MAX_SIDE = 64
AUTO_CHANNELS = 3

# Index writer options, chosen for size (the index is most of the archive's overhead):
# - sorted keys share prefixes, counters grow by small steps, the rest repeats;
# - the digest prefixes are random: DELTA_LENGTH_BYTE_ARRAY stores them back to back (PLAIN
#   would add a 4-byte length to each);
# - one row group per index file: the index is always read whole (its manifest sha256 is
#   checked), so row groups save no reads, and each costs a page per column plus footer
#   entries;
# - no column statistics and no embedded Arrow schema: nothing reads them (the manifest holds
#   each part's key range; readers check the columns by name, see `check_index_schema`).
INDEX_DICTIONARY_COLUMNS = ["kind", "format", "mode", "reason", "meta", "icc", "exif",
                            "palette", "height", "width", "channels", "num_blocks", "recipe"]
INDEX_ENCODINGS = {"key": "DELTA_BYTE_ARRAY", "size": "DELTA_BINARY_PACKED",
                   "part": "DELTA_BINARY_PACKED", "shard": "DELTA_BINARY_PACKED",
                   "block_start": "DELTA_BINARY_PACKED", "blob_offset": "DELTA_BINARY_PACKED",
                   "blob_length": "DELTA_BINARY_PACKED",
                   "sha256_prefix": "DELTA_LENGTH_BYTE_ARRAY",
                   # format 4: offsets grow by about a unit's length, lengths vary little
                   "unit_offsets.list.element": "DELTA_BINARY_PACKED",
                   "unit_lengths.list.element": "DELTA_BINARY_PACKED",
                   "unit_sha256": "DELTA_LENGTH_BYTE_ARRAY"}
INDEX_ZSTD_LEVEL = 19


@dataclass
class _Pending:
    blocks: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    rows: list[IndexRow] = field(default_factory=list)
    owners: list[Any] = field(default_factory=list)  # index row of each block / blob (report)
    cells: list[np.ndarray] = field(default_factory=list)  # each block's cell in its object


class PartBuilder:
    """Accumulates the objects of one part, in listing order; `finish` returns its files."""

    def __init__(self, part: int, codec: BlockCodec, *, shard_blocks: int,
                 blob_shard_bytes: int, zstd_level: int = 9,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 object_digest_bytes: int = DEFAULT_OBJECT_DIGEST_BYTES,
                 fidelity: str = FIDELITY_EXACT, verify_shards: bool = True,
                 listener: Listener = ignore,
                 observers: Sequence[PartObserver] = (),
                 whole_rasters: bool = False,
                 model_codec: BlockCodec | None = None,
                 shards_together: int = SHARDS_TOGETHER) -> None:
        self.part = part
        self.listener = listener
        self._blocks_left: dict[int, int] = {}  # row -> its blocks not yet in a written shard
        self.fidelity = fidelity
        self.verify_shards = verify_shards
        self.object_digest_bytes = object_digest_bytes
        self.codec = codec
        self.shard_blocks = shard_blocks
        self.shards_together = shards_together  # pixel shards coded at once (`encode_shards`)
        self.blob_shard_bytes = blob_shard_bytes
        self.zstd_level = zstd_level
        self.max_pixels = max_pixels
        self.stats = PartStats()
        self.observers = tuple(observers)  # e.g. what the compression report needs
        self.whole_rasters = whole_rasters  # rasters as JPEG-XL streams (`archives.jpegxl`)
        self._whole = _Pending()            # blocks: their pixels; owners: (row, stream)
        # `--codec auto` (with whole_rasters): the model rasters may go to
        self.model_codec = model_codec
        self._candidates = _Pending()       # blocks: their blocks; owners: (row, pixels, stream)
        self._auto_streams: dict[int, int] = {}   # row -> its JPEG-XL stream's length
        self._auto_bits: dict[int, float] = {}    # row -> its share of the model's payloads
        self._unreported_seconds = 0.0      # measuring, charged to the next shard written
        self._coding_seconds = 0.0  # shard coding so far: not charged to objects' ingest
        self._rows: list[IndexRow] = []
        self._pending: dict[tuple[str, int], _Pending] = {}  # (codec, channels) -> blocks
        self._codecs = {codec.name: codec for codec in (codec, model_codec) if codec}
        # format 4: the index locates each object's units (codecs that code objects alone)
        self._with_units = any(codes_objects_alone(c) for c in self._codecs.values())
        self._shard_units: dict[int, ShardUnits] = {}   # shard -> its units, as written
        self._without_units: set[int] = set()  # rows with a shard not coded as units
        self._block_digests: dict[int, bytes] = {}  # row -> unit_sha256 (no recipe only)
        self._blobs = _Pending()
        self._blob_size = 0
        self._jpegs = _Pending()           # blocks: the recompressed streams
        self._jpeg_methods: list[str] = []
        self._jpeg_size = 0
        self._shards = 0
        self._buffer = io.BytesIO()
        self._writer = pq.ParquetWriter(
            self._buffer, SHARD_SCHEMA,
            # payloads are coded already, the other columns a few bytes a shard, where a zstd
            # frame costs more than it saves
            compression="none",
            use_dictionary=False, write_statistics=SHARD_STAT_COLUMNS,
            # no Arrow schema in the footer (0.8 kB a part): readers take Parquet's own types
            write_page_index=False, store_schema=False,
        )

    # --- adding objects --------------------------------------------------------------------

    def add_skipped(self, key: str, size: int, reason: str) -> None:
        """An object that could not be read from the source: recorded, with the reason."""
        self.stats.objects += 1
        self.stats.skipped += 1
        self._rows.append(IndexRow(key, size, KIND_SKIPPED, self.part, reason=reason))
        self._observe(ObjectAdded(len(self._rows) - 1, self._rows[-1], None, 0.0))
        self.listener(Advanced(objects=1, bytes=size))

    def add(self, key: str, data: bytes) -> Ingested:
        """Ingest one object's bytes and pack what is kept of it."""
        began, coding = time.perf_counter(), self._coding_seconds
        kept = ingest(data, self.max_pixels, self.fidelity)
        self.stats.objects += 1
        self.stats.source_bytes += len(data)
        full_digest = hashlib.sha256(data).digest()
        digest = full_digest[:self.object_digest_bytes]
        pixels = kept.pixels
        if pixels is not None and pixels.shape[2] not in self.codec.channel_layouts:
            kept = Ingested(kind=KIND_BLOB, format=kept.format,
                            reason=f"codec {self.codec.name!r} does not code "
                            f"{pixels.shape[2]}-channel images; bytes kept")
        if kept.recipe is not None and kept.pixels is not None:
            problem = _rebuild_problem(kept.pixels, kept.recipe, full_digest)
            if problem:
                kept = Ingested(kind=KIND_BLOB, format=kept.format,
                                reason=f"{kept.format} {problem}; bytes kept")
        if kept.kind == KIND_RASTER and kept.pixels is not None:
            self._add_raster(key, len(data), digest, kept)
        elif kept.jpeg:
            packed = recompress(data)
            if isinstance(packed, tuple):
                self._add_jpeg(key, data, digest, kept, *packed)
            else:
                self._add_blob(key, data, digest, Ingested(kind=KIND_BLOB, format=kept.format,
                                                           reason=packed))
        else:
            self._add_blob(key, data, digest, kept)
        seconds = time.perf_counter() - began - (self._coding_seconds - coding)
        pixels = kept.pixels if self._rows[-1].kind == KIND_RASTER else None
        self._observe(ObjectAdded(len(self._rows) - 1, self._rows[-1], pixels, max(0.0, seconds)))
        return kept

    def _observe(self, event: ObjectAdded | ShardWritten) -> None:
        for observer in self.observers:
            observer(event)

    def _add_raster(self, key: str, size: int, digest: bytes, kept: Ingested) -> None:
        pixels = kept.pixels
        assert pixels is not None
        height, width, channels = pixels.shape
        row = IndexRow(key, size, KIND_RASTER, self.part, format=kept.format, mode=kept.mode,
                   height=height, width=width, channels=channels, sha256_prefix=digest,
                   icc=kept.icc, exif=kept.exif, palette=kept.palette,
                   meta=json.dumps(kept.meta, sort_keys=True) if kept.meta else None,
                   recipe=kept.recipe)
        self._rows.append(row)
        self.stats.rasters += 1
        self.stats.byte_exact_rasters += kept.recipe is not None
        self.stats.raw_pixel_bytes += pixels.size
        index = len(self._rows) - 1
        if self.whole_rasters:
            stream = jpegxl.compress(pixels)
            if isinstance(stream, bytes):
                if self.model_codec is not None and fits_model(pixels, self.model_codec):
                    self._add_candidate(index, row, pixels, stream)
                else:
                    self._add_whole(index, row, pixels, stream)
                return
        self._add_blocks(index, row, cut_blocks(pixels), self.codec)

    def _add_blocks(self, index: int, row: IndexRow, blocks: np.ndarray,
                    codec: BlockCodec) -> None:
        """A raster's blocks, to the pending shard of its codec and channel layout."""
        row.num_blocks = len(blocks)
        if codes_objects_alone(codec) and row.recipe is None:
            # restore checks no rebuilt file against sha256_prefix: the blocks, read by units
            self._block_digests[index] = blocks_digest(blocks, self.object_digest_bytes)
        key = (codec.name, blocks.shape[3])
        pending = self._pending.setdefault(key, _Pending())
        row.block_start = pending.count
        pending.rows.append(row)
        pending.blocks.append(blocks)
        pending.owners.append(np.full(len(blocks), index))
        pending.cells.append(np.arange(len(blocks)))
        self._blocks_left[index] = len(blocks)
        pending.count += len(blocks)
        if pending.count >= self.shard_blocks * self.shards_together:
            self._flush_pixels(key, final=False)

    def _add_candidate(self, index: int, row: IndexRow, pixels: np.ndarray,
                       stream: bytes) -> None:
        """A raster the model may code better than its JPEG-XL stream: decided with others."""
        self.stats.auto_candidates += 1
        blocks = cut_blocks(pixels)
        self._candidates.rows.append(row)
        self._candidates.blocks.append(blocks)
        self._candidates.owners.append((index, pixels, stream))
        self._candidates.count += len(blocks)
        if self._candidates.count >= self.shard_blocks * self.shards_together:
            self._choose()

    def _choose(self) -> None:
        """Code the waiting candidates once (in shards of about `shard_blocks` blocks, as
        they will be written), and send each to the model or to JPEG-XL by what it cost."""
        waiting = self._candidates
        if not waiting.rows:
            return
        self._candidates = _Pending()
        assert self.model_codec is not None
        started = time.perf_counter()
        blocks = np.concatenate(waiting.blocks)
        owner = np.repeat(np.arange(len(waiting.rows)), [len(b) for b in waiting.blocks])
        indices = np.asarray([index for index, _, _ in waiting.owners])[owner]
        cells = np.concatenate([np.arange(len(b)) for b in waiting.blocks])
        cost = np.zeros(len(waiting.rows))
        spans = np.array_split(np.arange(len(blocks)), max(1, len(blocks) // self.shard_blocks))
        chunks = [np.ascontiguousarray(blocks[span]) for span in spans]
        encoded = encode_shards(self.model_codec, [
            (chunk, self._geometry(indices[span], cells[span]))
            for chunk, span in zip(chunks, spans, strict=True)])
        for span, chunk, shard in zip(spans, chunks, encoded, strict=True):
            cost += np.bincount(owner[span], minlength=len(cost), weights=block_bits(
                chunk, len(shard.payload), shard.block_bits))
        seconds = time.perf_counter() - started
        self._coding_seconds += seconds
        self._unreported_seconds += seconds
        for row, row_blocks, (index, pixels, stream), bits in zip(
                waiting.rows, waiting.blocks, waiting.owners, cost.tolist(), strict=True):
            if bits < 8 * len(stream):
                self._auto_streams[index] = len(stream)
                self._add_blocks(index, row, row_blocks, self.model_codec)
            else:
                self._add_whole(index, row, pixels, stream)

    def _add_whole(self, index: int, row: IndexRow, pixels: np.ndarray,
                   stream: bytes) -> None:
        """A raster kept as one checked JPEG-XL stream (no blocks)."""
        # the stream's length only: its offset is the sum of the lengths before it in its
        # shard (`ArchiveReader.whole_raster`), which saves the index ~1.5 bytes a raster
        row.num_blocks, row.blob_offset, row.blob_length = 0, 0, len(stream)
        self.stats.whole_rasters += 1
        self._whole.rows.append(row)
        self._whole.blocks.append(pixels.reshape(-1))
        self._whole.owners.append((index, stream))
        self._whole.count += pixels.shape[0] * pixels.shape[1]
        # a shard of about `shard_blocks` blocks' worth of pixels, as block shards hold:
        # restoring one object decodes its whole shard
        if self._whole.count >= self.shard_blocks * BLOCK_SIZE * BLOCK_SIZE:
            self._flush_whole()

    def _add_blob(self, key: str, data: bytes, digest: bytes, kept: Ingested) -> None:
        row = IndexRow(key, len(data), KIND_BLOB, self.part, format=kept.format,
                   blob_offset=self._blob_size, blob_length=len(data), sha256_prefix=digest,
                   reason=kept.reason)
        self._rows.append(row)
        self.stats.blobs += 1
        self.stats.blob_raw_bytes += len(data)
        self._blobs.rows.append(row)
        self._blobs.blocks.append(np.frombuffer(data, np.uint8))
        self._blobs.owners.append(len(self._rows) - 1)
        self._blob_size += len(data)
        if self._blob_size >= self.blob_shard_bytes:
            self._flush_blobs()

    def _add_jpeg(self, key: str, data: bytes, digest: bytes, kept: Ingested, method: str,
                  packed: bytes) -> None:
        row = IndexRow(key, len(data), KIND_BLOB, self.part, format=kept.format,
                   blob_offset=self._jpeg_size, blob_length=len(data), sha256_prefix=digest,
                   reason=f"JPEG recompressed losslessly ({method})")
        self._rows.append(row)
        self.stats.blobs += 1
        self.stats.blob_raw_bytes += len(data)
        self.stats.jpegs += 1
        self.stats.jpeg_raw_bytes += len(data)
        self._jpegs.rows.append(row)
        self._jpegs.blocks.append(np.frombuffer(data, np.uint8))
        self._jpegs.owners.append((len(self._rows) - 1, packed))
        self._jpeg_methods.append(method)
        self._jpeg_size += len(data)
        if self._jpeg_size >= self.blob_shard_bytes:
            self._flush_jpegs()

    # --- shards ----------------------------------------------------------------------------

    def _flush_pixels(self, key: tuple[str, int], *, final: bool) -> None:
        pending = self._pending[key]
        if pending.count == 0:
            return
        blocks = np.concatenate(pending.blocks) if len(pending.blocks) > 1 else pending.blocks[0]
        owners = np.concatenate(pending.owners)
        cells = np.concatenate(pending.cells)
        cols = np.asarray([block_grid(self._rows[o].height, self._rows[o].width)[1]
                           for o in owners.tolist()])
        ends = shard_ends(cells, cols, self.shard_blocks, final)
        spans = [slice(a, b) for a, b in zip([0, *ends], ends, strict=False)]
        numbers = self._write_pixel_shards(self._codecs[key[0]],
                                           [(blocks[s], owners[s], cells[s]) for s in spans])
        start = 0
        for number, end in zip(numbers, ends, strict=True):
            # a waiting row's block_start is its offset in the waiting blocks until the shard
            # its first block lands in is written (shards end between rows, so that may be a
            # later one than the first cut)
            for row in (r for r in pending.rows if r.block_start < end):
                row.shard, row.block_start = number, row.block_start - start
            pending.rows = [r for r in pending.rows if r.shard < 0]
            start = end
        for row in pending.rows:
            row.block_start -= start
        rest = blocks[start:]
        pending.blocks = [rest] if len(rest) else []
        pending.owners = [owners[start:]] if len(rest) else []
        pending.cells = [cells[start:]] if len(rest) else []
        pending.count = len(rest)

    def _geometry(self, owners: np.ndarray, cells: np.ndarray) -> BlockGeometry:
        """Where a shard's blocks sit in their objects, for codecs that read neighbours."""
        sizes = np.asarray([(self._rows[o].height, self._rows[o].width)
                            for o in owners.tolist()], np.int64).reshape(-1, 2)
        grids = np.asarray([block_grid(*size) for size in sizes.tolist()]).reshape(-1, 2)
        return BlockGeometry(owners, cells, grids[:, 0], grids[:, 1], sizes[:, 0], sizes[:, 1])

    def _write_pixel_shards(self, coder: BlockCodec,
                            shards: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                            ) -> list[int]:
        """Code the shards (blocks, owners, cells) together (`encode_shards`), check each
        decodes back (a shard that does not is coded again with order0, alone), write them in
        order; their shard numbers."""
        if not shards:
            return []
        started = time.perf_counter()
        blocks = [np.ascontiguousarray(b) for b, _, _ in shards]
        encoded = encode_shards(coder, [(b, self._geometry(owners, cells))
                                        for b, (_, owners, cells) in zip(blocks, shards,
                                                                         strict=True)])
        coded_seconds = time.perf_counter() - started
        good = (_decode_alike(coder, encoded, blocks) if self.verify_shards
                else [True] * len(shards))
        self._coding_seconds += time.perf_counter() - started
        total_blocks = sum(len(b) for b in blocks)
        numbers = []
        for (shard_blocks, owners, _), shard, ok in zip(shards, encoded, good, strict=True):
            # each shard is charged its share of the time the group took to code
            seconds = coded_seconds * len(shard_blocks) / total_blocks
            numbers.append(self._write_pixel_shard(coder, np.ascontiguousarray(shard_blocks),
                                                   owners, shard, ok, seconds))
        return numbers

    def _write_pixel_shard(self, coder: BlockCodec, blocks: np.ndarray, owners: np.ndarray,
                           encoded: EncodedShard, decodes: bool, seconds: float) -> int:
        started = time.perf_counter()
        codec = coder
        if not decodes:
            self.stats.shards_recoded += 1
            codec = get_codec("order0")
            encoded = codec.encode(blocks)
            if not _decodes_to(codec, encoded, blocks):
                raise CodecError(f"part {self.part}: a pixel shard decodes to other blocks with "
                                 f"both {coder.name!r} and order0; nothing was written "
                                 "(report this as a bug, with the source objects)")
        payload = bytes(encoded.payload)
        units = self._units_of(codec, encoded, owners, payload)
        self.stats.pixel_shards += 1
        self.stats.model_shards += codec.model_sha256 is not None
        self.stats.block_bytes += blocks.size
        self.stats.pixel_payload_bytes += len(payload)
        if self._auto_streams:  # what `--codec auto`'s model objects cost (recoded or not)
            shares = block_bits(blocks, len(payload), encoded.block_bits)
            for owner, bits in zip(owners.tolist(), shares.tolist(), strict=True):
                if owner in self._auto_streams:
                    self._auto_bits[owner] = self._auto_bits.get(owner, 0.0) + bits
        number = self._write_shard(SHARD_PIXELS, codec.name, codec.model_sha256,
                                   encoded.params, blocks.shape[3], len(blocks),
                                   blocks.tobytes(), payload)
        if units is not None:
            self._shard_units[number] = units
        self._observe(ShardWritten(number, SHARD_PIXELS, codec.name, codec.model_sha256,
                                   owners, len(payload), seconds + self._take_seconds(),
                                   blocks=blocks, block_bits=encoded.block_bits))
        self._coding_seconds += time.perf_counter() - started  # observers' time included
        self._report_coded(owners)
        return number

    def _units_of(self, codec: BlockCodec, encoded: EncodedShard, owners: np.ndarray,
                  payload: bytes) -> ShardUnits | None:
        """The shard's units (None where its codec did not code objects alone: its objects
        then restore from whole shards)."""
        runs = object_runs(owners)
        if not self._with_units:
            return None
        if encoded.units is None or not codes_objects_alone(codec):
            self._without_units.update(runs)
            return None
        spans = tuple((int(offset), int(length)) for offset, length in encoded.units)
        if len(spans) != len(runs) or any(
                offset < 0 or length < 0 or offset + length > len(payload)
                for offset, length in spans):
            raise CodecError(f"part {self.part}: codec {codec.name!r} gave {len(spans)} units "
                             f"for a shard of {len(runs)} objects, or units outside its "
                             f"{len(payload)}-byte payload; nothing was written (a codec bug)")
        return ShardUnits(tuple(runs), spans, len(payload), hashlib.sha256(payload).digest())

    def _locate_units(self, data: bytes) -> None:
        """Record in the index where each object's units lie in the finished data file."""
        if not self._shard_units:
            return
        starts = payload_offsets(data, self._shard_units, f"part {self.part}")
        found: dict[int, list[tuple[int, int]]] = {}
        for number, units in self._shard_units.items():  # in shard order: chains' order
            for row, (offset, length) in zip(units.rows, units.spans, strict=True):
                found.setdefault(row, []).append((starts[number] + offset, length))
        for index, ranges in found.items():
            if index in self._without_units:
                continue
            row = self._rows[index]
            row.unit_offsets = [start for start, _ in ranges]
            row.unit_lengths = [length for _, length in ranges]
            row.unit_sha256 = self._block_digests.get(index)
            self.stats.unit_objects += 1

    def _report_coded(self, owners: np.ndarray) -> None:
        """Tell the listener which objects now have every block in a written shard."""
        rows, counts = np.unique(owners, return_counts=True)
        done = Advanced(blocks=len(owners))
        for row, count in zip(rows.tolist(), counts.tolist(), strict=True):
            self._blocks_left[row] -= count
            if self._blocks_left[row] == 0:
                del self._blocks_left[row]
                done += Advanced(objects=1, bytes=self._rows[row].size)
        self.listener(done)

    def _flush_blobs(self) -> None:
        if not self._blobs.rows:
            return
        raw = b"".join(part.tobytes() for part in self._blobs.blocks)
        started = time.perf_counter()
        payload = zstandard.ZstdCompressor(level=self.zstd_level).compress(raw)
        seconds = time.perf_counter() - started
        self.stats.blob_shards += 1
        self.stats.blob_payload_bytes += len(payload)
        number = self._write_shard(SHARD_BLOB, BLOB_CODEC, None, {"level": self.zstd_level},
                                   0, 0, raw, payload)
        self._observe(ShardWritten(number, SHARD_BLOB, BLOB_CODEC, None,
                                   np.asarray(self._blobs.owners), len(payload), seconds,
                                   lengths=[row.blob_length for row in self._blobs.rows]))
        self._coding_seconds += time.perf_counter() - started
        for row in self._blobs.rows:
            row.shard = number
        self.listener(Advanced(objects=len(self._blobs.rows),
                               bytes=sum(row.size for row in self._blobs.rows)))
        self._blobs = _Pending()
        self._blob_size = 0

    def _flush_jpegs(self) -> None:
        """One shard of recompressed JPEGs: the streams back to back, their methods and
        lengths in the shard's params; raw = the original files back to back."""
        if not self._jpegs.rows:
            return
        raw = b"".join(part.tobytes() for part in self._jpegs.blocks)
        streams = [packed for _, packed in self._jpegs.owners]
        payload = b"".join(streams)
        params = {"methods": self._jpeg_methods, "lengths": [len(p) for p in streams]}
        self.stats.blob_shards += 1
        self.stats.blob_payload_bytes += len(payload)
        self.stats.jpeg_payload_bytes += len(payload)
        number = self._write_shard(SHARD_BLOB, JPEG_CODEC, None, params, 0, 0, raw, payload)
        self._observe(ShardWritten(number, SHARD_BLOB, JPEG_CODEC, None,
                                   np.asarray([index for index, _ in self._jpegs.owners]),
                                   len(payload), 0.0,
                                   lengths=[row.blob_length for row in self._jpegs.rows]))
        for row in self._jpegs.rows:
            row.shard = number
        self.listener(Advanced(objects=len(self._jpegs.rows),
                               bytes=sum(row.size for row in self._jpegs.rows)))
        self._jpegs = _Pending()
        self._jpeg_methods = []
        self._jpeg_size = 0

    def _flush_whole(self) -> None:
        """One shard of whole rasters: their JPEG-XL streams back to back, in row order (each
        row's blob_length is its stream's: one object decodes alone); raw = their pixels back
        to back."""
        if not self._whole.rows:
            return
        # in index order, where readers look for them (`auto` decides candidates late)
        order = sorted(range(len(self._whole.rows)), key=lambda i: self._whole.owners[i][0])
        self._whole.rows = [self._whole.rows[i] for i in order]
        self._whole.blocks = [self._whole.blocks[i] for i in order]
        self._whole.owners = [self._whole.owners[i] for i in order]
        raw = b"".join(pixels.tobytes() for pixels in self._whole.blocks)
        streams = [stream for _, stream in self._whole.owners]
        payload = b"".join(streams)
        self.stats.pixel_shards += 1
        self.stats.pixel_payload_bytes += len(payload)
        self.stats.whole_payload_bytes += len(payload)
        number = self._write_shard(SHARD_BLOB, JPEGXL_CODEC, None, {}, 0, 0, raw, payload)
        for row in self._whole.rows:
            row.shard = number
        owners = np.asarray([index for index, _ in self._whole.owners])
        self._observe(ShardWritten(number, SHARD_BLOB, JPEGXL_CODEC, None, owners,
                                   len(payload), self._take_seconds(),
                                   lengths=[pixels.size for pixels in self._whole.blocks],
                                   block_bits=8.0 * np.asarray([len(s) for s in streams], float)))
        self.listener(Advanced(objects=len(self._whole.rows),
                               bytes=sum(row.size for row in self._whole.rows)))
        self._whole = _Pending()

    def _take_seconds(self) -> float:
        """Measuring time not yet charged to a shard (the report's per-object seconds)."""
        seconds, self._unreported_seconds = self._unreported_seconds, 0.0
        return seconds

    def _write_shard(self, kind: str, codec: str, model: str | None, params: dict[str, Any],
                     channels: int, num_blocks: int, raw: bytes, payload: bytes) -> int:
        shard = ShardRow(kind, codec, model, json.dumps(params, sort_keys=True), channels,
                         num_blocks, len(raw), hashlib.sha256(raw).digest(),
                         hashlib.sha256(payload).digest(), payload)
        self._writer.write_table(shard.as_table())
        number = self._shards
        self._shards += 1
        return number

    # --- finishing -------------------------------------------------------------------------

    @property
    def shards(self) -> int:
        return self._shards

    def finish(self) -> tuple[bytes, bytes]:
        """Flush every pending shard; return (data file bytes, index file bytes)."""
        self._choose()
        for key in sorted(self._pending):
            self._flush_pixels(key, final=True)
        self._flush_blobs()
        self._flush_jpegs()
        self._flush_whole()
        self._count_auto()
        self._writer.close()
        data = self._buffer.getvalue()
        self._locate_units(data)
        index = io.BytesIO()
        schema = INDEX_SCHEMA_UNITS if self._with_units else INDEX_SCHEMA
        table = rows_to_table(self._rows, schema)
        encodings = {name: encoding for name, encoding in INDEX_ENCODINGS.items()
                     if name.split(".")[0] in schema.names}
        pq.write_table(table, index, row_group_size=max(1, table.num_rows),
                       compression="zstd", compression_level=INDEX_ZSTD_LEVEL,
                       use_dictionary=INDEX_DICTIONARY_COLUMNS,
                       column_encoding=encodings, write_statistics=False,
                       write_page_index=False, store_schema=False)
        return data, index.getvalue()


    def _count_auto(self) -> None:
        """What the model's objects cost against their JPEG-XL streams (`--codec auto`)."""
        bits = [self._auto_bits.get(index, 0.0) for index in self._auto_streams]
        streams = list(self._auto_streams.values())
        self.stats.auto_model_rasters += len(streams)
        self.stats.auto_model_bytes += round(sum(bits) / 8)
        self.stats.auto_model_jpegxl_bytes += sum(streams)
        self.stats.auto_model_above_jpegxl += sum(
            b > 8 * s for b, s in zip(bits, streams, strict=True))


def fits_model(pixels: np.ndarray, codec: BlockCodec) -> bool:
    """Whether `--codec auto` measures a raster under the model: RGB (what the shipped models
    learnt; other layouts reach them split, see `codecs.channels`), at most AUTO_MAX_SIDE on
    each side."""
    height, width, channels = pixels.shape
    return (channels == AUTO_CHANNELS and AUTO_CHANNELS in codec.channel_layouts
            and max(height, width) <= AUTO_MAX_SIDE)


def codes_objects_alone(codec: BlockCodec) -> bool:
    """Whether the codec codes each object of a shard as a unit of its own (`units`)."""
    return bool(getattr(codec, "codes_objects_alone", False))


def _rebuild_problem(pixels: np.ndarray, recipe: bytes, digest: bytes) -> str:
    """Why the file rebuilt from pixels and recipe is not the original ("" if it is)."""
    try:
        rebuilt = rebuild_container(pixels, recipe)
    except Exception as error:  # noqa: BLE001 - any failure means: keep the bytes
        return f"container rebuild failed ({type(error).__name__}: {error})"
    if hashlib.sha256(rebuilt).digest() != digest:
        return "container rebuilt with other bytes than the original"
    return ""


def _decode_alike(codec: BlockCodec, encoded: list[EncodedShard],
                  blocks: list[np.ndarray]) -> list[bool]:
    """Decode freshly coded shards together (from their bytes, as a restore would) and
    compare each; where the group does not decode, each shard alone says which fails."""
    try:
        decoded = decode_shards(codec, [_as_stored(e) for e in encoded])
    except (CodecError, ValueError):
        return [_decodes_to(codec, e, b) for e, b in zip(encoded, blocks, strict=True)]
    return [d.shape == b.shape and bool(np.array_equal(d, b))
            for d, b in zip(decoded, blocks, strict=True)]


def _as_stored(encoded: EncodedShard) -> EncodedShard:
    """The shard as a reader gets it back: payload bytes, parameters through JSON."""
    return EncodedShard(bytes(encoded.payload), encoded.num_blocks, encoded.channels,
                        json.loads(json.dumps(encoded.params, sort_keys=True)))


def _decodes_to(codec: BlockCodec, encoded: EncodedShard, blocks: np.ndarray) -> bool:
    """Decode a freshly coded shard (from its bytes, as a restore would) and compare."""
    try:
        decoded = codec.decode(_as_stored(encoded))
    except (CodecError, ValueError):
        return False
    return decoded.shape == blocks.shape and bool(np.array_equal(decoded, blocks))

