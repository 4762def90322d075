"""A causal pixel model: every pixel from the pixels decoded before it, no latents.

Bit-Swap codes a 32×32 block from latents, and its pixels see only a few neighbours (the
checkerboard, the ring). Classical lossless coders (CALIC, JPEG-LS, JPEG-XL's modular mode)
predict each pixel from the pixels left of and above it; on photos that is what pays. This
model does that with a small learned net: for colour c of a pixel, a two-layer MLP (with a
linear path beside it) reads a causal window of neighbours (all colours; the first 12 or more
of `NEIGHBOURHOOD`, nearest first), their local
gradients and the colours of the same pixel coded before, and gives a mixture of discretized
logistics (means, log-scales, weights).

Every feature is an integer computed from 8-bit pixels (`causal_features`); the float model
reads it times 1/255 and the exact model (`exact_causal`) reads the integer itself, so both
see the same numbers. Pixels are laid out on a flat canvas whose margins hold nothing
(`MARGIN_*`), so a neighbour's index is the pixel's index plus a fixed offset and a
neighbour outside the picture reads 0 with its known flag 0, in training crops and in coded
shards alike. A pixel (y, x) is decoded at wavefront step x + 2y: every neighbour in
`NEIGHBOURHOOD` has a smaller step, so a whole anti-diagonal band decodes at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from recarchive.models.bitswap import discretized_logistic_log_prob

# (dy, dx) of the causal neighbours a model may read, all three colours each, nearest first;
# dx + 2·dy < 0 for every one. A model reads the first `CausalConfig.neighbours` of them.
NEIGHBOURHOOD: tuple[tuple[int, int], ...] = (
    (0, -1), (0, -2), (-1, -1), (-1, 0), (-1, 1), (-2, 0), (-2, -1), (-2, 1), (-1, -2), (0, -3),
    (-2, 2), (-3, 0),
    (-2, -2), (-2, 3), (-1, -3), (0, -4), (-3, -1), (-3, 1), (-3, 2), (-3, -2), (-3, 3),
    (-4, 0), (-4, 1), (-4, 2))
WINDOW = NEIGHBOURHOOD[:12]  # the first models' window
# pairs of neighbours whose absolute differences (local gradients) are read
GRADIENTS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((0, -1), (-1, -1)), ((-1, 0), (-1, -1)), ((-1, 0), (-1, 1)), ((0, -1), (0, -2)),
    ((-1, 0), (-2, 0)))
WEST, NORTH = (0, -1), (-1, 0)
# empty canvas rows above, columns left and right of every picture: the neighbourhood's reach
# (wider margins change no feature: what lies outside a picture reads as unknown either way)
MARGIN_TOP = max(-dy for dy, _ in NEIGHBOURHOOD)
MARGIN_LEFT = max(-dx for _, dx in NEIGHBOURHOOD)
MARGIN_RIGHT = max(dx for _, dx in NEIGHBOURHOOD)
WAVE_ROW = 2  # a pixel's wavefront step is x + WAVE_ROW · y
# integer features enter the float nets times this (pixels as 2v − 255 are then in ±1)
FEATURE_SCALE = 1 / 255
GAIN = 8  # differences from the reference are read 8× larger (gradients 16×: |a − b|·2·8)
KNOWN = 255  # a known flag of 1.0


def feature_count(neighbours: int) -> int:
    """Features of a pixel for a model reading `neighbours` neighbours."""
    return 3 + 4 * neighbours + 3 * len(GRADIENTS)

# the mean head's unit, in pixels: 16 units (one table mean step) per ... see `MEAN_UNIT_FIXED`
MEAN_UNIT = 127.5 / GAIN
# pixel log-scales the tables hold (`exact_bitswap.PIXEL_GRID`: 0.15 to 127.5 pixels)
LOG_SCALE_RANGE = (math.log(0.15), math.log(127.5))

assert all(dx + WAVE_ROW * dy < 0 for dy, dx in NEIGHBOURHOOD), "the window must be causal"


def wave_step(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The wavefront step a pixel at (y, x) of its picture is decoded in."""
    return x + WAVE_ROW * y


def causal_features(values: torch.Tensor, known: torch.Tensor, index: torch.Tensor,
                    width: int, neighbours: int = len(WINDOW)
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer features (n, feature_count(neighbours)) and references (n, 3) of the pixels at
    flat `index`.

    `values` (P, 3) int64 canvas pixels (0 where nothing is), `known` (P,) int64 0/1, `width`
    the canvas's row stride, `neighbours` how many of `NEIGHBOURHOOD` are read. The reference
    of colour c is W + N (twice the W/N average): means are coded relative to it. Any integer
    dtype works; the result is int64."""
    count = len(index)
    window = torch.tensor([dy * width + dx for dy, dx in NEIGHBOURHOOD[:neighbours]])
    pairs = torch.tensor([dy * width + dx for pair in GRADIENTS for dy, dx in pair])
    at = index[:, None] + window[None]  # (n, k): one gather for the whole window
    near = values[at]  # (n, k, 3)
    flag = known[at].unsqueeze(2)
    ref = values[index + WEST[0] * width + WEST[1]] + values[index + NORTH[0] * width + NORTH[1]]
    ends = values[index[:, None] + pairs[None]]  # (n, 2 · gradients, 3)
    return torch.cat([
        ref - 255,
        torch.cat([GAIN * (2 * near - ref[:, None]) * flag, KNOWN * flag], 2).reshape(count, -1),
        (2 * GAIN * (ends[:, 0::2] - ends[:, 1::2]).abs()).reshape(count, -1)], 1), ref


def seen_colours(pixel: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The pixel's own colours as features (n, 3) for the colours after them: deviations
    from their references."""
    return GAIN * (2 * pixel - ref)


@dataclass(frozen=True)
class CausalConfig:
    width: int = 64
    mixtures: int = 3  # logistic components per pixel (3 against 1: −0.12 bits/dim, study)
    neighbours: int = len(WINDOW)  # of `NEIGHBOURHOOD`; model files without it read 12
    # latent features each pixel also reads (`models.causal_latent`: the REC codec's model);
    # 0 for the `causal` codec's models and every file without the field
    latent_channels: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.neighbours <= len(NEIGHBOURHOOD):
            raise ValueError(f"a causal model reads 1 to {len(NEIGHBOURHOOD)} neighbours, "
                             f"not {self.neighbours}")
        if self.latent_channels < 0:
            raise ValueError(f"latent_channels must be ≥ 0, not {self.latent_channels}")

    @property
    def inputs(self) -> int:
        """Features a pixel's colour nets read before the seen colours: the window's, then
        the latent's."""
        return feature_count(self.neighbours) + self.latent_channels

    def to_json(self) -> dict:
        return asdict(self)


class ColourNet(nn.Module):
    """One colour's predictor: features → K (mean, log-scale, weight logit) in head units.
    Linear layers on (pixels, features) rows: twice as fast as 1×1 convs on a CPU."""

    def __init__(self, inputs: int, width: int, mixtures: int) -> None:
        super().__init__()
        self.inp = nn.Linear(inputs, width)
        self.hidden = nn.Linear(width, width)
        self.mean = nn.Linear(width, mixtures)
        self.log_scale = nn.Linear(width, mixtures)
        self.logit = nn.Linear(width, mixtures)
        self.linear_mean = nn.Linear(inputs, mixtures)
        self.linear_log_scale = nn.Linear(inputs, mixtures)
        self.act = nn.ELU()

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """f (n, inputs) → means, log-scales, weight logits (n, K), in head units."""
        h = self.act(self.hidden(self.act(self.inp(f))))
        return (self.mean(h) + self.linear_mean(f),
                self.log_scale(h) + self.linear_log_scale(f), self.logit(h))


class CausalPixelModel(nn.Module):
    """Three `ColourNet`s (R, G, B); colour c also reads the c colours before it."""

    def __init__(self, config: CausalConfig) -> None:
        super().__init__()
        self.config = config
        self.colours = nn.ModuleList(
            ColourNet(config.inputs + c, config.width, config.mixtures) for c in range(3))

    def pixel_parameters(self, features: torch.Tensor, seen: torch.Tensor, colour: int
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Head outputs (n, K) for one colour from features (the window's, then any latent
        ones: `CausalConfig.inputs` columns) and seen colours."""
        f = torch.cat([features, seen[:, :colour]], 1).to(torch.float32) * FEATURE_SCALE
        return self.colours[colour](f)

    def neg_log_likelihood_bits(self, crops: torch.Tensor) -> torch.Tensor:
        """Total bits of uint8-valued crops (B, H, W, 3), each coded as a picture alone."""
        return self.canvas_bits(*crop_canvas(crops))

    def canvas_bits(self, values: torch.Tensor, known: torch.Tensor, index: torch.Tensor,
                    width: int, latent: torch.Tensor | None = None) -> torch.Tensor:
        """Total bits of the canvas pixels at `index` (see `causal_features`); `latent`
        (n, latent_channels) the latent features they read, if the model reads any."""
        features, ref = causal_features(values, known, index, width, self.config.neighbours)
        if self.config.latent_channels:
            features = torch.cat([features.to(latent.dtype), latent], 1)
        pixel = values[index]
        seen = seen_colours(pixel, ref)
        total = torch.zeros((), dtype=torch.float32)
        for c in range(3):
            mean, log_scale, logit = self.pixel_parameters(features, seen, c)
            mean = ref[:, c:c + 1] / 2 + mean * MEAN_UNIT
            log_scale = (log_scale + math.log(127.5)).clamp(*LOG_SCALE_RANGE)
            x = pixel[:, c:c + 1].to(torch.float32)
            logp = discretized_logistic_log_prob(x, mean, log_scale)
            total = total - torch.logsumexp(logp + torch.log_softmax(logit, 1), 1).sum()
        return total / math.log(2)


def with_neighbours(model: CausalPixelModel, neighbours: int) -> CausalPixelModel:
    """A copy of `model` reading `neighbours` neighbours (at least as many as it reads) that
    computes the same function: the new neighbours' input weights start at 0. Training goes on
    from it (warm start) instead of from scratch."""
    old = model.config.neighbours
    if neighbours < old:
        raise ValueError(f"a model reading {old} neighbours cannot be narrowed to {neighbours}")
    wider = CausalPixelModel(replace(model.config, neighbours=neighbours))
    # old feature columns → new: the reference and the first `old` neighbours stay, the
    # gradients, latent features and seen colours move past the new neighbours' columns
    kept = 3 + 4 * old
    return _moved_columns(model, wider, lambda c: torch.cat([
        torch.arange(kept), torch.arange(kept, model.config.inputs + c) + 4 * (neighbours - old)]))


def with_width(model: CausalPixelModel, width: int, spread: float = 0.05,
               seed: int = 0) -> CausalPixelModel:
    """A copy of `model` with `width` hidden units per colour (at least its own) that
    computes the same function: the new units start with small random input weights (std
    `spread`, seeded, so they compute something and get gradients) and output weights 0.
    Training a trained model on wider is cheaper than training the wider one from scratch."""
    old = model.config.width
    if width < old:
        raise ValueError(f"a model {old} units wide cannot be narrowed to {width}")
    wider = CausalPixelModel(replace(model.config, width=width))
    generator = torch.Generator().manual_seed(seed)

    def noise(rows: int, columns: int) -> torch.Tensor:
        return spread * torch.randn(rows, columns, generator=generator)

    with torch.no_grad():
        for net, new in zip(model.colours, wider.colours, strict=True):
            new.load_state_dict({name: value for name, value in net.state_dict().items()
                                 if name.startswith("linear_")}, strict=False)
            new.inp.weight.copy_(torch.cat([net.inp.weight,
                                            noise(width - old, net.inp.in_features)]))
            new.inp.bias.copy_(torch.cat([net.inp.bias, torch.zeros(width - old)]))
            hidden = torch.zeros(width, width)
            hidden[:old, :old] = net.hidden.weight
            hidden[old:] = noise(width - old, width)
            new.hidden.weight.copy_(hidden)
            new.hidden.bias.copy_(torch.cat([net.hidden.bias, torch.zeros(width - old)]))
            for name in ("mean", "log_scale", "logit"):
                source, target = getattr(net, name), getattr(new, name)
                target.weight.zero_()
                target.weight[:, :old] = source.weight
                target.bias.copy_(source.bias)
    return wider


def with_latent(model: CausalPixelModel, channels: int, spread: float = 0.05,
                seed: int = 0) -> CausalPixelModel:
    """A copy of `model` (reading no latent) that also reads `channels` latent features: the
    window's weights stay, the latent's first layer starts at small random weights (std
    `spread`, seeded: at 0 neither encoder nor decoder would get a gradient) and its linear
    paths at 0. The REC codec's model starts from a trained causal model this way."""
    if model.config.latent_channels:
        raise ValueError("this causal model reads a latent already")
    wider = CausalPixelModel(replace(model.config, latent_channels=channels))
    features = feature_count(model.config.neighbours)
    copied = _moved_columns(model, wider, lambda c: torch.cat([
        torch.arange(features), torch.arange(features, features + c) + channels]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for net in copied.colours:
            net.inp.weight[:, features:features + channels] = spread * torch.randn(
                net.inp.out_features, channels, generator=generator)
    return copied


def _moved_columns(model: CausalPixelModel, copy: CausalPixelModel,
                   columns: Callable[[int], torch.Tensor]) -> CausalPixelModel:
    """`copy` with `model`'s weights, colour c's input columns moved to `columns(c)` (the
    other input columns 0)."""
    for c, (net, new) in enumerate(zip(model.colours, copy.colours, strict=True)):
        with torch.no_grad():
            for name in ("hidden", "mean", "log_scale", "logit"):
                getattr(new, name).load_state_dict(getattr(net, name).state_dict())
            for name in ("inp", "linear_mean", "linear_log_scale"):
                source, target = getattr(net, name), getattr(new, name)
                target.weight.zero_()
                target.weight[:, columns(c)] = source.weight
                target.bias.copy_(source.bias)
    return copy


def crop_canvas(crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Crops (B, H, W, 3) on one canvas, stacked vertically with margins between them:
    (values (P, 3), known (P,), the crops' pixel indices in raster order, row stride)."""
    count, height, w, _ = crops.shape
    width = MARGIN_LEFT + w + MARGIN_RIGHT
    rows = MARGIN_TOP + count * (height + MARGIN_TOP)
    values = torch.zeros((rows, width, 3), dtype=torch.int64)
    known = torch.zeros((rows, width), dtype=torch.int64)
    tops = MARGIN_TOP + torch.arange(count) * (height + MARGIN_TOP)
    y = (tops[:, None] + torch.arange(height)[None]).reshape(-1)
    x = MARGIN_LEFT + torch.arange(w)
    values[y[:, None], x[None]] = crops.reshape(count * height, w, 3).to(torch.int64)
    known[y[:, None], x[None]] = 1
    index = (y[:, None] * width + x[None]).reshape(-1)
    return values.reshape(-1, 3), known.reshape(-1), index, width
