"""The integer conventions every exact model shares, so that one integer conv takes what
another emits, and a table built for one reads the nets of all.

- Widths: 16-bit weights, 20-bit activations at scale 2^-12, 24-bit net outputs; products and
  sums are exact under `exact.fixed_point`'s bound.
- Pixels: value v enters the nets as 2v - 255 (scale 1/255); a pixel net's mean output o
  means 16·(127.5 + 127.5·o) sixteenths of a symbol, so tables index means in 1/16 steps.
- Scales: a net emits a log-scale as an integer on a `ScaleGrid`, and the table's scales are
  the grid's, so the exact model codes with the float model's scales.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from recarchive.exact.fixed_point import FixedPointConv2d

WEIGHT_BITS = 16
ACT_BITS = 20
ACT_FRAC_BITS = 12  # activations are integers at scale 2^-12
OUT_BITS = 24
PIXEL_INPUT_SCALE = 1 / 255  # pixel v enters as 2v - 255
MEAN_STEPS = 16  # pixel table means in 1/16 of a symbol
PIXEL_MEAN_SCALE = 1 / 2040  # the pixel net's mean output o: 16·(127.5 + 127.5·o) = 2040 + 2040·o
PIXEL_MEAN_OFFSET = 2040


@dataclass(frozen=True)
class ScaleGrid:
    """Scale j of a table is unit · exp((j + first) · step) in symbol units.

    The net emits its log-scale as an integer in units of `step` in its own units (z or the
    nets' pixel scale); `unit` (symbols per net unit) is applied to the table's scales, not
    rounded into the index, so the exact model codes with the float model's scales.
    """

    step: float
    first: int
    count: int
    unit: float = 1.0

    def scales(self) -> tuple[float, ...]:
        return tuple(self.unit * math.exp((j + self.first) * self.step)
                     for j in range(self.count))

    def index(self, log_scale_int: torch.Tensor) -> torch.Tensor:
        return torch.clamp(log_scale_int - self.first, 0, self.count - 1)


def quantize_conv(layer: nn.Conv2d, in_scale: float, out_scale: float, out_bits: int,
                  name: str) -> FixedPointConv2d:
    """A float conv at the project's integer widths (16-bit weights, 20-bit activations)."""
    return FixedPointConv2d.from_float(layer, in_scale, out_scale, weight_bits=WEIGHT_BITS,
                                       in_bits=ACT_BITS, out_bits=out_bits, name=name)
