"""The REC codec's causal model: a latent per 32×32 block, read by the causal pixel model.

A causal pixel model (`models.causal`) codes a block well from its own pixels alone (what
makes it a candidate for per-object coding), but it only sees what lies behind each pixel. A
latent sent first can tell it what lies ahead: this model's encoder q(z|x) (a small conv net,
float: only the encoder runs it, to choose REC's candidate) gives a diagonal Gaussian over
`latent_channels` channels on a 4×4 grid, one cell per 8×8 pixels; the prior is N(0, I).
p(x|z) is the causal pixel model with every pixel's features extended by its cell's latent
values, as integers: floor(z · 64), at most ±512 (`latent_feature_ints`, from REC's fixed-point
z24). The float model reads z · 64 when training (the rounding moves z by < 1/64 of the prior's
deviation).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recarchive.models.causal import CausalConfig, CausalPixelModel, crop_canvas

BLOCK = 32
LATENT_GRID = 4  # latent cells per block side
CELL = BLOCK // LATENT_GRID  # pixels per cell side
LATENT_UNIT = 64  # latent feature integers per unit of z
LATENT_FEATURE_LIMIT = 8 * LATENT_UNIT  # |feature| ≤ this: z beyond ±8 reads as ±8
Z24_PER_FEATURE = 1 << 18  # z24 (z · 2^24) per feature unit (2^24 / 64)
ENCODER_WIDTH = 48  # the encoder's channels (a model file's are its first layer's rows)


def latent_feature_ints(z24: torch.Tensor) -> torch.Tensor:
    """The features the pixel nets read of fixed-point latents z24 (any shape): floor
    division, the same integers on every machine."""
    return torch.clamp(torch.div(z24, Z24_PER_FEATURE, rounding_mode="floor"),
                       -LATENT_FEATURE_LIMIT, LATENT_FEATURE_LIMIT)


def block_cells() -> torch.Tensor:
    """(1024,) each block pixel's latent cell (raster order of pixels, of cells)."""
    y, x = torch.meshgrid(torch.arange(BLOCK), torch.arange(BLOCK), indexing="ij")
    return ((y // CELL) * LATENT_GRID + x // CELL).reshape(-1)


def pixel_latents(latent: torch.Tensor) -> torch.Tensor:
    """(N, C, 4, 4) per-cell latent features → (N · 1024, C): each block pixel's cell's, blocks
    one after another, pixels in raster order (`crop_canvas`'s order)."""
    count, channels = latent.shape[:2]
    cells = latent.reshape(count, channels, LATENT_GRID * LATENT_GRID)
    return cells[:, :, block_cells()].permute(0, 2, 1).reshape(count * BLOCK * BLOCK, channels)


class LatentEncoder(nn.Module):
    """Blocks (N, 32, 32, 3) uint8 → q(z|x): loc and log-scale (N, C, 4, 4). Its last layer
    starts at 0, so q starts as the prior (no KL) and learns to carry what pays."""

    def __init__(self, channels: int, width: int = ENCODER_WIDTH) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ELU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(width, 2 * channels, 1))
        with torch.no_grad():
            self.net[-1].weight.zero_()
            self.net[-1].bias.zero_()

    def forward(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = next(self.parameters())
        x = blocks.permute(0, 3, 1, 2).to(first.dtype) / 127.5 - 1.0
        loc, log_scale = self.net(x).chunk(2, dim=1)
        return loc, log_scale.clamp(-7.0, 2.0)


class CausalLatentVAE(nn.Module):
    """The float model: `encoder` (q(z|x)) and `pixels` (p(x|z), a latent-reading causal
    model); config `pixels.config` (its `latent_channels` > 0)."""

    def __init__(self, config: CausalConfig, encoder_width: int = ENCODER_WIDTH) -> None:
        super().__init__()
        if config.latent_channels <= 0:
            raise ValueError("a latent causal model needs latent_channels > 0")
        self.config = config
        self.encoder = LatentEncoder(config.latent_channels, encoder_width)
        self.pixels = CausalPixelModel(config)

    def kl_bits(self, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        """KL(q || N(0, I)) in bits, summed."""
        return self.kl_bits_per_channel(loc, log_scale).sum()

    def pixel_bits(self, blocks: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Total bits of `blocks` (N, 32, 32, 3) given per-cell latent features (N, C, 4, 4)
        (z · 64, or the integers the codec sends), each block a picture alone."""
        values, known, index, width = crop_canvas(blocks)
        return self.pixels.canvas_bits(values, known, index, width,
                                       pixel_latents(latent.to(torch.float32)))

    def neg_elbo_bits(self, blocks: torch.Tensor, beta: float = 1.0,
                      free_bits: float = 0.0) -> torch.Tensor:
        """−ELBO of `blocks` in bits, summed, with one reparametrized sample of z. Training
        only: `beta` weighs the KL (warmed up from 0), and a latent channel's mean KL per
        block below `free_bits` costs `free_bits` (no pressure below it: the latent is used
        instead of collapsing to the prior). At 1 and 0 it is the −ELBO."""
        loc, log_scale = self.encoder(blocks)
        z = loc + torch.exp(log_scale) * torch.randn_like(loc)
        per_channel = self.kl_bits_per_channel(loc, log_scale)
        kl = per_channel.sum() if not free_bits else \
            len(blocks) * torch.clamp(per_channel / len(blocks), min=free_bits).sum()
        return self.pixel_bits(blocks, z * LATENT_UNIT) + beta * kl

    def kl_bits_per_channel(self, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        """(C,) KL(q || N(0, I)) in bits of each latent channel, summed over blocks and cells."""
        kl = 0.5 * (loc.square() + torch.exp(2 * log_scale) - 1) - log_scale
        return kl.sum(dim=(0, 2, 3)) / math.log(2)
