"""The causal pixel model in exact integer arithmetic: what the `causal` codec runs.

Each layer is a `FixedPointConv2d` applied to rows (16-bit weights, 20-bit activations at
2^-12, float64 GEMMs exact below 2^53) and the project's ELU table, as in Bit-Swap's fixed-
point nets. The features are integers already (`models.causal.causal_features`), read at
1/255. The mean head's unit is 1/255 of its float output, which makes the table mean (in
1/16 of a pixel) 8·(W + N) plus the head; the log-scale head's unit is the pixel table's
step, so the table row is `PIXEL_GRID.index` of it; the weight logits' unit is
`entropy.mixture.LOGIT_STEP`. Pixels are coded with a mixture (`entropy.mixture`) of Bit-Swap's
pinned pixel table (`exact_bitswap.PIXEL_TABLE_SHA256`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recarchive.entropy.discretized import DiscretizedTable
from recarchive.entropy.mixture import LOGIT_STEP, TableMixture, mixture_weights
from recarchive.exact.fixed_point import FixedPointConv2d, FixedPointELU
from recarchive.models.causal import FEATURE_SCALE, CausalPixelModel, ColourNet
from recarchive.models.exact_bitswap import (
    PIXEL_GRID,
    PIXEL_TABLE_SHA256,
    pinned_table,
    pixel_table_spec,
)
from recarchive.models.integer import ACT_BITS, ACT_FRAC_BITS, OUT_BITS, quantize_conv

MEAN_HEAD_SCALE = 1 / 255  # the mean head's integer unit, in the float head's units
TABLE_MEANS_PER_REF = 8  # table mean units (1/16 pixel) per unit of W + N (half a pixel)


def _as_conv(layer: nn.Linear) -> nn.Conv2d:
    """A linear layer as the 1×1 conv `quantize_conv` takes."""
    conv = nn.Conv2d(layer.in_features, layer.out_features, 1)
    with torch.no_grad():
        conv.weight.copy_(layer.weight[:, :, None, None])
        conv.bias.copy_(layer.bias)
    return conv


class ExactColourNet(nn.Module):
    """`ColourNet` in integers: features (n, F) int64 → (table mean part, log-scale) int64."""

    def __init__(self, net: ColourNet, name: str) -> None:
        super().__init__()
        act = 2.0**-ACT_FRAC_BITS

        def conv(layer: nn.Linear, scale_in: float, scale_out: float, bits: int,
                 part: str) -> FixedPointConv2d:
            return quantize_conv(_as_conv(layer), scale_in, scale_out, bits, f"{name}.{part}")

        self.inp = conv(net.inp, FEATURE_SCALE, act, ACT_BITS, "inp")
        self.hidden = conv(net.hidden, act, act, ACT_BITS, "hidden")
        self.mean = conv(net.mean, act, MEAN_HEAD_SCALE, OUT_BITS, "mean")
        self.log_scale = conv(net.log_scale, act, PIXEL_GRID.step, OUT_BITS, "log_scale")
        self.logit = conv(net.logit, act, LOGIT_STEP, OUT_BITS, "logit")
        self.linear_mean = conv(net.linear_mean, FEATURE_SCALE, MEAN_HEAD_SCALE, OUT_BITS,
                                "linear_mean")
        self.linear_log_scale = conv(net.linear_log_scale, FEATURE_SCALE, PIXEL_GRID.step,
                                     OUT_BITS, "linear_log_scale")
        self.elu = FixedPointELU(ACT_FRAC_BITS)

    def forward(self, features: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means, log-scales, logits) (n, K), integers in their heads' units."""
        f = features.to(torch.float64)
        h = self.elu(self.hidden.rows(self.elu(self.inp.rows(f))))
        mean = self.mean.rows(h) + self.linear_mean.rows(f)
        log_scale = self.log_scale.rows(h) + self.linear_log_scale.rows(f)
        return (mean.to(torch.int64), log_scale.to(torch.int64),
                self.logit.rows(h).to(torch.int64))


class ExactCausalModel(nn.Module):
    """The three colours' exact nets and the pixel table they code with."""

    def __init__(self, model: CausalPixelModel) -> None:
        super().__init__()
        self.config = model.config
        self.colours = nn.ModuleList(ExactColourNet(net, f"colour{c}")
                                     for c, net in enumerate(model.colours))

    @property
    def table(self) -> DiscretizedTable:
        return pinned_table(pixel_table_spec(), PIXEL_TABLE_SHA256, "pixel")

    def parameters(self, features: torch.Tensor, ref: torch.Tensor, seen: torch.Tensor,
                   colour: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One colour of n pixels: the components' table means (1/16 pixel), scale indices
        and integer weights, (n, K) int64 each."""
        mean, log_scale, logit = self.colours[colour](torch.cat([features, seen[:, :colour]], 1))
        mean = (TABLE_MEANS_PER_REF * ref[:, colour:colour + 1] + mean).numpy()
        return mean, PIXEL_GRID.index(log_scale).numpy(), mixture_weights(logit.numpy())

    def mixture_of(self, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray
                   ) -> TableMixture:
        """The exact mixture of the pixel table's logistics with these parameters."""
        table = self.table
        located = [table.locate(np.ascontiguousarray(mean[:, k]),
                                np.ascontiguousarray(scale[:, k])) for k in range(mean.shape[1])]
        return TableMixture(table, located, np.ascontiguousarray(weights))


def convert_to_exact(model: CausalPixelModel) -> ExactCausalModel:
    return ExactCausalModel(model.eval())
