"""Uniform -> Gaussian through an integer-indexed quantile table.

Why a table: ``erfinv``/``log`` differ in the last bits between libms, numpy and torch, CPU and
CUDA, so a decoder computing Gaussians from uniforms could drift from the encoder. Instead the
top ``k`` bits of a 32-bit Philox word index a table of ``K = 2**k`` Gaussian quantiles
``q[i] = Phi^{-1}((i + 0.5) / K)``; a lookup is plain indexing and therefore bit-identical on
every backend.

The table is built once on the CPU, deterministically on any platform:

* ``Phi^{-1}`` is Wichura's AS241 (PPND16, ~1e-16 relative accuracy) evaluated in plain Python
  floats (IEEE-754 double, each operation separately rounded; no libm in the central region).
  ``statistics.NormalDist.inv_cdf`` is not used because CPython routes it through a C
  accelerator whose compiled arithmetic may differ between builds.
* The tail's ``sqrt(-log(p))`` is computed with :mod:`decimal` (correctly rounded by
  specification) instead of the platform's ``math.log``, which is not.
* Only the lower half is computed; the upper half is its exact negation, so ``q[i] ==
  -q[K-1-i]`` holds by construction.

It is stored as float64 (``values``) and as fixed point ``fixed = round(q * 2**frac_bits)``
(int64) for integer-only code. ``QuantileTable.sha256`` pins both, so models and archives can
refuse a table that differs from the one they were made with.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from decimal import Context, Decimal
from functools import lru_cache

import numpy as np
import torch

DEFAULT_K = 16
DEFAULT_FRAC_BITS = 24
MAX_K = 24  # 2**24 entries already take seconds to build in pure Python
MAX_FRAC_BITS = 48  # keeps |q| * 2**F (|q| < 6 for k <= 24) far inside int64 and exact in f64

# AS241 (Wichura 1988, Applied Statistics 37(3):477-484), highest degree first for Horner.
_A = (
    2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4,
    4.5921953931549871457e4, 1.3731693765509461125e4, 1.9715909503065514427e3,
    1.3314166789178437745e2, 3.3871328727963666080e0,
)  # fmt: skip
_B = (
    5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4,
    2.1213794301586595867e4, 5.3941960214247511077e3, 6.8718700749205790830e2,
    4.2313330701600911252e1, 1.0,
)  # fmt: skip
_C = (
    7.7454501427834140764e-4, 2.2723844989269184583e-2, 2.4178072517745061177e-1,
    1.2704582524523683826e0, 3.6478483247632046050e0, 5.7694972214606914055e0,
    4.6303378461565452959e0, 1.4234371107496835773e0,
)  # fmt: skip
_D = (
    1.0507500716444168432e-9, 5.4759380849953449460e-4, 1.5198666563616457197e-2,
    1.4810397642748007459e-1, 6.8976733498510000455e-1, 1.6763848301838038494e0,
    2.0531916266377588219e0, 1.0,
)  # fmt: skip
_E = (
    2.0103343992922881327e-7, 2.7115555687434875782e-5, 1.2426609473880784386e-3,
    2.6532189526576123093e-2, 2.9656057182850489123e-1, 1.7848265399172913358e0,
    5.4637849111641143699e0, 6.6579046435011037772e0,
)  # fmt: skip
_F = (
    2.0442631033899397856e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
    7.8686913114561325910e-4, 1.4875361290850614852e-2, 1.3692988092273580531e-1,
    5.9983220655588793769e-1, 1.0,
)  # fmt: skip

_DECIMAL_CTX = Context(prec=50)


def _horner(coeffs: tuple[float, ...], x: float) -> float:
    acc = coeffs[0]
    for c in coeffs[1:]:
        acc = acc * x + c
    return acc


def _sqrt_neg_log(p: float) -> float:
    """sqrt(-ln p) via decimal: correctly rounded steps, so identical on every platform."""
    ctx = _DECIMAL_CTX
    return float(ctx.sqrt(ctx.minus(ctx.ln(Decimal(p)))))


def inv_cdf(p: float) -> float:
    """Standard normal quantile Phi^{-1}(p) for p in (0, 1), AS241, platform-deterministic."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _horner(_A, r) / _horner(_B, r)
    r = _sqrt_neg_log(p if q < 0.0 else 1.0 - p)
    if r <= 5.0:
        r -= 1.6
        x = _horner(_C, r) / _horner(_D, r)
    else:
        r -= 5.0
        x = _horner(_E, r) / _horner(_F, r)
    return -x if q < 0.0 else x


@dataclass(frozen=True, eq=False)
class QuantileTable:
    """K = 2**k Gaussian quantiles as float64 ``values`` and int64 ``fixed`` (scale 2**-F)."""

    k: int
    frac_bits: int
    values: np.ndarray
    fixed: np.ndarray
    sha256: str
    _torch_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def size(self) -> int:
        return 1 << self.k

    def values_torch(self, device: torch.device | str | None = None) -> torch.Tensor:
        """float64 table on ``device``, cached so hot loops do not re-upload it."""
        return self._cached("values", self.values, device)

    def fixed_torch(self, device: torch.device | str | None = None) -> torch.Tensor:
        """int64 fixed-point table on ``device``, cached."""
        return self._cached("fixed", self.fixed, device)

    def _cached(
        self, name: str, arr: np.ndarray, device: torch.device | str | None
    ) -> torch.Tensor:
        dev = torch.device(device if device is not None else "cpu")
        key = (name, str(dev))
        if key not in self._torch_cache:
            self._torch_cache[key] = torch.tensor(arr, device=dev)
        return self._torch_cache[key]


def table_sha256(values: np.ndarray, fixed: np.ndarray) -> str:
    """sha256 over little-endian float64 values followed by little-endian int64 fixed points."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(fixed, dtype="<i8").tobytes())
    return h.hexdigest()


def _lower_half(k: int) -> list[float]:
    """q[i] for i < K/2 (all negative); p = (2i + 1) / 2**(k+1) is exact in float64."""
    denom = float(1 << (k + 1))
    return [inv_cdf((2 * i + 1) / denom) for i in range(1 << (k - 1))]


def make_table(k: int = DEFAULT_K, frac_bits: int = DEFAULT_FRAC_BITS) -> QuantileTable:
    """The symmetric quantile table with 2**k entries, built once per process and shared."""
    return _build_table(int(k), int(frac_bits))


@lru_cache(maxsize=8)
def _build_table(k: int, frac_bits: int) -> QuantileTable:
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
    if not 0 <= frac_bits <= MAX_FRAC_BITS:
        raise ValueError(f"frac_bits must be in [0, {MAX_FRAC_BITS}], got {frac_bits}")
    lower = np.array(_lower_half(k), dtype=np.float64)
    values = np.concatenate([lower, -lower[::-1]])
    scale = float(1 << frac_bits)
    # |lower| * 2**F is exact and < 2**51, so floor(x + 0.5) is an exact round-half-up.
    lower_fixed = -np.array([math.floor(-v * scale + 0.5) for v in lower], dtype=np.int64)
    fixed = np.concatenate([lower_fixed, -lower_fixed[::-1]])
    values.setflags(write=False)
    fixed.setflags(write=False)
    return QuantileTable(k, frac_bits, values, fixed, table_sha256(values, fixed))


def default_table() -> QuantileTable:
    return make_table(DEFAULT_K, DEFAULT_FRAC_BITS)


def _indices_numpy(words: np.ndarray, k: int) -> np.ndarray:
    w = np.asarray(words)
    if w.dtype.kind not in "iu":
        raise TypeError(f"words must be an integer array, got {w.dtype}")
    # Via uint64 so that out-of-range words (negative or >= 2**32) index out of bounds and raise.
    return w.astype(np.uint64) >> np.uint64(32 - k)


def _indices_torch(words: torch.Tensor, k: int) -> torch.Tensor:
    if words.is_floating_point() or words.is_complex():
        raise TypeError(f"words must be an integer tensor, got {words.dtype}")
    return words.to(torch.int64).bitwise_right_shift(32 - k)


def gaussian_from_words(words: np.ndarray, table: QuantileTable | None = None) -> np.ndarray:
    """N(0, 1) float64 samples: the top k bits of each 32-bit word index the quantile table."""
    table = table or default_table()
    return table.values[_indices_numpy(words, table.k)]


def gaussian_fixed_from_words(words: np.ndarray, table: QuantileTable | None = None) -> np.ndarray:
    """Fixed-point (int64, scale 2**-frac_bits) N(0, 1) samples for integer-only code."""
    table = table or default_table()
    return table.fixed[_indices_numpy(words, table.k)]


def gaussian_from_words_torch(
    words: torch.Tensor, table: QuantileTable | None = None
) -> torch.Tensor:
    """Torch twin of :func:`gaussian_from_words` on ``words``' device; bitwise equal."""
    table = table or default_table()
    return table.values_torch(words.device)[_indices_torch(words, table.k)]


def gaussian_fixed_from_words_torch(
    words: torch.Tensor, table: QuantileTable | None = None
) -> torch.Tensor:
    """Torch twin of :func:`gaussian_fixed_from_words`."""
    table = table or default_table()
    return table.fixed_torch(words.device)[_indices_torch(words, table.k)]
