"""The causal model's adaptation to the picture it codes: bias and scale learnt while decoding.

The causal net is trained on many photos; each photo errs in its own ways (a smooth sky the
net finds too noisy, a facade whose edges it places a little off). Classical coders correct
for that as they go (CALIC's bias cancellation, JPEG-XL's self-correcting predictor), and so
does this: every coded pixel updates small integer tables, and the pixels after it read them.

Each large picture on a shard's canvas has tables of its own; small ones share a set (the
codec decides: `ShardCanvas.owners`). For colour c of a pixel,
the net's mixture gives its mean μ (the weights' average of the components' means, in 1/16
pixel) and scale index σ (their average grid index). Then:

- Context bias: a context of (c, σ // 8, which of W, N, NW, NE lie above μ) keeps the sum S
  and count C of the errors x − μ made in it; its bias is floor(S / (C + 4)). Contexts are
  halved when C reaches 256, so they follow the picture.
- Neighbour bias: a linear function of what remained of the errors of W, N, NW, NE, WW, NN
  after their context bias, with weights per picture and colour learnt by normalized LMS
  (step 1/1000; weights at 2^-24, steps rounded to nearest). CALIC and JPEG-XL's
  self-correcting predictor do the like.
- Every component's mean moves by the sum of the two biases.
- Scale: a context of (c, σ // 8, how the neighbours' remaining errors compared with their
  expected size, in octaves) keeps the sum A of |x − μ − bias| and the sum B of the sizes
  the model expected (2 ln 2 × its scale); every component's scale index moves by
  round(12 · ln r), r = (A + 16 · B / D) / (B + 16 · B / D) (the ratio shrunk toward 1
  while D, the count, is small), at most ±24 steps. Halved when D reaches 512.

A step's pixels read the tables as they were before the step; after its three colours are
coded, its errors are added (the LMS steps of its pixels summed), then contexts at their limit
halved: the decoder, which learns a step's pixels only at its end, computes exactly what the
encoder did. Every quantity is an integer (floor divisions; shifts of non-negative numbers
only) and both tables are computed with `decimal`, so any machine gives the same numbers.
What it buys and costs: docs/models.md, "Adapting to the picture".
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
import torch

from recarchive.models.exact_bitswap import PIXEL_GRID

VERSION = 1  # the shard parameter `adapt` that selects this; 0 (or absent): no adaptation
MEAN_STEPS = 16  # the table's mean unit: 1/16 of a pixel
SIGMA_BAND = 8  # grid steps (1/16 nat each) per scale band: half a nat
BANDS = PIXEL_GRID.count // SIGMA_BAND + 1
TEXTURES = 16  # W, N, NW, NE above μ or not
ENERGIES = 8  # neighbours' errors over their expected size: below 1/8, …, at least 8
BIAS_PRIOR = 4  # the bias is S / (C + BIAS_PRIOR)
BIAS_LIMIT = 256
SCALE_PRIOR = 16  # pseudo-count of the ratio 1
SCALE_LIMIT = 512
SCALE_GAIN = 12  # grid steps per nat of ratio (0.75 of a nat per nat: shrunk toward 1)
SCALE_REACH = 24
RATIO_BITS = 20
# the picture's linear correction from its neighbours' remaining errors (normalized LMS)
LMS_NEIGHBOURS = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0))  # (dy, dx)
LMS_WEIGHT_BITS = 24  # fine enough that the steps' rounding does not steer the weights
LMS_RATE = 1000  # the step is 1/LMS_RATE of the normalized gradient
LMS_FLOOR = 256  # (1 pixel)² added to the inputs' squared norm
LMS_LIMIT = 8 << LMS_WEIGHT_BITS  # |weight| ≤ 8
LMS_BATCH = 256  # at most this many of a picture's pixels' steps are summed per wavefront step


DECIMAL_DIGITS = 40  # the precision the tables are computed at (a local context: the
# process's decimal context is neither read nor changed)


def _expected_abs_table() -> np.ndarray:
    """16 × 2 ln 2 × the pixel scale of every grid index (the mean |x − μ| of a logistic),
    rounded: the unit of B."""
    with localcontext() as context:
        context.prec = DECIMAL_DIGITS
        two_ln2 = 2 * Decimal(2).ln()
        unit = Decimal(PIXEL_GRID.unit)  # floats convert exactly
        return np.array([int((MEAN_STEPS * two_ln2 * unit * (
            Decimal(j + PIXEL_GRID.first) * Decimal(PIXEL_GRID.step)).exp()).to_integral_value())
            for j in range(PIXEL_GRID.count)], np.int64)


def _ratio_thresholds() -> np.ndarray:
    """2^20 · exp((j − 1/2) / SCALE_GAIN) for j = −REACH + 1 … REACH: r ≥ threshold j moves
    the scale by at least j steps."""
    with localcontext() as context:
        context.prec = DECIMAL_DIGITS
        return np.array([int((Decimal(1 << RATIO_BITS) * (
            (Decimal(j) - Decimal("0.5")) / SCALE_GAIN).exp()).to_integral_value())
            for j in range(-SCALE_REACH + 1, SCALE_REACH + 1)], np.int64)


EXPECTED_ABS = _expected_abs_table()
RATIO_THRESHOLDS = _ratio_thresholds()


def mixture_centre(mean: np.ndarray, scale: np.ndarray, weights: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(μ in 1/16 pixel, σ as a grid index, its scale band) (n,) of mixtures given by their
    components' integer means, scale indices and weights (n, K): the weights' averages."""
    # floor divisions, not shifts: defined the same for negative numbers everywhere
    mu = (weights * mean).sum(1) // (1 << 16)
    sigma = (weights * scale).sum(1) // (1 << 16)
    return mu, sigma, np.clip(sigma // SIGMA_BAND, 0, BANDS - 1)


class PictureAdaptation:
    """The tables of every picture on a shard's canvas (each object has its own) and each
    coded pixel's error, for the pixels after it. Call `corrections` for each colour of a
    step, then `update` once the step's pixels are on the canvas."""

    def __init__(self, values: torch.Tensor, known: torch.Tensor, width: int,
                 owner: np.ndarray | None = None) -> None:
        """`values` (P, 3) the canvas (filled as pixels are decoded), `known` (P,) its
        shard's pixels, `owner` (P,) which picture (0, 1, …) each canvas pixel belongs to
        (all 0 by default)."""
        self._values = values
        self._known = known.numpy().astype(bool)
        self._width = width
        size = len(known)
        self._owner = np.zeros(size, np.int64) if owner is None else np.asarray(owner, np.int64)
        pictures = int(self._owner.max(initial=0)) + 1
        self._error = np.zeros((size, 3), np.int64)  # |x − μ − bias| (1/16 pixel)
        self._expected = np.zeros((size, 3), np.int64)  # EXPECTED_ABS of its σ
        self._bias_sum = np.zeros((pictures, 3, BANDS, TEXTURES), np.int64)
        self._bias_count = np.zeros_like(self._bias_sum)
        self._abs_sum = np.zeros((pictures, 3, BANDS, ENERGIES), np.int64)
        self._expected_sum = np.zeros_like(self._abs_sum)
        self._scale_count = np.zeros_like(self._abs_sum)
        self._residual = np.zeros((size, 3), np.int64)  # x − μ − context bias (1/16 pixel)
        self._lms = np.zeros((pictures, 3, len(LMS_NEIGHBOURS)), np.int64)
        self._pending: list[tuple] = []  # what `update` learns from, per colour of the step

    def _neighbours(self, index: np.ndarray) -> list[np.ndarray]:
        w = self._width
        return [index - 1, index - w, index - w - 1, index - w + 1]

    def _lms_inputs(self, index: np.ndarray, colour: int) -> np.ndarray:
        """(n, 6) the remaining errors of the LMS neighbours (0 where none was coded)."""
        return np.stack([self._residual[index + dy * self._width + dx, colour]
                         for dy, dx in LMS_NEIGHBOURS], 1)

    def neighbour_error(self, index: np.ndarray, colour: int) -> np.ndarray:
        """(n,) the sum of what the corrections left of W's, N's, NW's and NE's errors (1/16
        pixel; 0 for a neighbour not coded): how busy the pixels' surroundings are."""
        return sum(self._error[near, colour] for near in self._neighbours(index))

    def corrections(self, index: np.ndarray, colour: int, mean: np.ndarray, scale: np.ndarray,
                    weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean shift, scale-index shift) (n,) for colour `colour` of the pixels at canvas
        `index`, from their mixture's integer means, scale indices and weights (n, K)."""
        mu, sigma, band = mixture_centre(mean, scale, weights)
        values = self._values[:, colour].numpy()
        texture = np.zeros(len(index), np.int64)
        error_sum = self.neighbour_error(index, colour)
        expected_sum = np.zeros(len(index), np.int64)
        for bit, near in enumerate(self._neighbours(index)):
            texture |= ((self._known[near] & (MEAN_STEPS * values[near] > mu))
                        .astype(np.int64) << bit)
            expected_sum += self._expected[near, colour]
        # octaves of error_sum / expected_sum, 0 (below 1/8, or no neighbour) … 7 (8 or more)
        energy = sum(((MEAN_STEPS * error_sum >= (1 << j) * expected_sum) & (expected_sum > 0))
                     .astype(np.int64) for j in range(1, ENERGIES))
        picture = self._owner[index]
        bias_at = (picture, colour, band, texture)
        context_bias = self._bias_sum[bias_at] // (self._bias_count[bias_at] + BIAS_PRIOR)
        inputs = self._lms_inputs(index, colour)
        bias = context_bias + (self._lms[picture, colour] * inputs).sum(1) // (1 << LMS_WEIGHT_BITS)
        scale_at = (picture, colour, band, energy)
        count = self._scale_count[scale_at]
        b = self._expected_sum[scale_at]
        prior = np.where(count > 0, SCALE_PRIOR * b // np.maximum(count, 1), 0)
        numerator = (self._abs_sum[scale_at] + prior) << RATIO_BITS
        denominator = b + prior
        reached = numerator[:, None] >= denominator[:, None] * RATIO_THRESHOLDS[None]
        shift = np.where(denominator > 0, reached.sum(1) - SCALE_REACH, 0)
        expected = EXPECTED_ABS[np.clip(sigma, 0, PIXEL_GRID.count - 1)]
        self._pending.append((colour, index, bias_at, scale_at, mu, context_bias, bias, inputs,
                              expected))
        return bias, shift

    def update(self) -> None:
        """Learn the step's pixels (now in the canvas) into the tables."""
        for (colour, index, bias_at, scale_at, mu, context_bias, bias, inputs,
             expected) in self._pending:
            error = MEAN_STEPS * self._values[index, colour].numpy() - mu
            remaining = error - bias
            norm = LMS_RATE * ((inputs * inputs).sum(1) + LMS_FLOOR)
            step = ((remaining[:, None] * inputs * (1 << LMS_WEIGHT_BITS)) + norm[:, None] // 2
                    ) // norm[:, None]  # rounded to nearest
            picture = bias_at[0]
            total = np.zeros(self._lms.shape[::2], np.int64)  # (pictures, inputs)
            np.add.at(total, picture, step)
            # a picture with more than LMS_BATCH pixels in the step takes their mean × LMS_BATCH:
            # a wide picture's summed steps would otherwise overshoot and diverge
            pixels = np.bincount(picture, minlength=len(total))[:, None]
            self._lms[:, colour] += total * LMS_BATCH // np.maximum(pixels, LMS_BATCH)
            # a bound no real picture reaches, so that no sum above can overflow int64
            np.clip(self._lms[:, colour], -LMS_LIMIT, LMS_LIMIT, out=self._lms[:, colour])
            self._residual[index, colour] = error - context_bias
            np.add.at(self._bias_sum, bias_at, error)
            np.add.at(self._bias_count, bias_at, 1)
            np.add.at(self._abs_sum, scale_at, np.abs(remaining))
            np.add.at(self._expected_sum, scale_at, expected)
            np.add.at(self._scale_count, scale_at, 1)
            self._error[index, colour] = np.abs(remaining)
            self._expected[index, colour] = expected
        self._pending = []
        full = self._bias_count >= BIAS_LIMIT
        self._bias_sum[full] //= 2
        self._bias_count[full] //= 2
        full = self._scale_count >= SCALE_LIMIT
        self._abs_sum[full] //= 2
        self._expected_sum[full] //= 2
        self._scale_count[full] //= 2
