"""The REC codec: a VAE's latent sent by relative entropy coding, the pixels by ANS.

Per image: the model's encoder gives q(z|x) = N(mu, sigma²); the latent is cut into blocks
(consecutive dimensions, a KL budget each, from training data) and REC (`recarchive.rec`)
picks one candidate per block from the prior N(0, I) regenerated from Philox, standard or
space-partitioned, PFR or ORC (with ORC, since 2026-12-06, the candidate whose code is
shortest rather than a sample: `selection`, encoder-only, so every decoder reads both); the
exact pixel nets map that z to integer pixel CDFs and the
pixels are pushed under them, in the model's stages (`codecs.rec_models`: the MLP VAE's one,
or the convolutional model's two checkerboard stages, the second reading the first), or, for
the latent causal model (`rec-cifar` and `rec-photo` since 2026-12-06 evening), in its own
wavefront over each block (`codes_pixels`). No bits-back, so no initial bits: every message
starts empty.

Layout (shards since 2026-12-05, params `layout: "objects"`): one ANS lane per block, each
with its own words (`ans.lanes`), and each object's blocks (its run in the shard: geometry)
one unit of bytes: payload = packed unit lengths | unit | unit | ... A unit decodes alone
(`decode_unit`: `restore` of one object reads its bytes only) or with the others (`decode`),
to the same pixels: the shared randomness of block k of a unit is (seed, item k, latent block
b), whatever else the shard holds. Per lane the encoder pushes the pixels stage by stage, the
last stage first, then the latent blocks (block 0 first); the decoder pops the blocks in
reverse, regenerates z bit for bit, and pops the stages in order.

Shards written before (no `layout`) dealt their images to `lanes` lanes over one shared stack;
they decode as they were coded (`_decode_interleaved`, pinned in the tests).

What the decoder needs besides the message is decoder-known integers, stored in the model
file (`rec.*`): the block cut points, the partition bits per dimension and the index-code CDF
rows (one per block position). `fit_rec_tables` makes them from training images only.
Other settings than the shipped ones (the README's comparison of standard / partitioned, PFR /
ORC, block budgets and sample counts) fit their tables when the codec is built; such a shard
names its tables' sha256 and only a codec with the same tables decodes it.

MNIST: `rec-mnist` codes whole 28×28×1 digits (not 32×32 blocks); the codec takes images of
its model's shape, and only 32×32 models serve the archive.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from recarchive.ans import NUMPY, Message, message_from_bytes
from recarchive.ans.lanes import LaneMessage, empty_lane_message, lane_message, lanes_to_bytes
from recarchive.ans.serialize import CorruptMessageError, pack_uints, unpack_uints
from recarchive.codecs.base import BLOCK_SIZE, BlockGeometry, CodecError, EncodedShard, check_blocks
from recarchive.codecs.rec_models import CausalRecModel, ConvRecModel, VaeRecModel
from recarchive.entropy.quantize import pmf_to_cdf
from recarchive.exact.normal import default_table
from recarchive.rec import (
    IndexCode,
    bits_from_mi,
    choice_bits,
    decode_blocks,
    fit_zipf_lam,
    kl_bits,
    push_choice,
    rec_search,
    split_blocks,
)
from recarchive.rec.index_code import DEFAULT_CAP, INDEX_PRECISION, zipf_index_code

ALGORITHMS = ("pfr", "orc")
DEFAULT_LANES = 128  # shards before 2026-12-05: images dealt to this many lanes
FIT_BATCH = 500
LAYOUT_OBJECTS = "objects"
RecModel = VaeRecModel | ConvRecModel | CausalRecModel
SELECTIONS = ("codelength", "sample")
# Choosing by codelength: each index bit weighs this many bits of -log2 dQ/dP. 1 is what the
# Laplace argument says; 1.5 coded 256 CIFAR-10 validation images shortest (1.0: +0.0058
# bits/dim, 2.0: +0.0015; `python studies/study_rec_selection.py`).
INDEX_WEIGHT = 1.5
# ...and where an image's KL in a block exceeds the block's partition bits by more than
# EXTRA_FROM_BITS, twice the candidates per bit beyond, up to MAX_CANDIDATES (chosen on the same
# images: 4.7167 bits/dim at twice the encoding time, against 4.7779 with 256 everywhere).
EXTRA_FROM_BITS = 6.0
MAX_CANDIDATES = 4096
# ...and where a block's KL is below this, one candidate (see `Shortest.candidates`)
NEGLIGIBLE_KL_BITS = 0.01
Posterior = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class RecSettings:
    """What the REC part does; the shipped model file holds tables for one such setting."""

    algorithm: str = "orc"  # "pfr" (exact) or "orc" (fixed budget)
    partitioned: bool = True
    block_bits: float = 32.0  # mean training KL per block, bits (chosen on validation)
    samples: int = 256  # ORC's budget; PFR's max_steps (it stops there, flagged truncated)

    def code(self) -> np.ndarray:
        """As integers for the model file."""
        return np.array([ALGORITHMS.index(self.algorithm), int(self.partitioned),
                         round(self.block_bits * 1000), self.samples], dtype=np.int64)

    @staticmethod
    def from_code(code: np.ndarray) -> RecSettings:
        a, p, b, n = (int(v) for v in code)
        return RecSettings(ALGORITHMS[a], bool(p), b / 1000, n)


@dataclass(frozen=True)
class RecTables:
    """Decoder-known integers: blocks, partition bits, index-code rows (+ the inactive row)."""

    cuts: np.ndarray  # (B + 1,) block b = dimensions cuts[b] .. cuts[b+1]-1
    bits: np.ndarray  # (D,) partition bits per dimension
    index_cdf: np.ndarray  # (B + 1, cap + 2): one row per block, the last for idle lanes
    settings: RecSettings

    @property
    def num_blocks(self) -> int:
        return len(self.cuts) - 1

    def block(self, b: int) -> slice:
        return slice(int(self.cuts[b]), int(self.cuts[b + 1]))

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {"cuts": self.cuts, "bits": self.bits, "index_cdf": self.index_cdf,
                "settings": self.settings.code()}

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray]) -> RecTables:
        return RecTables(arrays["cuts"].astype(np.int64), arrays["bits"].astype(np.int64),
                         arrays["index_cdf"].astype(np.int64),
                         RecSettings.from_code(arrays["settings"]))

    def sha256(self) -> str:
        h = hashlib.sha256(b"rec-tables:v1")
        for name, value in sorted(self.as_arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(value, dtype="<i8").tobytes())
        return h.hexdigest()


def idle_row(cap: int = DEFAULT_CAP) -> np.ndarray:
    """An index-code row where n = 1 takes all but the minimum mass: idle lanes cost ~0.02
    bits a block."""
    pmf = np.zeros(cap + 1)
    pmf[0] = 1.0
    return pmf_to_cdf(pmf[None], INDEX_PRECISION)[0]


@dataclass(frozen=True)
class Shortest:
    """The encoder's choice by codelength (`rec_search`'s `index_bits`): each block takes the
    candidate whose index bits (× `index_weight`) minus log2 dQ/dP is least, among
    `settings.samples` candidates, or more where the image's KL in the block outgrows the
    block's partition bits by over `extra_from_bits` (twice as many per bit beyond, up to
    `max_candidates`): there ORC's few candidates are all far from Q. The decoder neither
    knows nor needs how many were examined."""

    code: IndexCode
    index_weight: float = INDEX_WEIGHT
    max_candidates: int = MAX_CANDIDATES
    extra_from_bits: float = EXTRA_FROM_BITS

    def candidates(self, excess_bits: np.ndarray, samples: int,
                   kl: np.ndarray | None = None) -> np.ndarray:
        """How many candidates each image's block examines; one where its KL (`kl`, bits) is
        below `NEGLIGIBLE_KL_BITS`: there every candidate's −log2 dQ/dP is about 0, so the
        first, whose index is cheapest, is the shortest (a latent the model does not use
        costs no search)."""
        extra = np.clip(np.ceil(excess_bits - self.extra_from_bits), 0, 30)
        counts = np.minimum(samples * 2.0**extra, max(self.max_candidates, samples)).astype(
            np.int64)
        return counts if kl is None else np.where(kl < NEGLIGIBLE_KL_BITS, 1, counts)

    def index_bits(self, block: int, count: int) -> np.ndarray:
        return self.index_weight * self.code.symbol_bits(np.full(count, block),
                                                         np.arange(1, count + 1))


def _search(loc: np.ndarray, scale: np.ndarray, tables_cuts: np.ndarray, bits: np.ndarray,
            settings: RecSettings, seed: int, items: np.ndarray,
            shortest: Shortest | None = None):
    """Run REC on every block of every image: atoms (N, D), local indices (N, B), bins, steps,
    truncated. With `shortest` (ORC only) each block's choice is its shortest code, not a
    sample."""
    n = loc.shape[0]
    blocks = len(tables_cuts) - 1
    atoms = np.zeros(loc.shape, np.int64)
    indices = np.zeros((n, blocks), np.int64)
    bins = np.zeros((n, blocks), np.int64)
    steps = np.zeros((n, blocks), np.int64)
    truncated = np.zeros((n, blocks), bool)
    budget = settings.samples if settings.algorithm == "orc" else None
    max_steps = settings.samples if settings.algorithm == "pfr" else 1 << 22
    kl = kl_bits(loc, scale) if shortest is not None else None
    for b in range(blocks):
        cols = slice(int(tables_cuts[b]), int(tables_cuts[b + 1]))
        if shortest is None:
            groups = [(slice(None), budget, None)]
        else:
            block_kl = kl[:, cols].sum(axis=1)
            counts = shortest.candidates(block_kl - bits[cols].sum(), settings.samples,
                                         block_kl)
            groups = [(np.flatnonzero(counts == c), int(c), shortest.index_bits(b, int(c)))
                      for c in np.unique(counts)]
        for rows, count, index_bits in groups:
            res = rec_search(loc[rows, cols], scale[rows, cols], bits[cols], seed=seed,
                             items=items[rows], blocks=b, budget=count, max_steps=max_steps,
                             index_bits=index_bits)
            atoms[rows, cols], indices[rows, b], bins[rows, b] = res.atoms, res.indices, res.bins
            steps[rows, b], truncated[rows, b] = res.steps, res.truncated
    return atoms, indices, bins, steps, truncated


def batched_posterior(posterior: Posterior, pixels: np.ndarray,
                      batch: int | None) -> tuple[np.ndarray, np.ndarray]:
    """`posterior` over `pixels` in batches (the nets give the same numbers at any batch)."""
    step = batch or max(len(pixels), 1)
    parts = [posterior(pixels[i : i + step]) for i in range(0, len(pixels), step)]
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def fit_rec_tables(posterior: Posterior, pixels: np.ndarray,
                   settings: RecSettings | None = None) -> dict[str, np.ndarray]:
    """Decoder-known REC tables from training images (`pixels`: in the order `posterior`
    reads them): blocks from the mean KL per dimension, partition bits from it
    (`bits_from_mi`), and per block a Zipf index code fitted to the local indices these
    images produce. Also stores the mean KL (float, informational)."""
    settings = settings or RecSettings()
    with torch.no_grad():
        loc, scale = batched_posterior(posterior, pixels, FIT_BATCH)
    kl = kl_bits(loc, scale).mean(axis=0)
    blocks = split_blocks(kl, settings.block_bits)
    cuts = np.array([0] + [int(b[-1]) + 1 for b in blocks], dtype=np.int64)
    if settings.partitioned:
        bits = np.concatenate([bits_from_mi(kl[b]) for b in blocks])
    else:
        bits = np.zeros(kl.shape, np.int64)
    seed = 0x5EC0F17  # fitting's own randomness, never a shard's
    _, indices, *_ = _search(loc, scale, cuts, bits, settings, seed,
                             np.arange(len(pixels), dtype=np.int64))
    code = zipf_index_code([fit_zipf_lam(indices[:, b]) for b in range(len(blocks))])
    index_cdf = np.concatenate([code.cdf, idle_row(code.cap)[None]])
    tables = RecTables(cuts, bits, index_cdf, settings)
    return {**tables.as_arrays(), "kl_bits": kl}


def _selection(selection: str | None, settings: RecSettings) -> str:
    """How the encoder picks among REC's candidates (the decoder never needs to know):
    by codelength where ORC has a fixed list of them, else a sample (PFR's exact one)."""
    if selection is None:
        return "codelength" if settings.algorithm == "orc" else "sample"
    if selection not in SELECTIONS:
        raise CodecError(f"unknown REC selection {selection!r}: use one of {SELECTIONS}")
    if selection == "codelength" and settings.algorithm != "orc":
        raise CodecError("choosing REC's candidate by codelength needs ORC's fixed list of "
                         f"candidates; with {settings.algorithm} use selection='sample'")
    return selection


def _unit_runs(geometry: BlockGeometry) -> list[tuple[int, int]]:
    """(first block, block count) of each object's run in the shard, in shard order."""
    if len(geometry) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, geometry.objects[1:] != geometry.objects[:-1]])
    ends = np.r_[starts[1:], len(geometry)]
    return [(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)]


class RecCodec:
    """REC for the latent, ANS for the pixels; exact on any machine, batch size or threads.

    Every object's blocks are a unit of bytes of their own (`EncodedShard.units`), which
    `decode_unit` decodes alone."""

    name = "rec"
    codes_objects_alone = True  # `encode` takes the geometry: its objects are the units

    def __init__(self, model: RecModel, *, settings: RecSettings | None = None,
                 lanes: int = DEFAULT_LANES, seed: int = 0, net_batch: int | None = None,
                 fit_images: np.ndarray | None = None, selection: str | None = None,
                 index_weight: float = INDEX_WEIGHT,
                 max_candidates: int = MAX_CANDIDATES) -> None:
        self.model = model
        self.lanes, self.seed, self.net_batch = lanes, seed, net_batch
        if not model.rec_tables:
            raise CodecError(f"model {model.sha256[:12]} has no REC tables: it was not made "
                             "for the rec codec (jobs/export_rec.py makes one)")
        shipped = RecTables.from_arrays(model.rec_tables)
        if settings is None or settings == shipped.settings:
            self.tables = shipped
        else:
            if fit_images is None:
                raise CodecError(f"REC settings {settings} differ from the model's "
                                 f"({shipped.settings}): give training images to fit tables")
            self.tables = RecTables.from_arrays(fit_rec_tables(
                model.posterior, model.to_pixels(self._check(fit_images)), settings))
        self.code = IndexCode(self.tables.index_cdf)
        self.selection = _selection(selection, self.tables.settings)
        self.shortest = Shortest(self.code, index_weight, max_candidates) \
            if self.selection == "codelength" else None
        self.pixel = model.table
        self.z24 = default_table().fixed_torch()
        # seconds the last `encode` spent choosing the latents (posterior and REC search):
        # what benchmarks report as the search's share
        self.last_search_seconds = 0.0

    @property
    def model_sha256(self) -> str:
        return self.model.sha256

    @property
    def channel_layouts(self) -> tuple[int, ...]:
        return (self.model.channels,)

    def model_bytes(self) -> bytes:
        """The model file, for archives to carry a copy (they restore without the zoo)."""
        return self.model.data

    @torch.no_grad()
    def neg_elbo_bits_per_dim(self, images: np.ndarray, batch: int = 500) -> float:
        """The float model's −ELBO (one seeded sample per image): the rate REC aims at."""
        torch.manual_seed(0)
        total = sum(float(self.model.neg_elbo_bits(images[i : i + batch]).sum())
                    for i in range(0, len(images), batch))
        return total / images.size

    @torch.no_grad()
    def exact_neg_elbo_bits_per_dim(self, images: np.ndarray, samples: int = 4) -> float:
        """−ELBO of the model the coder actually uses: continuous KL of the exact encoder's
        posterior, plus the pixels' ideal cost under the integer tables with z ~ q (seeded).

        Why besides the float −ELBO: the tables give every pixel value at least 2^-18, so a
        pixel far from its mean costs at most ~18 bits where the float likelihood charges
        without bound; on MNIST that makes the coder ~1 % cheaper than the float −ELBO.
        """
        pixels = self.model.to_pixels(self._check(images))
        loc, scale = batched_posterior(self.model.posterior, pixels, self.net_batch)
        kl = float(kl_bits(loc, scale).sum())
        rng = np.random.default_rng(0)
        pixel_bits = 0.0
        frac = default_table().frac_bits
        for _ in range(samples):
            z = loc + scale * rng.standard_normal(loc.shape)
            z24 = torch.from_numpy(np.floor(z * 2.0**frac).astype(np.int64))
            if self.model.codes_pixels:
                pixel_bits += float(np.sum(self.model.pixel_bits(pixels, z24))) / samples
                continue
            mean, index = self._pixel_params(z24, pixels)
            pixel_bits += float(np.sum(self.pixel.bits(pixels, mean, index))) / samples
        return (kl + pixel_bits) / pixels.size

    # --- shapes ---------------------------------------------------------------------------

    def _check(self, images: np.ndarray) -> np.ndarray:
        m = self.model
        if (m.height, m.width) == (BLOCK_SIZE, BLOCK_SIZE):
            return check_blocks(images, self)
        if images.dtype != np.uint8 or images.shape[1:] != (m.height, m.width, m.channels):
            raise CodecError(f"codec 'rec' with this model takes uint8 images of shape "
                             f"(N, {m.height}, {m.width}, {m.channels}), got "
                             f"{images.dtype} {images.shape}")
        return np.ascontiguousarray(images)

    def _pixel_params(self, z24: torch.Tensor,
                      pixels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """All pixels' (mean, scale index), in batches of `net_batch`."""
        step = self.net_batch or max(len(z24), 1)
        parts = []
        for i in range(0, len(z24), step):
            z = z24[i : i + step]
            known = None if pixels is None else pixels[i : i + step]
            head = self.model.pixel_head(z)
            if known is not None:
                head = self.model.with_context(head, z, known)
            parts.append(self.model.pixel_params(head, z, known))
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    def _lane_bits(self, b: int, lanes: int) -> np.ndarray:
        return np.broadcast_to(self.tables.bits[self.tables.block(b)], (lanes,
                               self.tables.cuts[b + 1] - self.tables.cuts[b]))

    def _choose(self, pixels: np.ndarray, items: np.ndarray, seed: int):
        """REC's choice for every latent block of every image (`_search`'s results)."""
        loc, scale = batched_posterior(self.model.posterior, pixels, self.net_batch)
        t = self.tables
        return _search(loc, scale, t.cuts, t.bits, t.settings, seed, items, self.shortest)

    @torch.no_grad()
    def chosen_latents(self, images: np.ndarray, seed: int | None = None) -> torch.Tensor:
        """(N, D) z24: the latents this encoder sends for `images` coded as one object each
        (with `seed`, default the codec's), which is what the decoder's pixel nets will read:
        the data to train them on (`training.rec_decoder`)."""
        images = self._check(images)
        atoms, *_ = self._choose(self.model.to_pixels(images),
                                 np.zeros(len(images), np.int64),
                                 self.seed if seed is None else seed)
        return self.z24[torch.from_numpy(atoms)]

    # --- the codec interface ---------------------------------------------------------------

    @torch.no_grad()
    def encode(self, blocks: np.ndarray,
               geometry: BlockGeometry | None = None) -> EncodedShard:
        images = self._check(blocks)
        n = len(images)
        geometry = geometry if geometry is not None else BlockGeometry.lone(n)
        if len(geometry) != n:
            raise CodecError(f"REC shard of {n} blocks given a geometry of {len(geometry)}")
        runs = _unit_runs(geometry)
        items = np.concatenate([np.arange(count) for _, count in runs]) if runs else \
            np.zeros(0, np.int64)
        pixels = self.model.to_pixels(images)
        t = self.tables
        started = time.perf_counter()
        atoms, indices, bins, steps, truncated = self._choose(pixels, items, self.seed)
        self.last_search_seconds = time.perf_counter() - started
        message = empty_lane_message(n)
        self._push_pixels(message, pixels, self.z24[torch.from_numpy(atoms)])
        latent_bits = 0.0
        for b in range(t.num_blocks):
            rows, bits = np.full(n, b), self._lane_bits(b, n)
            push_choice(message, self.code, rows, bits, bins[:, b], indices[:, b])
            latent_bits += float(choice_bits(self.code, rows, bits, indices[:, b]).sum())
        units = [lanes_to_bytes(message, first, first + count) for first, count in runs]
        lengths = pack_uints(np.array([len(u) for u in units], np.uint64))
        spans, offset = [], len(lengths)
        for unit in units:
            spans.append((offset, len(unit)))
            offset += len(unit)
        params = {"layout": LAYOUT_OBJECTS, "seed": self.seed, "clean_words": 0,
                  "geometry": geometry.to_params(),
                  "rec": asdict(t.settings), "rec_tables_sha256": t.sha256(),
                  "selection": self.selection,
                  "latent_bits": latent_bits, "search_steps_mean": float(steps.mean()) if n
                  else 0.0, "truncated_blocks": int(truncated.sum())}
        head_bits = np.array([int(h).bit_length() for h in message.head], np.float64)
        return EncodedShard(lengths + b"".join(units), n, self.model.channels, params,
                            block_bits=32.0 * message.counts + head_bits, units=tuple(spans))

    def _check_shard(self, channels: int, params: dict) -> None:
        t = self.tables
        if channels != self.model.channels or params.get("rec_tables_sha256") != t.sha256():
            raise CodecError(f"not a shard of this REC codec: channels={channels}, "
                             f"tables {params.get('rec_tables_sha256')} (this codec: "
                             f"{t.sha256()}, settings {t.settings})")

    @torch.no_grad()
    def decode(self, shard: EncodedShard) -> np.ndarray:
        params = shard.params
        self._check_shard(shard.channels, params)
        if params.get("layout") != LAYOUT_OBJECTS:
            return self._decode_interleaved(shard)
        geometry = BlockGeometry.from_params(params.get("geometry", []), shard.num_blocks)
        runs = _unit_runs(geometry)
        view = memoryview(shard.payload)
        try:
            lengths, offset = unpack_uints(view, 0, len(runs))
        except CorruptMessageError as error:
            raise CodecError(f"REC shard payload is damaged: {error}") from error
        if offset + int(lengths.sum()) != len(view):
            raise CodecError(f"REC shard payload is damaged: its {len(runs)} units take "
                             f"{int(lengths.sum())} bytes, {len(view) - offset} are there")
        units, starts = [], offset + np.r_[0, np.cumsum(lengths.astype(np.int64))]
        for k in range(len(runs)):
            units.append(bytes(view[int(starts[k]) : int(starts[k + 1])]))
        return self._decode_units(units, [count for _, count in runs], params)

    @torch.no_grad()
    def decode_unit(self, unit: bytes, num_blocks: int, channels: int,
                    params: dict) -> np.ndarray:
        """One object's blocks from its unit's bytes alone (and its shard's parameters)."""
        self._check_shard(channels, params)
        if params.get("layout") != LAYOUT_OBJECTS:
            raise CodecError("this REC shard was written before objects had units of their "
                             "own: decode the whole shard")
        return self._decode_units([unit], [num_blocks], params)

    def _decode_units(self, units: list[bytes], counts: list[int], params: dict) -> np.ndarray:
        t = self.tables
        try:
            message: LaneMessage = lane_message(units, counts)
        except CorruptMessageError as error:
            raise CodecError(f"REC unit is damaged: {error}") from error
        n = sum(counts)
        items = np.concatenate([np.arange(c) for c in counts]) if counts else \
            np.zeros(0, np.int64)
        seed = int(params["seed"])
        atoms = np.zeros((n, int(t.cuts[-1])), np.int64)
        try:
            for b in reversed(range(t.num_blocks)):
                atoms[:, t.block(b)] = decode_blocks(message, self._lane_bits(b, n), self.code,
                                                     np.full(n, b), seed=seed, items=items,
                                                     blocks=b)
            pixels = self._pop_pixels(message, self.z24[torch.from_numpy(atoms)])
        except (CorruptMessageError, IndexError, ValueError) as error:
            raise CodecError(f"REC unit is damaged: {error}") from error
        if not message.lanes_finished().all():
            raise CodecError("REC unit is damaged: its lanes did not decode back to empty")
        return self.model.to_images(pixels)

    def _push_pixels(self, message: LaneMessage, pixels: np.ndarray, z24: torch.Tensor) -> None:
        """Push every image's pixels given its latent on its lane (the model's stages, the
        last first; or the model's own schedule where it codes its pixels itself)."""
        if self.model.codes_pixels:
            self.model.push_pixels(message, pixels, z24)
            return
        mean, scale_index = self._pixel_params(z24, pixels)
        active = np.ones(len(pixels), bool)
        for stage in reversed(self.model.stages):
            for j in stage:
                self.pixel.push(message, pixels[:, j], mean[:, j], scale_index[:, j], active)

    def _pop_pixels(self, message: LaneMessage, z24: torch.Tensor) -> np.ndarray:
        """The inverse of `_push_pixels`: the stages in order, the context net once before
        the stage that reads it."""
        if self.model.codes_pixels:
            return self.model.pop_pixels(message, z24)
        n = len(z24)
        active = np.ones(n, bool)
        pixels = np.zeros((n, self.model.pixels), np.int64)
        heads = self._pixel_heads(z24)
        for s, stage in enumerate(self.model.stages):
            if s == self.model.context_stage:
                heads = self._with_context(heads, z24, pixels)
            mean, scale_index = self._stage_params(heads, z24, pixels if s else None)
            for j in reversed(stage):
                pixels[:, j] = self.pixel.pop(message, mean[:, j], scale_index[:, j], active)
        return pixels

    def _pixel_heads(self, z24: torch.Tensor) -> list:
        step = self.net_batch or max(len(z24), 1)
        return [self.model.pixel_head(z24[i : i + step]) for i in range(0, len(z24), step)]

    def _with_context(self, heads: list, z24: torch.Tensor, pixels: np.ndarray) -> list:
        step = self.net_batch or max(len(z24), 1)
        return [self.model.with_context(head, z24[i * step : (i + 1) * step],
                                        pixels[i * step : (i + 1) * step])
                for i, head in enumerate(heads)]

    def _stage_params(self, heads: list, z24: torch.Tensor,
                      pixels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        step = self.net_batch or max(len(z24), 1)
        parts = [self.model.pixel_params(head, z24[i * step : (i + 1) * step],
                                         None if pixels is None
                                         else pixels[i * step : (i + 1) * step])
                 for i, head in enumerate(heads)]
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    # --- shards written before objects had units (2026-12-02 .. 2026-12-04) ----------------

    def _decode_interleaved(self, shard: EncodedShard) -> np.ndarray:
        params, t = shard.params, self.tables
        n = shard.num_blocks
        lanes = int(params["lanes"])
        if not 1 <= lanes <= max(n, 1):
            raise CodecError(f"REC shard names {lanes} lanes for {n} images")
        num_steps = -(-n // lanes)
        try:
            message: Message = message_from_bytes(shard.payload, NUMPY)
        except CorruptMessageError as error:
            raise CodecError(f"REC shard payload is damaged: {error}") from error
        if message.lane_shape != (lanes,):
            raise CodecError(f"REC shard lanes {message.lane_shape} do not match {lanes}")
        seed = int(params["seed"])
        out = np.zeros((num_steps * lanes, self.model.pixels), np.int64)
        dims = int(t.cuts[-1])
        for s in reversed(range(num_steps)):
            idx = s * lanes + np.arange(lanes)
            active = idx < n
            atoms = np.zeros((lanes, dims), np.int64)
            for b in reversed(range(t.num_blocks)):
                bits = np.where(active[:, None], t.bits[t.block(b)][None, :], 0)
                rows = np.where(active, b, t.num_blocks)
                atoms[:, t.block(b)] = decode_blocks(message, bits, self.code, rows,
                                                     seed=seed, items=idx, blocks=b)
            mean, scale_index = self._pixel_params(self.z24[torch.from_numpy(atoms)], None)
            for j in reversed(range(self.model.pixels)):
                out[idx, j] = self.pixel.pop(message, mean[:, j], scale_index[:, j], active)
        return self.model.to_images(out[:n])
