"""A model-free baseline codec: each shard's per-channel pixel histogram, then rANS.

Fast and exact, it is the codec archive tests use where the subject is the archive and not
the model, and the floor any neural codec must beat. Counts travel in the payload and the
table is rebuilt from them with integer arithmetic only.
"""

from __future__ import annotations

import struct

import numpy as np

from recarchive.ans import (
    CdfBank,
    CorruptMessageError,
    empty_message,
    message_from_bytes,
    message_to_bytes,
    pop_symbols,
    push_symbols,
)
from recarchive.codecs.base import BLOCK_SIZE, BlockGeometry, CodecError, EncodedShard, check_blocks
from recarchive.entropy.quantize import counts_to_cdf

PRECISION = 16
LANES = 256  # divides every shard's symbol count (32·32·C), few enough to keep heads cheap


class Order0Codec:
    name = "order0"
    model_sha256 = None
    channel_layouts = (1, 2, 3, 4)

    def encode(self, blocks: np.ndarray,
               geometry: BlockGeometry | None = None) -> EncodedShard:
        blocks = check_blocks(blocks, self)
        channels = blocks.shape[3]
        counts = np.stack(
            [np.bincount(blocks[..., c].reshape(-1), minlength=256) for c in range(channels)]
        )
        bank = CdfBank(counts_to_cdf(counts, PRECISION), PRECISION)
        symbols, rows = _as_steps(blocks)
        message = empty_message(LANES)
        for step in range(symbols.shape[0]):
            push_symbols(message, bank, rows[step], symbols[step])
        header = struct.pack(f"<{counts.size}I", *counts.reshape(-1).tolist())
        return EncodedShard(header + message_to_bytes(message), len(blocks), channels)

    def decode(self, shard: EncodedShard) -> np.ndarray:
        channels, num_blocks = shard.channels, shard.num_blocks
        if channels not in self.channel_layouts:
            raise CodecError(f"order0 shard claims {channels} channels")
        header = 4 * 256 * channels
        if len(shard.payload) < header:
            raise CodecError("order0 shard payload is truncated inside its histogram")
        counts = np.frombuffer(shard.payload, "<u4", count=256 * channels).reshape(channels, 256)
        bank = CdfBank(counts_to_cdf(counts.astype(np.int64), PRECISION), PRECISION)
        try:
            message = message_from_bytes(shard.payload[header:])
        except CorruptMessageError as error:
            raise CodecError(f"order0 shard payload is damaged: {error}") from error
        shape = (num_blocks, BLOCK_SIZE, BLOCK_SIZE, channels)
        _, rows = _as_steps(np.zeros(shape, np.uint8))
        symbols = np.empty(rows.shape, dtype=np.int64)
        for step in reversed(range(rows.shape[0])):
            symbols[step] = pop_symbols(message, bank, rows[step])
        return symbols.reshape(shape).astype(np.uint8)


def _as_steps(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and their channel rows as (steps, LANES)."""
    channel = np.broadcast_to(np.arange(blocks.shape[3]), blocks.shape)
    symbols = blocks.reshape(-1, LANES).astype(np.int64)
    return symbols, np.ascontiguousarray(channel).reshape(-1, LANES).astype(np.int64)
