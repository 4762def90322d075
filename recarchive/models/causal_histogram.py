"""The picture's own statistics, mixed into the causal net's distribution (adaptation 2, 3).

The net's mixture of logistics has the shape it learnt on many photos; a picture's errors
often have another (a JPEG-born photo's, a smooth sky's), and some pictures tie their colours
together in ways no window shows (a near-grey facade whose green repeats its red, a picture
of few colours). CALIC and JPEG-LS code their errors with histograms learnt on the picture
itself; palette and channel-correlation coders exploit the colours. This does both beside
the net, per picture on a shard's canvas (the same owners as `causal_adapt`'s tables):

- residual histograms, per colour, scale band σ // 8 and quarter-pixel position of the
  mixture's mean μ within its pixel: the residuals x − round(μ) coded so far;
- colour histograms: green's values per value of red, blue's per value of green and
  R − G in −2 … 2.

For each colour of a pixel their distributions over 0 … 255 (a residual histogram's slots
that fall inside, renormalized) form one more component of the exact mixture
(`entropy.mixture.CountComponents`): weight a · n / (n + 64) for the residual
histogram and b · m / (m + 2) for the colour one (n, m their counts there), (a, b) one of
`CANDIDATES`. Each picture, colour and scale band use the pair whose mixtures would have coded
its pixels there so far in the fewest bits (follow the leader; (0, 0) leaves the net alone),
costs counted with an integer log2 (`LOG2_TABLE`, computed with `decimal`). Counts and costs
are learnt at the end of each wavefront step, as the other tables are: the decoder computes
what the encoder did.

How it was chosen (float simulation on the adapted outputs of `causal-photo-2026-12-06c` for
the 37 validation photos, whole blocks: `studies/study_picture_histograms.py`, docs/models.md):
3.047 bits/dim without; a residual histogram per band 3.032; per band and quarter-pixel
3.029; weights up to 3/4 and the count prior 64: 3.021 (following the leader costs nothing
against the best weight per picture in hindsight); with the colour histograms 3.014 (blue
given red and green exactly: 3.012, for 65,536 contexts a picture); the weights chosen per
scale band, not per colour alone, 3.010.

Version 3 (`CONTEXT_VERSION`) keys the residual histograms also by the neighbours' errors (7
octaves of `PictureAdaptation.neighbour_error`), adds a cross-colour source (green's residual
by red's residual of the pixel, blue's by green's, in −6 … 6) and the shard's residual
histogram (every picture's pixels pooled: a picture starts with what the others learnt), and
chooses the weights (a, b, d, e), one of `CANDIDATES_3`, per picture, colour, band and
octave. Costs are added as each colour is observed (a colour's rows are read only by its own
next `component`, after `update`): the same numbers as adding them at the step's end. The
float simulation on `causal-photo`'s outputs, photos eight to a shard (`--version 3`):
2.9927 for version 2, 2.9888 with the octaves, 2.9850 with the cross-colour source, 2.9837
choosing per octave, 2.9819 with the shard's histogram.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np

from recarchive.entropy.mixture import PRECISION as CODED_BITS
from recarchive.entropy.mixture import WEIGHT_BITS, CountComponents
from recarchive.models.causal_adapt import BANDS, MEAN_STEPS, mixture_centre

VERSION = 2  # the shard parameter `adapt` that adds these to `causal_adapt`'s tables (1)
CONTEXT_VERSION = 3  # residual contexts by neighbours' errors too, and the cross-colour source
SYMBOLS = 256
SLOTS = 2 * SYMBOLS - 1  # residuals −255 … 255
FRACTIONS = 4  # quarter pixels: where μ lies within its rounded pixel
COUNT_PRIOR = 64  # the histogram's weight grows as n / (n + COUNT_PRIOR)
RESIDUAL_WEIGHTS = (0, 2, 4, 8, 12)  # a: the residual histogram's full weight, sixteenths
COLOUR_WEIGHTS = (0, 2, 4, 8)  # b: the colour histogram's
# the (a, b) pairs a picture's colour may use, b = 0 first for each a (red has no colour
# histogram: its b > 0 pairs tie with b = 0, and the first of equals is taken)
CANDIDATES = np.array([(a, b) for a in RESIDUAL_WEIGHTS for b in COLOUR_WEIGHTS if a + b <= 14],
                      np.int64)
COLOUR_PRIOR = 2
# version 3: the residual histograms' contexts also by the neighbours' errors (W, N, NW, NE:
# the sum of what the adaptation left of them, 1/16 pixel) in octaves, and green's and blue's
# residuals by the previous colour's residual of the pixel (red's, green's), in −6 … 6
ERROR_OCTAVES = np.array([16, 32, 64, 128, 256, 512], np.int64)  # 7 buckets
CROSS_REACH = 6
CROSS_WEIGHTS = (0, 2, 4, 8)  # d: the cross-colour histogram's full weight, sixteenths
SHARED_WEIGHTS = (0, 2, 4, 8)  # e: the shard's residual histogram's (every picture's pixels)
# (a, b, d, e), b = d = 0 first for each (a, e): red has neither the colour nor the cross source
CANDIDATES_3 = np.array([(a, b, d, e) for a in RESIDUAL_WEIGHTS for b in COLOUR_WEIGHTS
                         for d in CROSS_WEIGHTS for e in SHARED_WEIGHTS if a + b + d + e <= 14],
                        np.int64)
# colour contexts: green from red's value (256), blue from green's and R − G in −2 … 2 (1,280)
COLOUR_CONTEXTS = 256 + 256 * 5
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

try:
    from numba import njit

    COMPILED = True
except ImportError:  # without numba the array code gives the same costs, only slower
    COMPILED = False

    def njit(**_options):
        return lambda function: function


def log2_fixed(q: np.ndarray) -> np.ndarray:
    """2^16 · log2(q) for integers 1 ≤ q < 2^53, from q's top 13 bits (exact integer steps:
    frexp of an integer this small is exact)."""
    exponent = np.frexp(q.astype(np.float64))[1].astype(np.int64) - 1  # floor(log2 q)
    top = np.where(exponent >= MANTISSA_BITS, q >> np.maximum(exponent - MANTISSA_BITS, 0),
                   q << np.maximum(MANTISSA_BITS - exponent, 0))
    return (exponent << LOG2_BITS) + LOG2_TABLE[top - (1 << MANTISSA_BITS)]


@njit(cache=True, nogil=True)
def _add_costs(table: np.ndarray, chooser: np.ndarray, model_freqs: np.ndarray,
               freqs: np.ndarray, totals: np.ndarray, priors: np.ndarray,
               candidates: np.ndarray, log2_table: np.ndarray) -> None:
    """`observe`'s costs in one compiled loop: for each lane and candidate, the weights, the
    mixed frequency and its cost in 1/2^16 bit (`log2_fixed`), added to the lane's row of
    `table`; integer steps in the array code's order, so the same numbers."""
    sources, lanes = freqs.shape
    full = candidates.max() + 1
    weights = np.zeros((sources, full), np.int64)  # a lane's weight for each full weight
    for i in range(lanes):
        row = chooser[i]
        for s in range(sources):
            for value in range(full):
                weights[s, value] = ((value << (WEIGHT_BITS - 4)) * totals[s, i]
                                     // (totals[s, i] + priors[s]))
        for c in range(candidates.shape[0]):
            weight_sum = 0
            mixed_sum = 0
            for s in range(sources):
                weight = weights[s, candidates[c, s]]
                weight_sum += weight
                mixed_sum += weight * freqs[s, i]
            mixed = (((1 << WEIGHT_BITS) - weight_sum) * model_freqs[i] + mixed_sum
                     ) >> WEIGHT_BITS
            q = max(mixed, 1)
            exponent = 0
            rest = q
            for shift in (32, 16, 8, 4, 2, 1):
                if rest >> shift:
                    rest >>= shift
                    exponent += shift
            if exponent >= MANTISSA_BITS:
                top = q >> (exponent - MANTISSA_BITS)
            else:
                top = q << (MANTISSA_BITS - exponent)
            log2 = (exponent << LOG2_BITS) + log2_table[top - (1 << MANTISSA_BITS)]
            table[row, c] += (CODED_BITS << LOG2_BITS) - log2


class _Counts:
    """Counts of `slots` values per context, and their running sums (in a region of a flat
    array shared with other tables: `CountComponents` reads them all at once)."""

    def __init__(self, contexts: int, slots: int, sums: np.ndarray, offset: int) -> None:
        self.slots = slots
        self.offset = offset
        self._counts = np.zeros(contexts * slots, np.int64)
        self._sums = sums[offset:offset + contexts * (slots + 1)].reshape(contexts, slots + 1)

    @staticmethod
    def size(contexts: int, slots: int) -> int:
        return contexts * (slots + 1)

    def first(self, context: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """The flat index of the running sum before `slot` of `context`."""
        return self.offset + context * (self.slots + 1) + slot

    def learn(self, contexts: list[np.ndarray], slots: list[np.ndarray]) -> None:
        for context, slot in zip(contexts, slots, strict=True):
            np.add.at(self._counts, context * self.slots + slot, 1)
        touched = np.unique(np.concatenate(contexts))
        self._sums[touched, 1:] = np.cumsum(self._counts.reshape(-1, self.slots)[touched], 1)


def _weights(candidates: np.ndarray, totals: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Sources' weights in 1/2^16: full weights in sixteenths × n / (n + prior)."""
    return (candidates << (WEIGHT_BITS - 4)) * totals // (totals + priors)


class PictureHistograms:
    """Every picture's residual and colour histograms and candidate costs on a shard's
    canvas. Per colour of a step: `component` (the count components), then `observe` with the
    coded symbols; `update` once the step is coded."""

    def __init__(self, pictures: int, version: int = VERSION) -> None:
        self.version = version
        self._octaves = len(ERROR_OCTAVES) + 1 if version >= CONTEXT_VERSION else 1
        residual = (pictures * 3 * BANDS * FRACTIONS * self._octaves, SLOTS)
        colour = (pictures * COLOUR_CONTEXTS, SYMBOLS)
        cross = (pictures * 3 * BANDS * (2 * CROSS_REACH + 1), SLOTS)
        shared = (3 * BANDS * FRACTIONS * self._octaves, SLOTS)
        sizes = [_Counts.size(*residual), _Counts.size(*colour)]
        if version >= CONTEXT_VERSION:
            sizes += [_Counts.size(*cross), _Counts.size(*shared)]
        self._sums = np.zeros(sum(sizes), np.int64)
        self._residuals = _Counts(*residual, self._sums, 0)
        self._colours = _Counts(*colour, self._sums, sizes[0])
        self._cross = self._shared = None
        if version >= CONTEXT_VERSION:
            self._cross = _Counts(*cross, self._sums, sizes[0] + sizes[1])
            self._shared = _Counts(*shared, self._sums, sum(sizes[:3]))
        self._candidates = CANDIDATES_3 if version >= CONTEXT_VERSION else CANDIDATES
        self._costs = np.zeros((pictures * 3 * BANDS * self._octaves, len(self._candidates)),
                               np.int64)
        self._current: tuple | None = None  # what `component` computed, for `observe`
        self._previous: np.ndarray | None = None  # the last colour's residuals (version 3)
        self._pending: list[tuple] = []  # what `update` learns from

    def _totals(self, firsts: np.ndarray) -> np.ndarray:
        return self._sums[firsts + SYMBOLS] - self._sums[firsts]

    def component(self, picture: np.ndarray, colour: int, before: np.ndarray, mean: np.ndarray,
                  scale: np.ndarray, weights: np.ndarray,
                  neighbour_error: np.ndarray | None = None) -> CountComponents:
        """The histograms' count components (residual, colour; version 3: and cross-colour)
        for colour `colour` of pixels of pictures `picture`, from the pixels' colours coded
        before it (`before` (n, ≥ colour)), their (adapted) mixture's integer means (1/16
        pixel), scale indices and weights (n, K), and (version 3) their neighbours' errors
        (`PictureAdaptation.neighbour_error`). Colours come in order, each after the last's
        `observe`."""
        mu, _, band = mixture_centre(mean, scale, weights)
        half = MEAN_STEPS // 2
        centre = np.clip((mu + half) // MEAN_STEPS, 0, SYMBOLS - 1)
        fraction = (mu + half) % MEAN_STEPS * FRACTIONS // MEAN_STEPS
        owner = picture * 3 + colour
        residual_context = (owner * BANDS + band) * FRACTIONS + fraction
        chooser = owner * BANDS + band  # whose costs choose the weights
        shared_context = None
        if self._cross is not None:
            if neighbour_error is None:
                raise ValueError("version 3 histograms need the neighbours' errors")
            octave = (neighbour_error[:, None] >= ERROR_OCTAVES[None]).sum(1)
            residual_context = residual_context * self._octaves + octave
            chooser = chooser * self._octaves + octave
            shared_context = (((colour * BANDS + band) * FRACTIONS + fraction) * self._octaves
                              + octave)
        # slot x − centre + 255 holds residual x − centre
        residual_first = self._residuals.first(residual_context, SYMBOLS - 1 - centre)
        colour_context = None
        if colour == 1:
            colour_context = picture * COLOUR_CONTEXTS + before[:, 0]
        elif colour == 2:
            colour_context = picture * COLOUR_CONTEXTS + SYMBOLS + 5 * before[:, 1] + np.clip(
                before[:, 0] - before[:, 1], -2, 2) + 2
        colour_first = (residual_first if colour_context is None
                        else self._colours.first(colour_context, 0))
        sources = [residual_first, colour_first]
        cross_context = None
        if self._cross is not None:
            cross_context = residual_first  # red: weight 0 (its totals are set to 0 below)
            if colour:
                cross_context = (owner * BANDS + band) * (2 * CROSS_REACH + 1) + np.clip(
                    self._previous, -CROSS_REACH, CROSS_REACH) + CROSS_REACH
                sources.append(self._cross.first(cross_context, SYMBOLS - 1 - centre))
            else:
                sources.append(residual_first)
            sources.append(self._shared.first(shared_context, SYMBOLS - 1 - centre))
        firsts = np.stack(sources)
        totals = self._totals(firsts)
        if colour_context is None:
            totals[1:3] = 0
        priors = np.array([COUNT_PRIOR, COLOUR_PRIOR, COUNT_PRIOR, COUNT_PRIOR][:len(sources)])
        choice = np.argmin(self._costs[chooser], 1)
        self._current = (chooser, residual_context, centre, colour_context, firsts, totals,
                         priors, cross_context if colour else None, shared_context)
        return CountComponents(self._sums, firsts,
                               _weights(self._candidates[choice].T, totals, priors[:, None]))

    def observe(self, symbols: np.ndarray, model_freqs: np.ndarray) -> None:
        """The coded symbols of the colour `component` was last called for, and their
        frequencies under the net's mixture alone (at 30 bits)."""
        (chooser, residual_context, centre, colour_context, firsts, totals, priors,
         cross_context, shared_context) = self._current
        # each source's frequency of the symbol at 30 bits (0 where it has no counts)
        freqs = ((self._sums[firsts + symbols + 1] - self._sums[firsts + symbols])
                 << CODED_BITS) // np.maximum(totals, 1)
        # every candidate's cost, added now: a colour's rows are read only by its own
        # `component`, which comes again after `update`
        if COMPILED:
            _add_costs(self._costs, chooser, np.ascontiguousarray(model_freqs, np.int64),
                       freqs, totals, priors, self._candidates, LOG2_TABLE)
        else:
            candidates = _weights(self._candidates.T[:, None, :], totals[:, :, None],
                                  priors[:, None, None])  # (sources, n, candidates)
            mixed = (((1 << WEIGHT_BITS) - candidates.sum(0)) * model_freqs[:, None]
                     + (candidates * freqs[:, :, None]).sum(0)) >> WEIGHT_BITS
            np.add.at(self._costs, chooser,
                      (CODED_BITS << LOG2_BITS) - log2_fixed(np.maximum(mixed, 1)))
        self._pending.append((residual_context, symbols - centre + SYMBOLS - 1,
                              colour_context, symbols, cross_context, shared_context))
        self._previous = symbols - centre
        self._current = None

    def update(self) -> None:
        """Learn the step's symbols and costs."""
        if not self._pending:
            return
        self._residuals.learn([p[0] for p in self._pending], [p[1] for p in self._pending])
        coloured = [p for p in self._pending if p[2] is not None]
        if coloured:
            self._colours.learn([p[2] for p in coloured], [p[3] for p in coloured])
        crossed = [p for p in self._pending if p[4] is not None]
        if crossed and self._cross is not None:
            self._cross.learn([p[4] for p in crossed], [p[1] for p in crossed])
        if self._shared is not None:
            self._shared.learn([p[5] for p in self._pending], [p[1] for p in self._pending])
        self._pending = []
