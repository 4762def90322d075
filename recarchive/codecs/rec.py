"""The REC codec: a VAE's latent sent by relative entropy coding, the pixels by ANS.

Per image: the exact encoder net gives q(z|x) = N(mu, sigma²); the latent is cut into blocks
(consecutive dimensions, a KL budget each, from training data) and REC (`recarchive.rec`)
picks one candidate per block from the prior N(0, I) regenerated from Philox, standard or
space-partitioned, PFR or ORC; the exact decoder net maps that z to integer pixel CDFs and
the pixels are pushed under them. No bits-back, so no initial bits: the message starts empty.

Layout: a shard's images are dealt to `lanes` ANS lanes (image i = step·lanes + lane). Per
step the encoder pushes the pixels (first to last), then each latent block's (bin, index)
(block 0 first); the decoder pops the blocks in reverse, regenerates z bit for bit, runs the
integer decoder net and pops the pixels. Lanes past the shard's end sit the step out: pixels
at no cost, latent blocks under an index-code row that gives n = 1 nearly all the mass.

What the decoder needs besides the message is decoder-known integers, stored in the model
file (`rec.*`): the block cut points, the partition bits per dimension and the index-code CDF
rows (one per block position). `fit_rec_tables` makes them from training images only.
Other settings than the shipped ones (the README's comparison of standard / partitioned, PFR /
ORC, block budgets and sample counts) fit their tables when the codec is built; such a shard
names its tables' sha256 and only a codec with the same tables decodes it.

MNIST: `rec-mnist` codes whole 28×28×1 digits (not 32×32 blocks); the codec takes images of
its model's shape, and only 32×32 models (`rec-cifar`) serve the archive.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import torch

from recarchive.ans import NUMPY, Message, empty_message, message_from_bytes, message_to_bytes
from recarchive.ans.serialize import CorruptMessageError
from recarchive.codecs.base import BLOCK_SIZE, BlockGeometry, CodecError, EncodedShard, check_blocks
from recarchive.entropy.quantize import pmf_to_cdf
from recarchive.models.vae import (
    LATENT_FRAC_BITS,
    ExactVAE,
    LoadedVAE,
    flat_pixels,
    latent_fixed,
)
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
DEFAULT_LANES = 128  # each lane ends with one ANS head (~32 bits): ~4 bits a digit per shard
FIT_BATCH = 500


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


def _search(loc: np.ndarray, scale: np.ndarray, tables_cuts: np.ndarray, bits: np.ndarray,
            settings: RecSettings, seed: int, items: np.ndarray):
    """Run REC on every block of every image: atoms (N, D), local indices (N, B), bins, steps,
    truncated."""
    n = loc.shape[0]
    blocks = len(tables_cuts) - 1
    atoms = np.zeros(loc.shape, np.int64)
    indices = np.zeros((n, blocks), np.int64)
    bins = np.zeros((n, blocks), np.int64)
    steps = np.zeros((n, blocks), np.int64)
    truncated = np.zeros((n, blocks), bool)
    budget = settings.samples if settings.algorithm == "orc" else None
    max_steps = settings.samples if settings.algorithm == "pfr" else 1 << 22
    for b in range(blocks):
        cols = slice(int(tables_cuts[b]), int(tables_cuts[b + 1]))
        res = rec_search(loc[:, cols], scale[:, cols], bits[cols], seed=seed, items=items,
                         blocks=b, budget=budget, max_steps=max_steps)
        atoms[:, cols], indices[:, b], bins[:, b] = res.atoms, res.indices, res.bins
        steps[:, b], truncated[:, b] = res.steps, res.truncated
    return atoms, indices, bins, steps, truncated


def _posterior(model: ExactVAE, x: torch.Tensor, batch: int | None) -> tuple[np.ndarray, ...]:
    step = batch or max(len(x), 1)
    parts = [model.posterior(x[i : i + step]) for i in range(0, len(x), step)]
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def fit_rec_tables(model: ExactVAE, images: np.ndarray,
                   settings: RecSettings | None = None) -> dict[str, np.ndarray]:
    """Decoder-known REC tables from training images: blocks from the mean KL per dimension,
    partition bits from it (`bits_from_mi`), and per block a Zipf index code fitted to the
    local indices these images produce. Also stores the mean KL (float, informational)."""
    settings = settings or RecSettings()
    with torch.no_grad():
        loc, scale = _posterior(model, flat_pixels(images), FIT_BATCH)
    kl = kl_bits(loc, scale).mean(axis=0)
    blocks = split_blocks(kl, settings.block_bits)
    cuts = np.array([0] + [int(b[-1]) + 1 for b in blocks], dtype=np.int64)
    if settings.partitioned:
        bits = np.concatenate([bits_from_mi(kl[b]) for b in blocks])
    else:
        bits = np.zeros(kl.shape, np.int64)
    seed = 0x5EC0F17  # fitting's own randomness, never a shard's
    _, indices, *_ = _search(loc, scale, cuts, bits, settings, seed,
                             np.arange(len(images), dtype=np.int64))
    code = zipf_index_code([fit_zipf_lam(indices[:, b]) for b in range(len(blocks))])
    index_cdf = np.concatenate([code.cdf, idle_row(code.cap)[None]])
    tables = RecTables(cuts, bits, index_cdf, settings)
    return {**tables.as_arrays(), "kl_bits": kl}


class RecCodec:
    """REC for the latent, ANS for the pixels; exact on any machine, batch size or threads."""

    name = "rec"

    def __init__(self, loaded: LoadedVAE, *, settings: RecSettings | None = None,
                 lanes: int = DEFAULT_LANES, seed: int = 0, net_batch: int | None = None,
                 fit_images: np.ndarray | None = None) -> None:
        self.loaded = loaded
        self.model = loaded.exact
        self.config = loaded.exact.config
        self.lanes, self.seed, self.net_batch = lanes, seed, net_batch
        shipped = RecTables.from_arrays(loaded.rec)
        if settings is None or settings == shipped.settings:
            self.tables = shipped
        else:
            if fit_images is None:
                raise CodecError(f"REC settings {settings} differ from the model's "
                                 f"({shipped.settings}): give training images to fit tables")
            self.tables = RecTables.from_arrays(fit_rec_tables(self.model, fit_images, settings))
        self.code = IndexCode(self.tables.index_cdf)
        self.pixel = self.model.table()

    @property
    def model_sha256(self) -> str:
        return self.loaded.sha256

    @property
    def channel_layouts(self) -> tuple[int, ...]:
        return (self.config.channels,)

    def model_bytes(self) -> bytes:
        """The model file, for archives to carry a copy (they restore without the zoo)."""
        return self.loaded.data

    @torch.no_grad()
    def neg_elbo_bits_per_dim(self, images: np.ndarray, batch: int = 500) -> float:
        """The float model's −ELBO (one seeded sample per image): the rate REC aims at."""
        torch.manual_seed(0)
        model = self.loaded.float_model
        total = sum(float(model.bits_per_dim(flat_pixels(images[i : i + batch])).sum())
                    for i in range(0, len(images), batch))
        return total / len(images)

    @torch.no_grad()
    def exact_neg_elbo_bits_per_dim(self, images: np.ndarray, samples: int = 4) -> float:
        """−ELBO of the model the coder actually uses: continuous KL of the exact encoder's
        posterior, plus the pixels' ideal cost under the integer tables with z ~ q (seeded).

        Why besides the float −ELBO: the tables give every pixel value at least 2^-18, so a
        pixel far from its mean costs at most ~18 bits where the float likelihood charges
        without bound; on MNIST that makes the coder ~1 % cheaper than the float −ELBO.
        """
        x = flat_pixels(self._check(images))
        loc, scale = _posterior(self.model, x, self.net_batch)
        kl = float(kl_bits(loc, scale).sum())
        rng = np.random.default_rng(0)
        pixel_bits = 0.0
        for _ in range(samples):
            z = loc + scale * rng.standard_normal(loc.shape)
            z_fixed = torch.from_numpy(np.floor(z * 2.0**LATENT_FRAC_BITS).astype(np.int64))
            mean, index = self.model.pixel_params(z_fixed)
            bits = self.pixel.bits(x.numpy(), mean.numpy(), index.numpy())
            pixel_bits += float(np.sum(bits)) / samples
        return (kl + pixel_bits) / x.numel()

    # --- shapes ---------------------------------------------------------------------------

    def _check(self, images: np.ndarray) -> np.ndarray:
        c = self.config
        if (c.height, c.width) == (BLOCK_SIZE, BLOCK_SIZE):
            return check_blocks(images, self)
        if images.dtype != np.uint8 or images.shape[1:] != (c.height, c.width, c.channels):
            raise CodecError(f"codec 'rec' with this model takes uint8 images of shape "
                             f"(N, {c.height}, {c.width}, {c.channels}), got "
                             f"{images.dtype} {images.shape}")
        return np.ascontiguousarray(images)

    def _pixel_params(self, atoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = latent_fixed(torch.from_numpy(atoms))
        step = self.net_batch or max(len(z), 1)
        parts = [self.model.pixel_params(z[i : i + step]) for i in range(0, len(z), step)]
        mean, scale = (torch.cat(p).numpy() for p in zip(*parts, strict=True))
        return mean, scale

    def _layout(self, n: int) -> tuple[int, int]:
        lanes = max(1, min(self.lanes, n))
        return lanes, -(-n // lanes)

    def _lane_bits(self, b: int, active: np.ndarray) -> np.ndarray:
        bits = self.tables.bits[self.tables.block(b)]
        return np.where(active[:, None], bits[None, :], 0)

    def _rows(self, b: int, active: np.ndarray) -> np.ndarray:
        return np.where(active, b, self.tables.num_blocks)

    # --- the codec interface ---------------------------------------------------------------

    @torch.no_grad()
    def encode(self, blocks: np.ndarray,
               geometry: BlockGeometry | None = None) -> EncodedShard:
        images = self._check(blocks)
        n = len(images)
        x = flat_pixels(images)
        loc, scale = _posterior(self.model, x, self.net_batch)
        t = self.tables
        atoms, indices, bins, steps, truncated = _search(
            loc, scale, t.cuts, t.bits, t.settings, self.seed,
            np.arange(n, dtype=np.int64))
        mean, scale_index = self._pixel_params(atoms)
        pixels = x.numpy()
        lanes, num_steps = self._layout(n)
        message = empty_message((lanes,), NUMPY)
        latent_bits = 0.0
        for s in range(num_steps):
            idx = s * lanes + np.arange(lanes)
            active = idx < n
            take = np.minimum(idx, n - 1)
            for j in range(pixels.shape[1]):
                self.pixel.push(message, pixels[take, j], mean[take, j], scale_index[take, j],
                                active)
            for b in range(t.num_blocks):
                rows, bits = self._rows(b, active), self._lane_bits(b, active)
                chosen_n = np.where(active, indices[take, b], 1)
                chosen_bin = np.where(active, bins[take, b], 0)
                push_choice(message, self.code, rows, bits, chosen_bin, chosen_n)
                latent_bits += float(choice_bits(self.code, rows, bits, chosen_n)[active].sum())
        params = {"lanes": lanes, "seed": self.seed, "clean_words": 0,
                  "rec": asdict(t.settings), "rec_tables_sha256": t.sha256(),
                  "latent_bits": latent_bits, "search_steps_mean": float(steps.mean()),
                  "truncated_blocks": int(truncated.sum())}
        return EncodedShard(message_to_bytes(message), n, self.config.channels, params)

    @torch.no_grad()
    def decode(self, shard: EncodedShard) -> np.ndarray:
        params, c, t = shard.params, self.config, self.tables
        if shard.channels != c.channels or params.get("rec_tables_sha256") != t.sha256():
            raise CodecError(f"not a shard of this REC codec: channels={shard.channels}, "
                             f"tables {params.get('rec_tables_sha256')} (this codec: "
                             f"{t.sha256()}, settings {t.settings})")
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
        out = np.zeros((num_steps * lanes, c.pixels), np.int64)
        dims = int(t.cuts[-1])
        for s in reversed(range(num_steps)):
            idx = s * lanes + np.arange(lanes)
            active = idx < n
            atoms = np.zeros((lanes, dims), np.int64)
            for b in reversed(range(t.num_blocks)):
                atoms[:, t.block(b)] = decode_blocks(
                    message, self._lane_bits(b, active), self.code, self._rows(b, active),
                    seed=seed, items=idx, blocks=b)
            mean, scale_index = self._pixel_params(atoms)
            for j in reversed(range(c.pixels)):
                out[idx, j] = self.pixel.pop(message, mean[:, j], scale_index[:, j], active)
        images = out[:n].reshape(n, c.channels, c.height, c.width).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images.astype(np.uint8))
