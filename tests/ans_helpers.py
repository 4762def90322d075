"""Random tables and symbol streams for coder tests."""

from __future__ import annotations

import numpy as np

from recarchive.entropy.quantize import pmf_to_cdf


def random_cdf(rng: np.random.Generator, rows: int, alphabet: int, precision: int) -> np.ndarray:
    """Rows of skewed random distributions, some nearly deterministic."""
    concentration = rng.choice([0.05, 0.5, 5.0])
    pmf = rng.dirichlet(np.full(alphabet, concentration), size=rows)
    return pmf_to_cdf(pmf, precision)


def sample_symbols(rng: np.random.Generator, cdf: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Symbols drawn from each position's row of the quantized table."""
    u = rng.integers(0, cdf[0, -1], size=rows.shape)
    return (cdf[rows][..., 1:] <= u[..., None]).sum(axis=-1)


def information_bits(cdf: np.ndarray, rows: np.ndarray, symbols: np.ndarray) -> float:
    freqs = cdf[rows, symbols + 1] - cdf[rows, symbols]
    return float(-np.log2(freqs / cdf[0, -1]).sum())
