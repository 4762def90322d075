"""The Bit-Swap codec: recursive bits-back coding of 32×32 RGB blocks with an exact model.

A shard's blocks are dealt to `chains` independent chains coded side by side (lanes
(chains, lanes_per_chain)); within a chain, blocks are coded one after another so each
block's latents are popped from the bits its predecessors pushed. The chain's first block has
no predecessor: by default it is coded raw and primes the message for the second (else it pops
from clean bits). The nets run batched over the chains. Per block, in Bit-Swap's order:

    pop z1 ~ q(z1|x); push x ~ p(x|z1); for i = 2..L: pop z_i ~ q(z_i|z_{i-1}),
    push z_{i-1} ~ p(z_{i-1}|z_i); finally push z_L ~ p(z_L)

and decoding runs it backwards. A model with a pixel context pushes x in its stages, the last
first, so that decoding pops the first stage first and conditions the next on it; under a
channel context each stage is coded colour by colour (R, G, B), G's and B's means shifted by
the earlier colours of the same pixel.

A model with a block context reads, for each block, the border pixels of its neighbours
(above-left, above, above-right, left: `BlockGeometry`) that were decoded before it. ANS is a
stack, so decoding visits a chain's blocks in the reverse of the order they were pushed: such a
shard gives each chain a run of consecutive blocks (raster order within each object) and
pushes it last block first, so decoding visits it in raster order; a neighbour counts as
decoded when it sits in an earlier decoding step (of any chain), which encoder and decoder
work out alike from the geometry the shard's parameters carry. The chains and the number of
sequential network steps stay as they were; a chain's raw first block (its run's last) reads
no neighbour.
`mode="bbans"` pops every latent first (BB-ANS), the baseline that shows Bit-Swap's smaller
initial-bits cost. Every probability comes from integer network outputs indexing integer
tables, so decoding with another batch size, thread count or device gives the same blocks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recarchive.ans import Message, clean_message, message_from_bytes, message_to_bytes
from recarchive.ans.backend import NUMPY, Array, Backend, torch_backend
from recarchive.ans.group import MessageGroup
from recarchive.ans.primed import can_prime, primed_message, primed_words
from recarchive.ans.serialize import CorruptMessageError
from recarchive.codecs.base import (
    BLOCK_SIZE,
    BlockGeometry,
    CodecError,
    EncodedShard,
    check_blocks,
)
from recarchive.entropy.discretized import DiscretizedTable
from recarchive.exact import prng
from recarchive.models.bitswap import (
    BORDER_PIXELS,
    border_canvas,
    depth_to_space,
    space_to_depth,
)
from recarchive.models.exact_bitswap import ExactBitSwap

# Chains per shard, by default: one per BLOCKS_PER_CHAIN blocks, at most MAX_CHAINS. Each chain
# pays for its start once (a raw first block, see FIRST_BLOCKS), so long chains code closest
# to the −ELBO; more chains only widen the nets' batch, which saves little on a CPU.
BLOCKS_PER_CHAIN = 1024
MAX_CHAINS = 64
# Lanes per chain, by default: one per BLOCKS_PER_LANE blocks of the chain (a power of two in
# [MIN_LANES, MAX_LANES]). Every lane ends with a 64-bit head flushed into the message, a fixed
# cost; more lanes mean fewer, wider coder steps. Measured on 1024 CIFAR-10 validation blocks,
# one chain, raw first block: 128 lanes 0.006 bits/dim over the exact −ELBO, 256 lanes 0.009
# and 10 % faster, 64 lanes no better and 20 % slower (README, "Codecs and models").
BLOCKS_PER_LANE = 8
MIN_LANES = 16
MAX_LANES = 1024
# Shards written before lanes were chosen per shard name none and used this many.
LEGACY_LANES_PER_CHAIN = 64
MODES = ("bitswap", "bbans")
# Padding (the pixels of an object's edge blocks past its right or bottom edge, which
# `cut_blocks` fills with the last real row and column) is not coded where a shard's geometry
# knows its objects' sizes (block-context models, shards since 2026-12-05): the coder sets it
# to PADDING_FILL, which every net reads, codes it as certain (0.05 bits a subpixel) and fills
# the edges in again after decoding. On the validation photos (1.1 % of their blocks' pixels
# are padding) `bitswap-photo` spent 0.019 bits/dim of the whole on edge padding; with 0
# filled in, its latents and real pixels cost 0.002 less than beside edge padding (128: 0.001
# less), and the coded photos went from 3.813 to 3.793 bits/dim (`docs/models.md`).
PADDING_FILL = 0
# How a chain's first block is coded. "raw": as its plain bytes, which prime the message (the
# lane heads, then the stack) that the second block pops its latents from, as HiLLoC starts a
# chain with a classical codec: 8 bits a subpixel instead of ~20 kbit of clean bits for its
# latents plus 62 per lane for random heads. "bits-back": like every other block, from seeded
# clean bits; what shards that name none used, and what lane counts too many for one block's
# bytes to fill their heads still use (`can_prime`).
FIRST_BLOCKS = ("raw", "bits-back")
LEGACY_FIRST_BLOCK = "bits-back"
# The raw bytes are XORed with seeded pseudorandom bytes of this stream: the second block pops
# its latents from them, and pixel bytes, far from uniform, would bias those draws.
RAW_MASK_STREAM = 0x7261776D61736B  # "rawmask"
# How a block-context model deals a shard's blocks to chains (`_slots`): each chain a run of
# consecutive blocks, pushed last first. Shards of models without one name no order and deal
# block k·chains + c to chain c at step k.
BLOCK_ORDERS = ("runs",)


class BitSwapCodec:
    name = "bitswap"
    channel_layouts = (3,)

    def __init__(self, model: ExactBitSwap, model_sha256: str, *, chains: int | None = None,
                 mode: str = "bitswap", device: str | torch.device = "cpu", seed: int = 0,
                 net_batch: int | None = None, model_bytes: bytes | None = None,
                 lanes_per_chain: int | None = None, first_block: str = "raw",
                 coder: str | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self._sha256 = model_sha256
        self._model_bytes = model_bytes
        self.chains, self.seed = chains, seed
        self._stages = [[part.to(self.device) for part in stage]
                        for stage in _coded_parts(model)]
        self.mode, self.lanes = self._checked(mode, lanes_per_chain)
        if first_block not in FIRST_BLOCKS:
            raise CodecError(f"unknown first-block coding {first_block!r}: use one of "
                             f"{FIRST_BLOCKS}")
        self.first_block = first_block
        self.net = _BatchedNets(model, net_batch)
        self.backend = coder_backend(self.device, coder)
        self.latent = model.table("latent").to(self.backend)
        self.posterior = model.table("posterior").to(self.backend)
        self.pixel = model.table("pixel").to(self.backend)
        self.latent_dims = model.config.latent_channels * 256
        if model.config.latent != "logistic":
            raise CodecError("this model was made for the rec codec (Gaussian latents): code "
                             "with --codec rec")

    def _checked(self, mode: str, lanes: int | None) -> tuple[str, int | None]:
        """A mode and lane count this model can code with (shards name theirs: check them)."""
        if mode not in MODES:
            raise CodecError(f"unknown Bit-Swap mode {mode!r}: use one of {MODES}")
        dims = self._coded_dims
        if lanes is not None and (lanes < 1 or any(d % lanes for d in dims)):
            raise CodecError(f"lanes_per_chain={lanes} must divide {dims}")
        return mode, lanes

    @property
    def _coded_dims(self) -> tuple[int, ...]:
        """The sizes of the variables a block codes: a latent layer, each pixel stage."""
        return (self.model.config.latent_channels * 256,
                *(len(part) for stage in self._stages for part in stage))

    @property
    def model_sha256(self) -> str:
        return self._sha256

    def model_bytes(self) -> bytes | None:
        """The model file, for archives to carry a copy (they restore without the zoo)."""
        return self._model_bytes

    # --- lanes ---------------------------------------------------------------------------

    def _on_coder(self, values: torch.Tensor | Array) -> Array:
        """Net outputs (torch) as the coder's arrays; arrays already there pass through."""
        if self.backend.is_torch or not isinstance(values, torch.Tensor):
            return values
        return self.backend.to_numpy(values)

    def _on_nets(self, values: Array) -> torch.Tensor:
        """Coder arrays as tensors for the nets (no copy on the CPU)."""
        return values if isinstance(values, torch.Tensor) else torch.from_numpy(values)

    def _lanes_sitting_out(self, active: torch.Tensor) -> Array | None:
        """The (chains, 1) mask of chains that code this step, or None when all do (every step
        but a shard's last, short one): masking costs two `where` calls per lane group. Made
        once per step, for every variable the step codes."""
        return None if bool(active.all()) else self._on_coder(active)[:, None]

    def _push(self, message: MessageGroup, table: DiscretizedTable, symbols, params,
              active: Array | None, tally: np.ndarray | None = None) -> None:
        """Push a (chains, D) variable, its lane groups first columns first
        (`Message.push_groups`). Intervals are computed for the whole variable at once.
        `tally` (chains,) gains each chain's bits pushed (−log2 of the coded probabilities)."""
        symbols = self._on_coder(symbols)
        mean, scale = (self._on_coder(p).reshape(symbols.shape) for p in params)
        starts, freqs = table.sit_out(*table.start_freq(symbols, mean, scale), active)
        if tally is not None:
            tally += self._information(table, freqs)
        if not table.floor and self.backend.count(freqs == 0):
            # Only a posterior table has symbols of frequency 0, and bits-back only pushes
            # back what it popped from it: a decoder that meets one reads damaged bytes.
            raise CodecError("Bit-Swap shard payload is damaged: it decodes to a latent its "
                             "posterior cannot hold")
        message.push_groups(starts, freqs, table.spec.precision)

    def _pop(self, message: MessageGroup, table: DiscretizedTable, params,
             active: Array | None, tally: np.ndarray | None = None) -> Array:
        """Pop a (chains, D) variable: the exact inverse of `_push`. `tally` (chains,) loses
        each chain's bits popped (what bits-back gets back)."""
        mean, scale = (self._on_coder(p).reshape(p.shape[0], -1) for p in params)
        row, whole = table.locate(mean, scale)
        out, freqs = message.pop_each(lambda part, rows, lanes: table.pop_groups(
            part, (row[rows], whole[rows]), lanes, None if active is None else active[rows]))
        if tally is not None:
            tally -= self._information(table, freqs)
        return out

    def _information(self, table: DiscretizedTable, freqs: Array) -> np.ndarray:
        """Bits of the coded symbols, per chain: sum of precision - log2(freq) (0 for lanes
        sitting out, whose interval is the whole range)."""
        bits = (table.spec.precision - self.backend.log2(freqs)).sum(1)  # on the coder's device
        return np.asarray(self.backend.to_numpy(bits), dtype=np.float64)

    # --- a chain's first block, raw ---------------------------------------------------------

    @property
    def _raw_words_per_block(self) -> int:
        return self.model.config.data_channels * 256 // 4

    def _raw_words(self, x: torch.Tensor) -> np.ndarray:
        """(chains, 12, 16, 16) pixels -> (chains, 768) whitened 32-bit words."""
        pixels = x.reshape(x.shape[0], -1).cpu().numpy().astype(np.uint8)
        whitened = pixels ^ self._raw_mask(x.shape[0])
        return whitened.view(">u4").astype(np.int64)

    def _raw_pixels(self, words: np.ndarray) -> torch.Tensor:
        """The inverse of `_raw_words`."""
        whitened = np.ascontiguousarray(words.astype(">u4")).view(np.uint8)
        pixels = (whitened ^ self._raw_mask(words.shape[0])).astype(np.int64)
        return torch.from_numpy(pixels).to(self.device).reshape(words.shape[0], -1, 16, 16)

    def _raw_mask(self, chains: int) -> np.ndarray:
        """(chains, 3072) seeded pseudorandom bytes."""
        count = chains * self._raw_words_per_block
        words = prng.random_words(self.seed, RAW_MASK_STREAM, 0, count).astype(">u4")
        return words.view(np.uint8).reshape(chains, -1)

    def _latent_input(self, bins: Array) -> torch.Tensor:
        """Bin indices (chains, D) -> the nets' integer input (chains, C, 16, 16)."""
        return self.model.layout.net_input(self._on_nets(bins)).reshape(bins.shape[0], -1, 16, 16)

    # --- pixels, in their stages -----------------------------------------------------------

    def _push_pixels(self, message: MessageGroup, x: torch.Tensor, z1: torch.Tensor,
                     active: Array | None, tally: np.ndarray | None = None,
                     ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                     padding: torch.Tensor | None = None) -> None:
        """Push x ~ p(x|z1) (x: (chains, 12, 16, 16)), its stages last first (`ring`: the
        decoded neighbours' border pixels, for a block-context model; `padding`: (chains,
        3072) subpixels that are padding, coded as a certain PADDING_FILL)."""
        likelihood = self.net.pixel_likelihood(z1, x, ring=ring)
        params = self._padding_params([p.reshape(x.shape[0], -1) for p in likelihood], padding)
        flat = x.reshape(x.shape[0], -1)
        for part in reversed([part for stage in self._stages for part in stage]):
            self._push(message, self.pixel, flat[:, part],
                       tuple(p[:, part] for p in params), active, tally)

    def _pop_pixels(self, message: MessageGroup, z1: torch.Tensor, active: Array | None,
                    ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                    padding: torch.Tensor | None = None) -> torch.Tensor:
        """Pop x ~ p(x|z1), the first stage first: the inverse of `_push_pixels`."""
        chains = z1.shape[0]
        head = self.net.pixel_head(z1, ring)
        x = torch.zeros((chains, self.model.config.data_channels, 16, 16), dtype=torch.int64,
                        device=self.device)
        flat = x.view(chains, -1)
        for k, stage in enumerate(self._stages):
            corrected = self.net.stage_head(z1, x, head, k, ring)
            for part in stage:  # its colours in turn, under a channel context
                likelihood = self.net.pixel_likelihood(z1, x, corrected, ring, context=False)
                params = self._padding_params([p.reshape(chains, -1) for p in likelihood],
                                              padding)
                popped = self._pop(message, self.pixel, tuple(p[:, part] for p in params), active)
                flat[:, part] = self._on_nets(popped).reshape(chains, -1)
        return x

    def _padding_params(self, params: list[torch.Tensor],
                        padding: torch.Tensor | None) -> list[torch.Tensor]:
        """Pixel (mean, scale index) with every padding subpixel's set to PADDING_FILL at the
        smallest scale: certain to within 0.05 bits, what a padding subpixel costs."""
        if padding is None:
            return params
        mean, scale = params
        return [torch.where(padding, PADDING_FILL * self.pixel.spec.mean_steps, mean),
                torch.where(padding, 0, scale)]

    # --- one step of every chain -----------------------------------------------------------

    def _encode_step(self, message: MessageGroup, x: torch.Tensor, active: Array | None,
                     tally: np.ndarray | None = None,
                     ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                     padding: torch.Tensor | None = None) -> None:
        m, layers = self.net, len(self.model.infer)
        zs: list[Array] = []
        if self.mode == "bitswap":
            zs.append(self._pop(message, self.posterior, m.posterior(0, 2 * x - 255, ring),
                                active, tally))
            self._push_pixels(message, x, self._latent_input(zs[0]), active, tally, ring,
                              padding)
            for j in range(1, layers):
                h = self._latent_input(zs[j - 1])
                zs.append(self._pop(message, self.posterior, m.posterior(j, h, ring), active,
                                    tally))
                self._push(message, self.latent, zs[j - 1],
                           m.latent_prior(j, self._latent_input(zs[j]), ring), active,
                           tally)
        else:
            h = 2 * x - 255
            for j in range(layers):
                zs.append(self._pop(message, self.posterior, m.posterior(j, h, ring), active,
                                    tally))
                h = self._latent_input(zs[j])
            self._push_pixels(message, x, self._latent_input(zs[0]), active, tally, ring,
                              padding)
            for j in range(1, layers):
                self._push(message, self.latent, zs[j - 1],
                           m.latent_prior(j, self._latent_input(zs[j]), ring), active,
                           tally)
        top = m.top_prior(tuple(zs[-1].shape))
        self._push(message, self.latent, zs[-1], tuple(t.to(self.device) for t in top), active,
                   tally)

    def _decode_step(self, message: MessageGroup, active: Array | None,
                     ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                     padding: torch.Tensor | None = None) -> torch.Tensor:
        m, layers = self.net, len(self.model.infer)
        chains = message.chains
        top = m.top_prior((chains, self.latent_dims))
        zs: list[Array | None] = [None] * layers
        zs[-1] = self._pop(message, self.latent, tuple(t.to(self.device) for t in top), active)
        if self.mode == "bitswap":
            for j in reversed(range(1, layers)):
                zs[j - 1] = self._pop(message, self.latent,
                                      m.latent_prior(j, self._latent_input(zs[j]), ring),
                                      active)
                self._push(message, self.posterior, zs[j],
                           m.posterior(j, self._latent_input(zs[j - 1]), ring), active)
            x = self._pop_pixels(message, self._latent_input(zs[0]), active, ring, padding)
            self._push(message, self.posterior, zs[0], m.posterior(0, 2 * x - 255, ring),
                       active)
            return x
        for j in reversed(range(1, layers)):
            zs[j - 1] = self._pop(message, self.latent,
                                  m.latent_prior(j, self._latent_input(zs[j]), ring), active)
        x = self._pop_pixels(message, self._latent_input(zs[0]), active, ring, padding)
        for j in reversed(range(1, layers)):
            self._push(message, self.posterior, zs[j],
                       m.posterior(j, self._latent_input(zs[j - 1]), ring), active)
        self._push(message, self.posterior, zs[0], m.posterior(0, 2 * x - 255, ring),
                   active)
        return x

    # --- the codec interface ---------------------------------------------------------------

    def _layout(self, num_blocks: int) -> tuple[int, int, int]:
        """(chains, steps, lanes per chain) for a shard: those given, else the rules above."""
        wanted = self.chains or min(MAX_CHAINS, num_blocks // BLOCKS_PER_CHAIN)
        chains = max(1, min(wanted, num_blocks))
        steps = -(-num_blocks // chains)
        lanes = self.lanes
        if lanes is None:
            lanes = MIN_LANES
            while (lanes < MAX_LANES and 2 * lanes * BLOCKS_PER_LANE <= steps
                   and not any(d % (2 * lanes) for d in self._coded_dims)):
                lanes *= 2
        return chains, steps, lanes

    @property
    def uses_block_context(self) -> bool:
        return self.model.uses_block_context

    @torch.no_grad()
    def encode(self, blocks: np.ndarray,
               geometry: BlockGeometry | None = None) -> EncodedShard:
        return self.encode_many([(blocks, geometry)])[0]

    @torch.no_grad()
    def encode_many(self, shards: Sequence[tuple[np.ndarray, BlockGeometry | None]],
                    ) -> list[EncodedShard]:
        """Code several shards together: their chains side by side in every net call (a
        wider batch), each shard still its own message with its own bytes, the very bytes
        `encode` gives it alone. Shards whose chains start alike (`first_block`) share the
        steps; each keeps its own chains and lanes per chain."""
        plans, coded = [], []
        for blocks, geometry in shards:
            blocks = check_blocks(blocks, self)
            if geometry is not None and len(geometry) != len(blocks):
                raise CodecError(f"the geometry describes {len(geometry)} blocks, the shard "
                                 f"has {len(blocks)}")
            chains, steps, lanes = self._layout(len(blocks))
            first_block = ("raw" if self.first_block == "raw"
                           and can_prime(lanes, self._raw_words_per_block) else "bits-back")
            plans.append(_Plan(len(blocks), geometry, chains, steps, lanes, self.mode,
                               first_block))
            coded.append(blocks)
        encoded: list[EncodedShard | None] = [None] * len(plans)
        for _, members in _grouped(plans, lambda p: p.first_block).items():
            together = self._encode_together([plans[i] for i in members],
                                             [coded[i] for i in members])
            for i, shard in zip(members, together, strict=True):
                encoded[i] = shard
        return encoded  # type: ignore[return-value]

    def _encode_together(self, plans: list[_Plan], blocks: list[np.ndarray],
                         ) -> list[EncodedShard]:
        order = BLOCK_ORDERS[0] if self.uses_block_context else None
        together = _Together(plans, order)
        pixels = torch.from_numpy(np.concatenate(blocks)).to(
            self.device).permute(0, 3, 1, 2).to(torch.int64)
        rings = _Rings(together.neighbours(plans), together.slots) if order else None
        padding = _padding(plans, self.device) if order else None
        if padding is not None:
            _check_padding(pixels, padding, together.blocks)
            pixels = pixels.masked_fill(padding, PADDING_FILL)
        first_block = plans[0].first_block
        if first_block == "raw":
            first, _ = _step_blocks(pixels, together.slots[0])
            messages = [primed_message(self._raw_words(space_to_depth(first[rows])), p.lanes,
                                       self.seed, self.backend)
                        for p, rows in zip(plans, together.rows, strict=True)]
        else:
            messages = [clean_message((p.chains, p.lanes), self.seed, self.backend)
                        for p in plans]
        group = MessageGroup(messages)
        block_bits = np.full(len(pixels), np.nan)  # raw first blocks stay NaN
        for k in range(1 if first_block == "raw" else 0, together.steps):
            slots = together.slots[k]
            batch, active = _step_blocks(pixels, slots)
            tally = np.zeros(len(slots))
            ring = rings.at(k, pixels) if rings else None
            self._encode_step(group, space_to_depth(batch), self._lanes_sitting_out(active),
                              tally, ring, _step_padding(padding, slots))
            block_bits[slots[slots >= 0]] = tally[slots >= 0]
        encoded = []
        for plan, message, span in zip(plans, messages, together.blocks, strict=True):
            params = {"chains": plan.chains, "mode": self.mode, "seed": self.seed,
                      "clean_words": int(message.stack.clean_words_drawn),
                      "lanes_per_chain": plan.lanes, "tables": self.model.layout.tables_id,
                      "first_block": first_block}
            if order:
                params["block_order"] = order
                params["geometry"] = (plan.geometry or
                                      BlockGeometry.lone(plan.num_blocks)).to_params()
            encoded.append(EncodedShard(message_to_bytes(message), plan.num_blocks, 3, params,
                                        block_bits=block_bits[span]))
        return encoded

    @torch.no_grad()
    def decode(self, shard: EncodedShard) -> np.ndarray:
        return self.decode_many([shard])[0]

    @torch.no_grad()
    def decode_many(self, shards: Sequence[EncodedShard]) -> list[np.ndarray]:
        """Decode several shards together (the inverse of `encode_many`; any shards, however
        they were coded: those that share a mode and first-block coding share the steps)."""
        plans, messages = [], []
        for shard in shards:
            plan, message = self._decode_plan(shard)
            plans.append(plan)
            messages.append(message)
        decoded: list[np.ndarray | None] = [None] * len(plans)
        for _, members in _grouped(plans, lambda p: (p.mode, p.first_block)).items():
            out = self._decode_together([plans[i] for i in members],
                                        [messages[i] for i in members])
            for i, blocks in zip(members, out, strict=True):
                decoded[i] = blocks
        return decoded  # type: ignore[return-value]

    def _decode_plan(self, shard: EncodedShard) -> tuple[_Plan, Message]:
        """A shard's layout from its parameters, checked, and its message."""
        params = shard.params
        if shard.channels != 3 or params.get("mode", "bitswap") not in MODES:
            raise CodecError(f"not a Bit-Swap RGB shard: channels={shard.channels}, "
                             f"params={params}")
        tables = self.model.layout.tables_id
        if params.get("tables") != tables:
            raise CodecError(f"this Bit-Swap shard was coded with CDF tables "
                             f"{params.get('tables')!r}, its model codes with {tables!r} here: "
                             "restore it with the recarchive release that made it")
        chains = int(params["chains"])
        if not 1 <= chains <= max(shard.num_blocks, 1):
            raise CodecError(f"Bit-Swap shard names {chains} chains for {shard.num_blocks} blocks")
        steps = -(-shard.num_blocks // chains)
        lanes = int(params.get("lanes_per_chain", LEGACY_LANES_PER_CHAIN))
        first_block = params.get("first_block", LEGACY_FIRST_BLOCK)
        if first_block not in FIRST_BLOCKS:
            raise CodecError(f"Bit-Swap shard codes its first blocks as {first_block!r}, which "
                             "this release does not know: restore it with the release that "
                             "made it")
        order = params.get("block_order")
        if (order is not None) != self.uses_block_context or (order and order not in
                                                                BLOCK_ORDERS):
            raise CodecError(f"Bit-Swap shard deals its blocks in order {order!r}, which its "
                             "model does not code with: restore it with the model and release "
                             "that made it")
        mode, lanes = self._checked(params.get("mode", "bitswap"), lanes)
        try:
            message = message_from_bytes(shard.payload, self.backend)
        except CorruptMessageError as error:
            raise CodecError(f"Bit-Swap shard payload is damaged: {error}") from error
        if message.lane_shape != (chains, lanes):
            raise CodecError(f"Bit-Swap shard lanes {message.lane_shape} do not match its "
                             f"{chains} chains")
        geometry = (BlockGeometry.from_params(params.get("geometry", []), shard.num_blocks)
                    if order else None)
        return _Plan(shard.num_blocks, geometry, chains, steps, lanes, mode, first_block), message

    def _decode_together(self, plans: list[_Plan], messages: list[Message],
                         ) -> list[np.ndarray]:
        decoder = self._with(plans[0].mode)
        order = BLOCK_ORDERS[0] if self.uses_block_context else None
        together = _Together(plans, order)
        rings = _Rings(together.neighbours(plans), together.slots) if order else None
        group = MessageGroup(messages)
        padding = _padding(plans, self.device) if order else None
        out = torch.zeros((together.num_blocks, 3, 32, 32), dtype=torch.int64,
                          device=self.device)
        raw_first = plans[0].first_block == "raw"
        for k in reversed(range(1 if raw_first else 0, together.steps)):
            slots = together.slots[k]
            active = torch.from_numpy(slots >= 0).to(self.device)
            ring = rings.at(k, out) if rings else None
            x = decoder._decode_step(group, self._lanes_sitting_out(active), ring,
                                     _step_padding(padding, slots))
            out[torch.from_numpy(slots[slots >= 0]).to(self.device)] = depth_to_space(x)[active]
        if raw_first:
            for message, rows in zip(messages, together.rows, strict=True):
                try:
                    words = primed_words(message, self._raw_words_per_block)
                except ValueError as error:
                    raise CodecError(f"Bit-Swap shard payload is damaged: {error}") from error
                out[torch.from_numpy(together.slots[0, rows]).to(self.device)] = \
                    depth_to_space(self._raw_pixels(words))
        if padding is not None:
            out = _repeat_edges(out, padding)
        blocks = out.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()
        return [np.ascontiguousarray(blocks[span]) for span in together.blocks]

    @torch.no_grad()
    def exact_neg_elbo_bits_per_dim(self, images: np.ndarray, batch: int = 250, seed: int = 0,
                                    geometry: BlockGeometry | None = None) -> float:
        """The exact model's −ELBO in bits/dim: each latent drawn from its integer posterior
        table, every term the −log2 of a coded probability. Against the float −ELBO it is
        what the integer conversion costs; against the coded rate, the initial bits and the
        coder's own overhead. A block-context model reads every neighbour `geometry` names
        (none without it)."""
        images = check_blocks(images, self)
        generator = torch.Generator().manual_seed(seed)
        pixels = torch.from_numpy(images.copy()).to(self.device).permute(0, 3, 1, 2)
        pixels = pixels.to(torch.int64)
        neighbours = (geometry or BlockGeometry.lone(len(images))).neighbours()
        total = 0.0
        for start in range(0, len(images), batch):
            x = space_to_depth(pixels[start : start + batch])
            ring = (ring_of(pixels, neighbours[start : start + batch])
                    if self.uses_block_context else None)
            total += float(self._exact_bits(x, generator, ring).sum())
        return total / images.size

    def _exact_bits(self, x: torch.Tensor, generator: torch.Generator,
                    ring: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Per-block ideal code length of `x` (N, 12, 16, 16) under the exact model."""
        m, count = self.net, x.shape[0]

        def bits(table: DiscretizedTable, symbols, params) -> torch.Tensor:
            mean, scale = (self._on_coder(p).reshape(count, -1) for p in params)
            symbols = self._on_coder(symbols).reshape(count, -1)
            return self._on_nets(table.bits(symbols, mean, scale)).sum(1)

        def draw(params) -> Array:
            mean, scale = (self._on_coder(p).reshape(count, -1) for p in params)
            table = self.posterior
            slots = torch.randint(0, 1 << table.spec.precision, tuple(mean.shape),
                                  generator=generator).to(self.device)
            return table.symbol_at(self._on_coder(slots), table.locate(mean, scale))

        zs, total, h = [], torch.zeros(count, dtype=torch.float64, device=self.device), 2 * x - 255
        for level in range(len(self.model.infer)):
            posterior = m.posterior(level, h, ring)
            zs.append(draw(posterior))
            total -= bits(self.posterior, zs[-1], posterior)
            h = self._latent_input(zs[-1])
        total += bits(self.pixel, x, m.pixel_likelihood(self._latent_input(zs[0]), x, ring=ring))
        for level in range(1, len(zs)):
            total += bits(self.latent, zs[level - 1],
                          m.latent_prior(level, self._latent_input(zs[level]), ring))
        top = tuple(t.to(self.device) for t in m.top_prior(tuple(zs[-1].shape)))
        return total + bits(self.latent, zs[-1], top)

    def _with(self, mode: str) -> BitSwapCodec:
        """This codec, or one like it that codes with another mode (a shard's): a shallow
        copy, so the nets and the tables already on the device are shared, not rebuilt (a
        quarter second a shard). Lanes are each shard's own (`_Plan`)."""
        if mode == self.mode:
            return self
        other = copy.copy(self)
        other.mode = mode
        return other


@dataclass(frozen=True)
class _Plan:
    """How one shard is dealt: its block count, geometry, chains, steps and lanes per chain,
    and the mode and first-block coding it is (or was) coded with."""

    num_blocks: int
    geometry: BlockGeometry | None
    chains: int
    steps: int
    lanes: int
    mode: str
    first_block: str


def _grouped(plans: list[_Plan], key: Callable[[_Plan], Hashable]) -> dict[Hashable, list[int]]:
    """The plans' positions by key, keys and positions in the order they first come."""
    groups: dict[Hashable, list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(key(plan), []).append(i)
    return groups


class _Together:
    """Shards coded side by side: their blocks one after another, their chains one after
    another, each shard's slots (`_slots`) shifted to its blocks and, past its last step,
    sitting out (-1)."""

    def __init__(self, plans: list[_Plan], order: str | None) -> None:
        self.steps = max(p.steps for p in plans)
        self.blocks: list[slice] = []
        self.rows: list[slice] = []
        block, chain = 0, 0
        for plan in plans:
            self.blocks.append(slice(block, block + plan.num_blocks))
            self.rows.append(slice(chain, chain + plan.chains))
            block, chain = block + plan.num_blocks, chain + plan.chains
        self.num_blocks = block
        self.slots = np.full((self.steps, chain), -1, np.int64)
        for plan, blocks, rows in zip(plans, self.blocks, self.rows, strict=True):
            own = _slots(plan.num_blocks, plan.chains, plan.steps, order)
            self.slots[: plan.steps, rows] = np.where(own >= 0, own + blocks.start, -1)

    def neighbours(self, plans: list[_Plan]) -> np.ndarray:
        """Every block's neighbours (`BlockGeometry.neighbours`) as positions among all."""
        parts = []
        for plan, blocks in zip(plans, self.blocks, strict=True):
            own = (plan.geometry or BlockGeometry.lone(plan.num_blocks)).neighbours()
            parts.append(np.where(own >= 0, own + blocks.start, -1))
        return np.concatenate(parts)


def _slots(num_blocks: int, chains: int, steps: int, order: str | None) -> np.ndarray:
    """(steps, chains): the shard position of the block each chain codes at each step, -1
    where a chain sits out. Without an order, block k·chains + c at step k of chain c (what
    every shard before block contexts used); "runs": chain c takes the c-th of `chains` runs
    of consecutive blocks (the first ones a block longer where they do not divide evenly) and
    codes it last block first, so its step 0 (a raw first block) is its run's last block."""
    slots = np.full((steps, chains), -1, np.int64)
    if order is None:
        flat = np.arange(steps * chains)
        slots.reshape(-1)[flat < num_blocks] = flat[flat < num_blocks]
        return slots
    lengths = np.full(chains, num_blocks // chains) + (np.arange(chains) < num_blocks % chains)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for chain, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(),
                                                strict=True)):
        slots[:length, chain] = start + np.arange(length)[::-1]
    return slots


def _step_blocks(pixels: torch.Tensor, slots: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The blocks of one step, (chains, C, 32, 32) (zeros for chains sitting out), and which
    chains code."""
    active = torch.from_numpy(slots >= 0).to(pixels.device)
    index = torch.from_numpy(np.maximum(slots, 0)).to(pixels.device)
    return pixels[index] * active[:, None, None, None], active


class _Rings:
    """The border pixels each step's blocks may read: a neighbour's when it was decoded in an
    earlier step than the block (a later step of the encoder's, which runs backwards)."""

    def __init__(self, neighbours: np.ndarray, slots: np.ndarray) -> None:
        """`neighbours` (N, 4): `BlockGeometry.neighbours` of the blocks `slots` deals."""
        step_of = np.empty(len(neighbours), np.int64)
        for k, row in enumerate(slots):
            step_of[row[row >= 0]] = k
        # decoded before: a later encoding step (step 0, the raw blocks, is decoded last)
        known = (neighbours >= 0) & (step_of[np.maximum(neighbours, 0)] > step_of[:, None])
        self.slots = slots
        self.neighbours = np.where(known, neighbours, -1)

    def at(self, k: int, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rings of step k's blocks, their neighbours' pixels read from `pixels`
        (N, C, 32, 32): all blocks (encoding) or those decoded so far (decoding)."""
        slots = self.slots[k]
        return ring_of(pixels, np.where((slots >= 0)[:, None],
                                        self.neighbours[np.maximum(slots, 0)], -1))


def ring_of(pixels: torch.Tensor, neighbours: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """`border_canvas` of blocks whose (above-left, above, above-right, left) neighbours are
    the blocks `neighbours` (n, 4) names in `pixels` (N, C, 32, 32), -1 for none known."""
    available = torch.from_numpy(neighbours >= 0).to(pixels.device)
    index = torch.from_numpy(np.maximum(neighbours, 0)).to(pixels.device)
    b, size = BORDER_PIXELS, 32 + 2 * BORDER_PIXELS
    around = torch.zeros((len(neighbours), pixels.shape[1], size, size), dtype=pixels.dtype,
                         device=pixels.device)
    around[:, :, :b, :b] = pixels[index[:, 0], :, -b:, -b:]
    around[:, :, :b, b:-b] = pixels[index[:, 1], :, -b:, :]
    around[:, :, :b, -b:] = pixels[index[:, 2], :, -b:, :b]
    around[:, :, b:-b, :b] = pixels[index[:, 3], :, :, -b:]
    return border_canvas(around, available)


def coder_backend(device: torch.device, coder: str | None = None) -> Backend:
    """numpy on the CPU, torch on an accelerator (or as `coder` says: "torch" on the CPU runs
    the accelerator's code path there, which `bench gpu-check --device cpu` holds to numpy's).
    The coder steps through lane groups of a few hundred int64 lanes, where a numpy call costs
    3 to 5 times less than a torch one (push 19 against 97 µs, pop 206 against 607 at 512
    lanes); both run the same integer operations, so the bytes are the same."""
    if coder not in (None, "numpy", "torch"):
        raise CodecError(f"unknown coder backend {coder!r}: use 'numpy' or 'torch'")
    if coder == "torch" or (coder is None and device.type != "cpu"):
        return torch_backend(device)
    if device.type != "cpu":
        raise CodecError(f"the numpy coder runs on the CPU, not {device}")
    return NUMPY


def _padding(plans: list[_Plan], device: torch.device) -> torch.Tensor | None:
    """(N, 3, 32, 32) bool: the padding of the blocks the plans code together, the pixels
    past their object's right or bottom edge, where their geometry knows the objects' sizes;
    None where no block has any."""
    rows, cols = [], []
    for plan in plans:
        extent = None if plan.geometry is None else plan.geometry.real_extent()
        whole = np.full(plan.num_blocks, BLOCK_SIZE)
        rows.append(whole if extent is None else extent[0])
        cols.append(whole if extent is None else extent[1])
    real_rows, real_cols = np.concatenate(rows), np.concatenate(cols)
    if (real_rows == BLOCK_SIZE).all() and (real_cols == BLOCK_SIZE).all():
        return None
    line = np.arange(BLOCK_SIZE)
    padding = ((line[None, :, None] >= real_rows[:, None, None])
               | (line[None, None, :] >= real_cols[:, None, None]))
    return torch.from_numpy(padding)[:, None].expand(-1, 3, -1, -1).to(device)


def _step_padding(padding: torch.Tensor | None, slots: np.ndarray) -> torch.Tensor | None:
    """The padding of one step's blocks as (chains, 3072) subpixels in space-to-depth order
    (a chain sitting out gets its slot 0's, never coded)."""
    if padding is None:
        return None
    index = torch.from_numpy(np.maximum(slots, 0)).to(padding.device)
    return space_to_depth(padding[index]).reshape(len(slots), -1)


def _repeat_edges(blocks: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """Blocks (N, C, 32, 32) with their padding filled as `cut_blocks` fills it: each pixel
    the nearest real one above and to the left (the last real row and column repeated)."""
    count, channels, size = blocks.shape[0], blocks.shape[1], blocks.shape[2]
    last_row = (~padding[:, 0, :, 0]).sum(1, keepdim=True) - 1  # column 0 is always real
    last_col = (~padding[:, 0, 0, :]).sum(1, keepdim=True) - 1
    line = torch.arange(size, device=blocks.device)[None]
    rows = torch.minimum(line, last_row)[:, None, :, None].expand(count, channels, size, size)
    cols = torch.minimum(line, last_col)[:, None, None, :].expand(count, channels, size, size)
    return blocks.gather(2, rows).gather(3, cols)


def _check_padding(pixels: torch.Tensor, padding: torch.Tensor, shards: list[slice]) -> None:
    """A block whose padding is not its edges repeated would not come back as it was given
    (the coder does not code padding; it fills it again when decoding). `shards`: each shard's
    blocks among `pixels`, to name the one at fault."""
    wrong = (_repeat_edges(pixels, padding) != pixels).flatten(1).any(1)
    if bool(wrong.any()):
        block = int(torch.nonzero(wrong)[0])
        shard = next(i for i, span in enumerate(shards) if span.start <= block < span.stop)
        raise CodecError(f"block {block - shards[shard].start} of shard {shard} (of those coded "
                         "together) has padding (past its object's size in the geometry) that "
                         "is not its last real row and column repeated: cut images with "
                         "archives.blocks.cut_blocks, or give the geometry without object sizes")


def _coded_parts(model: ExactBitSwap) -> list[list[torch.Tensor]]:
    """Each pixel stage's subpixels, as indices into a block's flattened (12, 16, 16) pixels
    in channel-major order, in the parts a coder codes them in (`coding_stages`: the stage
    whole, or its colours R, G, B under a channel context, each later one's means shifted by
    the earlier)."""
    masks, parts = model.stage_masks, model.config.coding_stages()
    per_stage = len(parts) // len(masks)
    coded = []
    for k, mask in enumerate(masks):
        stage = []
        for channels in parts[k * per_stage : (k + 1) * per_stage]:
            keep = torch.zeros(mask.shape[0], dtype=torch.bool)
            keep[list(channels)] = True
            stage.append(torch.nonzero((mask & keep[:, None, None]).flatten()).flatten())
        coded.append(stage)
    return coded


def _ring(parts: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A ring sliced along the batch by `_BatchedNets._run` ((None, None): no ring)."""
    return None if parts[0] is None else (parts[0], parts[1])


class _BatchedNets:
    """The model's entropy-parameter calls, run in slices of `batch` chains.

    Results do not depend on the slicing (the nets are exact); it bounds memory, and tests use
    it to prove that decoding with another batch size gives the same blocks.
    """

    def __init__(self, model: ExactBitSwap, batch: int | None) -> None:
        self.model, self.batch = model, batch

    def _run(self, fn, h: torch.Tensor, *more: torch.Tensor | None):
        """fn(h, *more), the tensors (None passes as None) sliced alike along the batch."""
        if self.batch is None or h.shape[0] <= self.batch:
            return fn(h, *more)
        parts = [fn(*(t if t is None else t[i : i + self.batch] for t in (h, *more)))
                 for i in range(0, h.shape[0], self.batch)]
        return tuple(torch.cat(p) for p in zip(*parts, strict=True))

    def posterior(self, level: int, h: torch.Tensor,
                  ring: tuple[torch.Tensor, torch.Tensor] | None = None):
        return self._run(lambda part, *around: self.model.posterior(level, part, _ring(around)),
                         h, *(ring or (None, None)))

    def latent_prior(self, level: int, z: torch.Tensor,
                     ring: tuple[torch.Tensor, torch.Tensor] | None = None):
        return self._run(
            lambda part, *around: self.model.latent_prior(level, part, _ring(around)),
            z, *(ring or (None, None)))

    def pixel_head(self, z: torch.Tensor,
                   ring: tuple[torch.Tensor, torch.Tensor] | None = None):
        return self._run(lambda part, *around: self.model.pixel_head(part, _ring(around)),
                         z, *(ring or (None, None)))

    def stage_head(self, z: torch.Tensor, x: torch.Tensor,
                   head: tuple[torch.Tensor, torch.Tensor], stage: int,
                   ring: tuple[torch.Tensor, torch.Tensor] | None = None):
        def run(z, x, head_mean, head_log_scale, centred, mask):
            return self.model.stage_head(z, x, (head_mean, head_log_scale), stage,
                                         _ring((centred, mask)))

        return self._run(run, z, x, *head, *(ring or (None, None)))

    def pixel_likelihood(self, z: torch.Tensor, x: torch.Tensor | None = None,
                         head: tuple[torch.Tensor, torch.Tensor] | None = None,
                         ring: tuple[torch.Tensor, torch.Tensor] | None = None,
                         context: bool = True):
        def run(z, x, head_mean, head_log_scale, centred, mask):
            given = None if head_mean is None else (head_mean, head_log_scale)
            return self.model.pixel_likelihood(z, x, given, _ring((centred, mask)),
                                               context=context)

        return self._run(run, z, x, *(head or (None, None)), *(ring or (None, None)))

    def top_prior(self, shape: tuple[int, ...]):
        return self.model.top_prior(shape)
