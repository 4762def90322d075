"""Integer quantization primitives shared by the exact layers.

Everything here is integer arithmetic (int64) or float64 arithmetic restricted to integers of
magnitude below 2**53, where every IEEE-754 double operation (add, multiply, fused
multiply-add) is exact. Exact operations have a single correct result, so neither the
summation order (thread count, batch size, BLAS blocking) nor the device can change it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Every integer of magnitude <= 2**53 is a float64; sums of such integers below it are exact.
FLOAT64_EXACT_LIMIT = 2**53
#: int64 products and sums must stay strictly below this in magnitude.
INT64_LIMIT = 2**63
#: Largest shift accepted by :func:`requantize` (shifts of 63 or more are undefined in C).
MAX_SHIFT = 62
#: Bit widths accepted for weights and activations.
MIN_BITS, MAX_BITS = 2, 32


def check_bits(bits: int, what: str) -> int:
    """Validate a bit width; wider than 32 bits would not fit the float64/int64 bounds."""
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{what} must be an int in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return bits


def signed_range(bits: int) -> tuple[int, int]:
    """Inclusive range [-2**(bits-1), 2**(bits-1) - 1] of a signed ``bits``-bit integer."""
    check_bits(bits, "bits")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def accumulator_bound(weight_bits: int, act_bits: int, fan_in: int, bias_bound: int = 0) -> int:
    """Largest possible |accumulator| of a dot product of length ``fan_in`` plus a bias.

    The largest product magnitude is (-2**(w-1)) * (-2**(a-1)) = 2**(w+a-2). Every partial sum
    a GEMM may form (any subset of the products, in any order) is bounded by ``fan_in`` times
    that, so if the bound is below 2**53 every intermediate float64 value is an exactly
    representable integer and the float64 result is exact whatever the summation order.
    """
    check_bits(weight_bits, "weight_bits")
    check_bits(act_bits, "act_bits")
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, got {fan_in}")
    if bias_bound < 0:
        raise ValueError(f"bias_bound must be >= 0, got {bias_bound}")
    return fan_in * (1 << (weight_bits + act_bits - 2)) + bias_bound


def check_accumulator_bound(bound: int, layer: str) -> None:
    """Refuse a layer whose float64 accumulation could round (bound >= 2**53)."""
    if bound >= FLOAT64_EXACT_LIMIT:
        raise ValueError(
            f"{layer}: accumulator bound {bound} (~2**{math.log2(bound):.2f}) is not below 2**53;"
            " float64 accumulation would not be exact. Use fewer weight/activation bits or a"
            " smaller fan-in."
        )


def check_requant_bound(acc_bound: int, multiplier: torch.Tensor, shift: torch.Tensor,
                        layer: str) -> None:
    """Refuse requantization parameters for which ``acc * M + 2**(s-1)`` could overflow int64."""
    if multiplier.numel() and int(multiplier.min()) < 0:
        raise ValueError(f"{layer}: multipliers must be >= 0")
    if shift.numel() and not (int(shift.min()) >= 0 and int(shift.max()) <= MAX_SHIFT):
        raise ValueError(f"{layer}: shifts must lie in [0, {MAX_SHIFT}]")
    max_m = int(multiplier.max()) if multiplier.numel() else 0
    max_offset = (1 << int(shift.max())) >> 1 if shift.numel() else 0
    if acc_bound * max_m + max_offset >= INT64_LIMIT:
        raise ValueError(
            f"{layer}: requantization |acc| * M + 2**(s-1) <= {acc_bound} * {max_m} + {max_offset}"
            " may overflow int64"
        )


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor,
               out_bits: int) -> torch.Tensor:
    """clamp(floor(acc * M / 2**s + 1/2)) computed as ``(acc * M + 2**(s-1)) >> s`` in int64.

    Integer multiply, add and arithmetic (flooring) right shift are exact on every device, so
    the result is bit-identical everywhere. ``multiplier`` and ``shift`` broadcast against
    ``acc`` (per-output-channel). Callers guarantee |acc| * M + 2**(s-1) < 2**63.
    """
    lo, hi = signed_range(out_bits)
    shift = shift.to(torch.int64)
    offset = torch.bitwise_right_shift(torch.bitwise_left_shift(torch.ones_like(shift), shift), 1)
    scaled = acc.to(torch.int64) * multiplier.to(torch.int64) + offset
    return torch.clamp(torch.bitwise_right_shift(scaled, shift), lo, hi)


def choose_multiplier_shift(real_scale: float, multiplier_bits: int) -> tuple[int, int]:
    """Integers (M, s) with M / 2**s ~= ``real_scale`` and 0 <= M < 2**multiplier_bits.

    M is normalised to use all ``multiplier_bits`` bits (relative error <= 2**-multiplier_bits)
    unless that would need a shift outside [0, MAX_SHIFT]. Done once, at conversion time.
    """
    if not (math.isfinite(real_scale) and real_scale >= 0):
        raise ValueError(f"real_scale must be finite and >= 0, got {real_scale}")
    if not 1 <= multiplier_bits <= 62:
        raise ValueError(f"multiplier_bits must be in [1, 62], got {multiplier_bits}")
    if real_scale == 0.0:
        return 0, 0
    _, exponent = math.frexp(real_scale)  # real_scale = mantissa * 2**exponent, mantissa < 1
    shift = min(multiplier_bits - exponent, MAX_SHIFT)
    if shift < 0:
        raise ValueError(
            f"real_scale {real_scale} needs a negative shift with {multiplier_bits}-bit multipliers"
        )
    multiplier = round(math.ldexp(real_scale, shift))
    if multiplier >= 1 << multiplier_bits:  # mantissa rounded up to 1.0
        if shift == 0:
            raise ValueError(f"real_scale {real_scale} does not fit {multiplier_bits} bits")
        multiplier, shift = round(math.ldexp(real_scale, shift - 1)), shift - 1
    return multiplier, shift


def quantize_weight_per_channel(weight: torch.Tensor,
                                weight_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel quantization: returns (int64 weight, float64 scale per row).

    Values map to [-(2**(w-1) - 1), 2**(w-1) - 1]; an all-zero channel gets scale 1. This runs
    once at conversion time on CPU, so ordinary float rounding is fine: the integer weights it
    produces are what is stored and shipped.
    """
    check_bits(weight_bits, "weight_bits")
    qmax = (1 << (weight_bits - 1)) - 1
    w = weight.detach().to("cpu", torch.float64)
    max_abs = w.reshape(w.shape[0], -1).abs().amax(dim=1)
    scale = torch.where(max_abs > 0, max_abs / qmax, torch.ones_like(max_abs))
    view = (-1,) + (1,) * (w.dim() - 1)
    w_int = torch.clamp(torch.round(w / scale.view(view)), -qmax, qmax).to(torch.int64)
    return w_int, scale


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def as_int64(x: torch.Tensor, what: str) -> torch.Tensor:
    """Convert an integer tensor, or a float64 tensor holding integers, to int64.

    float32/float16 are refused: they cannot hold every integer above 2**24 / 2**11.
    """
    if x.dtype in _INT_DTYPES:
        return x.to(torch.int64)
    if x.dtype != torch.float64:
        raise TypeError(f"{what}: inputs must be integer or float64 tensors, got {x.dtype}")
    if not bool(torch.isfinite(x).all()) or not torch.equal(x, torch.round(x)):
        raise ValueError(f"{what}: float64 input holds non-integer values")
    return x.to(torch.int64)


def check_integer_tensor(x: torch.Tensor, bits: int, what: str) -> torch.Tensor:
    """Return ``x`` as int64 after checking it holds integers in the signed ``bits`` range.

    Out-of-range inputs would void the accumulator bound proof, so they are rejected rather
    than silently clamped.
    """
    x = as_int64(x, what)
    lo, hi = signed_range(bits)
    if x.numel() and bool(((x < lo) | (x > hi)).any()):
        raise ValueError(f"{what}: values outside the {bits}-bit range [{lo}, {hi}]")
    return x


def round_half_up_np(values: np.ndarray) -> np.ndarray:
    """floor(v + 1/2) in float64 numpy (the same tie rule as :func:`requantize`)."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5)
