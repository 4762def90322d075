"""Compiled loops around the int8 GEMM: operands in, requantized integers out.

`Int8Conv2d` composed a dozen torch operations around each GEMM (ELU gather, clamp, pad,
digit split, im2col concatenation, digit combination in int64, shift, bias, clamp, residual
add), each a pass over memory and a Python call: at the nets' batch sizes on a CPU they took
longer than the GEMM itself. These loops do the same integer arithmetic per element, in two
passes before the GEMM (operand digit planes, im2col) and one after (requantization with the
residual); tests hold them to the torch composition, which CUDA and machines without numba
run. Integer arithmetic only, so the results are the same integers.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit

    AVAILABLE = True
except ImportError:  # the torch composition computes the same integers, only slower
    AVAILABLE = False

    def njit(**_options):
        return lambda function: function

DIGIT_BITS = 7
DIGIT_MASK = (1 << DIGIT_BITS) - 1


@njit(cache=True, nogil=True)
def operand_planes(h: np.ndarray, table: np.ndarray, low: int, high: int, offset: int,
                   pad: int, planes: np.ndarray) -> None:
    """A conv's operand as digit planes (digits, B, H + 2·pad, W + 2·pad, C) int8, the low
    digits 7-bit unsigned, the top one signed.

    h (B, H, W, C) integers. With a table (an `Int8ELU`'s): operand = table[clamp(h, low,
    high) - low]; without (an empty one): operand = clamp(h, low, high) - offset. Padding
    holds -offset (activation 0)."""
    batch, height, width, channels = h.shape
    digits = planes.shape[0]
    top = DIGIT_BITS * (digits - 1)
    fill = -offset
    if pad:  # the border only: the loop below writes the rest
        for i in range(digits):
            digit = fill >> top if i == digits - 1 else (fill >> (DIGIT_BITS * i)) & DIGIT_MASK
            planes[i, :, :pad] = digit
            planes[i, :, height + pad:] = digit
            planes[i, :, :, :pad] = digit
            planes[i, :, :, width + pad:] = digit
    # clamp, gather and digits as three loops over a pixel's channels: the first and last
    # vectorize, the gather alone runs as scalar loads (one fused loop did neither well)
    index = np.empty(channels, np.int64)
    values = np.empty(channels, np.int64)
    with_table = table.shape[0] > 0
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                row = h[b, y, x]
                for c in range(channels):
                    index[c] = min(max(np.int64(row[c]), low), high) - low
                if with_table:
                    for c in range(channels):
                        values[c] = table[index[c]]
                else:
                    for c in range(channels):
                        values[c] = index[c] + low - offset
                for i in range(digits - 1):
                    target = planes[i, b, y + pad, x + pad]
                    for c in range(channels):
                        target[c] = (values[c] >> (DIGIT_BITS * i)) & DIGIT_MASK
                target = planes[digits - 1, b, y + pad, x + pad]
                for c in range(channels):
                    target[c] = values[c] >> top


@njit(cache=True, nogil=True)
def patches(planes: np.ndarray, kh: int, kw: int, out: np.ndarray) -> None:
    """im2col: out (digits, B·H'·W', kh·kw·C) int8, columns (ky, kx, c) as the weight rows."""
    digits, batch, height, width, channels = planes.shape
    out_h, out_w = height - kh + 1, width - kw + 1
    for d in range(digits):
        for b in range(batch):
            for y in range(out_h):
                for x in range(out_w):
                    row = (b * out_h + y) * out_w + x
                    for i in range(kh):
                        for j in range(kw):
                            base = (i * kw + j) * channels
                            for c in range(channels):
                                out[d, row, base + c] = planes[d, b, y + i, x + j, c]


@njit(cache=True, nogil=True)
def requantize(products: np.ndarray, digits: int, weight_digits: int, bias: np.ndarray,
               left: np.ndarray, right: np.ndarray, low: int, high: int,
               residual: np.ndarray, out: np.ndarray) -> None:
    """out (rows, Cout) = clamp(((Σ_ij 2^(7(i+j)) products[i·rows + r, j·Cout + o]) << left
    + bias) >> right), then, with a residual (rows, Cout) (an empty one: none), clamp(residual
    + that). products (digits·rows, weight_digits·Cout) int32; all sums in int64."""
    rows, channels = out.shape
    with_residual = residual.shape[0] > 0
    acc = np.empty(channels, np.int64)
    for r in range(rows):
        acc[:] = 0
        for i in range(digits):
            for j in range(weight_digits):
                shift = DIGIT_BITS * (i + j)
                source = products[i * rows + r, j * channels:(j + 1) * channels]
                for o in range(channels):
                    acc[o] += np.int64(source[o]) << shift
        target = out[r]
        for o in range(channels):
            value = min(max(((acc[o] << left[o]) + bias[o]) >> right[o], low), high)
            if with_residual:
                value = min(max(value + residual[r, o], low), high)
            target[o] = value


@njit(cache=True, nogil=True)
def cell_sums(h: np.ndarray, table: np.ndarray, low: int, high: int, cell: int,
              out: np.ndarray) -> None:
    """out (B, H/cell, W/cell, C) = Σ over each cell×cell square of table[clamp(h, low, high)
    - low]: an `Int8ELU`'s operands, summed (a coarse path's pooling)."""
    batch, height, width, channels = h.shape
    out[:] = 0
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                row = h[b, y, x]
                target = out[b, y // cell, x // cell]
                for c in range(channels):
                    target[c] += table[min(max(np.int64(row[c]), low), high) - low]


@njit(cache=True, nogil=True)
def add_spread(h: np.ndarray, coarse: np.ndarray, cell: int, low: int, high: int) -> None:
    """h (B, H, W, C) += coarse (B, H/cell, W/cell, C) at every position its cell covers,
    clamped to [low, high], in place."""
    batch, height, width, channels = h.shape
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                row = h[b, y, x]
                source = coarse[b, y // cell, x // cell]
                for c in range(channels):
                    row[c] = min(max(row[c] + source[c], low), high)
