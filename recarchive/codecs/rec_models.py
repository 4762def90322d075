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
"""

from __future__ import annotations

import math

import numpy as np
import torch

from recarchive.codecs.base import CodecError
from recarchive.entropy.discretized import DiscretizedTable
from recarchive.exact.normal import default_table
from recarchive.models import zoo
from recarchive.models.bitswap import depth_to_space, space_to_depth
from recarchive.models.exact_bitswap import LATENT_LIMIT
from recarchive.models.vae import LATENT_FRAC_BITS, LoadedVAE, flat_pixels

Head = tuple[torch.Tensor, torch.Tensor]


class _ModelFile:
    """What both kinds share: the loaded file (`loaded`: its sha256, bytes and REC tables),
    and no pixel context unless a kind has one."""

    loaded: LoadedVAE | zoo.LoadedModel
    # the first stage whose likelihood reads the pixel context (`with_context`), or None
    context_stage: int | None = None

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
