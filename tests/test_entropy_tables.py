"""Integer CDF tables: quantization guarantees, discretized families, exact coding with them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recarchive.ans import (
    NUMPY,
    CdfBank,
    empty_message,
    message_from_bytes,
    message_to_bytes,
    torch_backend,
)
from recarchive.ans.cdf import guide_table
from recarchive.entropy.discretized import DiscretizedTable, GridSpec
from recarchive.entropy.quantize import pmf_to_cdf

TORCH = torch_backend("cpu")


@given(
    seed=st.integers(0, 2**32 - 1),
    alphabet=st.integers(1, 600),
    precision=st.integers(10, 24),
    zeros=st.floats(0, 0.9),
)
def test_pmf_to_cdf_keeps_every_symbol_and_sums_exactly(seed, alphabet, precision, zeros):
    rng = np.random.default_rng(seed)
    pmf = rng.random((3, alphabet)) ** 4
    pmf[rng.random((3, alphabet)) < zeros] = 0.0
    pmf[:, 0] += 1e-3  # some mass in every row
    if alphabet > 1 << precision:
        with pytest.raises(ValueError):
            pmf_to_cdf(pmf, precision)
        return
    cdf = pmf_to_cdf(pmf, precision)
    freqs = np.diff(cdf, axis=-1)
    assert (cdf[:, 0] == 0).all() and (cdf[:, -1] == 1 << precision).all()
    assert freqs.min() >= 1
    # Close to the ideal share: off by at most one unit plus the one-per-symbol floor.
    ideal = pmf / pmf.sum(axis=1, keepdims=True) * (1 << precision)
    assert np.abs(freqs - ideal).max() <= alphabet + 1
    assert np.array_equal(cdf, pmf_to_cdf(pmf.copy(), precision))


def test_pmf_to_cdf_without_floor_gives_only_what_the_mass_earns():
    pmf = np.array([[0.0, 1e-9, 0.25, 0.75 - 1e-9], [0.5, 0.5, 0.0, 0.0]])
    cdf = pmf_to_cdf(pmf, 12, floor=0)
    freqs = np.diff(cdf, axis=-1)
    assert (cdf[:, -1] == 1 << 12).all()
    assert freqs.tolist() == [[0, 0, 1024, 3072], [2048, 2048, 0, 0]]
    assert np.diff(pmf_to_cdf(pmf, 12), axis=-1).min() == 1  # the default keeps the floor
    with pytest.raises(ValueError, match="floor"):
        pmf_to_cdf(pmf, 12, floor=2)


def test_unfloored_tables_never_decode_an_empty_symbol():
    """Every cumulative frequency of every row looks up a symbol of frequency >= 1, by the
    guide tables and by the inverse tables; a floored bank refuses empty symbols."""
    spec = GridSpec.log_uniform("logistic", 64, scale_min=0.3, scale_max=4.0, num_scales=3,
                                mean_steps=2, precision=16)
    table = DiscretizedTable(spec, floor=False)
    freqs = np.diff(table.bank.cdf_numpy, axis=-1)
    assert (freqs == 0).any() and table.sha256() != DiscretizedTable(spec).sha256()
    for inverse in (True, False):
        bank = CdfBank(table.bank.cdf_numpy, 16, NUMPY, allow_empty=True)
        if not inverse:
            bank._inverse = None
            bank._guide_bits = 12
            bank._guide = guide_table(bank.cdf_numpy, 16, 12).reshape(-1)
        rows = np.repeat(np.arange(bank.num_rows), 1 << 16)
        cf = np.tile(np.arange(1 << 16), bank.num_rows)
        symbols, _, found = bank.lookup(rows, cf)
        assert found.min() >= 1 and (freqs[rows, symbols] >= 1).all()
    with pytest.raises(ValueError, match="frequency >= 1"):
        CdfBank(table.bank.cdf_numpy, 16, NUMPY)


def test_pmf_to_cdf_refuses_bad_input():
    with pytest.raises(ValueError):
        pmf_to_cdf(np.array([0.5, -0.1, 0.6]), 8)
    with pytest.raises(ValueError):
        pmf_to_cdf(np.array([0.0, 0.0]), 8)
    with pytest.raises(ValueError):
        pmf_to_cdf(np.array([np.nan, 1.0]), 8)


SMALL_SPEC = GridSpec.log_uniform(
    "logistic", 256, scale_min=0.3, scale_max=40.0, num_scales=12, mean_steps=8, precision=18
)


@pytest.fixture(scope="module")
def pixel_table() -> DiscretizedTable:
    return DiscretizedTable(SMALL_SPEC)


def test_table_hash_is_pinned(pixel_table):
    """The table a model pins by hash must come out the same on every build."""
    assert pixel_table.sha256() == GOLDEN_TABLE_SHA256
    assert DiscretizedTable(SMALL_SPEC).sha256() == pixel_table.sha256()


GOLDEN_TABLE_SHA256 = "bf102edcddb4a2d120d51e587d2553615de29299a6df24b3986263b98e19e2d1"


@pytest.mark.parametrize("family", ["logistic", "gaussian"])
@pytest.mark.parametrize("num_symbols", [2, 256, 1024])
def test_discretized_round_trip_identical_on_both_backends(family, num_symbols):
    spec = GridSpec.log_uniform(
        family, num_symbols, scale_min=0.2, scale_max=num_symbols / 4, num_scales=6, mean_steps=4
    )
    table = DiscretizedTable(spec)
    rng = np.random.default_rng(num_symbols)
    steps, lanes = 12, 50
    # Means from far below the range to far above it, every scale.
    means = rng.uniform(-20, num_symbols + 20, size=(steps, lanes))
    scale_index = rng.integers(0, len(spec.scales), size=(steps, lanes))
    mean_fixed = table.mean_fixed(means)
    symbols = rng.integers(0, num_symbols, size=(steps, lanes))
    symbols[0, :3] = [0, num_symbols - 1, 0]
    streams = []
    for backend in (NUMPY, TORCH):
        on = table.to(backend)
        message = empty_message(lanes, backend)
        for s in range(steps):
            args = [backend.asarray(a[s]) for a in (symbols, mean_fixed, scale_index)]
            on.push(message, *args)
        data = message_to_bytes(message)
        message = message_from_bytes(data, backend)
        for s in reversed(range(steps)):
            out = on.pop(message, backend.asarray(mean_fixed[s]), backend.asarray(scale_index[s]))
            assert np.array_equal(backend.to_numpy(out), symbols[s])
        streams.append(data)
    assert streams[0] == streams[1]


def logistic_probability(k: int, mean: float, scale: float, n: int) -> float:
    def cdf(t: float) -> float:
        return 1.0 / (1.0 + math.exp(-t / scale)) if t > -700 * scale else 0.0

    upper = 1.0 if k == n - 1 else cdf(k + 0.5 - mean)
    lower = 0.0 if k == 0 else cdf(k - 0.5 - mean)
    return upper - lower


def test_table_probabilities_match_the_continuous_model(pixel_table):
    """Quantizing to integers costs little: a few thousandths of a bit per pixel."""
    spec = pixel_table.spec
    rng = np.random.default_rng(0)
    lanes = 4000
    mean_fixed = rng.integers(0, 255 * spec.mean_steps, size=lanes)
    scale_index = rng.integers(0, len(spec.scales), size=lanes)
    means = mean_fixed / spec.mean_steps
    scales = np.array(spec.scales)[scale_index]
    symbols = np.clip(np.round(means + scales * rng.logistic(size=lanes)), 0, 255).astype(np.int64)
    _, freqs = pixel_table.start_freq(symbols, mean_fixed, scale_index)
    coded = -np.log2(freqs / (1 << spec.precision))
    ideal = np.array([
        -math.log2(logistic_probability(int(k), m, s, 256))
        for k, m, s in zip(symbols, means, scales, strict=True)
    ])
    assert coded.mean() - ideal.mean() < 0.005
    assert np.all(coded - ideal < 1.0)


def test_every_symbol_is_codable_under_every_row(pixel_table):
    n = 256
    for scale_index in range(len(pixel_table.spec.scales)):
        for mean_fixed in (0, 3, 1000, 255 * pixel_table.spec.mean_steps):
            symbols = np.arange(n)
            _, freqs = pixel_table.start_freq(
                symbols, np.full(n, mean_fixed), np.full(n, scale_index)
            )
            assert freqs.min() >= 1 and freqs.sum() == 1 << pixel_table.spec.precision


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="family"):
        DiscretizedTable(GridSpec("cauchy", 8, 1, (1.0,), 12))
