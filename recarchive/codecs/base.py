"""The one interface between codecs and everything that stores or schedules shards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

BLOCK_SIZE = 32


class CodecError(ValueError):
    """A shard cannot be coded or decoded as asked (wrong layout, model, or damaged payload)."""


@dataclass(frozen=True)
class EncodedShard:
    """A coded shard: the ANS message bytes plus the JSON-safe parameters decoding needs."""

    payload: bytes
    num_blocks: int
    channels: int
    params: dict[str, Any] = field(default_factory=dict)
    # What each block cost, in bits, as the codec measured it while coding (in memory only,
    # never stored; None where a codec does not measure; NaN for a block coded raw as a
    # chain's start). Reports share the payload among objects by it.
    block_bits: np.ndarray | None = field(default=None, compare=False, repr=False)
    # Codecs that code each object alone (`rec`): per object of the shard (its run of blocks,
    # in order), (offset, length) of its unit in the payload, which `decode_unit` decodes
    # alone. In memory only: archives record them in their index (None: no units).
    units: tuple[tuple[int, int], ...] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, eq=False)
class BlockGeometry:
    """Where a shard's blocks sit in their objects: for block b, its object (`objects[b]`, any
    label, equal for blocks of one object), its cell (`cells[b]`, its index in the object's
    row-major block grid) and the grid's size (`rows[b]` × `cols[b]`); where known, the
    object's size in pixels (`heights[b]` × `widths[b]`), which tells the padding of the
    blocks at its right and bottom edges (`real_extent`).

    Shards keep an object's blocks together in raster order, so a codec that reads decoded
    neighbours finds them a fixed distance back. Codecs that use it store it in their
    parameters (`to_params`: runs of [blocks, rows, cols, first cell] or, with the sizes,
    [blocks, rows, cols, first cell, height, width], consecutive objects of one grid (and
    size) in one run: a shard of one-block images is one run), so a shard decodes alone.
    """

    objects: np.ndarray
    cells: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    heights: np.ndarray | None = None
    widths: np.ndarray | None = None

    @classmethod
    def lone(cls, count: int) -> BlockGeometry:
        """Every block an object of its own (what a shard without geometry is taken as)."""
        ones = np.ones(count, np.int64)
        return cls(np.arange(count), np.zeros(count, np.int64), ones, ones)

    @classmethod
    def from_params(cls, runs: list, num_blocks: int) -> BlockGeometry:
        """The inverse of `to_params`, checked against the shard's block count."""
        objects, cells, rows, cols, sizes, base = [], [], [], [], [], 0
        with_sizes = bool(runs) and len(runs[0]) == 6
        for run in runs:
            if len(run) != (6 if with_sizes else 4):
                raise CodecError(f"shard geometry run {run} is impossible (damaged parameters)")
            count, grid_rows, grid_cols, first, *size = (int(v) for v in run)
            grid = grid_rows * grid_cols
            if (count < 1 or grid_rows < 1 or grid_cols < 1 or not 0 <= first < grid
                    or (size and (-(-size[0] // BLOCK_SIZE), -(-size[1] // BLOCK_SIZE))
                        != (grid_rows, grid_cols))):
                raise CodecError(f"shard geometry run {run} is impossible (damaged parameters)")
            index = first + np.arange(count)
            objects.append(base + index // grid)
            cells.append(index % grid)
            rows.append(np.full(count, grid_rows))
            cols.append(np.full(count, grid_cols))
            sizes.append(np.tile(np.asarray(size, np.int64), (count, 1)))
            base += int(index[-1] // grid) + 1
        if sum(len(c) for c in cells) != num_blocks:
            raise CodecError(f"shard geometry covers {sum(len(c) for c in cells)} blocks, the "
                             f"shard holds {num_blocks} (damaged parameters)")
        if not runs:
            return cls.lone(0)
        parts = [np.concatenate(a).astype(np.int64) for a in (objects, cells, rows, cols)]
        if with_sizes:
            size = np.concatenate(sizes)
            parts += [size[:, 0], size[:, 1]]
        return cls(*parts)

    def __len__(self) -> int:
        return len(self.cells)

    def __getitem__(self, blocks: slice) -> BlockGeometry:
        """The geometry of a run of the blocks (a shard's, of an object list's)."""
        return BlockGeometry(*(None if a is None else a[blocks]
                               for a in (self.objects, self.cells, self.rows, self.cols,
                                         self.heights, self.widths)))

    def real_extent(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows and columns of real pixels in each block, counted from its top left (the rest
        is padding), or None where the objects' sizes are not known."""
        if self.heights is None or self.widths is None:
            return None
        row, col = self.cells // self.cols, self.cells % self.cols
        return (np.minimum(self.heights - BLOCK_SIZE * row, BLOCK_SIZE),
                np.minimum(self.widths - BLOCK_SIZE * col, BLOCK_SIZE))

    def to_params(self) -> list[list[int]]:
        """Runs of [blocks, rows, cols, first cell (, height, width)]: JSON-safe and a few
        numbers a shard."""
        def shape(b: int) -> tuple[int, ...]:
            grid = (int(self.rows[b]), int(self.cols[b]))
            if self.heights is None or self.widths is None:
                return grid
            return (*grid, int(self.heights[b]), int(self.widths[b]))

        runs: list[list[int]] = []
        for b in range(len(self)):
            cell, grid = int(self.cells[b]), shape(b)
            if runs and b and shape(b - 1) == grid:
                previous = int(self.cells[b - 1])
                same = self.objects[b] == self.objects[b - 1]
                if (same and cell == previous + 1) or (
                        not same and cell == 0 and previous == grid[0] * grid[1] - 1):
                    runs[-1][0] += 1
                    continue
            runs.append([1, grid[0], grid[1], cell, *grid[2:]])
        return runs

    def neighbours(self) -> np.ndarray:
        """(N, 4) shard positions of each block's above-left, above, above-right and left
        neighbours (of the same object, in this shard), -1 where there is none."""
        count = len(self)
        row, col = self.cells // self.cols, self.cells % self.cols
        found = np.full((count, 4), -1, np.int64)
        b = np.arange(count)
        for k, (d_row, d_col) in enumerate(((-1, -1), (-1, 0), (-1, 1), (0, -1))):
            back = -d_row * self.cols - d_col
            other = b - back
            inside = ((row + d_row >= 0) & (col + d_col >= 0) & (col + d_col < self.cols)
                      & (other >= 0))
            safe = np.where(inside, other, 0)
            inside &= (self.objects[safe] == self.objects) & (self.cells[safe] ==
                                                               self.cells - back)
            found[:, k] = np.where(inside, other, -1)
        return found


@runtime_checkable
class BlockCodec(Protocol):
    """Codes uint8 blocks of shape (N, 32, 32, C), C in `channel_layouts`, exactly.

    `decode(encode(blocks))` must equal `blocks` bit for bit on any machine, batch size and
    thread count: that is the contract every codec is tested against. `geometry` says where
    the blocks sit in their objects (None: each alone); a codec that reads neighbouring blocks
    says so (`uses_block_context`, optional) and keeps it in the shard's parameters, the others
    ignore it (`encode_shard` passes it only to the first kind).
    """

    name: str

    @property
    def model_sha256(self) -> str | None:
        """sha256 of the model file the codec needs (None for model-free codecs)."""
        ...

    @property
    def channel_layouts(self) -> tuple[int, ...]:
        """Channel counts it accepts (1 = L, 2 = LA, 3 = RGB, 4 = RGBA)."""
        ...

    def encode(self, blocks: np.ndarray,
               geometry: BlockGeometry | None = None) -> EncodedShard: ...

    def decode(self, shard: EncodedShard) -> np.ndarray: ...


def encode_shard(codec: BlockCodec, blocks: np.ndarray,
                 geometry: BlockGeometry | None) -> EncodedShard:
    """`codec.encode`, given the geometry where the codec reads neighbouring blocks
    (`uses_block_context`) or codes each object alone (`codes_objects_alone`): codecs
    registered before geometry existed take blocks only."""
    if geometry is not None and (getattr(codec, "uses_block_context", False)
                                 or getattr(codec, "codes_objects_alone", False)):
        return codec.encode(blocks, geometry)
    return codec.encode(blocks)


# Shards a worker codes together by default (`encode_shards`): 8 one-chain CIFAR-10 shards of
# 1,024 blocks make a batch of 8 blocks a net call, about twice as fast as one on a CPU core,
# for 8 shards' blocks in memory at once (as Bit-Swap's int64 pixel tensor, about 200 MB).
SHARDS_TOGETHER = 8


def encode_shards(codec: BlockCodec, shards: Sequence[tuple[np.ndarray, BlockGeometry | None]],
                  ) -> list[EncodedShard]:
    """Several shards: coded together where the codec can (`encode_many`: their chains share
    every net call, each shard still gets the bytes it gets alone), else one by one."""
    many = getattr(codec, "encode_many", None)
    if many is not None:
        return many(shards)
    return [encode_shard(codec, blocks, geometry) for blocks, geometry in shards]


def decode_shards(codec: BlockCodec, shards: Sequence[EncodedShard]) -> list[np.ndarray]:
    """The inverse of `encode_shards` (`decode_many` where the codec has it)."""
    many = getattr(codec, "decode_many", None)
    if many is not None:
        return many(shards)
    return [codec.decode(shard) for shard in shards]


def check_blocks(blocks: np.ndarray, codec: BlockCodec) -> np.ndarray:
    """Refuse blocks the codec cannot take, naming what is wrong."""
    if blocks.dtype != np.uint8 or blocks.ndim != 4 or blocks.shape[1:3] != (32, 32):
        raise CodecError(
            f"codec {codec.name!r} takes uint8 blocks of shape (N, 32, 32, C), got "
            f"{blocks.dtype} {blocks.shape}"
        )
    if blocks.shape[3] not in codec.channel_layouts:
        raise CodecError(
            f"codec {codec.name!r} does not code {blocks.shape[3]}-channel blocks "
            f"(it takes {codec.channel_layouts})"
        )
    return np.ascontiguousarray(blocks)
