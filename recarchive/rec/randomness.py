"""Shared randomness of REC: the candidate samples, regenerated bit-exactly by the decoder.

Why integer-only: the decoder receives only (bin, index) and must rebuild the very sample the
encoder chose, on any device. A candidate is therefore a vector of *atoms*: integer indices into
the Gaussian quantile table (`recarchive.exact.normal`), computed from Philox words with integer
shifts and ors only. Its value is a table look-up (float64, identical everywhere), and the one
affine map to a non-standard prior, ``loc + scale * value``, is two separately rounded IEEE-754
float64 operations (never fused: numpy has no FMA contraction and torch runs ``mul`` and
``add`` as separate kernels), so numpy, CPU torch and CUDA torch agree bit for bit.

The prior the encoder searches is the table's distribution: 2**k equally likely atoms (the
default k = 16), a discretized N(0, 1). An equal-prior-mass bin of a dimension split into 2**b
intervals is then exactly a run of 2**(k-b) consecutive atoms, so sampling from the prior
restricted to bin digit ``i`` is ``(i << (k - b)) | (word >> (32 - k + b))``: the digit replaces
the top ``b`` bits of the atom index. No rejection, no float, no bias.

Archive format (changing it breaks old archives). A candidate of block dimension D uses
ceil(D/4) Philox4x32-10 calls (`recarchive.exact.prng`), call ``g`` giving the words of
dimensions 4g..4g+3, under

* key = the shard seed (64 bits),
* counter id = ``bin << 32 | index << 8 | g`` (bin < 2**32, 1 <= index < 2**24, D <= 1024),
* counter stream = ``SAMPLE_TAG << 56 | block << 32 | item`` (block < 2**24, item < 2**32),

i.e. exactly ``philox_words(seed, [id], stream)``. The encoder's private search randomness
(arrival times, bin choices; never needed by the decoder) uses ``SEARCH_TAG`` in place of
``SAMPLE_TAG``. Both tags have a non-zero top byte, which no other stream of the project uses
(the clean-bits stream of `recarchive.ans.stack` is below 2**40).
"""

from __future__ import annotations

import numpy as np
import torch

from recarchive.exact.normal import QuantileTable, default_table
from recarchive.exact.prng import MASK32, philox4x32, philox4x32_torch

SAMPLE_TAG = 0x52  # "R": candidate samples, shared with the decoder
SEARCH_TAG = 0x72  # "r": the encoder's search (arrival times, bin draws), private
MAX_BIN_BITS = 32
MAX_INDEX = (1 << 24) - 1
MAX_DIMS = 4 * 256
MAX_ITEM = (1 << 32) - 1
MAX_BLOCK = (1 << 24) - 1


def _key(seed: int) -> np.ndarray:
    seed = int(seed)
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return np.array([seed & MASK32, seed >> 32], dtype=np.uint32)


def check_keys(items: np.ndarray, blocks: np.ndarray) -> None:
    """Refuse items or blocks the counter layout cannot hold rather than let them collide."""
    if np.any(items < 0) or np.any(items > MAX_ITEM):
        raise ValueError(f"items must be in [0, {MAX_ITEM}]")
    if np.any(blocks < 0) or np.any(blocks > MAX_BLOCK):
        raise ValueError(f"blocks must be in [0, {MAX_BLOCK}]")


def bin_offsets(bits: np.ndarray) -> np.ndarray:
    """Bit offset of each dimension's digit in the flat bin index (dimension 0 lowest)."""
    bits = np.asarray(bits, dtype=np.int64)
    return np.cumsum(bits, axis=-1) - bits


def bin_digits(bins: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Per-dimension interval digits (N, D) of flat bin indices (N,) under `bits` (N, D)."""
    bits = np.asarray(bits, dtype=np.int64)
    bins = np.asarray(bins, dtype=np.int64)
    return (bins[..., None] >> bin_offsets(bits)) & ((np.int64(1) << bits) - 1)


def flat_bins(digits: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Inverse of `bin_digits`: the flat bin index of digits (N, D)."""
    return np.sum(np.asarray(digits, dtype=np.int64) << bin_offsets(bits), axis=-1)


def _counters(
    items: np.ndarray, blocks: np.ndarray, bins: np.ndarray, indices: np.ndarray, groups: int
) -> np.ndarray:
    """uint32 counters (N * groups, 4) in the documented layout, groups innermost."""
    g = np.arange(groups, dtype=np.int64)
    ctr = np.empty((items.shape[0], groups, 4), dtype=np.int64)
    ctr[..., 0] = (indices[:, None] << 8) | g
    ctr[..., 1] = bins[:, None]
    ctr[..., 2] = items[:, None]
    ctr[..., 3] = (SAMPLE_TAG << 24) | blocks[:, None]
    return ctr.reshape(-1, 4).astype(np.uint32)


def _validate(
    bins: np.ndarray, indices: np.ndarray, bits: np.ndarray, k: int
) -> None:
    if bits.shape[-1] > MAX_DIMS:
        raise ValueError(f"a block holds at most {MAX_DIMS} dimensions")
    if np.any(bits < 0) or np.any(bits > k):
        raise ValueError(f"bits per dimension must be in [0, {k}]")
    if np.any(bits.sum(axis=-1) > MAX_BIN_BITS):
        raise ValueError(f"a block's partition holds at most {MAX_BIN_BITS} bits")
    if np.any(indices < 1) or np.any(indices > MAX_INDEX):
        raise ValueError(f"indices must be in [1, {MAX_INDEX}]")
    if np.any(bins < 0) or np.any(bins >> bits.sum(axis=-1) != 0):
        raise ValueError("bin index outside its partition")


def candidate_atoms(
    seed: int,
    items: np.ndarray,
    blocks: np.ndarray,
    bins: np.ndarray,
    indices: np.ndarray,
    bits: np.ndarray,
    table: QuantileTable | None = None,
) -> np.ndarray:
    """Atoms (N, D) int64 of candidate `indices[n]` in bin `bins[n]` of block `blocks[n]`.

    items, blocks, bins, indices broadcast to (N,); bits is (D,) or (N, D) bits per dimension.
    """
    table = table or default_table()
    k = table.k
    bins, indices, items, blocks = (
        np.asarray(a, dtype=np.int64) for a in (bins, indices, items, blocks)
    )
    bins, indices, items, blocks = np.broadcast_arrays(bins, indices, items, blocks)
    bins, indices, items, blocks = (a.reshape(-1) for a in (bins, indices, items, blocks))
    n = bins.shape[0]
    bits = np.broadcast_to(np.asarray(bits, dtype=np.int64), (n, np.shape(bits)[-1]))
    _validate(bins, indices, bits, k)
    check_keys(items, blocks)
    d = bits.shape[1]
    groups = -(-d // 4)
    words = philox4x32(_counters(items, blocks, bins, indices, groups), _key(seed))
    words = words.reshape(n, 4 * groups)[:, :d].astype(np.int64)
    digits = bin_digits(bins, bits)
    return (digits << (k - bits)) | (words >> (32 - k + bits))


def candidate_atoms_torch(
    seed: int,
    items: torch.Tensor,
    blocks: torch.Tensor,
    bins: torch.Tensor,
    indices: torch.Tensor,
    bits: torch.Tensor,
    table: QuantileTable | None = None,
) -> torch.Tensor:
    """Torch twin of `candidate_atoms` (int64 tensors, any device): bitwise-equal atoms."""
    table = table or default_table()
    k = table.k
    bins, indices, items, blocks = torch.broadcast_tensors(
        *(t.to(torch.int64) for t in (bins, indices, items, blocks))
    )
    bins, indices, items, blocks = (t.reshape(-1) for t in (bins, indices, items, blocks))
    n = bins.shape[0]
    device = bins.device
    bits = bits.to(device=device, dtype=torch.int64).expand(n, bits.shape[-1])
    _validate(*(t.cpu().numpy() for t in (bins, indices, bits)), k)
    check_keys(items.cpu().numpy(), blocks.cpu().numpy())
    d = bits.shape[1]
    groups = -(-d // 4)
    g = torch.arange(groups, dtype=torch.int64, device=device)
    ctr = torch.stack(
        torch.broadcast_tensors(
            (indices[:, None] << 8) | g,
            bins[:, None],
            items[:, None],
            (SAMPLE_TAG << 24) | blocks[:, None],
        ),
        dim=-1,
    ).reshape(-1, 4)
    seed = int(seed)
    key = torch.tensor([seed & MASK32, seed >> 32], dtype=torch.int64, device=device)
    words = philox4x32_torch(ctr, key).reshape(n, 4 * groups)[:, :d]
    offsets = torch.cumsum(bits, dim=-1) - bits
    digits = (bins[:, None] >> offsets) & ((1 << bits) - 1)
    return (digits << (k - bits)) | (words >> (32 - k + bits))


def search_words(
    seed: int, items: np.ndarray, blocks: np.ndarray, first_step: int, steps: int, width: int
) -> np.ndarray:
    """Encoder-private words (R, steps, width) for search steps [first_step, first_step+steps).

    Decoders never call this; it only makes encoding deterministic (same archive bytes on a
    rerun) without sharing counters with the candidates.
    """
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    blocks = np.asarray(blocks, dtype=np.int64).reshape(-1)
    groups = -(-width // 4)
    step = np.arange(first_step, first_step + steps, dtype=np.int64)
    ids = (step[:, None] << 8) | np.arange(groups, dtype=np.int64)  # (steps, groups)
    r = items.shape[0]
    ctr = np.empty((r, steps, groups, 4), dtype=np.int64)
    ctr[..., 0] = ids & MASK32
    ctr[..., 1] = ids >> 32
    ctr[..., 2] = items[:, None, None]
    ctr[..., 3] = (SEARCH_TAG << 24) | blocks[:, None, None]
    words = philox4x32(ctr.reshape(-1, 4).astype(np.uint32), _key(seed))
    return words.reshape(r, steps, 4 * groups)[..., :width]


def atom_values(atoms: np.ndarray, table: QuantileTable | None = None) -> np.ndarray:
    """Standard-normal values (float64) of atoms: a table look-up, exact everywhere."""
    table = table or default_table()
    return table.values[np.asarray(atoms, dtype=np.int64)]


def atom_values_torch(atoms: torch.Tensor, table: QuantileTable | None = None) -> torch.Tensor:
    table = table or default_table()
    return table.values_torch(atoms.device)[atoms.to(torch.int64)]


def prior_values(
    atoms: np.ndarray,
    loc: np.ndarray | float = 0.0,
    scale: np.ndarray | float = 1.0,
    table: QuantileTable | None = None,
) -> np.ndarray:
    """Latent values ``loc + scale * table[atom]`` for a diagonal Gaussian prior N(loc, scale²).

    Two float64 operations, each correctly rounded; `prior_values_torch` does the same two.
    """
    v = atom_values(atoms, table)
    return np.asarray(loc, dtype=np.float64) + np.asarray(scale, dtype=np.float64) * v


def prior_values_torch(
    atoms: torch.Tensor,
    loc: torch.Tensor | float = 0.0,
    scale: torch.Tensor | float = 1.0,
    table: QuantileTable | None = None,
) -> torch.Tensor:
    v = atom_values_torch(atoms, table)
    dev = v.device
    loc_t = torch.as_tensor(loc, dtype=torch.float64, device=dev)
    scale_t = torch.as_tensor(scale, dtype=torch.float64, device=dev)
    return torch.add(loc_t, torch.mul(scale_t, v))
