"""Relative entropy coding (REC) of latent blocks, standard and space-partitioned.

A sample of a diagonal-Gaussian posterior Q is sent using the prior P as shared randomness,
for about KL(Q||P) bits (He, Flamich, Hernández-Lobato, NeurIPS 2024, and the PFR / ORC they
accelerate):

    bits = bits_from_mi(mi_per_dim)                       # partition: decoder-known
    res = rec_search(loc, scale, bits, seed=s, items=i, blocks=b)       # PFR (exact)
    res = rec_search(loc, scale, bits, seed=s, items=i, blocks=b, budget=N)   # ORC
    push_choice(msg, code, rows, bits, res.bins, res.indices)           # or encode_blocks
    bins, n = pop_choice(msg, code, rows, bits)                         # or decode_blocks
    atoms = candidate_atoms(s, i, b, bins, n, bits)      # == res.atoms, bit for bit
    z = prior_values(atoms, prior_loc, prior_scale)      # the latent, exact on any device

Modules: `randomness` (shared candidates, the exactness argument), `gaussian` (ratio and
bounds), `partition` (bits per dimension, blocks), `search` (the encoder), `index_code`
(entropy coding), `coder` (encode/decode on an ANS message). Choices and measurements:
`recarchive/rec/README.md`.
"""

from recarchive.rec.coder import decode_blocks, encode_blocks
from recarchive.rec.gaussian import dinf_bits, kl_bits, whiten
from recarchive.rec.index_code import (
    IndexCode,
    choice_bits,
    fit_zipf_lam,
    fitted_index_code,
    pop_choice,
    push_choice,
    zipf_index_code,
)
from recarchive.rec.partition import bits_from_mi, split_blocks
from recarchive.rec.randomness import (
    candidate_atoms,
    candidate_atoms_torch,
    prior_values,
    prior_values_torch,
)
from recarchive.rec.search import RecResult, rec_search

__all__ = [
    "IndexCode",
    "RecResult",
    "bits_from_mi",
    "candidate_atoms",
    "candidate_atoms_torch",
    "choice_bits",
    "decode_blocks",
    "dinf_bits",
    "encode_blocks",
    "fit_zipf_lam",
    "fitted_index_code",
    "kl_bits",
    "pop_choice",
    "prior_values",
    "prior_values_torch",
    "push_choice",
    "rec_search",
    "split_blocks",
    "whiten",
    "zipf_index_code",
]
