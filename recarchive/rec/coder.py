"""Encode a batch of latent blocks onto an ANS message, and decode them back exactly.

The unit a codec works with: one block position, one lane per item. A codec with several
blocks per item pushes block 0, 1, ... and pops them in reverse (the message is a stack).
What the decoder needs besides the message: the seed, the items and block numbers, each
lane's partition bits and index-code row: all fixed by the model and the archive layout,
never by the posterior. It returns quantile-table atoms; `prior_values` maps them to the
latent (bit-exactly on numpy and torch).
"""

from __future__ import annotations

import numpy as np
import torch

from recarchive.ans import Array, Message
from recarchive.exact.normal import QuantileTable
from recarchive.rec.index_code import IndexCode, pop_choice, push_choice
from recarchive.rec.randomness import candidate_atoms, candidate_atoms_torch
from recarchive.rec.search import RecResult, rec_search


def encode_blocks(
    message: Message,
    loc: np.ndarray,
    scale: np.ndarray,
    bits: np.ndarray,
    code: IndexCode,
    rows: np.ndarray | int,
    *,
    seed: int,
    items: np.ndarray,
    blocks: np.ndarray | int,
    budget: int | None = None,
    weights: str = "ratio",
    table: QuantileTable | None = None,
) -> RecResult:
    """Search (PFR, or ORC with `budget`) and push each lane's (bin, index).

    loc, scale: (lanes, D) whitened posterior; bits: (D,) or (lanes, D).
    """
    result = rec_search(loc, scale, bits, seed=seed, items=items, blocks=blocks, budget=budget,
                        weights=weights, table=table)
    push_choice(message, code, rows, bits, result.bins, result.indices)
    return result


def decode_blocks(
    message: Message,
    bits: np.ndarray,
    code: IndexCode,
    rows: np.ndarray | int,
    *,
    seed: int,
    items: np.ndarray,
    blocks: np.ndarray | int,
    table: QuantileTable | None = None,
) -> Array:
    """Pop each lane's (bin, index) and regenerate its atoms (lanes, D) on the message's
    backend: numpy for a numpy message, torch (same device) for a torch one."""
    bins, indices = pop_choice(message, code, rows, bits)
    lanes = message.lane_shape
    if message.backend.is_torch:
        dev = message.backend.device
        return candidate_atoms_torch(
            seed,
            torch.as_tensor(np.broadcast_to(items, lanes).copy(), device=dev),
            torch.as_tensor(np.broadcast_to(blocks, lanes).copy(), device=dev),
            bins,
            indices,
            torch.as_tensor(np.asarray(bits, dtype=np.int64), device=dev),
            table,
        )
    return candidate_atoms(seed, np.broadcast_to(items, lanes), np.broadcast_to(blocks, lanes),
                           bins, indices, bits, table)
