"""Images to 32x32 blocks (edge-padded) and back; the image shape is recorded in the index."""

from __future__ import annotations

import numpy as np

from recarchive.codecs.base import BLOCK_SIZE


def block_grid(height: int, width: int) -> tuple[int, int]:
    """(rows, cols) of the block grid `cut_blocks` cuts an image into."""
    return -(-height // BLOCK_SIZE), -(-width // BLOCK_SIZE)


def blocks_per_image(height: int, width: int) -> int:
    rows, cols = block_grid(height, width)
    return rows * cols


def shard_ends(cells: np.ndarray, cols: np.ndarray, shard_blocks: int, final: bool) -> list[int]:
    """Where to cut blocks waiting in raster order (block b: cell `cells[b]` of an object
    whose grid has `cols[b]` columns) into shards of at most `shard_blocks`: an object that
    does not fit is cut between its block rows (unless one row alone is too wide), so every
    shard holds whole rows and a block's neighbours above it sit in the same shard. Without
    `final`, only shards that are full enough are cut; the rest waits for more blocks."""
    ends, start, count = [], 0, len(cells)
    while count - start >= shard_blocks or (final and start < count):
        end = min(start + shard_blocks, count)
        if end < count:
            back = int(cells[end] % cols[end])  # blocks of a row begun before the cut
            if back and end - back > start:
                end -= back
        ends.append(end)
        start = end
    return ends


def cut_blocks(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> (N, 32, 32, C), row-major tiles; edges padded by repeating the last
    row/column (cheap to code, and cropped off on restore)."""
    height, width, channels = pixels.shape
    rows, cols = -(-height // BLOCK_SIZE), -(-width // BLOCK_SIZE)
    padded = np.pad(pixels, ((0, rows * BLOCK_SIZE - height), (0, cols * BLOCK_SIZE - width),
                             (0, 0)), mode="edge")
    tiles = padded.reshape(rows, BLOCK_SIZE, cols, BLOCK_SIZE, channels).swapaxes(1, 2)
    return np.ascontiguousarray(tiles.reshape(rows * cols, BLOCK_SIZE, BLOCK_SIZE, channels))


def join_blocks(blocks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse of `cut_blocks`: (N, 32, 32, C) -> (H, W, C), padding cropped."""
    rows, cols = -(-height // BLOCK_SIZE), -(-width // BLOCK_SIZE)
    channels = blocks.shape[3]
    if blocks.shape[0] != rows * cols:
        raise ValueError(f"{blocks.shape[0]} blocks cannot form a {height}x{width} image")
    tiles = blocks.reshape(rows, cols, BLOCK_SIZE, BLOCK_SIZE, channels).swapaxes(1, 2)
    full = tiles.reshape(rows * BLOCK_SIZE, cols * BLOCK_SIZE, channels)
    return np.ascontiguousarray(full[:height, :width])
