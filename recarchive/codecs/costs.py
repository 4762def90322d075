"""Each block's share of a shard's coded bits.

Codecs code whole shards; what one block (and so one object) cost is the shard's payload
shared among its blocks in proportion to what each cost as the codec measured it while coding
(`EncodedShard.block_bits`; Bit-Swap: the bits it pushed minus those it popped; a chain's first
block, coded raw, is NaN there and weighs its order-0 information scaled to the others'), or,
where a codec does not measure, to each block's order-0 information under the shard's own
per-channel histogram. The archive's per-object codec choice (`--codec auto`) and the
compression report both use it.
"""

from __future__ import annotations

import numpy as np


def block_information(blocks: np.ndarray) -> np.ndarray:
    """(N, 32, 32, C) uint8 -> (N,) bits of each block under the blocks' own per-channel
    order-0 histogram."""
    count, channels = len(blocks), blocks.shape[3]
    flat = blocks.reshape(count, -1, channels)
    info = np.zeros(count)
    for channel in range(channels):
        values = flat[:, :, channel]
        counts = np.bincount(values.ravel(), minlength=256)
        table = np.zeros(256)
        seen = counts > 0
        table[seen] = -np.log2(counts[seen] / counts.sum())
        info += table[values].sum(axis=1)
    return info


def block_bits(blocks: np.ndarray, payload_bytes: int,
               measured: np.ndarray | None = None) -> np.ndarray:
    """The shard's payload bits shared among its blocks (see the module docstring);
    `measured`: each block's cost as the codec measured it (NaN: coded raw), if it did."""
    weights = block_information(blocks)
    if measured is not None and np.isfinite(measured).any():
        known = np.isfinite(measured)
        # a block coded raw (a chain's start) weighs its order-0 information, scaled to what
        # the codec measured for the others
        proxy = weights[known].sum()
        scale = np.maximum(measured[known], 0.0).sum() / proxy if proxy > 0 else 1.0
        weights = np.where(known, np.maximum(np.nan_to_num(measured), 0.0), weights * scale)
    total = weights.sum()
    if not total > 0:
        weights, total = np.ones(len(blocks)), float(len(blocks))
    return 8.0 * payload_bytes * weights / total
