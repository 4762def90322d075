"""The picture's own residual distribution, mixed into the causal net's (adaptation version 2).

The net's mixture of logistics has the shape it learnt on many photos; a picture's errors
often have another (a JPEG-born photo's, a smooth sky's, a near-grey facade's). CALIC and
JPEG-LS code their errors with histograms learnt on the picture itself. This does the same
beside the net: for each picture, colour, scale band σ // 8 and quarter-pixel position of the
mixture's mean μ within its pixel, a histogram counts the residuals x − round(μ) coded so
far. Its distribution over the 256 values (the slots that fall inside 0…255, renormalized) is
one more component of the exact mixture (`entropy.mixture.TableMixture`'s extra component),
with weight a · n / (n + 64), n the histogram's count there, a one of `CANDIDATES`: each
picture and colour use the a whose mixtures would have coded the picture's pixels so far in
the fewest bits (follow the leader; a = 0 leaves the net's mixture alone). Costs are counted
with an integer log2 (`LOG2_TABLE`, computed with `decimal`), counts and costs learnt at the
end of each wavefront step as the other tables are: the decoder computes what the encoder did.

How it was chosen (float simulation on `causal-photo`'s adapted outputs for the 37 validation
photos, docs/models.md): 3.047 bits/dim without; a histogram per band 3.033; per band and
quarter-pixel 3.029; weights up to 3/4 and the prior 64: 3.021; following the leader costs
nothing against the best weight per picture in hindsight.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np

from recarchive.models.causal_adapt import BANDS, MEAN_STEPS, SIGMA_BAND

VERSION = 2  # the shard parameter `adapt` that adds these to `causal_adapt`'s tables (1)
SYMBOLS = 256
SLOTS = 2 * SYMBOLS - 1  # residuals −255 … 255
FRACTIONS = 4  # quarter pixels: where μ lies within its rounded pixel
COUNT_PRIOR = 64  # the histogram's weight grows as n / (n + COUNT_PRIOR)
CANDIDATES = np.array([0, 2, 4, 8, 12], np.int64)  # full weight a, in sixteenths
WEIGHT_BITS = 16  # as `entropy.mixture.WEIGHT_BITS`
ROW_BITS = 24  # the rows' precision: the pixel table's
CODED_BITS = 30  # frequencies are at `entropy.mixture.PRECISION`
LOG2_BITS = 16  # costs in 1/65536 bit
MANTISSA_BITS = 12


def _log2_table() -> np.ndarray:
    """round(2^16 · log2(1 + i / 4096)) for i = 0 … 4096 (decimal: the same on any machine)."""
    with localcontext() as context:
        context.prec = 40
        ln2 = Decimal(2).ln()
        scale = Decimal(1 << LOG2_BITS)
        return np.array([int((scale * (1 + Decimal(i) / (1 << MANTISSA_BITS)).ln() / ln2)
                             .to_integral_value()) for i in range((1 << MANTISSA_BITS) + 1)],
                        np.int64)


LOG2_TABLE = _log2_table()


def log2_fixed(q: np.ndarray) -> np.ndarray:
    """2^16 · log2(q) for integers 1 ≤ q < 2^53, from q's top 13 bits (exact integer steps:
    frexp of an integer this small is exact)."""
    exponent = np.frexp(q.astype(np.float64))[1].astype(np.int64) - 1  # floor(log2 q)
    top = np.where(exponent >= MANTISSA_BITS, q >> np.maximum(exponent - MANTISSA_BITS, 0),
                   q << np.maximum(MANTISSA_BITS - exponent, 0))
    return (exponent << LOG2_BITS) + LOG2_TABLE[top - (1 << MANTISSA_BITS)]


class ResidualHistograms:
    """Every picture's histograms and candidate costs on a shard's canvas. Per colour of a
    step: `component` (the extra mixture component), then `observe` with the coded symbols;
    `update` once the step is coded."""

    def __init__(self, pictures: int) -> None:
        shape = (pictures, 3, BANDS, FRACTIONS)
        self._counts = np.zeros((*shape, SLOTS), np.int64)
        self._cumulative = np.zeros((*shape, SLOTS + 1), np.int64)
        self._costs = np.zeros((pictures, 3, len(CANDIDATES)), np.int64)
        self._current: tuple | None = None  # what `component` computed, for `observe`
        self._pending: list[tuple] = []  # what `update` learns from

    def component(self, picture: np.ndarray, colour: int, mean: np.ndarray, scale: np.ndarray,
                  weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(weight G (n,), cumulative rows (n, 257) at 24 bits) of the histogram component for
        colour `colour` of pixels of pictures `picture`, from their (adapted) mixture's
        integer means (1/16 pixel), scale indices and weights (n, K)."""
        mu = (weights * mean).sum(1) // (1 << WEIGHT_BITS)
        sigma = (weights * scale).sum(1) // (1 << WEIGHT_BITS)
        band = np.clip(sigma // SIGMA_BAND, 0, BANDS - 1)
        half = MEAN_STEPS // 2
        centre = np.clip((mu + half) // MEAN_STEPS, 0, SYMBOLS - 1)
        fraction = (mu + half) % MEAN_STEPS * FRACTIONS // MEAN_STEPS
        at = (picture, colour, band, fraction)
        # the slots of x = 0 … 256 (residual x − centre, slot residual + 255)
        columns = (SYMBOLS - 1 - centre)[:, None] + np.arange(SYMBOLS + 1)[None]
        cumulative = np.take_along_axis(self._cumulative[at], columns, 1)
        inside = cumulative - cumulative[:, :1]
        total = inside[:, -1]
        uniform = np.arange(SYMBOLS + 1, dtype=np.int64) << (ROW_BITS - 8)
        rows = np.where(total[:, None] > 0, (inside << ROW_BITS) // np.maximum(total, 1)[:, None],
                        uniform[None])
        full = (CANDIDATES[None] << (WEIGHT_BITS - 4)) * total[:, None] // (
            total[:, None] + COUNT_PRIOR)  # (n, candidates)
        choice = np.argmin(self._costs[picture, colour], 1)
        self._current = (at, centre, rows, full)
        return full[np.arange(len(full)), choice], rows

    def observe(self, symbols: np.ndarray, model_freqs: np.ndarray) -> None:
        """The coded symbols of the colour `component` was last called for, and their
        frequencies under the net's mixture alone (at 30 bits)."""
        at, centre, rows, full = self._current
        n = np.arange(len(symbols))
        histogram_freqs = rows[n, symbols + 1] - rows[n, symbols]
        mixed = (((1 << WEIGHT_BITS) - full) * model_freqs[:, None]
                 + full * (histogram_freqs << (CODED_BITS - ROW_BITS))[:, None]) >> WEIGHT_BITS
        cost = (CODED_BITS << LOG2_BITS) - log2_fixed(np.maximum(mixed, 1))
        self._pending.append((at, symbols - centre + SYMBOLS - 1, cost))
        self._current = None

    def update(self) -> None:
        """Learn the step's residuals and costs."""
        touched = []
        for at, slot, cost in self._pending:
            np.add.at(self._counts, (*at, slot), 1)
            np.add.at(self._costs, at[:2], cost)
            touched.append(np.stack(np.broadcast_arrays(*at), 1))
        self._pending = []
        if touched:
            contexts = np.unique(np.concatenate(touched), axis=0)
            at = tuple(contexts.T)
            self._cumulative[at + (slice(1, None),)] = np.cumsum(self._counts[at], 1)
