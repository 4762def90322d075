"""The reference exact layers: int64 integer networks, bit-identical outputs on any batch
size, thread count or device. The codecs run the faster fixed-point form
(`exact.fixed_point`); the tests hold it to these layers, which are written for being
obviously right, not fast.

Why they are exact:

* Activations and weights are small integers. Products and sums are computed in float64,
  where every integer below 2**53 is representable and every add / multiply / FMA of such
  integers with an in-range result is exact. :func:`~recarchive.exact.quantize.accumulator_bound`
  bounds every partial sum a GEMM could form, in any order, and each layer refuses to exist if
  that bound reaches 2**53. So BLAS blocking, threading, batching and the device cannot change
  the result: there is only one correct answer and every path computes it.
* Convolution is im2col (pure data movement) plus a float64 matmul. No cuDNN / oneDNN
  algorithm selection happens, so inexact Winograd or FFT convolutions are never used. TF32
  and reduced-precision float32 matmul settings only affect float32, never float64.
* Requantization is int64 multiply / add / arithmetic shift, with an int64 overflow bound
  checked at construction. Nonlinearities are integer lookup tables (gather only).
"""

from __future__ import annotations

import decimal
import functools
import hashlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .quantize import (
    accumulator_bound,
    as_int64,
    check_accumulator_bound,
    check_bits,
    check_integer_tensor,
    check_requant_bound,
    choose_multiplier_shift,
    quantize_weight_per_channel,
    requantize,
    round_half_up_np,
    signed_range,
)

__all__ = [
    "ExactConv2d",
    "ExactLinear",
    "LookupActivation",
    "exact_conv2d_accumulate",
    "exact_linear_accumulate",
]

IntPair = int | tuple[int, int]
#: Largest lookup-table input width (2**24 int64 entries = 128 MiB).
MAX_TABLE_BITS = 24


def _pair(v: IntPair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _exact_float64(t: torch.Tensor) -> torch.Tensor:
    """int64 -> float64 (exact below 2**53). The only dtype we ever multiply in: no TF32."""
    out = t.to(torch.float64)
    assert out.dtype == torch.float64
    return out


def exact_linear_accumulate(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """int64 ``x @ weight.T`` via a float64 GEMM; exact when the accumulator bound < 2**53."""
    return torch.matmul(_exact_float64(x), _exact_float64(weight).t()).to(torch.int64)


def exact_conv2d_accumulate(x: torch.Tensor, weight: torch.Tensor, stride: IntPair = 1,
                            padding: IntPair = 0, dilation: IntPair = 1,
                            groups: int = 1) -> torch.Tensor:
    """int64 conv2d (no bias) as im2col + float64 matmul, never a cuDNN/oneDNN conv kernel.

    ``unfold`` only copies values (and zero padding), so the float64 columns are the exact
    integers; the matmul is exact under the accumulator bound, whatever algorithm BLAS picks.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    out_ch, c_per_group, kh, kw = weight.shape
    if c != c_per_group * groups or out_ch % groups:
        raise ValueError(f"input channels {c} do not match weight {tuple(weight.shape)}"
                         f" with groups={groups}")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"input {h}x{w} too small for kernel {kh}x{kw} (padding, dilation)")
    cols = F.unfold(_exact_float64(x), (kh, kw), dilation=(dh, dw), padding=(ph, pw),
                    stride=(sh, sw))  # (N, C*kh*kw, L), channel-major so groups are contiguous
    cols = cols.reshape(n, groups, c_per_group * kh * kw, h_out * w_out)
    w_mat = _exact_float64(weight).reshape(groups, out_ch // groups, c_per_group * kh * kw)
    acc = torch.matmul(w_mat, cols)  # (N, groups, out_ch // groups, L)
    return acc.reshape(n, out_ch, h_out, w_out).to(torch.int64)


def _fake_quant(x: torch.Tensor, scale: float, bits: int) -> torch.Tensor:
    """Round-half-up to the integer grid, clamp, rescale; straight-through gradient."""
    lo, hi = signed_range(bits)
    q = torch.clamp(torch.floor(x / scale + 0.5), lo, hi) * scale
    return x + (q - x).detach()


class _ExactAffine(nn.Module):
    """Shared buffers, bound checks and requantization of ExactLinear / ExactConv2d.

    Integer tensors are int64 buffers, so ``.to(device)`` moves them while ``.float()`` /
    ``.half()`` (which only cast floating buffers) cannot corrupt them.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    multiplier: torch.Tensor
    shift: torch.Tensor
    weight_scale: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None,
                 multiplier: torch.Tensor | int, shift: torch.Tensor | int, *, weight_bits: int,
                 act_bits: int, out_bits: int | None, fan_in: int, in_scale: float | None,
                 weight_scale: torch.Tensor | None, out_scale: float | None) -> None:
        super().__init__()
        self.weight_bits = check_bits(weight_bits, "weight_bits")
        self.act_bits = check_bits(act_bits, "act_bits")
        self.out_bits = check_bits(act_bits if out_bits is None else out_bits, "out_bits")
        self.in_scale, self.out_scale = in_scale, out_scale
        self.check_inputs = True
        out_ch = weight.shape[0]
        weight = check_integer_tensor(weight.detach().cpu(), weight_bits, f"{self._name()} weight")
        bias_t = (torch.zeros(out_ch, dtype=torch.int64) if bias is None
                  else as_int64(bias.detach().cpu(), "bias").reshape(out_ch))
        mult = self._per_channel(multiplier, out_ch, "multiplier")
        shift_t = self._per_channel(shift, out_ch, "shift")
        bias_bound = int(bias_t.abs().max()) if out_ch else 0
        self.acc_bound = accumulator_bound(weight_bits, act_bits, fan_in, bias_bound)
        check_accumulator_bound(self.acc_bound, self._name())
        check_requant_bound(self.acc_bound, mult, shift_t, self._name())
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias_t)
        self.register_buffer("multiplier", mult)
        self.register_buffer("shift", shift_t)
        w_scale = torch.ones(out_ch) if weight_scale is None else weight_scale.reshape(out_ch)
        self.register_buffer("weight_scale", w_scale.detach().to("cpu", torch.float64))

    def _name(self) -> str:
        raise NotImplementedError

    @staticmethod
    def _per_channel(v: torch.Tensor | int, out_ch: int, what: str) -> torch.Tensor:
        t = torch.as_tensor(v).detach().cpu()
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"{what} must be integer, got {t.dtype}")
        t = t.to(torch.int64)
        return (t.expand(out_ch) if t.dim() == 0 else t.reshape(out_ch)).clone()

    def _accumulate_raw(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _channel_view(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        """Exact int64 accumulator ``W * x + b`` (before requantization)."""
        x = (check_integer_tensor(x, self.act_bits, self._name()) if self.check_inputs
             else as_int64(x, self._name()))
        return self._accumulate_raw(x) + self._channel_view(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Integer activations in, requantized int64 activations (``out_bits`` range) out."""
        acc = self.accumulate(x)
        return requantize(acc, self._channel_view(self.multiplier),
                          self._channel_view(self.shift), self.out_bits)

    def _scales(self) -> tuple[float, float]:
        if self.in_scale is None or self.out_scale is None:
            raise ValueError(f"{self._name()} has no in_scale/out_scale (not built by from_float)")
        return self.in_scale, self.out_scale

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued input -> int64 activations (round half up, clamp)."""
        in_scale, _ = self._scales()
        lo, hi = signed_range(self.act_bits)
        return torch.clamp(torch.floor(x.to(torch.float64) / in_scale + 0.5), lo, hi).long()

    def dequantize_output(self, y: torch.Tensor) -> torch.Tensor:
        """int64 output activations -> real values (float64)."""
        _, out_scale = self._scales()
        return y.to(torch.float64) * out_scale

    def _dequantized_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        in_scale, _ = self._scales()
        view = (-1,) + (1,) * (self.weight.dim() - 1)
        w = self.weight.to(torch.float64) * self.weight_scale.view(view)
        b = self.bias.to(torch.float64) * in_scale * self.weight_scale
        return w, b

    def forward_float_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Float64 fake-quant forward on real values, for comparison with quantization-aware
        training. Matches ``dequantize_output(forward(quantize_input(x)))`` up to the M / 2**s
        approximation (at most one output step where rounding lands differently)."""
        in_scale, out_scale = self._scales()
        xq = _fake_quant(x.to(torch.float64), in_scale, self.act_bits)
        w, b = self._dequantized_params()
        return _fake_quant(self._float_op(xq, w, b), out_scale, self.out_bits)

    def _float_op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _requant_params(real_scales: torch.Tensor, multiplier_bits: int,
                    acc_bound: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (M, s); M's width is capped so that acc_bound * M < 2**62 (no overflow)."""
    bits = min(multiplier_bits, 62 - acc_bound.bit_length())
    if bits < 1:
        raise ValueError(f"accumulator bound {acc_bound} leaves no room for a multiplier")
    pairs = [choose_multiplier_shift(float(r), bits) for r in real_scales.tolist()]
    mult = torch.tensor([m for m, _ in pairs], dtype=torch.int64)
    shift = torch.tensor([s for _, s in pairs], dtype=torch.int64)
    return mult, shift


def _quantize_float_layer(weight: torch.Tensor, bias: torch.Tensor | None, in_scale: float,
                          out_scale: float, weight_bits: int, act_bits: int, fan_in: int,
                          multiplier_bits: int) -> dict:
    """Shared from_float work: integer weights / bias and per-channel (M, s)."""
    if not (in_scale > 0 and out_scale > 0):
        raise ValueError("in_scale and out_scale must be > 0")
    w_int, w_scale = quantize_weight_per_channel(weight, weight_bits)
    acc_scale = in_scale * w_scale  # real value of one accumulator unit, per channel
    b_int = (None if bias is None
             else torch.round(bias.detach().to("cpu", torch.float64) / acc_scale).long())
    bias_bound = 0 if b_int is None else int(b_int.abs().max())
    acc_bound = accumulator_bound(weight_bits, act_bits, fan_in, bias_bound)
    mult, shift = _requant_params(acc_scale / out_scale, multiplier_bits, acc_bound)
    return {"weight": w_int, "bias": b_int, "multiplier": mult, "shift": shift,
            "weight_scale": w_scale}


class ExactLinear(_ExactAffine):
    """Integer linear layer: y = requantize(x @ W.T + b) with per-output-channel (M, s)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 multiplier: torch.Tensor | int = 1, shift: torch.Tensor | int = 0, *,
                 weight_bits: int = 8, act_bits: int = 16, out_bits: int | None = None,
                 in_scale: float | None = None, weight_scale: torch.Tensor | None = None,
                 out_scale: float | None = None) -> None:
        if weight.dim() != 2:
            raise ValueError(f"ExactLinear weight must be 2-D, got {tuple(weight.shape)}")
        self.out_features, self.in_features = int(weight.shape[0]), int(weight.shape[1])
        super().__init__(weight, bias, multiplier, shift, weight_bits=weight_bits,
                         act_bits=act_bits, out_bits=out_bits, fan_in=self.in_features,
                         in_scale=in_scale, weight_scale=weight_scale, out_scale=out_scale)

    def _name(self) -> str:
        return f"ExactLinear(in_features={self.in_features}, out_features={self.out_features})"

    def _accumulate_raw(self, x: torch.Tensor) -> torch.Tensor:
        return exact_linear_accumulate(x, self.weight)

    def _channel_view(self, t: torch.Tensor) -> torch.Tensor:
        return t  # channels are the last dimension

    def _float_op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w, b)

    @classmethod
    def from_float(cls, linear: nn.Linear, in_scale: float, weight_bits: int = 8,
                   act_bits: int = 16, out_scale: float = 1.0, out_bits: int | None = None,
                   multiplier_bits: int = 31) -> ExactLinear:
        """Quantize a float ``nn.Linear`` (symmetric per-output-channel weights)."""
        params = _quantize_float_layer(linear.weight, linear.bias, in_scale, out_scale,
                                       weight_bits, act_bits, linear.in_features,
                                       multiplier_bits)
        return cls(**params, weight_bits=weight_bits, act_bits=act_bits, out_bits=out_bits,
                   in_scale=in_scale, out_scale=out_scale)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight_bits={self.weight_bits}, act_bits={self.act_bits}, "
                f"out_bits={self.out_bits}, acc_bound<2**{self.acc_bound.bit_length()}")


class ExactConv2d(_ExactAffine):
    """Integer 2-D convolution (zero padding) as im2col + exact float64 matmul + requantize."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 multiplier: torch.Tensor | int = 1, shift: torch.Tensor | int = 0, *,
                 stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                 groups: int = 1, weight_bits: int = 8, act_bits: int = 16,
                 out_bits: int | None = None, in_scale: float | None = None,
                 weight_scale: torch.Tensor | None = None,
                 out_scale: float | None = None) -> None:
        if weight.dim() != 4:
            raise ValueError(f"ExactConv2d weight must be 4-D, got {tuple(weight.shape)}")
        out_ch, c_per_group, kh, kw = (int(s) for s in weight.shape)
        if groups < 1 or out_ch % groups:
            raise ValueError(f"out_channels {out_ch} not divisible by groups={groups}")
        self.in_channels, self.out_channels = c_per_group * groups, out_ch
        self.kernel_size = (kh, kw)
        self.stride, self.padding = _pair(stride), _pair(padding)
        self.dilation, self.groups = _pair(dilation), groups
        if min(self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError("stride and dilation must be >= 1, padding >= 0")
        super().__init__(weight, bias, multiplier, shift, weight_bits=weight_bits,
                         act_bits=act_bits, out_bits=out_bits, fan_in=c_per_group * kh * kw,
                         in_scale=in_scale, weight_scale=weight_scale, out_scale=out_scale)

    def _name(self) -> str:
        return (f"ExactConv2d(in_channels={self.in_channels}, out_channels={self.out_channels},"
                f" kernel_size={self.kernel_size}, groups={self.groups})")

    def _accumulate_raw(self, x: torch.Tensor) -> torch.Tensor:
        return exact_conv2d_accumulate(x, self.weight, self.stride, self.padding,
                                       self.dilation, self.groups)

    def _channel_view(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(-1, 1, 1)

    def _float_op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, in_scale: float, weight_bits: int = 8,
                   act_bits: int = 16, out_scale: float = 1.0, out_bits: int | None = None,
                   multiplier_bits: int = 31) -> ExactConv2d:
        """Quantize a float ``nn.Conv2d`` (zero padding, integer padding or 'valid')."""
        if conv.padding_mode != "zeros":
            raise ValueError(f"only padding_mode='zeros' is supported, got {conv.padding_mode}")
        padding = conv.padding
        if isinstance(padding, str):
            if padding != "valid":
                raise ValueError(f"string padding {padding!r} unsupported; use integers")
            padding = 0
        kh, kw = conv.kernel_size
        fan_in = (conv.in_channels // conv.groups) * kh * kw
        params = _quantize_float_layer(conv.weight, conv.bias, in_scale, out_scale,
                                       weight_bits, act_bits, fan_in, multiplier_bits)
        return cls(**params, stride=conv.stride, padding=padding, dilation=conv.dilation,
                   groups=conv.groups, weight_bits=weight_bits, act_bits=act_bits,
                   out_bits=out_bits, in_scale=in_scale, out_scale=out_scale)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, weight_bits={self.weight_bits}, "
                f"act_bits={self.act_bits}, out_bits={self.out_bits}, "
                f"acc_bound<2**{self.acc_bound.bit_length()}")


def _quantize_table(real: np.ndarray, out_scale: float, out_bits: int) -> torch.Tensor:
    """Real outputs -> clamp(floor(v / out_scale + 1/2)) as an int64 table (IEEE basic ops)."""
    lo, hi = signed_range(out_bits)
    q = np.clip(round_half_up_np(np.asarray(real, dtype=np.float64) / out_scale), lo, hi)
    return torch.from_numpy(q.astype(np.int64))


def _table_inputs(in_bits: int, in_scale: float) -> np.ndarray:
    lo, hi = signed_range(in_bits)
    return np.arange(lo, hi + 1, dtype=np.int64).astype(np.float64) * in_scale


@functools.lru_cache(maxsize=16)
def _elu_table(in_bits: int, in_scale: float, out_scale: float, alpha: float,
               out_bits: int) -> np.ndarray:
    """ELU table that is the same on every machine.

    numpy's / libm's exp is not correctly rounded and differs between CPUs (SIMD dispatch), so
    exp(t) - 1 comes from :mod:`decimal`, whose exp is correctly rounded by specification, at
    40 digits, then converted to float64 with correct rounding. All remaining steps are IEEE
    basic operations, which are correctly rounded everywhere.
    """
    t = _table_inputs(in_bits, in_scale)
    ctx = decimal.Context(prec=40, rounding=decimal.ROUND_HALF_EVEN)
    neg = t < 0
    em1 = np.array([float(ctx.subtract(ctx.exp(decimal.Decimal(v)), 1)) for v in t[neg]],
                   dtype=np.float64)
    real = t.copy()
    real[neg] = alpha * em1
    return _quantize_table(real, out_scale, out_bits).numpy()


class LookupActivation(nn.Module):
    """Elementwise nonlinearity as an int64 lookup table over the whole signed input range.

    Applying it is clamp + gather, exact on any device. The table is a buffer, so it ships in
    the state_dict; the decoder should load it rather than recompute it (see :meth:`digest`).
    """

    table: torch.Tensor

    def __init__(self, table: torch.Tensor, in_bits: int, out_bits: int,
                 in_scale: float | None = None, out_scale: float | None = None) -> None:
        super().__init__()
        self.in_bits, self.out_bits = check_bits(in_bits, "in_bits"), check_bits(out_bits,
                                                                                 "out_bits")
        if in_bits > MAX_TABLE_BITS:
            raise ValueError(f"in_bits={in_bits} > {MAX_TABLE_BITS}: table too large")
        if table.shape != (1 << in_bits,):
            raise ValueError(f"table must have shape ({1 << in_bits},), got {tuple(table.shape)}")
        table = check_integer_tensor(table.detach().cpu(), out_bits, "LookupActivation table")
        self.in_scale, self.out_scale = in_scale, out_scale
        self.register_buffer("table", table.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clamp to the input range, then index: int64 activations in the ``out_bits`` range."""
        lo, hi = signed_range(self.in_bits)
        idx = torch.clamp(as_int64(x, "LookupActivation"), lo, hi) - lo
        return self.table[idx]

    def digest(self) -> str:
        """SHA-256 of the table (little-endian int64), for archive headers / decoder checks."""
        data = self.table.detach().cpu().numpy().astype("<i8").tobytes()
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def from_function(cls, fn: Callable[[np.ndarray], np.ndarray], *, in_bits: int,
                      in_scale: float, out_scale: float,
                      out_bits: int | None = None) -> LookupActivation:
        """Table of ``fn`` (float64 numpy -> float64 numpy) on in_scale * [-2**(b-1), 2**(b-1)).

        Recomputing it elsewhere is only bit-identical if ``fn`` is (transcendentals may not
        be); shipping the table in the state_dict avoids the question.
        """
        out_bits = in_bits if out_bits is None else out_bits
        check_bits(in_bits, "in_bits")
        if in_bits > MAX_TABLE_BITS:
            raise ValueError(f"in_bits={in_bits} > {MAX_TABLE_BITS}: table too large")
        real = np.asarray(fn(_table_inputs(in_bits, in_scale)), dtype=np.float64)
        return cls(_quantize_table(real, out_scale, out_bits), in_bits, out_bits,
                   in_scale, out_scale)

    @classmethod
    def elu(cls, *, in_bits: int, in_scale: float, out_scale: float, alpha: float = 1.0,
            out_bits: int | None = None) -> LookupActivation:
        """ELU(x) = x (x >= 0), alpha * (exp(x) - 1) (x < 0); machine-independent table."""
        out_bits = in_bits if out_bits is None else out_bits
        check_bits(in_bits, "in_bits")
        if in_bits > MAX_TABLE_BITS:
            raise ValueError(f"in_bits={in_bits} > {MAX_TABLE_BITS}: table too large")
        table = _elu_table(in_bits, float(in_scale), float(out_scale), float(alpha), out_bits)
        return cls(torch.from_numpy(table.copy()), in_bits, out_bits, in_scale, out_scale)

    def extra_repr(self) -> str:
        return f"in_bits={self.in_bits}, out_bits={self.out_bits}"
