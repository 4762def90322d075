"""Quantile table: exact symmetry, accuracy, numpy == torch lookups, frozen hash."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch

from recarchive.exact import normal
from recarchive.exact.prng import random_words, random_words_torch

# Archive-format pins: table_sha256 of make_table(k, frac_bits=24).
GOLDEN_TABLE_SHA256 = {
    16: "46ba5c5622b43fddd562c481ccd32024e12fb507dbe5021295a0d7a0791fd231",
    8: "df28a3c77544c94147adaac7d7f40de8be7db849428ef4ee7a40eb3e389170b7",
}


@pytest.fixture(scope="module")
def table() -> normal.QuantileTable:
    return normal.default_table()


@pytest.mark.parametrize("k", sorted(GOLDEN_TABLE_SHA256))
def test_golden_sha256(k):
    t = normal.make_table(k)
    assert t.sha256 == GOLDEN_TABLE_SHA256[k]
    assert normal.table_sha256(t.values, t.fixed) == t.sha256


def test_shape_and_defaults(table):
    assert (table.k, table.frac_bits, table.size) == (16, 24, 1 << 16)
    assert table.values.shape == table.fixed.shape == (1 << 16,)
    assert table.values.dtype == np.float64 and table.fixed.dtype == np.int64
    assert normal.make_table() is table  # built once per process
    with pytest.raises(ValueError):
        table.values[0] = 0.0  # shared cached table is read-only


@pytest.mark.parametrize("k", [1, 2, 8, 16])
def test_exact_symmetry(k):
    t = normal.make_table(k)
    np.testing.assert_array_equal(t.values, -t.values[::-1])
    np.testing.assert_array_equal(t.fixed, -t.fixed[::-1])


def test_strictly_increasing(table):
    assert (np.diff(table.values) > 0).all()
    assert (np.diff(table.fixed) > 0).all()


def test_moments(table):
    assert abs(table.values.mean()) < 1e-12
    assert abs(table.values.var() - 1.0) < 1e-4  # midpoint quantiles: slightly under 1


def test_matches_reference_inverse_cdf(table):
    ref = statistics.NormalDist()
    k = table.k
    for i in [0, 1, 7, 1000, 4000, 20000, 32767, 32768, 40000, 65535]:
        expected = ref.inv_cdf((i + 0.5) / (1 << k))
        assert math.isclose(table.values[i], expected, rel_tol=1e-14)


def test_fixed_is_rounded_values(table):
    scaled = table.values * 2.0**table.frac_bits
    assert np.abs(table.fixed - scaled).max() <= 0.5
    # No entry sits near a rounding tie, so the fixed table is robust to last-bit noise.
    frac = np.abs(scaled) - np.floor(np.abs(scaled))
    assert np.abs(frac - 0.5).min() > 1e-6


def test_inv_cdf_domain():
    for p in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            normal.inv_cdf(p)
    assert normal.inv_cdf(0.5) == 0.0


@pytest.mark.parametrize(("k", "frac_bits"), [(0, 24), (25, 24), (16, -1), (16, 49)])
def test_rejects_bad_parameters(k, frac_bits):
    with pytest.raises(ValueError):
        normal.make_table(k, frac_bits)


def test_index_is_top_k_bits(table):
    k = table.k
    idx = np.array([0, 1, 12345, (1 << k) - 1], dtype=np.uint64)
    low = np.array([0, 0xFFFF, 0x1234, 0xFFFF], dtype=np.uint64)
    words = ((idx << np.uint64(32 - k)) | low).astype(np.uint32)
    np.testing.assert_array_equal(normal.gaussian_from_words(words, table), table.values[idx])
    np.testing.assert_array_equal(normal.gaussian_fixed_from_words(words, table), table.fixed[idx])


def test_out_of_range_words_raise(table):
    with pytest.raises(IndexError):
        normal.gaussian_from_words(np.array([2**32], dtype=np.int64), table)
    with pytest.raises(IndexError):
        normal.gaussian_from_words(np.array([-1], dtype=np.int64), table)
    with pytest.raises(TypeError):
        normal.gaussian_from_words(np.array([0.5]), table)
    with pytest.raises(TypeError):
        normal.gaussian_from_words_torch(torch.tensor([0.5]), table)


@pytest.mark.parametrize("k", [8, 16])
def test_numpy_matches_torch_bitwise(k):
    t = normal.make_table(k)
    words = random_words(11, 2, 0, 50_000)
    words_t = random_words_torch(11, 2, 0, 50_000)
    g = normal.gaussian_from_words(words, t)
    g_t = normal.gaussian_from_words_torch(words_t, t)
    assert g_t.dtype == torch.float64
    np.testing.assert_array_equal(g_t.numpy().view(np.uint64), g.view(np.uint64))
    f = normal.gaussian_fixed_from_words(words, t)
    f_t = normal.gaussian_fixed_from_words_torch(words_t, t)
    assert f_t.dtype == torch.int64
    np.testing.assert_array_equal(f_t.numpy(), f)


def test_samples_look_gaussian(table):
    """Kolmogorov-Smirnov distance to Phi well under the 1% critical value for n = 100k."""
    n = 100_000
    samples = np.sort(normal.gaussian_from_words(random_words(3, 4, 0, n), table))
    cdf = 0.5 * (1.0 + torch.special.erf(torch.from_numpy(samples) / math.sqrt(2.0)).numpy())
    ecdf_hi = np.arange(1, n + 1) / n
    ecdf_lo = np.arange(0, n) / n
    ks = max(np.max(ecdf_hi - cdf), np.max(cdf - ecdf_lo))
    assert ks < 1.63 / math.sqrt(n)
    assert abs(samples.mean()) < 0.02 and abs(samples.var() - 1.0) < 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_lookup_matches_cpu(table):
    words = random_words_torch(1, 2, 0, 100_000)
    cpu = normal.gaussian_from_words_torch(words, table)
    gpu = normal.gaussian_from_words_torch(words.cuda(), table)
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
    fixed_gpu = normal.gaussian_fixed_from_words_torch(words.cuda(), table)
    assert torch.equal(fixed_gpu.cpu(), normal.gaussian_fixed_from_words_torch(words, table))
