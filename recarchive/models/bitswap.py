"""Bit-Swap's hierarchical latent-variable model (Kingma, Abbeel, Ho, ICML 2019), float form.

A 3×32×32 block is reshaped (space to depth) to 12×16×16; latent layers z1..zL of
`latent_channels`×16×16 follow, each with a logistic conditional. Inference nets q(z1|x),
q(z_{i+1}|z_i) and generative nets p(x|z1), p(z_i|z_{i+1}) are small ResNets with weight
normalization and ELU; the top prior p(zL) is a fixed standard logistic; x is a discretized
logistic per subpixel, optionally with a checkerboard context (`pixel_context`): the 2×2
positions of each space-to-depth cell come in two stages, the second's mean and log-scale
corrected by a context net that sees z1 and the first stage's pixels (or in the interlace's
four stages, each later one corrected from those before it). This module trains;
`exact_bitswap` turns a trained model into the integer network that drives the coder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

LOG2 = math.log(2.0)
ELU_FLOOR = -8.0  # the exact ELU table covers [-8, 0); below it ELU is flat in both forms
PIXEL_CONTEXTS = ("none", "checkerboard", "interlace")
# The checkerboard's stages, as positions p = 2·dy + dx of a 2×2 cell (space-to-depth channel
# 4·c + p): given z1, horizontal and vertical neighbours' residuals still correlate at ~0.2,
# and each second-stage pixel has its four such neighbours in the first stage.
CHECKERBOARD_STAGES = ((0, 3), (1, 2))
# The interlace (`pixel_context="interlace"`) goes one level further, as PNG's Adam7 does: of
# the checkerboard's first stage only position 0 of every other cell (pixels (0,0) and (2,2)
# of each 4×4 square, an eighth) comes from z1 alone; position 0 of the other cells follows,
# seeing those four at distance 2, then position 3 (a quarter, seeing its four diagonal
# neighbours), then the checkerboard's second stage, which sees everything around it. One
# context net serves every stage after the first: it reads z1, the pixels known so far (0
# where not yet) and which 2×2 positions of which cells are known. Stages as
# (positions, cell parity: None for every cell, else (u + v) % 2 of cell (u, v)).
INTERLACE_STAGES = (((0,), 0), ((0,), 1), ((3,), None), ((1, 2), None))
# The context net reads first-stage pixels v as (2v - 255) / 256: the scale the exact nets
# read latents at (layout v3's bin centres), so one integer input conv takes both.
CONTEXT_PIXEL_SCALE = 1 / 256
# Context across blocks (`block_context`): a block of a larger image may read the pixels of its
# already-decoded neighbours (in raster decoding order: above-left, above, above-right, left),
# a ring of BORDER_CELLS space-to-depth cells (2 pixels) around it. `border_canvas` lays them
# out, and every net reads them through its input conv: the conv runs unpadded over its input
# padded with zeros and the ring beside it (pixels and a mask), so cells next to the border
# see the neighbours, and the layers after carry that inward. Posterior, priors and pixel
# likelihood all read it (decoding knows the ring before it decodes a block's latents), so the
# latents need not carry what the neighbours tell.
NEIGHBOURS = ("above_left", "above", "above_right", "left")
BORDER_CELLS = 1
BORDER_PIXELS = 2 * BORDER_CELLS
BLOCK_CONTEXTS = ("none", "ring")
# How far a net sees inside a block (`reach`). "local": its convs' receptive field, four 3×3
# convs at half resolution, so the ring reaches ~8 pixels in and a block's centre sees none of
# it. "block": every net adds a coarse path after its input conv (`CoarsePath`): the activations
# averaged over 4×4 cells, two 3×3 convs on that 4×4 grid, added back to every cell they
# cover, so the ring reaches all but the far row of cells (int8 models only).
REACHES = ("local", "block")
# The integer arithmetic a model is built for. "fixed64": 16-bit weights and 20-bit activations
# in float64 GEMMs (every model before 2026-12-04). "int8": int8 GEMMs (`exact.int8`); the
# residual blocks' convs take 8-bit weights, and every conv reads its activation in 15 bits
# (two int8 digits), each at its own power-of-two scale (`ActivationQuantizer`), so the float
# model trains with both quantized (straight-through); input convs and heads keep 15-bit
# weights. 8-bit activations were measured and not kept: rounding them cost `bitswap-cifar`
# 0.78 bits/dim, and 700 steps of quantization-aware training still left 0.26.
ARITHMETICS = ("fixed64", "int8")
# The latents' family. "logistic": Bit-Swap's (bits-back codes discretized logistics, the top
# prior a standard logistic). "gaussian": Gaussian posteriors under a standard normal top prior,
# what relative entropy coding sends (`codecs.rec`: candidates are drawn from N(0, I)); a
# one-layer model of this family is REC's convolutional VAE, its KL taken in closed form.
LATENTS = ("logistic", "gaussian")
# Colour inside a pixel (`channel_context`): given z and the checkerboard, a pixel's colour
# residuals still correlate strongly. "linear" (PixelCNN++'s trick) codes a stage's channels
# one after the other, R, G, B, shifting G's mean by a·(R − 127.5) and B's by b·(R − 127.5) +
# c·(G − 127.5), the coefficients a, b, c per pixel from p(x|z)'s net (extra output channels
# of its mean head: `CHANNEL_PAIRS` × 4 positions). One net call more per stage for nothing:
# the coefficients come with the means.
CHANNEL_CONTEXTS = ("none", "linear")
CHANNEL_PAIRS = ((1, 0), (2, 0), (2, 1))  # (channel, the earlier channel it reads)


@dataclass(frozen=True)
class BitSwapConfig:
    """Shape of a Bit-Swap model; stored in the model file and hashed with the weights."""

    image_channels: int = 3
    latent_layers: int = 4
    latent_channels: int = 8
    width: int = 64
    res_blocks: int = 2
    min_log_scale: float = -7.0
    max_log_scale: float = 5.0
    pixel_context: str = "none"  # or "checkerboard"
    block_context: str = "none"  # or "ring": the neighbouring blocks' border pixels
    arithmetic: str = "fixed64"  # or "int8"
    latent: str = "logistic"  # or "gaussian" (REC's models)
    channel_context: str = "none"  # or "linear": R, G, B in turn
    reach: str = "local"  # or "block": a coarse path in every net (`CoarsePath`)

    def __post_init__(self) -> None:
        if self.channel_context not in CHANNEL_CONTEXTS:
            raise ValueError(f"unknown channel context {self.channel_context!r}: use one of "
                             f"{CHANNEL_CONTEXTS}")
        if self.channel_context != "none" and self.image_channels != 3:
            raise ValueError("a channel context is for RGB models (image_channels 3)")
        if self.latent not in LATENTS:
            raise ValueError(f"unknown latent family {self.latent!r}: use one of {LATENTS}")
        if self.arithmetic not in ARITHMETICS:
            raise ValueError(f"unknown Bit-Swap arithmetic {self.arithmetic!r}: use one of "
                             f"{ARITHMETICS}")
        if self.pixel_context not in PIXEL_CONTEXTS:
            raise ValueError(f"unknown Bit-Swap pixel context {self.pixel_context!r}: use one "
                             f"of {PIXEL_CONTEXTS}")
        if self.pixel_context == "interlace" and (self.channel_context != "none"
                                                  or self.latent != "logistic"):
            raise ValueError("the interlace pixel context is for Bit-Swap models (logistic "
                             "latents, no channel context): use the checkerboard")
        if self.reach not in REACHES:
            raise ValueError(f"unknown Bit-Swap reach {self.reach!r}: use one of {REACHES}")
        if self.reach != "local" and self.arithmetic != "int8":
            raise ValueError("a Bit-Swap model's coarse path (reach 'block') is built for int8 "
                             "arithmetic: pass --arithmetic int8")
        if self.block_context not in BLOCK_CONTEXTS:
            raise ValueError(f"unknown Bit-Swap block context {self.block_context!r}: use one "
                             f"of {BLOCK_CONTEXTS}")

    @property
    def data_channels(self) -> int:
        return 4 * self.image_channels  # after space to depth

    def pixel_stages(self) -> tuple[tuple[int, ...], ...]:
        """The space-to-depth channels of p(x|z1)'s stages, in coding (decoding) order (an
        interlace's first two stages share channels: `stage_masks` tells their cells)."""
        if self.pixel_context == "none":
            return (tuple(range(self.data_channels)),)
        stages = (CHECKERBOARD_STAGES if self.pixel_context == "checkerboard"
                  else tuple(positions for positions, _ in INTERLACE_STAGES))
        return tuple(tuple(4 * c + p for c in range(self.image_channels) for p in positions)
                     for positions in stages)

    def stage_masks(self) -> torch.Tensor:
        """(stages, data_channels, 16, 16) bool: which subpixels each stage codes."""
        parity = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2
        parities = ([cells for _, cells in INTERLACE_STAGES]
                    if self.pixel_context == "interlace" else [None] * len(self.pixel_stages()))
        masks = torch.zeros((len(self.pixel_stages()), self.data_channels, 16, 16),
                            dtype=torch.bool)
        for k, (channels, cells) in enumerate(zip(self.pixel_stages(), parities, strict=True)):
            masks[k, list(channels)] = True if cells is None else (parity == cells)
        return masks

    def coding_stages(self) -> tuple[tuple[int, ...], ...]:
        """The stages a coder codes pixels in: `pixel_stages`, each cut into its channels, R,
        G, B, under a channel context."""
        if self.channel_context == "none":
            return self.pixel_stages()
        return tuple(tuple(ch for ch in stage if ch // 4 == colour)
                     for stage in self.pixel_stages() for colour in range(self.image_channels))

    @property
    def coefficient_channels(self) -> int:
        """Extra mean-head outputs of p(x|z1): the channel context's coefficients."""
        return 4 * len(CHANNEL_PAIRS) if self.channel_context != "none" else 0

    def to_dict(self) -> dict:
        """The shape as stored; a model without a context names none, as files made before
        contexts existed do, so converting their weights again gives the same bytes."""
        shape = asdict(self)
        for optional, default in (("pixel_context", "none"), ("block_context", "none"),
                                  ("arithmetic", "fixed64"), ("latent", "logistic"),
                                  ("channel_context", "none"), ("reach", "local")):
            if shape[optional] == default:
                del shape[optional]
        return shape


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 32, 32) -> (N, 4C, 16, 16), the paper's reshape."""
    return F.pixel_unshuffle(x, 2)


def depth_to_space(x: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(x, 2)


def elu(x: torch.Tensor) -> torch.Tensor:
    """ELU with its input floored at -8, exactly what the integer table computes."""
    return F.elu(torch.clamp(x, min=ELU_FLOOR))


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return weight_norm(nn.Conv2d(cin, cout, 3, padding=1))


#: Activations: round(a · 2^frac) in [-2^frac, 2^15 - 1 - 2^frac] (ELU's floor -1 at the
#: bottom), fed to the GEMM offset by 2^14 - 2^frac into signed 15 bits (two int8 digits).
ACTIVATION_BITS = 15
ACTIVATION_LEVELS = 1 << ACTIVATION_BITS
WEIGHT8_LIMIT = 127


def _straight_through(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    return x + (quantized - x).detach()


class ActivationQuantizer(nn.Module):
    """An ELU output as the int8 net reads it: on a grid of 2^-frac over
    [-1, (2^15 - 1)·2^-frac - 1].

    `frac` is chosen once (`calibrate`) from the largest activation seen, then kept: it is
    part of the model (a buffer), and the exact net reads the same grid. Before calibration
    (frac < 0) it passes values through and records their peak."""

    frac: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("frac", torch.tensor(-1, dtype=torch.int64))
        self.peak = 0.0

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        frac = int(self.frac)
        if frac < 0:
            self.peak = max(self.peak, float(a.detach().abs().max()))
            return a
        unit = float(1 << frac)
        grid = torch.clamp(torch.round(a * unit), -unit, ACTIVATION_LEVELS - 1 - unit) / unit
        return _straight_through(a, grid)

    def calibrate(self) -> None:
        """The finest grid whose top, (2^15 - 1)·2^-frac - 1, holds the recorded peak."""
        frac = math.floor(math.log2((ACTIVATION_LEVELS - 1) / (self.peak + 1.0)))
        self.frac.fill_(max(0, min(frac, 12)))


def weight8(weight: torch.Tensor) -> torch.Tensor:
    """Per output channel, the weights on a power-of-two grid with the largest |w| within 127
    steps: what the exact net's 8-bit integers hold (straight-through gradient)."""
    peak = weight.detach().flatten(1).abs().amax(1).clamp(min=1e-30)
    step = torch.exp2(-torch.floor(torch.log2(WEIGHT8_LIMIT / peak))).view(-1, 1, 1, 1)
    quantized = torch.clamp(torch.round(weight / step), -WEIGHT8_LIMIT, WEIGHT8_LIMIT) * step
    return _straight_through(weight, quantized)


class ResBlock(nn.Module):
    def __init__(self, width: int, int8: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.conv2 = conv3x3(width, width)
        self.quant1 = ActivationQuantizer() if int8 else None
        self.quant2 = ActivationQuantizer() if int8 else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.quant1 is None or self.quant2 is None:
            return h + self.conv2(elu(self.conv1(elu(h))))
        inner = self._conv8(self.conv1, self.quant1(elu(h)))
        return h + self._conv8(self.conv2, self.quant2(elu(inner)))

    @staticmethod
    def _conv8(conv: nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
        weight = weight8(conv.weight)
        return F.conv2d(a, weight.to(a.dtype), conv.bias.to(a.dtype), padding=1)


COARSE_CELL = 4  # a coarse path's cells: 4×4 space-to-depth cells (8×8 pixels)


class CoarsePath(nn.Module):
    """A residual branch at a quarter of the resolution: ELU activations (on their int8 grid)
    averaged over 4×4 cells, two 3×3 convs over the 4×4 grid, each result added to the 16
    cells it covers. Two convs carry a coarse cell two further, so with the convs after the
    path the ring reaches all but a block's far row of cells (four 3×3 convs alone: four
    cells); 16 cells cost a sixteenth of a full-resolution conv each. The second conv
    starts switched off, so a model grown with it computes what it did."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.conv2 = conv3x3(width, width)
        self.quant1 = ActivationQuantizer()
        self.quant2 = ActivationQuantizer()
        with torch.no_grad():
            self.conv2.parametrizations.weight.original0.zero_()
            self.conv2.bias.zero_()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # the average of 16 values on the 2^-frac grid: exact in float32, and the exact net
        # feeds their integer sum to its conv
        pooled = F.avg_pool2d(self.quant1(elu(h)), COARSE_CELL)
        inner = ResBlock._conv8(self.conv1, pooled)
        coarse = ResBlock._conv8(self.conv2, self.quant2(elu(inner)))
        n, c, height, width = h.shape
        cells = (n, c, height // COARSE_CELL, COARSE_CELL, width // COARSE_CELL, COARSE_CELL)
        return (h.view(cells) + coarse[:, :, :, None, :, None]).view(h.shape)


class ConditionalNet(nn.Module):
    """in_channels×16×16 -> (mean, log scale) of out_channels×16×16; with `ring_scale` (a
    block-context model's nets) also the ring (`border_canvas`), its pixels read at that scale
    (the scale of the net's own input)."""

    def __init__(self, in_channels: int, out_channels: int, config: BitSwapConfig,
                 ring_scale: float | None = None) -> None:
        super().__init__()
        self.ring_scale = ring_scale if config.block_context != "none" else None
        self.image_channels = config.image_channels
        ring_channels = 4 * config.image_channels + 1 if self.ring_scale else 0
        self.inp = conv3x3(in_channels + ring_channels, config.width)
        if ring_channels:
            self.inp.padding = (0, 0)  # its input comes padded with the ring
        int8 = config.arithmetic == "int8"
        self.coarse = CoarsePath(config.width) if config.reach == "block" else None
        self.blocks = nn.ModuleList(ResBlock(config.width, int8)
                                    for _ in range(config.res_blocks))
        # the heads read quantized activations too (their weights keep 15 bits: the mean's
        # rounding to 8 bits alone cost 0.3 bits/dim)
        self.head_quant = ActivationQuantizer() if int8 else None
        self.mean = conv3x3(config.width, out_channels)
        self.log_scale = conv3x3(config.width, out_channels)
        self.min_log_scale, self.max_log_scale = config.min_log_scale, config.max_log_scale

    def forward(self, h: torch.Tensor, ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        # Under bfloat16 autocast only the residual blocks drop to bfloat16: the residual
        # stream, the input conv and the heads keep the weights' dtype. bfloat16 means and log
        # scales put half-pixel noise into the likelihood (+0.08 bits/dim on the shipped
        # model); this way the loss moves by 0.002 and a CPU training step takes 0.57 s, not 0.80.
        with torch.autocast(h.device.type, enabled=False):
            if self.ring_scale is not None:
                centred, mask = ring if ring is not None else no_neighbours(
                    h.shape[0], self.image_channels, h.dtype, h.device)
                h = with_ring(h, centred * self.ring_scale, mask, 1.0)
            h = self.inp(h)
            if self.coarse is not None:
                h = self.coarse(h)
        for block in self.blocks:
            h = block(h)
        with torch.autocast(h.device.type, enabled=False):
            h = elu(h)  # float32: a block adds its bfloat16 output to the float32 stream
            if self.head_quant is not None:
                h = self.head_quant(h)
            log_scale = torch.clamp(self.log_scale(h), self.min_log_scale, self.max_log_scale)
            return self.mean(h), log_scale


def _switch_off(net: ConditionalNet) -> None:
    """Output gains and biases to 0: the net adds nothing until training moves them (the gains
    still get gradients, and through them the rest of the net)."""
    for out in (net.mean, net.log_scale):
        out.parametrizations.weight.original0.zero_()
        out.bias.zero_()


def pixels_to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8-valued pixels to [-1, 1], the nets' input scale (exact: (2x - 255) / 255)."""
    return (2.0 * x - 255.0) / 255.0


def logistic_log_density(z: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor):
    t = (z - mean) * torch.exp(-log_scale)
    return -t - log_scale - 2.0 * F.softplus(-t)


def channel_shift(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The channel context's shift of each pixel mean, in pixels: (N, 12, 16, 16) for space-
    to-depth pixels `x`, from the coefficients (N, 4·len(CHANNEL_PAIRS), 16, 16) in the mean
    head's units (one unit shifts by the earlier channel's deviation from 127.5)."""
    shifts = [torch.zeros_like(x[:, :4]) for _ in range(x.shape[1] // 4)]
    for k, (channel, earlier) in enumerate(CHANNEL_PAIRS):
        shifts[channel] = shifts[channel] + coefficients[:, 4 * k : 4 * k + 4] * (
            x[:, 4 * earlier : 4 * earlier + 4] - 127.5)
    return torch.cat(shifts, 1)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor):
    t = (z - mean) * torch.exp(-log_scale)
    return -0.5 * t * t - log_scale - 0.5 * math.log(2 * math.pi)


def gaussian_kl_to_standard(mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, e^(2·log_scale)) || N(0, 1)) in nats, per dimension."""
    return 0.5 * (torch.exp(2 * log_scale) + mean * mean - 1) - log_scale


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor):
    """log P(x) for integer pixels 0..255 in pixel units, the edges taking the tails."""
    inv = torch.exp(-log_scale)
    upper = (x + 0.5 - mean) * inv
    lower = (x - 0.5 - mean) * inv
    log_cdf_upper = F.logsigmoid(upper)
    log_sf_lower = F.logsigmoid(-lower)
    # σ(u) − σ(l) = σ(u) · σ(−l) · (1 − e^(l−u)): stable in both tails.
    mid = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(lower - upper))
    logp = torch.where(x <= 0, log_cdf_upper, torch.where(x >= 255, log_sf_lower, mid))
    return logp


def context_input(z1: torch.Tensor, x_first: torch.Tensor) -> torch.Tensor:
    """The context net's input: z1 and the first stage's pixels (N, stage channels, 16, 16)."""
    return torch.cat([z1, (2.0 * x_first - 255.0) * CONTEXT_PIXEL_SCALE], 1)


def interlace_input(z1: torch.Tensor, x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """An interlace context net's input: z1, the known pixels of `x` (all 4C space-to-depth
    channels, 0 where not known) and where they are known (`known`: the (4C, 16, 16) 0/1 mask;
    its first colour's 4 positions, at 1.0)."""
    known = known.to(x.dtype)
    pixels = (2.0 * x - 255.0) * known * CONTEXT_PIXEL_SCALE
    return torch.cat([z1, pixels, known[None, :4].expand(x.shape[0], -1, -1, -1)], 1)


def border_canvas(around: torch.Tensor,
                  available: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A block's ring of neighbour pixels, space to depth, and where it is known.

    `around`: (N, C, 32 + 2·BORDER_PIXELS, same) pixels with the block in the middle (any
    dtype; only the ring's above-left, above, above-right and left parts are read);
    `available`: (N, 4) 0/1, per `NEIGHBOURS`. Returns (centred pixels 2v − 255 where known,
    0 elsewhere: (N, 4C, 16 + 2·BORDER_CELLS, same); mask (N, 1, same, same) of 0/1). Float
    and exact nets build their input convs' input from it alike (`with_ring`)."""
    b, size = BORDER_PIXELS, around.shape[-1]
    mask = torch.zeros((around.shape[0], 1, size, size), dtype=around.dtype,
                       device=around.device)
    regions = ((slice(0, b), slice(0, b)), (slice(0, b), slice(b, size - b)),
               (slice(0, b), slice(size - b, size)), (slice(b, size - b), slice(0, b)))
    for k, (rows, cols) in enumerate(regions):
        mask[:, :, rows, cols] = available[:, k, None, None, None].to(around.dtype)
    centred = space_to_depth((2 * around - 255) * mask)
    return centred, space_to_depth(mask)[:, :1]


def no_neighbours(blocks: int, channels: int, dtype: torch.dtype,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """`border_canvas` of a block that has no decoded neighbour (a lone block, or no geometry)."""
    cells = 16 + 2 * BORDER_CELLS
    return (torch.zeros((blocks, 4 * channels, cells, cells), dtype=dtype, device=device),
            torch.zeros((blocks, 1, cells, cells), dtype=dtype, device=device))


def with_ring(h: torch.Tensor, centred: torch.Tensor, mask: torch.Tensor,
              one: float) -> torch.Tensor:
    """A block-context net's input-conv input: `h` padded with zeros, beside the ring's pixels
    and its mask (`one`: what 1 is in the net's input units, 1.0 for the float nets, which
    also scale the pixels, and the integer unit for the exact ones)."""
    return torch.cat([F.pad(h, (BORDER_CELLS,) * 4), centred, mask * one], 1)


class BitSwapModel(nn.Module):
    """The float model: the nets, sampling and the ELBO used to train them."""

    def __init__(self, config: BitSwapConfig) -> None:
        super().__init__()
        self.config = config
        zc, dc = config.latent_channels, config.data_channels
        layers = config.latent_layers
        # each net reads the ring at the scale of its own input: pixels' or latents'
        pixel_scale, latent_scale = 1 / 255, CONTEXT_PIXEL_SCALE
        self.infer = nn.ModuleList(
            [ConditionalNet(dc, zc, config, pixel_scale)]
            + [ConditionalNet(zc, zc, config, latent_scale) for _ in range(layers - 1)]
        )
        self.generate = nn.ModuleList(
            [ConditionalNet(zc, dc + config.coefficient_channels, config, latent_scale)]
            + [ConditionalNet(zc, zc, config, latent_scale) for _ in range(layers - 1)]
        )
        self.context: ConditionalNet | None = None
        if config.pixel_context != "none":
            first, second = config.pixel_stages()[:2]
            inputs, outputs = ((zc + len(first), len(second))
                               if config.pixel_context == "checkerboard" else (zc + dc + 4, dc))
            self.context = ConditionalNet(inputs, outputs, config, latent_scale)
            with torch.no_grad():
                # The context starts switched off (output gains and biases 0), so a model
                # fine-tuned from one without a context starts exactly where that one was;
                # the gains still get gradients, and through them the rest of the net.
                _switch_off(self.context)

    def pixel_params(self, z1: torch.Tensor, x: torch.Tensor | None = None,
                     ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """p(x|z1) in pixel units: mean = 127.5 + 127.5 · net mean. With a context, each later
        stage's subpixels are conditioned on the earlier stages' pixels of `x` (space to depth);
        with a block context, every channel on `ring` (`border_canvas`; None: no neighbours)."""
        mean, log_scale = self.generate[0](z1, ring)
        extra = self.config.coefficient_channels
        if extra:
            mean, coefficients = mean[:, :-extra], mean[:, -extra:]
            log_scale = log_scale[:, :-extra]
        if self.context is not None and self.config.pixel_context == "interlace":
            if x is None:
                raise ValueError("a Bit-Swap model with a pixel context needs the pixels")
            mean, log_scale = self._interlaced(z1, x, mean, log_scale, ring)
        elif self.context is not None:
            if x is None:
                raise ValueError("a Bit-Swap model with a pixel context needs the pixels")
            first, second = (list(s) for s in self.config.pixel_stages())
            d_mean, d_log_scale = self.context(context_input(z1, x[:, first]), ring)
            mean, log_scale = mean.clone(), log_scale.clone()
            mean[:, second] = mean[:, second] + d_mean
            log_scale[:, second] = torch.clamp(log_scale[:, second] + d_log_scale,
                                               self.config.min_log_scale,
                                               self.config.max_log_scale)
        mean = 127.5 + 127.5 * mean
        if extra:
            if x is None:
                raise ValueError("a Bit-Swap model with a channel context needs the pixels")
            mean = mean + channel_shift(coefficients, x)
        return mean, log_scale + math.log(127.5)

    def _interlaced(self, z1: torch.Tensor, x: torch.Tensor, mean: torch.Tensor,
                    log_scale: torch.Tensor, ring: tuple[torch.Tensor, torch.Tensor] | None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's (mean, log scale) with every later interlace stage corrected by the
        context net from the stages before it."""
        masks = self.config.stage_masks().to(x.device)
        known = torch.zeros_like(masks[0])
        for k in range(1, len(masks)):
            known = known | masks[k - 1]
            d_mean, d_log_scale = self.context(interlace_input(z1, x, known), ring)
            here = masks[k].to(mean.dtype)
            mean = mean + d_mean * here
            corrected = torch.clamp(log_scale + d_log_scale, self.config.min_log_scale,
                                    self.config.max_log_scale)
            log_scale = torch.where(masks[k], corrected, log_scale)
        return mean, log_scale

    def elbo_terms(self, x: torch.Tensor, free_bits: float = 0.0,
                   ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                   latent_noise: float = 1.0) -> dict[str, torch.Tensor]:
        """Per-image negative ELBO parts in nats, from one reparameterized sample (`ring`: the
        blocks' neighbour pixels, `border_canvas`); `kl_layers` is (N, layers), bottom first.
        `latent_noise` > 1 (one Gaussian layer only) draws the sample the pixels see with its
        noise that many times wider: REC's samples are wider than the posterior's, and a
        decoder trained on such samples loses less on them; the KL stays the posterior's own,
        in closed form."""
        cfg = self.config
        if latent_noise != 1.0 and (cfg.latent != "gaussian" or cfg.latent_layers != 1):
            raise ValueError("latent_noise applies to one Gaussian latent layer (REC's models)")
        h = space_to_depth(pixels_to_input(x))
        gaussian = cfg.latent == "gaussian"
        zs, log_q, posteriors = [], [], []
        for net in self.infer:
            mean, log_scale = net(h, ring)
            if gaussian:
                z = mean + torch.exp(log_scale) * (latent_noise * torch.randn_like(mean))
                log_q.append(gaussian_log_density(z, mean, log_scale).flatten(1).sum(1))
            else:
                u = torch.rand_like(mean).clamp(1e-6, 1 - 1e-6)
                z = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
                log_q.append(logistic_log_density(z, mean, log_scale).flatten(1).sum(1))
            posteriors.append((mean, log_scale))
            zs.append(z)
            h = z
        recon = self.reconstruction_nats(x, zs[0], ring)
        kls = []
        for i in range(cfg.latent_layers):
            if i + 1 < cfg.latent_layers:
                pm, pls = self.generate[i + 1](zs[i + 1], ring)
            elif gaussian:  # under N(0, I) the KL has a closed form: no sampling noise
                mean, log_scale = posteriors[i]
                kls.append(gaussian_kl_to_standard(mean, log_scale).flatten(1).sum(1))
                continue
            else:
                pm, pls = torch.zeros_like(zs[i]), torch.zeros_like(zs[i])
            density = gaussian_log_density if gaussian else logistic_log_density
            log_p = density(zs[i], pm, pls).flatten(1).sum(1)
            kls.append(log_q[i] - log_p)
        kl = torch.stack(kls, 1)
        if free_bits > 0:
            dims = cfg.latent_channels * 256
            floor = free_bits * LOG2 * dims
            kl_train = torch.maximum(kl.mean(0, keepdim=True), torch.full_like(kl[:1], floor))
            kl_train = kl_train.expand_as(kl)
        else:
            kl_train = kl
        return {"recon": recon, "kl": kl.sum(1), "kl_train": kl_train.sum(1),
                "kl_layers": kl}

    def reconstruction_nats(self, x: torch.Tensor, z1: torch.Tensor,
                            ring: tuple[torch.Tensor, torch.Tensor] | None = None
                            ) -> torch.Tensor:
        """−ln p(x|z1) per image, x (N, C, 32, 32) pixel values 0..255."""
        x_s2d = space_to_depth(x)
        mean, log_scale = self.pixel_params(z1, x_s2d, ring)
        return -discretized_logistic_log_prob(x_s2d, mean, log_scale).flatten(1).sum(1)

    def bits_per_dim(self, x: torch.Tensor,
                     ring: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Negative ELBO in bits per dimension, per image."""
        terms = self.elbo_terms(x, ring=ring)
        dims = x[0].numel()
        return (terms["recon"] + terms["kl"]) / (dims * LOG2)
