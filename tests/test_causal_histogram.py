"""The causal codec's residual histograms (adaptation versions 2 and 3,
`models.causal_histogram`)."""

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
    # two sources per lane, each a run of 256 counts in one flat array of running sums
    counts = rng.integers(0, 3, (2 * n, 256)) * (rng.random((2 * n, 256)) < 0.1)
    counts[0] = 0
    counts[0, 7] = 5  # one lane's first source all on one symbol
    counts[n + 1] = 0  # another's second source empty: uniform
    sums = np.concatenate([np.zeros((2 * n, 1), np.int64), np.cumsum(counts, 1)], 1)
    firsts = (257 * np.arange(2 * n)).reshape(2, n)
    source_weights = np.stack([rng.integers(0, 40_000, n), rng.integers(0, 20_000, n)])
    return mixture.TableMixture(table, located, weights, mixture.CountComponents(
        sums.reshape(-1), firsts, source_weights))


def test_a_mixture_with_an_extra_component_codes_every_symbol():
    n = 64
    mix = random_mixture(n, 0, extra=True)
    assert np.all(mix.weights.sum(1) + mix.counts.weights.sum(0) == 1 << mixture.WEIGHT_BITS)
    cum = np.stack([mix.cumulative(np.full(n, x)) for x in range(257)], 1)
    assert np.all(cum[:, 0] == 0) and np.all(cum[:, -1] == 1 << mixture.PRECISION)
    assert np.all(np.diff(cum, axis=1) >= 1)
    # the counts' one symbol gets their source's weight on top of the logistics'
    assert np.diff(cum[0])[7] >= (mix.counts.weights[0, 0] << 14) * 0.99
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


ARGS = (16 * 100 + 3, 60, 1 << 16)  # μ = 100 3/16 (rounds to 100), a scale index, weight 1


def component(histograms: histogram.PictureHistograms, colour: int, before: np.ndarray,
              picture: int = 0) -> mixture.CountComponents:
    n = len(before)
    error = np.zeros(n, np.int64) if histograms.version >= histogram.CONTEXT_VERSION else None
    return histograms.component(np.full(n, picture), colour, before,
                                *(np.full((n, 1), value) for value in ARGS), error)


def probability(counts: mixture.CountComponents, source: int, symbols: np.ndarray
                ) -> np.ndarray:
    """Source `source`'s probability of each lane's symbol."""
    first = counts.firsts[source]
    sums = counts.counts
    return (sums[first + symbols + 1] - sums[first + symbols]) / np.maximum(
        sums[first + 256] - sums[first], 1)


def learn(histograms: histogram.PictureHistograms, colour: int, before: np.ndarray,
          symbols: np.ndarray, steps: int) -> np.ndarray:
    """`steps` steps of the same pixels (a wide net giving each symbol 1/16); the count
    components' weights (steps, 2, n) at each step."""
    weights = []
    for _ in range(steps):
        weights.append(component(histograms, colour, before).weights)
        histograms.observe(symbols, np.full(len(symbols), 1 << 26))
        histograms.update()
    return np.array(weights)


def test_histograms_learn_a_peaked_residual_and_take_weight():
    """Red always at the rounded mean against a wide net: the residual histogram piles on
    it and takes the largest weight; nothing else has learnt anything."""
    histograms = histogram.PictureHistograms(pictures=2)
    n = 50
    nothing = np.zeros((n, 3), np.int64)
    weights = learn(histograms, 0, nothing, np.full(n, 100), 20)
    assert np.all(weights[0] == 0)  # nothing learnt: the net alone
    assert np.all(weights[-1][0] == (12 << 12) * 950 // (950 + histogram.COUNT_PRIOR))
    assert np.all(weights[:, 1] == 0)  # red has no colour histogram
    counts = component(histograms, 0, nothing)
    assert np.all(probability(counts, 0, np.full(n, 100)) == 1)  # all mass on 100
    # another colour and another picture have learnt nothing
    assert np.all(component(histograms, 1, nothing).weights == 0)
    assert np.all(component(histograms, 0, nothing, picture=1).weights == 0)


def test_colour_histograms_learn_what_the_colours_before_foretell():
    """Green always equal to red, red spread over many values, green's residual against the
    net's mean spread too: the colour histogram (green given red) carries the weight."""
    histograms = histogram.PictureHistograms(pictures=1)
    n = 64
    red = np.arange(n) * 3
    before = np.stack([red, red, red], 1)
    weights = learn(histograms, 1, before, red, 12)
    chosen = histogram.CANDIDATES[np.argmin(histograms._costs[1 * histogram.BANDS + 60 // 8])]
    assert chosen[1] > 0, chosen  # green's colour histogram is used
    assert weights[-1][1].min() > 1 << 14
    assert np.all(probability(component(histograms, 1, before), 1, red) == 1)


def test_cross_colour_histograms_learn_greens_residual_from_reds():
    """Version 3: green's residual always red's while the means wander (so neither green's
    value given red's nor its own residual histogram foretells it): the cross-colour
    histogram learns it and takes weight."""
    histograms = histogram.PictureHistograms(pictures=1, version=histogram.CONTEXT_VERSION)
    rng = np.random.default_rng(0)
    n = 64
    _, scale, weights = (np.full((n, 1), value) for value in ARGS)
    picture, error, wide = np.zeros(n, np.int64), np.zeros(n, np.int64), np.full(n, 1 << 26)
    for _ in range(30):
        residual = rng.integers(-6, 7, n)
        red_mean, green_mean = (16 * rng.integers(40, 200, (n, 1)) for _ in range(2))
        red, green = red_mean[:, 0] // 16 + residual, green_mean[:, 0] // 16 + residual
        before = np.stack([red, np.zeros(n, np.int64), np.zeros(n, np.int64)], 1)
        histograms.component(picture, 0, before, red_mean, scale, weights, error)
        histograms.observe(red, wide)
        counts = histograms.component(picture, 1, before, green_mean, scale, weights, error)
        histograms.observe(green, wide)
        histograms.update()
    assert np.all(probability(counts, 2, green) == 1)
    octaves = len(histogram.ERROR_OCTAVES) + 1  # the neighbours' errors: 0, the first
    costs = histograms._costs[(1 * histogram.BANDS + ARGS[1] // 8) * octaves]
    chosen = histogram.CANDIDATES_3[np.argmin(costs)]
    assert chosen[2] > 0, chosen  # the cross-colour source is used
    assert counts.weights[2].min() > 1 << 14


def test_the_shards_histogram_carries_what_other_pictures_learnt():
    """Version 3: red always at its rounded mean in picture 0; picture 1, which has coded
    nothing, finds all the shard's histogram's mass there, and nothing in its own."""
    histograms = histogram.PictureHistograms(pictures=2, version=histogram.CONTEXT_VERSION)
    n = 50
    nothing = np.zeros((n, 3), np.int64)
    learn(histograms, 0, nothing, np.full(n, 100), 10)
    counts = component(histograms, 0, nothing, picture=1)
    assert len(counts.firsts) == 4  # residual, colour, cross-colour, the shard's
    assert np.all(probability(counts, 3, np.full(n, 100)) == 1)
    assert np.all(probability(counts, 0, np.full(n, 100)) == 0)
    assert np.all(counts.weights == 0)  # picture 1's costs have chosen nothing yet


def test_compiled_and_array_costs_code_the_same_bytes(monkeypatch):
    """The candidates' costs (`_add_costs` under numba, the array code without it) choose the
    weights: both must give the same shard, for version 2 and 3."""
    blocks = np.concatenate([cut_blocks(photo(160, 128)), cut_blocks(photo(64, 96))])
    geometry = grid_geometry((5, 4), (2, 3))
    for adapt in (2, 3):
        codec = get_codec("causal", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256,
                          adapt=adapt)
        monkeypatch.setattr(histogram, "COMPILED", True)
        compiled = codec.encode(blocks, geometry).payload
        monkeypatch.setattr(histogram, "COMPILED", False)
        assert codec.encode(blocks, geometry).payload == compiled


def test_histograms_code_fewer_bits_and_round_trip():
    """Version 2 against 1 on the pinned tiny model: an image in three objects, one of them a
    grey one (its green and blue repeat its red) that the net cannot know is grey."""
    grey = photo(96, 96).copy()
    grey[..., 1] = grey[..., 0]
    grey[..., 2] = grey[..., 0]
    blocks = np.concatenate([cut_blocks(photo(160, 128)), cut_blocks(grey)])
    geometry = grid_geometry((5, 4), (3, 3))
    sizes = {}
    for adapt in (1, 2, 3):
        codec = get_codec("causal", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256,
                          adapt=adapt)
        shard = codec.encode(blocks, geometry)
        assert shard.params["adapt"] == adapt
        assert np.array_equal(codec.decode(shard), blocks)
        sizes[adapt] = len(shard.payload)
    assert sizes[2] < 0.9 * sizes[1], sizes
    assert sizes[3] < sizes[2], sizes
