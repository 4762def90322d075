"""The two kinds of model the REC codec drives, behind one small interface.

REC needs of a model: the posterior q(z|x) as a diagonal Gaussian (encoder only: it decides
which candidate wins, never what the decoder computes), and the exact integer pixel
likelihood p(x|z) given z as the quantile table's fixed point (`z24`, z · 2^24 rounded, what
REC's atoms are), in one or more stages over the pixels (a later stage may read the pixels of
the earlier ones: the checkerboard context).

- `VaeRecModel`: the MLP VAE of `models.vae` (`rec-mnist`, and `rec-cifar` before
  2026-12-05): one stage over the pixels in channel-major order.
- `ConvRecModel`: a one-layer Bit-Swap model with Gaussian latents (`BitSwapConfig.latent`,
  `rec-cifar` since 2026-12-05): the posterior and pixel nets of Bit-Swap's bottom layer, in
  its integer arithmetic (int8 or fixed64), pixels space to depth in the checkerboard's two
  stages. The nets read z as the centre of its bin in the model's latent layout (1/128 wide on
  [-8, 8]): an integer function of z24.
- `CausalRecModel`: a latent on a 4×4 grid read by the causal pixel model
  (`models.causal_latent`, `rec-cifar` since 2026-12-06): the pixels are not a few stages but
  a wavefront of 94 steps per block, each pixel under a mixture of the pixel table, so this
  kind codes its pixels itself (`codes_pixels`: `push_pixels`, `pop_pixels`, `pixel_bits`),
  one ANS lane per block like the others.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from recarchive.ans.lanes import LaneMessage
from recarchive.codecs.base import CodecError
from recarchive.codecs.causal import ENCODE_CHUNK
from recarchive.entropy import mixture as mixture_code
from recarchive.entropy.discretized import DiscretizedTable
from recarchive.exact.normal import default_table
from recarchive.models import zoo
from recarchive.models.bitswap import depth_to_space, space_to_depth
from recarchive.models.causal import causal_features, crop_canvas, seen_colours, wave_step
from recarchive.models.causal_latent import (
    BLOCK,
    LATENT_GRID,
    latent_feature_ints,
    pixel_latents,
)
from recarchive.models.exact_bitswap import LATENT_LIMIT
from recarchive.models.vae import LATENT_FRAC_BITS, LoadedVAE, flat_pixels

Head = tuple[torch.Tensor, torch.Tensor]


class _ModelFile:
    """What both kinds share: the loaded file (`loaded`: its sha256, bytes and REC tables),
    and no pixel context unless a kind has one."""

    loaded: LoadedVAE | zoo.LoadedModel
    # the first stage whose likelihood reads the pixel context (`with_context`), or None
    context_stage: int | None = None
    codes_pixels = False  # True: the kind pushes and pops its pixels itself (no stages)

    def with_context(self, head: Head, z24: torch.Tensor, pixels: np.ndarray) -> Head:
        """`head` with the pixel context's corrections, read from `pixels` (which hold every
        stage before `context_stage`)."""
        return head

    @property
    def sha256(self) -> str:
        return self.loaded.sha256

    @property
    def data(self) -> bytes:
        return self.loaded.data

    @property
    def rec_tables(self) -> dict[str, np.ndarray]:
        return self.loaded.rec


class VaeRecModel(_ModelFile):
    """The MLP VAE (its own `rec.*` tables in its file)."""

    def __init__(self, loaded: LoadedVAE) -> None:
        self.loaded, self.exact = loaded, loaded.exact
        config = loaded.exact.config
        self.channels, self.height, self.width = config.channels, config.height, config.width
        self.pixels = config.pixels
        self.stages = (np.arange(self.pixels),)
        self.table: DiscretizedTable = loaded.exact.table()

    def to_pixels(self, images: np.ndarray) -> np.ndarray:
        return flat_pixels(images).numpy()

    def to_images(self, pixels: np.ndarray) -> np.ndarray:
        n = len(pixels)
        images = pixels.reshape(n, self.channels, self.height, self.width).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images.astype(np.uint8))

    def posterior(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.exact.posterior(torch.from_numpy(pixels))

    def pixel_head(self, z24: torch.Tensor) -> Head:
        """Here the whole likelihood: one stage, no context."""
        return self.exact.pixel_params(z24 >> (default_table().frac_bits - LATENT_FRAC_BITS))

    def pixel_params(self, head: Head, z24: torch.Tensor,
                     pixels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return head[0].numpy(), head[1].numpy()

    @torch.no_grad()
    def neg_elbo_bits(self, images: np.ndarray) -> np.ndarray:
        return self.loaded.float_model.bits_per_dim(flat_pixels(images)).numpy() * \
            images[0].size


class ConvRecModel(_ModelFile):
    """A one-layer Gaussian Bit-Swap model (with its `rec.*` tables)."""

    def __init__(self, loaded: zoo.LoadedModel) -> None:
        config = loaded.exact.config
        if config.latent != "gaussian" or config.latent_layers != 1:
            raise CodecError(f"REC codes one Gaussian latent layer; model {loaded.sha256[:12]} "
                             f"has {config.latent_layers} {config.latent} layer(s)")
        if config.block_context != "none":
            raise CodecError("REC does not read neighbouring blocks yet: train its model "
                             "without --block-context")
        self.loaded, self.exact = loaded, loaded.exact
        self.channels, self.height, self.width = config.image_channels, 32, 32
        self.pixels = self.channels * 32 * 32
        channels = 4 * self.channels
        cell = 16 * 16
        # s2d channel c holds pixels c·256 .. c·256 + 255 of the flat order
        self.stages = tuple(np.concatenate([np.arange(c * cell, (c + 1) * cell) for c in stage])
                            for stage in config.coding_stages())
        self._s2d_shape = (channels, 16, 16)
        if loaded.exact.context is not None:
            # the context reads the first checkerboard stage: every colour of it comes first
            second = set(loaded.exact.pixel_stages[1])
            self.context_stage = next(s for s, stage in enumerate(config.coding_stages())
                                      if second & set(stage))
        self.table = loaded.exact.table("pixel")
        layout = loaded.exact.layout
        self._latent_shape = (config.latent_channels, 16, 16)
        self._bins, self._mean_scale = layout.bins, layout.mean_scale
        self._log_step = layout.grid.step
        # z24 -> bin: floor((z + 8) · bins / 16), in integers
        per_unit = int(math.log2(layout.bins / (2 * LATENT_LIMIT)))  # bins per unit of z
        self._bin_shift = default_table().frac_bits - per_unit

    def to_pixels(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).to(torch.int64)
        return space_to_depth(x).reshape(len(images), -1).numpy()

    def to_images(self, pixels: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(pixels.reshape(len(pixels), *self._s2d_shape))
        images = depth_to_space(x).permute(0, 2, 3, 1).numpy()
        return np.ascontiguousarray(images.astype(np.uint8))

    def _s2d(self, pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(pixels.reshape(len(pixels), *self._s2d_shape))

    def posterior(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian (loc, scale) per latent dimension, (N, D) float64 (encoder only)."""
        mean, log_scale = self.exact.infer[0](2 * self._s2d(pixels) - 255)
        loc = mean.double() * self._mean_scale
        scale = torch.exp(log_scale.double() * self._log_step)
        return loc.reshape(len(pixels), -1).numpy(), scale.reshape(len(pixels), -1).numpy()

    def latent_input(self, z24: torch.Tensor) -> torch.Tensor:
        """The nets' integer input: z's bin centre (2b + 1 - bins, at 1/256)."""
        offset = int(LATENT_LIMIT) << default_table().frac_bits
        bins = torch.clamp((z24 + offset) >> self._bin_shift, 0, self._bins - 1)
        return (2 * bins + 1 - self._bins).reshape(len(z24), *self._latent_shape)

    def latent_values(self, z24: torch.Tensor) -> torch.Tensor:
        """(N, C, 16, 16) float: the z the float model's nets read for these latents, the
        same bin centres the integer nets compute with (`latent_input` at 1/256)."""
        return self.latent_input(z24).float() / 256.0

    def pixel_head(self, z24: torch.Tensor) -> Head:
        return self.exact.pixel_head(self.latent_input(z24))

    def with_context(self, head: Head, z24: torch.Tensor, pixels: np.ndarray) -> Head:
        return self.exact.context_head(self.latent_input(z24), self._s2d(pixels), head)

    def pixel_params(self, head: Head, z24: torch.Tensor,
                     pixels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, scale index) (N, P) in flat order; later stages are right only given
        `pixels` holding the earlier stages' (None: only the first stage's are), and the
        stages from `context_stage` on only with `head` through `with_context`."""
        x = None if pixels is None else self._s2d(pixels)
        mean, index = self.exact.pixel_likelihood(self.latent_input(z24), x, head=head,
                                                  context=False)
        return mean.reshape(len(z24), -1).numpy(), index.reshape(len(z24), -1).numpy()

    @torch.no_grad()
    def neg_elbo_bits(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float()
        return self.loaded.float_model.bits_per_dim(x).numpy() * images[0].size


class CausalRecModel(_ModelFile):
    """The latent causal model (`models.causal_latent`) with its `rec.*` tables.

    Pixels (`to_pixels`) are each block's raster (y, x, colour) flattened. A block's pixels are
    coded in its wavefront order (`order`: by step x + 2y, then raster), colour by colour, every
    block on its own lane and alone on its own canvas, so a block's bits depend on its own
    pixels and latent only."""

    codes_pixels = True

    def __init__(self, loaded: zoo.LoadedCausalLatent) -> None:
        self.loaded, self.exact = loaded, loaded.exact
        config = loaded.exact.config
        self.neighbours, self.latent_channels = config.neighbours, config.latent_channels
        self.channels, self.height, self.width = 3, BLOCK, BLOCK
        self.pixels = 3 * BLOCK * BLOCK
        self.table = loaded.exact.table
        y, x = torch.meshgrid(torch.arange(BLOCK), torch.arange(BLOCK), indexing="ij")
        steps = wave_step(y, x).reshape(-1).numpy()
        self.order = np.lexsort((np.arange(BLOCK * BLOCK), steps))  # positions, decoding order
        self.bounds = np.searchsorted(steps[self.order], np.arange(int(steps.max()) + 2))

    def to_pixels(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(images).reshape(len(images), -1).astype(np.int64)

    def to_images(self, pixels: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(pixels.reshape(len(pixels), BLOCK, BLOCK, 3).astype(np.uint8))

    @torch.no_grad()
    def posterior(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """q(z|x) (loc, scale), (N, D) float64, D = channels × 4 × 4. The float32 nets (10×
        faster than float64 on a CPU) only steer the encoder's choice: another machine may
        choose another candidate, and every decoder decodes whichever was sent."""
        blocks = torch.from_numpy(pixels.reshape(len(pixels), BLOCK, BLOCK, 3))
        loc, log_scale = self.loaded.float_model.encoder(blocks)
        return (loc.reshape(len(pixels), -1).double().numpy(),
                torch.exp(log_scale.double()).reshape(len(pixels), -1).numpy())

    def _latents(self, z24: torch.Tensor) -> torch.Tensor:
        """(N · 1024, C) the integer latent features of every block pixel (block-major,
        raster order)."""
        cells = latent_feature_ints(z24).reshape(len(z24), self.latent_channels, LATENT_GRID,
                                                 LATENT_GRID)
        return pixel_latents(cells)

    def _intervals(self, pixels: np.ndarray, z24: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(start, freq) (N · 1024, 3) of every block pixel's colours, block-major raster."""
        blocks = torch.from_numpy(pixels.reshape(len(pixels), BLOCK, BLOCK, 3))
        values, known, index, width = crop_canvas(blocks)
        latent = self._latents(z24)
        symbols = values[index]
        starts = np.empty((len(index), 3), np.int64)
        freqs = np.empty((len(index), 3), np.int64)
        for lo in range(0, len(index), ENCODE_CHUNK):
            part = slice(lo, lo + ENCODE_CHUNK)
            features, ref = causal_features(values, known, index[part], width, self.neighbours)
            features = torch.cat([features, latent[part]], 1)
            seen = seen_colours(symbols[part], ref)
            for c in range(3):
                mixture = self.exact.mixture_of(*self.exact.parameters(features, ref, seen, c))
                starts[part, c], freqs[part, c] = mixture.interval(
                    np.ascontiguousarray(symbols[part, c].numpy()))
        return starts, freqs

    def pixel_bits(self, pixels: np.ndarray, z24: torch.Tensor) -> np.ndarray:
        """(N,) the bits each block's pixels cost given its latent."""
        _, freqs = self._intervals(pixels, z24)
        bits = mixture_code.PRECISION - np.log2(freqs.astype(np.float64))
        return bits.reshape(len(pixels), -1).sum(1)

    def push_pixels(self, message: LaneMessage, pixels: np.ndarray, z24: torch.Tensor) -> None:
        """Push every block's pixels on its lane, the last decoded first."""
        n = len(pixels)
        starts, freqs = (a.reshape(n, BLOCK * BLOCK, 3) for a in self._intervals(pixels, z24))
        for step in reversed(range(len(self.bounds) - 1)):
            positions = self.order[self.bounds[step]:self.bounds[step + 1]]
            for c in reversed(range(3)):
                for position in reversed(positions):
                    mixture_code.push(message, starts[:, position, c], freqs[:, position, c], n)

    def pop_pixels(self, message: LaneMessage, z24: torch.Tensor) -> np.ndarray:
        """Every block's pixels from its lane, step by step (all blocks' at once)."""
        n = len(z24)
        values, known, index, width = crop_canvas(torch.zeros((n, BLOCK, BLOCK, 3),
                                                              dtype=torch.int64))
        latent = self._latents(z24)
        rows = torch.arange(n)[None, :] * (BLOCK * BLOCK)  # (1, N) each block's first row
        for step in range(len(self.bounds) - 1):
            positions = torch.from_numpy(self.order[self.bounds[step]:self.bounds[step + 1]])
            at = (rows + positions[:, None]).reshape(-1)  # position-major: a position's N
            step_index = index[at]
            features, ref = causal_features(values, known, step_index, width, self.neighbours)
            features = torch.cat([features, latent[at]], 1)
            seen = torch.zeros((len(at), 3), dtype=torch.int64)
            for c in range(3):
                mixture = self.exact.mixture_of(*self.exact.parameters(features, ref, seen, c))
                symbols = np.empty(len(at), np.int64)
                for k in range(len(positions)):
                    lanes = slice(k * n, (k + 1) * n)
                    symbols[lanes] = mixture_code.pop(message, mixture.part(lanes), n)
                decoded = torch.from_numpy(symbols)
                values[step_index, c] = decoded
                seen[:, c] = seen_colours(decoded[:, None], ref[:, c:c + 1])[:, 0]
        return values[index].reshape(n, -1).numpy()

    @torch.no_grad()
    def neg_elbo_bits(self, images: np.ndarray) -> np.ndarray:
        """The float model's −ELBO of the batch (one sample of z per block), in bits: one
        number, the batch's total."""
        blocks = torch.from_numpy(np.ascontiguousarray(images))
        return np.array([float(self.loaded.float_model.neg_elbo_bits(blocks))])
