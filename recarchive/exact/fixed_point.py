"""Fast exact convolutions on integer-valued float64 tensors, with power-of-two requantization.

The integer layers in `reference.py` are the reference: int64 in and out, any multiplier. This is
the form the codecs run, because it never leaves float64: activations are float64 tensors
holding integers; convolution is float64 `conv2d` on them with every partial sum bounded below
2^53 (checked at construction), so any summation order gives the same exact integers; the
rounding offset is folded into the bias, and requantization multiplies by 2^-s and floors,
both exact in binary floating point. oneDNN, NNPACK and cuDNN are switched off around the call,
so the CPU and CUDA kernels are im2col + DGEMM (never Winograd or FFT), and float64 has no TF32.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from recarchive.exact.reference import LookupActivation

EXACT_LIMIT = 1 << 53


_plain_lock = threading.Lock()
_plain_depth = 0  # threads inside a plain_convolution context
_plain_flags: contextlib.ExitStack | None = None


class _PlainConvolution(threading.local):
    """The context `plain_convolution` returns; its nesting depth is per thread."""

    depth = 0

    def __enter__(self) -> None:
        self.depth += 1
        if self.depth == 1:
            _enter_plain()

    def __exit__(self, *exc_info) -> None:
        self.depth -= 1
        if self.depth == 0:
            _leave_plain()


_PLAIN = _PlainConvolution()


def plain_convolution() -> _PlainConvolution:
    """Only im2col + GEMM convolution kernels inside: no algorithm that rounds differently.

    The backend flags are process-wide, so they are switched when the first thread enters and
    restored when the last one leaves: one thread leaving cannot turn oneDNN back on under
    another's convolution. A thread already inside enters again for the cost of a counter
    (its outer entry keeps the flags set), so a network enters once around all its
    convolutions and theirs cost nothing: no lock and no generator, which took 5 % of coding
    time.
    """
    return _PLAIN


def _enter_plain() -> None:
    global _plain_depth, _plain_flags
    with _plain_lock:
        if _plain_depth == 0:
            # Entered under `with` so that a failure part-way undoes what was switched.
            with contextlib.ExitStack() as stack:
                stack.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore", UserWarning)  # oneDNN warns about Intel GPUs
                stack.enter_context(torch.backends.mkldnn.flags(enabled=False))
                stack.enter_context(torch.backends.nnpack.flags(enabled=False))
                stack.enter_context(torch.backends.cudnn.flags(enabled=False))
                _plain_flags = stack.pop_all()
        _plain_depth += 1


def _leave_plain() -> None:
    global _plain_depth, _plain_flags
    with _plain_lock:
        _plain_depth -= 1
        if _plain_depth == 0 and _plain_flags is not None:
            _plain_flags.close()
            _plain_flags = None


def _signed_max(bits: int) -> int:
    return (1 << (bits - 1)) - 1


class FixedPointConv2d(nn.Module):
    """y = clamp(floor((conv(x, W) + b') / 2^s)) with integer W, b' = b + 2^(s-1), per-channel s.

    Input activations are integers in `in_bits` signed bits; outputs in `out_bits`.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    scale: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, shift: torch.Tensor, *,
                 in_bits: int, out_bits: int, padding: int, name: str = "conv") -> None:
        super().__init__()
        weight = weight.detach().to(torch.float64).cpu()
        bias = bias.detach().to(torch.float64).cpu()
        shift = shift.detach().to(torch.int64).cpu()
        if not (torch.equal(weight, weight.round()) and torch.equal(bias, bias.round())):
            raise ValueError(f"{name}: weights and bias must be integers")
        offsets = torch.where(shift > 0, 2.0 ** (shift - 1).clamp(min=0), 0.0).to(torch.float64)
        self.name, self.in_bits, self.out_bits, self.padding = name, in_bits, out_bits, padding
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias + offsets)
        self.register_buffer("scale", (2.0 ** (-shift.to(torch.float64))).view(-1, 1, 1))
        self.register_buffer("shift", shift)
        self.accumulator_bound = self.check_bound()

    def check_bound(self) -> int:
        """Largest |partial sum| any input can produce; refuse >= 2^53, where float64 stops
        being exact. Run again after loading weights from a file."""
        fan_in = self.weight[0].numel()
        bound = fan_in * int(self.weight.abs().max()) * (1 << (self.in_bits - 1))
        bound += int(self.bias.abs().max())
        if bound >= EXACT_LIMIT or not torch.equal(self.weight, self.weight.round()):
            raise ValueError(f"{self.name}: accumulator bound 2^{bound.bit_length()} reaches "
                             "2^53 (or weights are not integers); use fewer bits")
        return bound

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with plain_convolution():
            acc = F.conv2d(x, self.weight, self.bias, padding=self.padding)
        return self._requantize(acc)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """A 1×1 conv applied to rows (n, in channels) of float64 integers: one GEMM, the
        same integers as `forward` on them (every partial sum is exact below 2^53, in any
        order), twice as fast as a conv over a long (1, C, 1, n) strip on a CPU."""
        if self.weight.shape[2:] != (1, 1):
            raise ValueError(f"{self.name}: rows() needs a 1×1 conv")
        acc = torch.addmm(self.bias, x, self.weight.flatten(1).T)
        limit = _signed_max(self.out_bits)
        return acc.mul_(self.scale.view(1, -1)).floor_().clamp_(-limit - 1, limit)

    def _requantize(self, acc: torch.Tensor) -> torch.Tensor:
        """In place on the fresh accumulator (or a channel slice of it): no new tensors."""
        limit = _signed_max(self.out_bits)
        return acc.mul_(self.scale).floor_().clamp_(-limit - 1, limit)

    @staticmethod
    def side_by_side(convs: tuple[FixedPointConv2d, ...], x: torch.Tensor):
        """Several convs of the same input as one conv call (their output channels stacked),
        split back: the input is unfolded once, not once per conv. Every output channel's
        integer sum is the one its own conv computes, so results are identical."""
        first = convs[0]
        if any(c.padding != first.padding or c.weight.shape[1:] != first.weight.shape[1:]
               for c in convs):
            raise ValueError("side_by_side needs convs of one input shape and padding")
        weight = torch.cat([c.weight for c in convs])
        bias = torch.cat([c.bias for c in convs])
        with plain_convolution():
            acc = F.conv2d(x, weight, bias, padding=first.padding)
        parts = acc.split([c.weight.shape[0] for c in convs], dim=1)
        return tuple(c._requantize(part) for c, part in zip(convs, parts, strict=True))

    @classmethod
    def from_float(cls, conv: nn.Conv2d, in_scale: float, out_scale: float, *, weight_bits: int,
                   in_bits: int, out_bits: int, name: str = "conv") -> FixedPointConv2d:
        """Quantize: W_int = round(W · in_scale · 2^s / out_scale) with the largest s per channel
        that keeps |W_int| within `weight_bits`; b_int = round(b · 2^s / out_scale)."""
        weight = conv.weight.detach().to(torch.float64).cpu()
        bias = (torch.zeros(weight.shape[0], dtype=torch.float64) if conv.bias is None
                else conv.bias.detach().to(torch.float64).cpu())
        real = weight * (in_scale / out_scale)
        peak = real.flatten(1).abs().amax(1).clamp(min=1e-30)
        shift = torch.floor(torch.log2(_signed_max(weight_bits) / peak)).to(torch.int64)
        shift = shift.clamp(-30, 52)
        factor = (2.0 ** shift.to(torch.float64)).view(-1, 1, 1, 1)
        limit = _signed_max(weight_bits)
        w_int = torch.round(real * factor).clamp(-limit, limit)
        b_int = torch.round(bias * factor.view(-1) / out_scale)
        padding = conv.padding[0] if isinstance(conv.padding, tuple) else int(conv.padding)
        return cls(w_int, b_int, shift, in_bits=in_bits, out_bits=out_bits, padding=padding,
                   name=name)


class FixedPointELU(nn.Module):
    """ELU on integers at scale 2^-frac: identity above 0, a machine-independent table on
    [-2^(table_bits-1), 0) (from `LookupActivation.elu`), its last value below that."""

    table: torch.Tensor

    def __init__(self, frac_bits: int, table_bits: int = 16) -> None:
        super().__init__()
        scale = 2.0**-frac_bits
        lookup = LookupActivation.elu(in_bits=table_bits, in_scale=scale, out_scale=scale)
        half = 1 << (table_bits - 1)
        self.half = half
        self.register_buffer("table", lookup.table[:half].to(torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # `take` on the flat table and an in-place offset: half the time of indexing, on a
        # path that runs twice per residual block of every net call.
        index = torch.clamp(x, -self.half, -1).add_(self.half).to(torch.int64)
        return torch.where(x >= 0, x, self.table.take(index))
