"""The causal codec's residual histograms (adaptation version 2, `models.causal_histogram`)."""

from __future__ import annotations

import numpy as np

from recarchive.archives.blocks import cut_blocks
from recarchive.codecs import get_codec
from recarchive.entropy import mixture
from recarchive.models import causal_histogram as histogram
from recarchive.models import zoo
from recarchive.models.exact_bitswap import PIXEL_TABLE_SHA256, pinned_table, pixel_table_spec
from tests.photo_blocks import grid_geometry, photo
from tests.test_causal_codec import PINNED_MODEL, PINNED_MODEL_SHA256

LOG2_TABLE_SHA256 = "33cfe4630936c16342b20be1448cc2e971640df6ba9f15a2aa68da74242b47d5"


def test_log2_table_is_pinned_and_close():
    """Costs that pick the histogram's weight come from this table: the same integers on
    every machine, and close to log2 (the choice only needs to be good, not exact)."""
    assert zoo.sha256_of(histogram.LOG2_TABLE.astype("<i8").tobytes()) == LOG2_TABLE_SHA256
    q = np.unique(np.r_[1, 2, 3, 4095, 4096, 4097, 8191, 1 << 30,
                        np.random.default_rng(0).integers(1, 1 << 40, 10_000)])
    fixed = histogram.log2_fixed(q) / (1 << histogram.LOG2_BITS)
    assert np.abs(fixed - np.log2(q)).max() < 1e-3
    assert np.all(np.diff(histogram.log2_fixed(np.arange(1, 20_000))) >= 0)


def random_mixture(n: int, seed: int, extra: bool) -> mixture.TableMixture:
    table = pinned_table(pixel_table_spec(), PIXEL_TABLE_SHA256, "pixel")
    rng = np.random.default_rng(seed)
    located = [table.locate(rng.integers(0, 4081, n), rng.integers(0, 100, n))
               for _ in range(3)]
    weights = mixture.mixture_weights(rng.integers(-300, 300, (n, 3)))
    if not extra:
        return mixture.TableMixture(table, located, weights)
    counts = rng.integers(0, 3, (n, 256)) * (rng.random((n, 256)) < 0.1)
    counts[0] = 0
    counts[0, 7] = 5  # one lane's histogram all on one symbol
    cumulative = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(counts, 1)], 1)
    rows = (cumulative << 24) // np.maximum(cumulative[:, -1:], 1)
    rows[cumulative[:, -1] == 0] = np.arange(257) << 16
    return mixture.TableMixture(table, located, weights,
                                (rng.integers(0, 49_152, n), rows))


def test_a_mixture_with_an_extra_component_codes_every_symbol():
    n = 64
    mix = random_mixture(n, 0, extra=True)
    assert np.all(mix.weights.sum(1) + mix.extra[0] == 1 << mixture.WEIGHT_BITS)
    cum = np.stack([mix.cumulative(np.full(n, x)) for x in range(257)], 1)
    assert np.all(cum[:, 0] == 0) and np.all(cum[:, -1] == 1 << mixture.PRECISION)
    assert np.all(np.diff(cum, axis=1) >= 1)
    # the histogram's symbol gets the histogram's weight on top of the logistics'
    plain = np.diff(cum[0])
    assert plain[7] >= (mix.extra[0][0] << 14) * 0.99
    slots = np.random.default_rng(1).integers(0, 1 << mixture.PRECISION, n)
    found = mix.find(slots)
    start, freq = mix.interval(found)
    assert np.all((start <= slots) & (slots < start + freq))
    part = mix.part(slice(3, 9))
    assert np.array_equal(part.interval(found[3:9])[1], freq[3:9])


def test_compiled_and_array_code_agree_with_an_extra_component(monkeypatch):
    n = 200
    mix = random_mixture(n, 2, extra=True)
    rng = np.random.default_rng(3)
    symbols = rng.integers(0, 256, n)
    slots = rng.integers(0, 1 << mixture.PRECISION, n)
    compiled = (*mix.interval(symbols), mix.find(slots))
    monkeypatch.setattr(mixture.kernels, "AVAILABLE", False)
    array = (*mix.interval(symbols), mix.find(slots))
    assert all(np.array_equal(a, b) for a, b in zip(compiled, array, strict=True))


def learn(histograms: histogram.PictureHistograms, colour: int, before: np.ndarray,
          symbols: np.ndarray, steps: int) -> np.ndarray:
    """`steps` steps of the same pixels (μ = 100 3/16, a wide net giving each symbol 1/16);
    the weights the histograms' component had at each step."""
    n = len(symbols)
    args = (np.full((n, 1), 16 * 100 + 3), np.full((n, 1), 60), np.full((n, 1), 1 << 16))
    weights = []
    for _ in range(steps):
        weight, _ = histograms.component(np.zeros(n, np.int64), colour, before, *args)
        weights.append(weight)
        histograms.observe(symbols, np.full(n, 1 << 26))
        histograms.update()
    return np.array(weights)


def test_histograms_learn_a_peaked_residual_and_take_weight():
    """Red always at the rounded mean against a wide net: the residual histogram piles on
    it and takes the largest weight; nothing else has learnt anything."""
    histograms = histogram.PictureHistograms(pictures=2)
    n = 50
    weights = learn(histograms, 0, np.zeros((n, 3), np.int64), np.full(n, 100), 20)
    assert np.all(weights[0] == 0)  # nothing learnt: the net alone
    assert np.all(weights[-1] == (12 << 12) * 950 // (950 + histogram.COUNT_PRIOR))
    args = (np.full((n, 1), 16 * 100 + 3), np.full((n, 1), 60), np.full((n, 1), 1 << 16))
    weight, rows = histograms.component(np.zeros(n, np.int64), 0, np.zeros((n, 3)), *args)
    assert np.all(rows[:, 101] - rows[:, 100] == 1 << 24)  # all mass on 100
    assert np.all(weight == (12 << 12) * 1000 // (1000 + histogram.COUNT_PRIOR))
    # another colour and another picture have learnt nothing
    assert np.all(histograms.component(np.zeros(n, np.int64), 1, np.zeros((n, 3), np.int64),
                                       *args)[0] == 0)
    assert np.all(histograms.component(np.ones(n, np.int64), 0, np.zeros((n, 3)), *args)[0]
                  == 0)


def test_colour_histograms_learn_what_the_colours_before_foretell():
    """Green always equal to red, red spread over many values, green's residual against the
    net's mean spread too: the colour histogram (green given red) carries the weight."""
    histograms = histogram.PictureHistograms(pictures=1)
    n = 64
    red = np.arange(n) * 3
    before = np.stack([red, red, red], 1)
    weights = learn(histograms, 1, before, red, 12)
    chosen = histogram.CANDIDATES[np.argmin(histograms._costs[1])]
    assert chosen[1] > 0, chosen  # green's colour histogram is used
    assert weights[-1].min() > 1 << 14
    args = (np.full((n, 1), 16 * 100 + 3), np.full((n, 1), 60), np.full((n, 1), 1 << 16))
    _, rows = histograms.component(np.zeros(n, np.int64), 1, before, *args)
    at = np.arange(n)
    assert np.all(rows[at, red + 1] - rows[at, red] > 1 << 22)  # red's value foretells green


def test_histograms_code_fewer_bits_and_round_trip():
    """Version 2 against 1 on the pinned tiny model: an image in three objects, one of them a
    grey one (its green and blue repeat its red) that the net cannot know is grey."""
    grey = photo(96, 96).copy()
    grey[..., 1] = grey[..., 0]
    grey[..., 2] = grey[..., 0]
    blocks = np.concatenate([cut_blocks(photo(160, 128)), cut_blocks(grey)])
    geometry = grid_geometry((5, 4), (3, 3))
    sizes = {}
    for adapt in (1, 2):
        codec = get_codec("causal", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256,
                          adapt=adapt)
        shard = codec.encode(blocks, geometry)
        assert shard.params["adapt"] == adapt
        assert np.array_equal(codec.decode(shard), blocks)
        sizes[adapt] = len(shard.payload)
    assert sizes[2] < 0.9 * sizes[1], sizes
