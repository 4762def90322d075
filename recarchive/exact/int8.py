"""Exact integer convolutions as int8 GEMMs: wide integers cut into 8-bit digits.

The float64 layers of `fixed_point` run a GEMM at float64 speed. Here every operand is an int8
digit: an integer of up to 7·(d-1)+8 signed bits is d digits, the low ones unsigned 7-bit
(0..127), the top one signed (-128..127), so x = Σ 2^(7i) x_i. A convolution of x with W is
then Σ_ij 2^(7(i+j)) (x_i ⋆ W_j): one int8 GEMM of every input digit (stacked along rows)
against every weight digit (stacked along columns), whose int32 results are combined in int64.
Every product and sum is an integer well inside its type, so any kernel, blocking, thread
count or device gives the same integers:

- `torch._int_mm` (oneDNN VNNI on the CPU, cuBLASLt on CUDA) accumulates in int32: a sum of
  K products of two int8 is at most K·2^14, below 2^31 for any K this module accepts.
- Where `_int_mm` has no fast kernel, or fails the self-check (a CPU without VNNI whose kernel
  saturated 16-bit pairs would), the same GEMM runs in float32, exact while K·2^14 ≤ 2^24:
  convolutions here refuse a fan-in above `MAX_FAN_IN` (on CUDA in float64, out of TF32's
  reach).

Requantization is integer: add the bias (rounding offset folded in), arithmetic shift right by
a per-channel amount, clamp. Tensors are NHWC int64 between layers.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recarchive.exact import int8_kernels
from recarchive.exact.reference import LookupActivation

DIGIT_BITS = int8_kernels.DIGIT_BITS
#: Largest fan-in (input channels × kernel area) whose float32 GEMM of digits stays exact.
MAX_FAN_IN = 1 << (24 - 2 * DIGIT_BITS)


# what `int8_kernels` takes for "no activation table" and "no residual"
_NO_TABLE = np.zeros(0, np.int16)
_NO_RESIDUAL = np.zeros((0, 0), np.int32)


def digits_for(bits: int) -> int:
    """How many int8 digits hold a signed `bits`-bit integer."""
    if bits < 2:
        raise ValueError(f"a signed integer needs at least 2 bits, got {bits}")
    return 1 if bits <= 8 else 1 + -(-(bits - 8) // DIGIT_BITS)


def digit_range(digits: int) -> tuple[int, int]:
    """The integers `digits` int8 digits hold: [-2^(7d), 2^(7d) - 1] (top digit signed)."""
    top = 1 << (DIGIT_BITS * (digits - 1))
    return -128 * top, 128 * top - 1


def split_digits(x: torch.Tensor, digits: int) -> torch.Tensor:
    """int64 x -> int8 (digits, *x.shape), little-endian; x must lie in `digit_range`."""
    out = torch.empty((digits, *x.shape), dtype=torch.int8, device=x.device)
    for i in range(digits - 1):
        out[i].copy_((x >> (DIGIT_BITS * i)) & 127)
    out[digits - 1].copy_(x >> (DIGIT_BITS * (digits - 1)))
    return out


def _float32_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The GEMM in float32 on the CPU; on CUDA in float64, which TF32 never touches."""
    dtype = torch.float64 if a.device.type == "cuda" else torch.float32
    return torch.mm(a.to(dtype), b.to(dtype)).to(torch.int32)


def _worst_case(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Operands at the int8 extremes, in the patterns that break kernels which add pairs of
    products in saturating 16-bit lanes, or treat -128 specially, plus random rows."""
    k = MAX_FAN_IN
    gen = torch.Generator().manual_seed(0)
    rows = [torch.full((k,), v) for v in (-128, 127, -127)]
    rows.append(torch.tensor([127, -128] * (k // 2)))
    rows += [torch.randint(-128, 128, (k,), generator=gen) for _ in range(28)]
    cols = [torch.full((k,), v) for v in (-128, 127)]
    cols.append(torch.tensor([-128, 127] * (k // 2)))
    cols += [torch.randint(-128, 128, (k,), generator=gen) for _ in range(29)]
    a = torch.stack(rows).to(torch.int8)
    b = torch.stack(cols, 1).to(torch.int8)
    return a.to(device), b.to(device)


@functools.cache
def _int_mm_is_exact(device_type: str) -> bool:
    """`torch._int_mm` on this device gives the exact int32 products (checked once a process
    against int64 arithmetic on the CPU); False where it is missing or wrong."""
    device = torch.device(device_type)
    a, b = _worst_case(device)
    try:
        got = torch._int_mm(a, b).cpu().to(torch.int64)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return torch.equal(got, a.cpu().to(torch.int64) @ b.cpu().to(torch.int64))


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact int32 a @ b of int8 (M, K) and (K, N), K ≤ MAX_FAN_IN: `_int_mm` where it is
    exact and fast, float32 otherwise (the result is the same integers either way)."""
    device = a.device
    fast = _int_mm_is_exact(device.type) and (
        device.type == "cuda" or torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled)  # without oneDNN the CPU kernel is a slow loop
    if not fast:
        return _float32_mm(a, b)
    rows, inner = a.shape
    columns = b.shape[1]
    if device.type == "cuda":
        # cuBLASLt wants more than 16 rows and both inner and column counts that 8 divides;
        # zero rows and columns add nothing to the products
        pad_inner, pad_columns = -inner % 8, -columns % 8
        a = F.pad(a, (0, pad_inner, 0, max(0, 17 - rows)))
        b = F.pad(b, (0, pad_columns, 0, pad_inner))
        return torch._int_mm(a, b)[:rows, :columns]
    return torch._int_mm(a, b)


class Int8Conv2d(nn.Module):
    """y = clamp(((x ⋆ W) · 2^u + b') >> s) on NHWC int64, W and x cut into int8 digits.

    W (Cout, Cin, k, k) integers of `weight_bits`; per output channel a signed shift: s > 0
    divides (b' = b + 2^(s-1): round half up), s < 0 multiplies by 2^u, u = -s. Inputs of
    `in_bits` after subtracting `input_offset` (an activation that is mostly positive uses all
    its levels: the offset's share, offset · ΣW, is folded into the bias, and padding holds
    -offset, so borders read 0); outputs clamped to `out_bits`.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, shift: torch.Tensor, *,
                 in_bits: int, weight_bits: int, out_bits: int, padding: int,
                 input_offset: int = 0, name: str = "conv") -> None:
        super().__init__()
        out_ch, in_ch, kh, kw = weight.shape
        self.input_offset = input_offset
        self.name, self.padding, self.kernel = name, padding, (kh, kw)
        self.in_bits, self.weight_bits, self.out_bits = in_bits, weight_bits, out_bits
        self.in_digits, self.weight_digits = digits_for(in_bits), digits_for(weight_bits)
        self.fan_in, self.out_channels = in_ch * kh * kw, out_ch
        # GEMM operand: (K, weight_digits · Cout) int8, row (ky, kx, c) as the NHWC patches
        # hold it, column j·Cout + o digit j of W[o]
        self.register_buffer("weight", torch.zeros(self.fan_in,
                                                   self.weight_digits * out_ch,
                                                   dtype=torch.int8))
        self.register_buffer("bias", torch.zeros(out_ch, dtype=torch.int64))
        self.register_buffer("left", torch.zeros(out_ch, dtype=torch.int64))
        self.register_buffer("right", torch.zeros(out_ch, dtype=torch.int64))
        self.set_integers(weight, bias, shift)

    def set_integers(self, weight: torch.Tensor, bias: torch.Tensor,
                     shift: torch.Tensor) -> None:
        """Load integer W, b, signed s (checked: ranges, fan-in, shifts)."""
        weight = weight.detach().cpu().to(torch.float64)
        if not torch.equal(weight, weight.round()):
            raise ValueError(f"{self.name}: weights must be integers")
        low, high = digit_range(self.weight_digits)
        limit = (1 << (self.weight_bits - 1))
        if weight.numel() and not (weight.min() >= max(low, -limit)
                                   and weight.max() <= min(high, limit - 1)):
            raise ValueError(f"{self.name}: weights exceed {self.weight_bits} signed bits")
        if self.fan_in > MAX_FAN_IN:
            raise ValueError(f"{self.name}: fan-in {self.fan_in} above {MAX_FAN_IN}, where "
                             "a float32 GEMM of int8 digits stops being exact")
        shift = shift.detach().cpu().to(torch.int64)
        if shift.numel() and not (int(shift.min()) >= -16 and int(shift.max()) <= 62):
            raise ValueError(f"{self.name}: shifts must lie in [-16, 62]")
        flat = weight.to(torch.int64).permute(0, 2, 3, 1).flatten(1)  # (Cout, ky·kx·c)
        digits = split_digits(flat, self.weight_digits)
        self.weight.copy_(digits.permute(2, 0, 1).reshape(self.fan_in, -1))
        right, left = shift.clamp(min=0), (-shift).clamp(min=0)
        offsets = torch.where(right > 0, torch.ones_like(right) << (right - 1).clamp(min=0), 0)
        folded = (self.input_offset * flat.sum(1)) << left
        self.bias.copy_(bias.detach().cpu().to(torch.int64) + offsets + folded)
        self.left.copy_(left)
        self.right.copy_(right)
        self.check_bound()

    def check_bound(self) -> None:
        """Refuse weights or shifts outside what `forward` computes exactly; run again after
        loading a state dict (it also notes whether any channel shifts left)."""
        if self.fan_in > MAX_FAN_IN:
            raise ValueError(f"{self.name}: fan-in {self.fan_in} above {MAX_FAN_IN}")
        if self.right.numel() and not (int(self.right.min()) >= 0
                                       and int(self.right.max()) <= 62
                                       and int(self.left.min()) >= 0
                                       and int(self.left.max()) <= 16):
            raise ValueError(f"{self.name}: shifts outside [-16, 62]")
        self.has_left = bool(self.left.any())
        # With one digit each, a sum of fan_in products of two int8 stays below 2^31 even
        # shifted left and biased: then requantize in int32 (half the memory traffic)
        self.narrow = False
        if self.weight_digits == 1 and self.out_channels:
            peak = int(self.weight.to(torch.int64).abs().max())
            bound = self.fan_in * peak * (1 << (DIGIT_BITS * self.in_digits))  # |x| ≤ 2^(7d)
            bound = (bound << int(self.left.max())) + int(self.bias.abs().max())
            self.narrow = bound < 1 << 31
        # int32 copies (buffers, so that `.to(device)` moves them; never stored)
        for name in ("bias", "left", "right"):
            self.register_buffer(f"{name}32", getattr(self, name).to(torch.int32),
                                 persistent=False)

    def _input_bounds(self) -> tuple[int, int]:
        """The integers a raw (not yet offset) input is clamped to: `in_bits` after the
        offset, within what the digits hold."""
        low, high = digit_range(self.in_digits)
        limit = 1 << (self.in_bits - 1)
        return max(low, -limit) + self.input_offset, min(high, limit - 1) + self.input_offset

    def integer_weight(self) -> torch.Tensor:
        """W (Cout, Cin, kh, kw) as int64, from its digits."""
        digits = self.weight.to(torch.int64).view(self.fan_in, self.weight_digits, -1)
        place = torch.tensor([1 << (DIGIT_BITS * j) for j in range(self.weight_digits)])
        flat = (digits * place.view(1, -1, 1)).sum(1).t()
        return flat.reshape(self.out_channels, *self.kernel, -1).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, elu: Int8ELU | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, W, Cin) integers -> (B, H', W', Cout) int32: the conv of `elu(x)` (of x
        without one), plus `residual` (B, H', W', Cout) if given, clamped to `out_bits` again.
        An int8 or int16 `x` is the conv's operand already (offset subtracted, in range: what
        `Int8ELU` emits); int32 and int64 are clamped to `in_bits` and offset here. On the CPU
        with numba, compiled loops do everything but the GEMM (`int8_kernels`); elsewhere
        torch operations compute the same integers."""
        if (int8_kernels.AVAILABLE and x.device.type == "cpu"
                and x.dtype in (torch.int32, torch.int64)):
            return self._compiled(x, elu, residual)
        if elu is not None:
            x = elu(x)
        out = self._composed(x)
        if residual is None:
            return out
        limit = 1 << (self.out_bits - 1)
        return torch.clamp(residual + out, -limit, limit - 1)

    def _compiled(self, x: torch.Tensor, elu: Int8ELU | None,
                  residual: torch.Tensor | None) -> torch.Tensor:
        """`forward` as three compiled loops (operand, im2col, requantization) around the
        GEMM."""
        batch, height, width, _ = x.shape
        kh, kw = self.kernel
        p = self.padding
        d = self.in_digits
        if elu is not None:
            table, low, high = elu.table.numpy(), elu.low, elu.high
        else:
            table, (low, high) = _NO_TABLE, self._input_bounds()
        planes = np.empty((d, batch, height + 2 * p, width + 2 * p, x.shape[3]), np.int8)
        int8_kernels.operand_planes(x.contiguous().numpy(), table, low, high,
                                    self.input_offset, p, planes)
        out_h, out_w = height + 2 * p - kh + 1, width + 2 * p - kw + 1
        rows = batch * out_h * out_w
        columns = np.empty((d, rows, self.fan_in), np.int8)
        if planes.shape[-1] % 8 == 0:  # whole 8-byte words: an eighth of the copy steps
            int8_kernels.patches(planes.view(np.int64), kh, kw, columns.view(np.int64))
        else:
            int8_kernels.patches(planes, kh, kw, columns)
        products = int8_matmul(torch.from_numpy(columns).view(d * rows, self.fan_in),
                               self.weight)
        out = np.empty((rows, self.out_channels), np.int32)
        extra = (_NO_RESIDUAL if residual is None
                 else residual.contiguous().view(rows, self.out_channels).numpy())
        limit = 1 << (self.out_bits - 1)
        int8_kernels.requantize(products.numpy(), d, self.weight_digits, self.bias.numpy(),
                                self.left.numpy(), self.right.numpy(), -limit, limit - 1,
                                extra, out)
        return torch.from_numpy(out).view(batch, out_h, out_w, self.out_channels)

    def _composed(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` without ELU or residual, in torch operations (any device)."""
        offset = self.input_offset
        if x.dtype not in (torch.int8, torch.int16):
            x = torch.clamp(x, *self._input_bounds())
            if offset:
                x = x - offset
        if self.padding:  # padding holds activation 0: operand -offset
            p = self.padding
            x = F.pad(x, (0, 0, p, p, p, p), value=-offset)
        if self.in_digits == 1:
            digits = x.to(torch.int8).unsqueeze(0)
        else:
            digits = split_digits(x, self.in_digits)
        kh, kw = self.kernel
        d, batch = digits.shape[:2]
        height, width = digits.shape[2] - kh + 1, digits.shape[3] - kw + 1
        # im2col as one concatenation of shifted views: int8 `unfold` + reshape copies 15×
        # slower
        patches = torch.cat([digits[:, :, i:i + height, j:j + width]
                             for i in range(kh) for j in range(kw)], -1)
        rows = batch * height * width
        products = int8_matmul(patches.view(d * rows, self.fan_in), self.weight)
        limit = 1 << (self.out_bits - 1)
        if self.narrow:  # one weight digit, and every step fits int32
            acc = products[:rows]
            for i in range(1, d):
                acc = acc + (products[i * rows:(i + 1) * rows] << (DIGIT_BITS * i))
            if self.has_left:
                acc = acc.bitwise_left_shift(self.left32)
            out = acc.add_(self.bias32).bitwise_right_shift_(self.right32)
        else:
            acc = self._combine(products.view(d, rows, self.weight_digits, self.out_channels))
            if self.has_left:
                acc = acc.bitwise_left_shift_(self.left)
            out = acc.add_(self.bias).bitwise_right_shift_(self.right)
            out = out.clamp_(-limit, limit - 1).to(torch.int32)
            return out.view(batch, height, width, self.out_channels)
        return out.clamp_(-limit, limit - 1).view(batch, height, width, self.out_channels)

    def _combine(self, products: torch.Tensor) -> torch.Tensor:
        """Σ_ij 2^(7(i+j)) products[i, :, j] in int64, grouped by i + j."""
        acc = products[0, :, 0].to(torch.int64)
        for total in range(1, self.in_digits + self.weight_digits - 1):
            terms = [products[i, :, total - i] for i in range(self.in_digits)
                     if 0 <= total - i < self.weight_digits]
            group = terms[0].to(torch.int64)
            for term in terms[1:]:
                group += term
            acc += group.bitwise_left_shift_(DIGIT_BITS * total)
        return acc

    @classmethod
    def from_float(cls, conv: nn.Conv2d, in_scale: float, out_scale: float, *, in_bits: int,
                   weight_bits: int, out_bits: int, input_offset: int = 0,
                   name: str = "conv") -> Int8Conv2d:
        """W_int = round(W · in_scale · 2^s / out_scale) with the largest s per channel that
        keeps |W_int| within `weight_bits`; b_int = round(b · 2^max(s, 0) / out_scale)."""
        weight = conv.weight.detach().to(torch.float64).cpu()
        bias = (torch.zeros(weight.shape[0], dtype=torch.float64) if conv.bias is None
                else conv.bias.detach().to(torch.float64).cpu())
        real = weight * (in_scale / out_scale)
        limit = (1 << (weight_bits - 1)) - 1
        peak = real.flatten(1).abs().amax(1).clamp(min=1e-30)
        shift = torch.floor(torch.log2(limit / peak)).to(torch.int64).clamp(-16, 62)
        factor = (2.0 ** shift.to(torch.float64)).view(-1, 1, 1, 1)
        w_int = torch.round(real * factor).clamp(-limit, limit)
        b_int = torch.round(bias * 2.0 ** shift.clamp(min=0).to(torch.float64) / out_scale)
        padding = conv.padding[0] if isinstance(conv.padding, tuple) else int(conv.padding)
        return cls(w_int, b_int, shift, in_bits=in_bits, weight_bits=weight_bits,
                   out_bits=out_bits, padding=padding, input_offset=input_offset, name=name)


@functools.lru_cache(maxsize=32)
def _activation_table(in_frac: int, out_frac: int, top: int, offset: int) -> torch.Tensor:
    """The table of `Int8ELU` (int8 or int16, the narrowest that holds it), indexed by the
    input + 2^15 over [-2^15, top · 2^drop]."""
    drop = in_frac - out_frac
    negative = LookupActivation.elu(in_bits=16, in_scale=2.0**-in_frac,
                                    out_scale=2.0**-out_frac, out_bits=16).table[: 1 << 15]
    inputs = torch.arange(0, (top << drop) + 1, dtype=torch.int64)
    positive = ((inputs + (1 << (drop - 1))) >> drop) if drop else inputs
    table = torch.cat([negative, positive.clamp(max=top)]) - offset
    for dtype in (torch.int8, torch.int16):
        info = torch.iinfo(dtype)
        if info.min <= int(table.min()) and int(table.max()) <= info.max:
            return table.to(dtype)
    raise ValueError("an activation's range does not fit 16 bits with its offset")


class Int8ELU(nn.Module):
    """ELU of the residual stream (integers at 2^-in_frac) as the next conv's operand:
    the activation rounded to 2^-out_frac (out_frac ≤ in_frac), at most `top`, minus
    `offset`. One gather from a table: below 0 ELU's values from a machine-independent table
    (the float model floors ELU's input at -2^(15-in_frac)), above it a round-half-up shift,
    which the table holds up to where it reaches `top`. The table is rebuilt from these four
    integers, never stored."""

    def __init__(self, in_frac: int, out_frac: int, top: int, offset: int) -> None:
        super().__init__()
        if out_frac > in_frac:
            raise ValueError("Int8ELU only coarsens: out_frac must be <= in_frac")
        self.low = -(1 << 15)
        self.high = top << (in_frac - out_frac)
        self.register_buffer("table", _activation_table(in_frac, out_frac, top, offset),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # `index_select`, not `take` or indexing: 2-4× faster on the CPU
        index = torch.clamp(x, self.low, self.high).sub_(self.low)
        return torch.index_select(self.table, 0, index.view(-1)).view(x.shape)
