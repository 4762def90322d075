"""Bit-Swap as an exact integer network: what the coder runs, on any device, bit for bit.

Conversion quantizes a trained float model once, in the arithmetic its config names: fixed64
(16-bit weights per output channel with a power-of-two requantization shift, 20-bit
activations at 2^-12, float64 GEMMs, ELU by table: `ExactConditionalNet`) or int8 (int8
GEMMs over digits, the grids the float model trained on: `Int8ConditionalNet`); from then on
the integer tensors are the model, shipped in a safetensors file and pinned by its sha256.
Every net maps integer inputs to integer entropy parameters (a fixed-point mean and a scale
index into an integer CDF table), so the decoder computes exactly the probabilities the
encoder used.

Latents are coded in equal bins over [-8, 8] (the edge bins take the tails) at 28- or 30-bit
precision (see LATENT_PRECISION for why so fine); the nets read a latent as its bin centre, an
exact integer input. How many bins, and how finely their tables resolve scale and mean, is a
model's `LatentLayout`: the integer nets' output scales follow from it, so a model file records
the layout it was converted for and decodes under it forever.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import torch
from torch import nn

from recarchive.entropy.discretized import DiscretizedTable, GridSpec
from recarchive.exact import int8_kernels
from recarchive.exact.fixed_point import FixedPointConv2d, FixedPointELU, plain_convolution
from recarchive.exact.int8 import Int8Conv2d, Int8ELU
from recarchive.models.bitswap import (
    ACTIVATION_BITS,
    ACTIVATION_LEVELS,
    CHANNEL_PAIRS,
    COARSE_CELL,
    CONTEXT_PIXEL_SCALE,
    BitSwapConfig,
    BitSwapModel,
    ConditionalNet,
    no_neighbours,
    with_ring,
)
from recarchive.models.integer import (
    ACT_BITS,
    ACT_FRAC_BITS,
    MEAN_STEPS,
    OUT_BITS,
    PIXEL_INPUT_SCALE,
    PIXEL_MEAN_OFFSET,
    PIXEL_MEAN_SCALE,
    ScaleGrid,
    quantize_conv,
)

LATENT_LIMIT = 8.0  # latents are coded on [-LATENT_LIMIT, LATENT_LIMIT]
# 1.0 in the context net's input units (it reads pixels 2v − 255 at CONTEXT_PIXEL_SCALE): an
# interlace's known-position channels
CONTEXT_INPUT_ONE = round(1 / CONTEXT_PIXEL_SCALE)
# int8 arithmetic: input convs read the nets' integer input (pixels 2v - 255, latent bin
# centres: at most 12 bits, two int8 digits); input convs and heads keep 15-bit weights (two
# digits; the mean head at 8 bits cost 0.3 bits/dim), the residual blocks' convs take 8.
INPUT_BITS = 12
HEAD_WEIGHT_BITS = 15


def _grid(step: float, smallest: float, largest: float, unit: float) -> ScaleGrid:
    """Net log-scales from log(smallest) to log(largest) (net units), tables in symbols."""
    first = round(math.log(smallest) / step)
    last = round(math.log(largest) / step)
    return ScaleGrid(step, first, last - first + 1, unit)


# Pixel scales are 127.5 × the net's. Every relative cell of a table gets frequency >= 1, so a
# table at precision p spends (2n - 1) / 2^p of its mass on cells far out in the tails: at 20
# bits that was 0.2 % per latent, enough that one latent in 500 was drawn (bits-back pops) from
# the floor, far from its posterior, and cost 0.6 bits/dim against the float model. At 28 bits
# it is 8e-6 (1e-5 with 2048 bins), and still costs: each latent drawn from the floor lies far
# from its posterior and costs ~400 bits in the terms that read it. Redrawing the ~5e-6 of
# latents that land on cells of frequency <= 2 lowers the exact −ELBO of `bitswap-cifar` at
# 4.25 by 0.006 bits/dim (300 CIFAR-10 validation images, three seeds), so layout v3 codes
# latents at 30 bits (a quarter of the floor mass) and posteriors with a table that has no
# floor at all (`python studies/study_latent_precision.py`: 4.2596 under v2, 4.2512 under v3).
PIXEL_GRID = _grid(1 / 16, 0.15 / 127.5, 1.0, 127.5)
LATENT_PRECISION = 28  # layouts v1 and v2
PIXEL_PRECISION = 24
# sha256 of the pixel table every Bit-Swap model codes with (`DiscretizedTable.sha256`); the
# latent tables' are their layouts'.
PIXEL_TABLE_SHA256 = "cd38cdf81a07727a5b8f24a9c71f9fe56fb676e2def75a8778af69283d13da58"


@dataclass(frozen=True)
class LatentLayout:
    """How a model's latents meet the coder: `bins` equal bins over [-8, 8], table scales a
    factor exp(`scale_step`) apart from 0.15 of a bin to 32, means in 1/`mean_steps` of a bin.

    A better-trained model has sharper posteriors and priors, and coarse bins and scale steps
    cost it more: with `bitswap-cifar` at 4.30 bits/dim, v1's 1/64 bins cost 0.0067 bits/dim
    and its 1/8 log-scale steps 0.005; v2's 1/128 bins and 1/16 steps cost 0.0002 and 0.0012
    (`python studies/study_latent_bins.py`).
    """

    name: str
    bins: int
    scale_step: float
    mean_steps: int
    latent_table_sha256: str
    precision: int = LATENT_PRECISION
    # Posteriors coded with their own table, without the floor (`DiscretizedTable(floor=False)`),
    # when this names its hash; else with the latent table.
    posterior_table_sha256: str = ""

    @property
    def width(self) -> float:
        return 2 * LATENT_LIMIT / self.bins

    @property
    def input_scale(self) -> float:
        """The nets read bin b as the integer 2b + 1 - bins at this scale: its centre."""
        return self.width / 2

    @property
    def mean_scale(self) -> float:
        """z per unit of the nets' integer mean: 1/mean_steps of a bin."""
        return self.width / self.mean_steps

    @property
    def mean_offset(self) -> int:
        """Added to the nets' integer mean (z = 0 sits in the middle of the bins)."""
        return self.mean_steps * (self.bins - 1) // 2

    @cached_property
    def grid(self) -> ScaleGrid:
        return _grid(self.scale_step, 0.15 * self.width, 32.0, 1 / self.width)

    def table_spec(self) -> GridSpec:
        return GridSpec("logistic", self.bins, self.mean_steps, self.grid.scales(),
                        self.precision)

    @property
    def tables_id(self) -> str:
        """What a shard records of the tables it was coded with: a model file decodes only
        under its own tables, so a shard from a build with other tables is refused by name."""
        hashes = self.latent_table_sha256 + self.posterior_table_sha256 + PIXEL_TABLE_SHA256
        return hashlib.sha256(hashes.encode()).hexdigest()[:16]

    def net_input(self, bins: torch.Tensor) -> torch.Tensor:
        """Bin indices -> the nets' integer input (bin centres at `input_scale`)."""
        return 2 * bins + 1 - self.bins


LATENT_LAYOUTS = {layout.name: layout for layout in (
    LatentLayout("v1", 1024, 1 / 8, 16,
                 "a510bbfc2cdcd3989145b2bfd130711af725a4f92fbd65f434699b24dc9a3834"),
    LatentLayout("v2", 2048, 1 / 16, 8,
                 "87a1e8fd90b952562cff4f4780b83758cfd585d7543274c9fe4f1129a8e8a4d8"),
    LatentLayout("v3", 2048, 1 / 16, 8,
                 "6bf4a233984eb1b030f356fc9b095bdfb25472ede09e3de04408a28e07da453f", precision=30,
                 posterior_table_sha256=(
                     "1789ff9eab3f09fecdecc48a09e2e4af3b3f5dc363469c6c304354f5b07cd29d")),
)}
#: What model files that name no layout were converted for.
FIRST_LAYOUT = LATENT_LAYOUTS["v1"]
#: What `convert_to_exact` converts new models for.
CURRENT_LAYOUT = LATENT_LAYOUTS["v3"]


def pixel_table_spec() -> GridSpec:
    return GridSpec("logistic", 256, MEAN_STEPS, PIXEL_GRID.scales(), PIXEL_PRECISION)


@lru_cache(maxsize=8)
def pinned_table(spec: GridSpec, expected_sha256: str, what: str,
                 floor: bool = True) -> DiscretizedTable:
    """A table built and checked against its pinned hash once per process: the tables come
    from float arithmetic (libm), and a machine whose rounding differed would code with other
    probabilities. A mismatch raises, and raising is never cached."""
    table = DiscretizedTable(spec, floor=floor)
    if table.sha256() != expected_sha256:
        raise ValueError(
            f"the Bit-Swap {what} CDF table built on this machine has sha256 {table.sha256()}, "
            f"not the pinned {expected_sha256}: its float arithmetic differs, and decoding here "
            "would be wrong; report this machine"
        )
    return table


class ExactConditionalNet(nn.Module):
    """Integer twin of `ConditionalNet`: integer input -> (integer mean, integer log-scale).

    Tensors are float64 holding integers (see `recarchive.exact.fixed_point`); the outputs are
    returned as int64 for table look-ups.
    """

    def __init__(self, inp: FixedPointConv2d, blocks: list[tuple[FixedPointConv2d, ...]],
                 mean: FixedPointConv2d, log_scale: FixedPointConv2d,
                 log_scale_range: tuple[int, int], elu: FixedPointELU,
                 ring_one: int | None = None, image_channels: int = 3) -> None:
        super().__init__()
        self.inp, self.mean, self.log_scale = inp, mean, log_scale
        self.blocks = nn.ModuleList(nn.ModuleList(pair) for pair in blocks)
        self.log_scale_range = log_scale_range
        self.elu = elu
        # a block-context net: its input conv reads the ring too, a mask of 1 as this integer
        self.ring_one, self.image_channels = ring_one, image_channels

    def forward(self, h: torch.Tensor, ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        limit = (1 << (ACT_BITS - 1)) - 1
        if self.ring_one is not None:
            centred, mask = ring if ring is not None else no_neighbours(
                h.shape[0], self.image_channels, torch.int64, h.device)
            h = with_ring(h.to(torch.int64), centred, mask, self.ring_one)
        with plain_convolution():
            h = self.inp(h.to(torch.float64))
            for conv1, conv2 in self.blocks:
                h = torch.clamp(h + conv2(self.elu(conv1(self.elu(h)))), -limit - 1, limit)
            mean, log_scale = FixedPointConv2d.side_by_side((self.mean, self.log_scale),
                                                             self.elu(h))
            log_scale = torch.clamp(log_scale, *self.log_scale_range)
        return mean.to(torch.int64), log_scale.to(torch.int64)


class Int8CoarsePath(nn.Module):
    """`CoarsePath` in int8 arithmetic: the ELU operands summed over 4×4 cells (an integer sum,
    read by the first conv at a sixteenth of the activation's scale, in 19 bits), two convs over
    the 4×4 grid, each result added to the residual stream of the 16 cells it covers."""

    def __init__(self, elu1: Int8ELU, conv1: Int8Conv2d, elu2: Int8ELU,
                 conv2: Int8Conv2d) -> None:
        super().__init__()
        self.elu1, self.conv1, self.elu2, self.conv2 = elu1, conv1, elu2, conv2

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, 16, 16, C) residual stream (int32 at 2^-12) -> the same with the path added."""
        limit = 1 << (ACT_BITS - 1)
        batch, height, width, channels = h.shape
        rows, cols = height // COARSE_CELL, width // COARSE_CELL
        cells = (batch, rows, COARSE_CELL, cols, COARSE_CELL, channels)
        compiled = (int8_kernels.AVAILABLE and h.device.type == "cpu"
                    and h.dtype == torch.int32)
        if compiled:  # one pass each way instead of a dozen torch operations
            sums = np.empty((batch, rows, cols, channels), np.int32)
            int8_kernels.cell_sums(h.numpy(), self.elu1.table.numpy(), self.elu1.low,
                                   self.elu1.high, COARSE_CELL, sums)
            sums = torch.from_numpy(sums)
        else:
            operand = self.elu1(h).view(cells)
            # slices added up (int32 holds 16 operands of 15 bits): 8× faster than a sum
            # over two strided dimensions
            in_rows = operand[:, :, 0].to(torch.int32)
            for k in range(1, COARSE_CELL):
                in_rows = in_rows + operand[:, :, k]
            sums = in_rows[:, :, :, 0]
            for k in range(1, COARSE_CELL):
                sums = sums + in_rows[:, :, :, k]
        # the conv subtracts its input offset (16 activations' offsets) itself
        coarse = self.conv2(self.conv1(sums + self.conv1.input_offset), self.elu2)
        if compiled:  # in place: h is the input conv's fresh output
            h = h.contiguous()
            int8_kernels.add_spread(h.numpy(), coarse.contiguous().numpy(), COARSE_CELL,
                                    -limit, limit - 1)
            return h
        spread = h.view(cells) + coarse[:, :, None, :, None, :]
        return torch.clamp(spread.view(h.shape), -limit, limit - 1)


class Int8ConditionalNet(nn.Module):
    """`ConditionalNet` in int8 arithmetic (`exact.int8`): NHWC int64 between layers, the
    residual stream at 2^-12 in 20 bits, each conv reading a 15-bit activation (the input conv
    the net's own integer input), in two int8 digits."""

    def __init__(self, inp: Int8Conv2d, blocks: list[tuple[Int8ELU, Int8Conv2d, Int8ELU,
                                                          Int8Conv2d]],
                 head_elu: Int8ELU, heads: Int8Conv2d, out_channels: int,
                 log_scale_range: tuple[int, int], ring_one: int | None = None,
                 image_channels: int = 3, coarse: Int8CoarsePath | None = None) -> None:
        super().__init__()
        self.inp, self.head_elu, self.heads = inp, head_elu, heads
        self.coarse = coarse
        self.blocks = nn.ModuleList(nn.ModuleList(layers) for layers in blocks)
        self.out_channels, self.log_scale_range = out_channels, log_scale_range
        self.ring_one, self.image_channels = ring_one, image_channels

    def forward(self, h: torch.Tensor, ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h = h.to(torch.int64)  # the residual stream below is int32
        if self.ring_one is not None:
            centred, mask = ring if ring is not None else no_neighbours(
                h.shape[0], self.image_channels, torch.int64, h.device)
            h = with_ring(h, centred, mask, self.ring_one)
        h = self.inp(h.permute(0, 2, 3, 1))
        if self.coarse is not None:
            h = self.coarse(h)
        for elu1, conv1, elu2, conv2 in self.blocks:
            h = conv2(conv1(h, elu1), elu2, residual=h)  # clamped to ACT_BITS, as h is
        out = self.heads(h, self.head_elu).permute(0, 3, 1, 2)
        mean, log_scale = out.to(torch.int64).split(self.out_channels, dim=1)
        return mean, torch.clamp(log_scale, *self.log_scale_range)


def _heads_as_one(net: ConditionalNet) -> nn.Conv2d:
    """The mean and log-scale heads as one conv (their output channels stacked): one GEMM."""
    both = nn.Conv2d(net.mean.in_channels, 2 * net.mean.out_channels, 3, padding=1)
    with torch.no_grad():
        both.weight.copy_(torch.cat([net.mean.weight, net.log_scale.weight]))
        both.bias.copy_(torch.cat([net.mean.bias, net.log_scale.bias]))
    return both


def _convert_net_int8(net: ConditionalNet, in_scale: float, mean_scale: float, grid: ScaleGrid,
                      name: str) -> Int8ConditionalNet:
    ring_one = _ring_one(net, in_scale, name)
    act = 2.0**-ACT_FRAC_BITS

    def reading(quantizer) -> tuple[Int8ELU, float, int]:
        """The ELU feeding a conv, the conv's input scale and its input offset."""
        frac = int(quantizer.frac)
        if frac < 0:
            raise ValueError(f"{name}: an int8 model's activation scales are not calibrated "
                             "(train it with --arithmetic int8)")
        top, offset = ACTIVATION_LEVELS - 1 - (1 << frac), ACTIVATION_LEVELS // 2 - (1 << frac)
        return Int8ELU(ACT_FRAC_BITS, frac, top, offset), 2.0**-frac, offset

    def conv8(layer: nn.Conv2d, quantizer, part: str) -> tuple[Int8ELU, Int8Conv2d]:
        elu, scale, offset = reading(quantizer)
        return elu, Int8Conv2d.from_float(layer, scale, act, in_bits=ACTIVATION_BITS,
                                          weight_bits=8,
                                          out_bits=ACT_BITS, input_offset=offset,
                                          name=f"{name}.{part}")

    coarse = None
    if net.coarse is not None:
        elu1, scale1, offset1 = reading(net.coarse.quant1)
        cells = COARSE_CELL * COARSE_CELL  # 16 activations of 15 bits sum to 19
        first = Int8Conv2d.from_float(net.coarse.conv1, scale1 / cells, act,
                                      in_bits=ACTIVATION_BITS + (cells - 1).bit_length(),
                                      weight_bits=8,
                                      out_bits=ACT_BITS, input_offset=cells * offset1,
                                      name=f"{name}.coarse.conv1")
        coarse = Int8CoarsePath(elu1, first, *conv8(net.coarse.conv2, net.coarse.quant2,
                                                    "coarse.conv2"))
    blocks = [(*conv8(b.conv1, b.quant1, f"block{i}.conv1"),
               *conv8(b.conv2, b.quant2, f"block{i}.conv2")) for i, b in enumerate(net.blocks)]
    head_elu, head_scale, head_offset = reading(net.head_quant)
    # one conv for both heads: the mean's output scale for all, the log-scale's channels
    # rescaled into it by their own weights (a float factor folded before quantizing)
    both = _heads_as_one(net)
    out = net.mean.out_channels
    with torch.no_grad():
        factor = mean_scale / grid.step
        both.weight[out:] *= factor
        both.bias[out:] *= factor
    heads = Int8Conv2d.from_float(both, head_scale, mean_scale, in_bits=ACTIVATION_BITS,
                                  weight_bits=HEAD_WEIGHT_BITS, out_bits=OUT_BITS,
                                  input_offset=head_offset, name=f"{name}.heads")
    inp = Int8Conv2d.from_float(net.inp, in_scale, act, in_bits=INPUT_BITS,
                                weight_bits=HEAD_WEIGHT_BITS, out_bits=ACT_BITS,
                                name=f"{name}.inp")
    log_range = (math.floor(net.min_log_scale / grid.step),
                 math.ceil(net.max_log_scale / grid.step))
    return Int8ConditionalNet(inp, blocks, head_elu, heads, out, log_range, ring_one,
                              net.image_channels, coarse)


def _ring_one(net: ConditionalNet, in_scale: float, name: str) -> int | None:
    """What 1 is in the input units of a block-context net's input conv (None: no ring)."""
    if net.ring_scale is None:
        return None
    # one input conv reads the net's input and the ring's pixels (2v − 255) alike
    if net.ring_scale != in_scale or round(1 / in_scale) != 1 / in_scale:
        raise ValueError(f"{name}: a block-context net reads the ring at {net.ring_scale}, "
                         f"its input at {in_scale}: convert it for a layout that reads "
                         "latents at 1/256")
    return round(1 / in_scale)


def _convert_net(net: ConditionalNet, in_scale: float, mean_scale: float, grid: ScaleGrid,
                 elu: FixedPointELU, name: str) -> ExactConditionalNet | Int8ConditionalNet:
    if net.head_quant is not None:
        return _convert_net_int8(net, in_scale, mean_scale, grid, name)
    ring_one = _ring_one(net, in_scale, name)
    act = 2.0**-ACT_FRAC_BITS

    def conv(layer: nn.Conv2d, scale_in: float, scale_out: float, out_bits: int,
             part: str) -> FixedPointConv2d:
        return quantize_conv(layer, scale_in, scale_out, out_bits, f"{name}.{part}")

    blocks = [(conv(b.conv1, act, act, ACT_BITS, f"block{i}.conv1"),
               conv(b.conv2, act, act, ACT_BITS, f"block{i}.conv2"))
              for i, b in enumerate(net.blocks)]
    log_range = (math.floor(net.min_log_scale / grid.step),
                 math.ceil(net.max_log_scale / grid.step))
    return ExactConditionalNet(conv(net.inp, in_scale, act, ACT_BITS, "inp"), blocks,
                               conv(net.mean, act, mean_scale, OUT_BITS, "mean"),
                               conv(net.log_scale, act, grid.step, OUT_BITS, "log_scale"),
                               log_range, elu, ring_one, net.image_channels)


class ExactBitSwap(nn.Module):
    """The integer nets plus the integer tables they index."""

    def __init__(self, config: BitSwapConfig, infer: list[ExactConditionalNet],
                 generate: list[ExactConditionalNet], layout: LatentLayout,
                 context: ExactConditionalNet | None = None) -> None:
        super().__init__()
        self.config = config
        self.layout = layout
        self.infer = nn.ModuleList(infer)
        self.generate = nn.ModuleList(generate)
        # the checkerboard's second-stage net, or the interlace's net for its later stages
        self.context = context
        self.pixel_stages = config.pixel_stages()
        self.stage_masks = config.stage_masks()

    def table(self, kind: str) -> DiscretizedTable:
        """The latent table of this model's layout, its posterior table, or the pixel table,
        checked against its pinned hash."""
        layout = self.layout
        if kind == "posterior" and layout.posterior_table_sha256:
            return pinned_table(layout.table_spec(), layout.posterior_table_sha256,
                                f"posterior ({layout.name})", floor=False)
        if kind in ("latent", "posterior"):
            return pinned_table(layout.table_spec(), layout.latent_table_sha256,
                                f"latent ({layout.name})")
        return pinned_table(pixel_table_spec(), PIXEL_TABLE_SHA256, "pixel")

    # Entropy parameters: (mean_fixed, scale_index), each int64 shaped like the variable. A
    # block-context model's nets read `ring` (`border_canvas` of int64 pixels; None: no
    # neighbour known); other models' ignore it.
    @property
    def uses_block_context(self) -> bool:
        return self.config.block_context != "none"

    def posterior(self, level: int, h: torch.Tensor,
                  ring: tuple[torch.Tensor, torch.Tensor] | None = None):
        """q(z_{level+1} | x or z_level); h is the integer input of infer[level]."""
        mean, log_scale = self.infer[level](h, ring)
        return mean + self.layout.mean_offset, self.layout.grid.index(log_scale)

    def latent_prior(self, level: int, z_above: torch.Tensor,
                     ring: tuple[torch.Tensor, torch.Tensor] | None = None):
        """p(z_level | z_{level+1}) for level >= 1 (0-based: generate[level])."""
        mean, log_scale = self.generate[level](z_above, ring)
        return mean + self.layout.mean_offset, self.layout.grid.index(log_scale)

    def pixel_head(self, z1: torch.Tensor, ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """p(x|z1)'s net output before the pixel context: (integer mean, integer log-scale)."""
        return self.generate[0](z1, ring)

    def pixel_likelihood(self, z1: torch.Tensor, x: torch.Tensor | None = None,
                         head: tuple[torch.Tensor, torch.Tensor] | None = None,
                         ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                         context: bool = True, stage: int | None = None):
        """p(x|z1) for every subpixel channel. With a pixel context, the later stages'
        subpixels are right only given `x` (N, 12, 16, 16) holding the earlier stages' pixels
        (a stage's own and later pixels are not read); without `x` only the first stage's
        are. An interlace corrects every later stage, or with `stage` only that one (a
        decoder's stage-by-stage calls; a checkerboard has one later stage). `head` is
        `pixel_head(z1, ring)`, when the caller has it already; `context=False` when that
        head has the context's corrections already (`context_head`: a coder that needs the
        likelihood stage by stage runs the context net once)."""
        head = head if head is not None else self.pixel_head(z1, ring)
        if context and x is not None:
            for k in range(1, len(self.stage_masks)) if stage is None else [stage]:
                head = self.stage_head(z1, x, head, k, ring)
        mean, log_scale = head
        extra = self.config.coefficient_channels
        if extra:
            mean, coefficients = mean[:, :-extra], mean[:, -extra:]
            log_scale = log_scale[:, :-extra]
        if extra and x is not None:
            mean = mean + exact_channel_shift(coefficients, x)
        return mean + PIXEL_MEAN_OFFSET, PIXEL_GRID.index(log_scale)

    def stage_head(self, z1: torch.Tensor, x: torch.Tensor,
                   head: tuple[torch.Tensor, torch.Tensor], stage: int,
                   ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """`head` with the pixel context's corrections to pixel stage `stage`, read from the
        earlier stages' pixels in `x` (the first stage has none: `head` itself). A coder that
        pops a stage's colours one by one runs this once and shifts each colour's means with
        `pixel_likelihood(..., context=False)`."""
        if stage == 0 or self.context is None:
            return head
        if self.config.pixel_context == "interlace":
            return self.interlace_head(z1, x, head, stage, ring)
        return self.context_head(z1, x, head, ring)

    def context_head(self, z1: torch.Tensor, x: torch.Tensor,
                     head: tuple[torch.Tensor, torch.Tensor],
                     ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """`pixel_head`'s (mean, log scale) with the pixel context's corrections to the second
        stage's channels, read from the first stage's pixels in `x`."""
        mean, log_scale = head
        first, second = (list(stage) for stage in self.pixel_stages)
        d_mean, d_log_scale = self.context(torch.cat([z1, 2 * x[:, first] - 255], 1), ring)
        mean, log_scale = mean.clone(), log_scale.clone()
        mean[:, second] += d_mean
        log_scale[:, second] = torch.clamp(log_scale[:, second] + d_log_scale,
                                           *self.generate[0].log_scale_range)
        return mean, log_scale

    def interlace_head(self, z1: torch.Tensor, x: torch.Tensor,
                       head: tuple[torch.Tensor, torch.Tensor], stage: int,
                       ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """`head` with interlace stage `stage`'s subpixels corrected from the pixels of `x`
        in the stages before it (`bitswap.interlace_input` in integers: pixels 2v − 255 and
        known positions 256, the context conv's input unit)."""
        if stage < 1:
            return head
        masks = self.stage_masks.to(x.device)
        known = masks[:stage].any(0).to(torch.int64)
        pixels = (2 * x.to(torch.int64) - 255) * known
        inputs = torch.cat([z1, pixels,
                            (CONTEXT_INPUT_ONE * known[None, :4]).expand(x.shape[0], -1, -1, -1)],
                           1)
        d_mean, d_log_scale = self.context(inputs, ring)
        mean, log_scale = head
        here = masks[stage]
        mean = torch.where(here, mean + d_mean, mean)
        corrected = torch.clamp(log_scale + d_log_scale, *self.generate[0].log_scale_range)
        return mean, torch.where(here, corrected, log_scale)

    def top_prior(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed standard logistic, in bin units."""
        mean = torch.full(shape, self.layout.mean_offset, dtype=torch.int64)
        return mean, self.layout.grid.index(torch.zeros(shape, dtype=torch.int64))


def exact_channel_shift(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`channel_shift` in integers: coefficients in the mean head's integer units (1/2040),
    the shift in the pixel table's mean units (1/16 pixel): floor(k · (2v − 255) / 255), exact
    integer division. Channels whose earlier channel `x` does not hold yet come out wrong and
    are not read (a coder decodes R, then G, then B)."""
    x = x.to(torch.int64)
    shifts = [torch.zeros_like(x[:, :4]) for _ in range(x.shape[1] // 4)]
    for k, (channel, earlier) in enumerate(CHANNEL_PAIRS):
        product = coefficients[:, 4 * k : 4 * k + 4] * (2 * x[:, 4 * earlier : 4 * earlier + 4]
                                                        - 255)
        shifts[channel] = shifts[channel] + torch.div(product, 255, rounding_mode="floor")
    return torch.cat(shifts, 1)


def convert_to_exact(model: BitSwapModel, layout: LatentLayout = CURRENT_LAYOUT) -> ExactBitSwap:
    """Quantize a trained float model into its exact integer form for `layout`."""
    model = model.cpu().eval()
    elu = FixedPointELU(ACT_FRAC_BITS)
    grid = layout.grid
    with torch.no_grad():
        infer = [_convert_net(net, PIXEL_INPUT_SCALE if i == 0 else layout.input_scale,
                              layout.mean_scale, grid, elu, f"infer{i}")
                 for i, net in enumerate(model.infer)]
        generate = [_convert_net(net, layout.input_scale,
                                 PIXEL_MEAN_SCALE if i == 0 else layout.mean_scale,
                                 PIXEL_GRID if i == 0 else grid, elu, f"generate{i}")
                    for i, net in enumerate(model.generate)]
        context = None
        if model.context is not None:
            # One input conv reads z1's bin centres and the first stage's pixels alike.
            if layout.input_scale != CONTEXT_PIXEL_SCALE:
                raise ValueError(f"a Bit-Swap pixel context needs a latent layout whose nets "
                                 f"read latents at {CONTEXT_PIXEL_SCALE}, not layout "
                                 f"{layout.name} ({layout.input_scale})")
            context = _convert_net(model.context, layout.input_scale, PIXEL_MEAN_SCALE,
                                   PIXEL_GRID, elu, "context")
    return ExactBitSwap(model.config, infer, generate, layout, context)


def config_json(config: BitSwapConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)
