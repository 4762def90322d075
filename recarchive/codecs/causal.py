"""The `causal` codec: every pixel coded from the pixels decoded before it (`models.causal`).

No latents and no bits-back: a shard's pixels are pushed on an ANS message under the exact
model's discretized logistics, and popped in the decoding order. That order is a wavefront
per picture: the blocks of one object in the shard are laid back on the object's canvas
(`ShardCanvas`), and pixel (y, x) of it is decoded at step x + 2y, every object's pixels of a
step at once, red, green, then blue, each colour reading the ones before it. Every neighbour
the model reads has a smaller step, so decoding takes (width + 2 · height) of the largest
picture × 3 sequential net calls per shard, however many objects the shard holds; encoding
runs the nets once on every pixel. Neighbours outside the object, or in blocks this shard
does not hold, read as unknown in encoder and decoder alike, so a shard decodes alone.
Padding past an object's bottom and right edges, where the geometry knows its size (archives
and the photo bench give it), is not coded: the decoder repeats the edges as `cut_blocks` did,
each padding pixel at its own step (shard parameter `padding`; on the 37 validation photos,
whose padding is 0.9 % of their pixels, coding it cost 0.011 bits/dim).

Exactness: the features are integers, the nets `FixedPointConv2d` rows (exact float64
GEMMs), the table Bit-Swap's pinned pixel table; any batch of pixels gives the same integers,
so the encoder's one pass and the decoder's per-step calls agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recarchive.ans import CorruptMessageError, empty_message, message_from_bytes, message_to_bytes
from recarchive.codecs.base import (
    BLOCK_SIZE,
    BlockGeometry,
    CodecError,
    EncodedShard,
    check_blocks,
)
from recarchive.entropy import mixture as mixture_code
from recarchive.models.causal import (
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARGIN_TOP,
    CausalPixelModel,
    causal_features,
    seen_colours,
    wave_step,
)
from recarchive.models.causal_adapt import VERSION as TABLES_VERSION
from recarchive.models.causal_adapt import PictureAdaptation
from recarchive.models.causal_histogram import CONTEXT_VERSION, PictureHistograms
from recarchive.models.causal_histogram import VERSION as HISTOGRAM_VERSION
from recarchive.models.exact_bitswap import PIXEL_GRID
from recarchive.models.exact_causal import ExactCausalModel

MAX_LANES = 128  # shards of adaptation versions 0 to 2
MAX_LANES_3 = 32  # version 3 on: a lane's head and word count cost about 6 bytes, and 128
# lanes cost 0.1 % of a shard of three photos (32: 0.03 %, the decoder 6 % slower)
LANES_PER_BLOCK = 1  # small shards get few lanes: each lane ends with its own head
ENCODE_CHUNK = 1 << 13  # pixels whose features and nets are computed together when encoding
# (8,192 a chunk: twice as fast as 65,536, whose float64 activations overflow the caches)
GAP = max(MARGIN_LEFT, MARGIN_RIGHT)  # empty columns between two objects' canvases
SHARED_BLOCKS = 16  # objects of at most this many blocks in a shard share adaptation tables
# the shard parameter `adapt`: 0 none, 1 the bias and scale tables (`models.causal_adapt`),
# 2 those and the picture's residual and colour histograms (`models.causal_histogram`), 3
# those with residual contexts by the neighbours' errors and the cross-colour histograms,
# what new shards use
ADAPT_VERSIONS = (0, TABLES_VERSION, HISTOGRAM_VERSION, CONTEXT_VERSION)
ADAPT_VERSION = CONTEXT_VERSION
REPEATED = "repeated"  # the shard parameter `padding`: not coded, the edges repeated (absent:
# coded like the other pixels, as shards written before it were)


@dataclass(frozen=True)
class ShardCanvas:
    """A shard's blocks laid on one canvas: each object's blocks at their places in its block
    grid (only the rows and columns the shard holds), objects side by side with `GAP` empty
    columns between them and `MARGIN_TOP` empty rows above. `pixel_index` (N, 1024) is each
    block pixel's flat canvas index (raster order within the block), `steps` (N, 1024) its
    wavefront step in its own object's canvas, `block_object` (N,) its object's rank in the
    shard (0, 1, …)."""

    width: int
    size: int
    pixel_index: np.ndarray
    steps: np.ndarray
    block_object: np.ndarray
    repeats: np.ndarray | None = None  # `_repeats`: what each padding pixel repeats

    @classmethod
    def lay_out(cls, geometry: BlockGeometry) -> ShardCanvas:
        count = len(geometry)
        if count == 0:
            nothing = np.zeros((0, BLOCK_SIZE * BLOCK_SIZE), np.int64)
            return cls(MARGIN_LEFT + MARGIN_RIGHT, 0, nothing, nothing.copy(),
                       np.zeros(0, np.int64))
        row, col = geometry.cells // geometry.cols, geometry.cells % geometry.cols
        tops = np.zeros(count, np.int64)  # a block's top-left in its object's canvas
        lefts = np.zeros(count, np.int64)
        origins = np.zeros(count, np.int64)  # its object's canvas's left edge on the canvas
        x, height = MARGIN_LEFT, 0
        objects = geometry.objects
        starts = np.flatnonzero(np.r_[True, objects[1:] != objects[:-1]])
        ends = np.r_[starts[1:], count]
        block_object = np.zeros(count, np.int64)
        for rank, (start, end) in enumerate(zip(starts, ends, strict=True)):
            part = slice(start, end)
            block_object[part] = rank
            r0, c0 = row[part].min(), col[part].min()
            tops[part] = BLOCK_SIZE * (row[part] - r0)
            lefts[part] = BLOCK_SIZE * (col[part] - c0)
            origins[part] = x
            x += BLOCK_SIZE * (col[part].max() - c0 + 1) + GAP
            height = max(height, BLOCK_SIZE * (int(row[part].max()) - int(r0) + 1))
        width = x - GAP + MARGIN_RIGHT if count else MARGIN_LEFT + MARGIN_RIGHT
        inside = np.arange(BLOCK_SIZE)
        y = tops[:, None, None] + inside[None, :, None]  # (N, 32, 1) in the object's canvas
        xs = lefts[:, None, None] + inside[None, None, :]  # (N, 1, 32)
        steps = wave_step(torch.from_numpy(y), torch.from_numpy(xs)).numpy()
        flat = (MARGIN_TOP + y) * width + origins[:, None, None] + xs
        shape = (count, BLOCK_SIZE * BLOCK_SIZE)
        pixel_index = np.broadcast_to(flat, (count, 32, 32)).reshape(shape).copy()
        return cls(width, (MARGIN_TOP + height) * width, pixel_index,
                   np.broadcast_to(steps, (count, 32, 32)).reshape(shape).copy(), block_object,
                   _repeats(geometry, pixel_index, width, (MARGIN_TOP + height) * width))

    def owners(self) -> np.ndarray:
        """(size,) whose adaptation tables each canvas pixel uses (`models.causal_adapt`):
        an object with more than `SHARED_BLOCKS` blocks in the shard has its own (1, 2, …),
        the smaller ones share table 0, which learns what they have in common (alone, a
        thumbnail is too small to learn from: on 1,024 CIFAR-10 validation images in one
        shard, own tables cost 0.07 %, shared ones save 1.8 %)."""
        blocks = np.bincount(self.block_object)
        large = blocks > SHARED_BLOCKS
        table = np.where(large, np.cumsum(large), 0)
        owner = np.zeros(self.size, np.int64)
        owner[self.pixel_index] = table[self.block_object][:, None]
        return owner

    def known(self) -> torch.Tensor:
        known = torch.zeros(self.size, dtype=torch.int64)
        known[torch.from_numpy(self.pixel_index.reshape(-1))] = 1
        return known

    def decoding_order(self, repeated: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Block pixels (flat positions in `pixel_index`) sorted by step, then canvas index,
        and where each step's run starts (len steps + 1 bounds): all of them (None), or only
        those coded (False) or only the padding repeated from its edge (True) when padding
        is not coded (`repeats`); both have the steps of the whole canvas."""
        steps = self.steps.reshape(-1)
        order = np.lexsort((self.pixel_index.reshape(-1), steps))
        if repeated is not None:
            repeats = (np.full(self.size, -1, np.int64) if self.repeats is None
                       else self.repeats)
            order = order[(repeats[self.pixel_index.reshape(-1)[order]] >= 0) == repeated]
        bounds = np.searchsorted(steps[order], np.arange(int(steps.max(initial=-1)) + 2))
        return order, bounds

    def repeat_padding(self, values: torch.Tensor, positions: torch.Tensor) -> None:
        """Fill padding pixels (canvas `positions`, one step's) as `cut_blocks` filled them;
        what they repeat has a smaller step, so it is already decoded."""
        if self.repeats is not None and len(positions):
            values[positions] = values[torch.from_numpy(self.repeats[positions.numpy()])]


def _repeats(geometry: BlockGeometry, pixel_index: np.ndarray, width: int,
             size: int) -> np.ndarray | None:
    """(size,) for each canvas pixel that is padding (past its object's bottom or right edge,
    where the geometry knows the objects' sizes) the canvas index of the pixel it repeats, as
    `cut_blocks` pads: the one above in the bottom rows, else the one to its left; -1 for
    real pixels. None where no block has padding."""
    extent = geometry.real_extent()
    if extent is None or not len(geometry):
        return None
    real_rows, real_cols = extent
    if (real_rows >= BLOCK_SIZE).all() and (real_cols >= BLOCK_SIZE).all():
        return None
    line = np.arange(BLOCK_SIZE)
    flat = pixel_index.reshape(-1, BLOCK_SIZE, BLOCK_SIZE)
    below = line[None, :, None] >= real_rows[:, None, None]
    right = line[None, None, :] >= real_cols[:, None, None]
    source = np.where(below, flat - width, np.where(right, flat - 1, -1))
    repeats = np.full(size, -1, np.int64)
    repeats[flat.reshape(-1)] = source.reshape(-1)
    return repeats


def lanes_for(num_blocks: int, adapt: int) -> int:
    """The ANS lanes a shard of `num_blocks` blocks and adaptation version `adapt` uses."""
    most = MAX_LANES_3 if adapt >= CONTEXT_VERSION else MAX_LANES
    return max(1, min(most, LANES_PER_BLOCK * num_blocks))


class CausalCodec:
    """RGB blocks coded pixel by pixel with an exact causal model (wrap it in
    `ChannelSplitCodec` for the other layouts, as the registry does)."""

    name = "causal"
    channel_layouts = (3,)
    uses_block_context = True  # it wants the geometry (and keeps it in the shard's params)

    def __init__(self, model: ExactCausalModel, sha256: str, model_bytes: bytes | None = None,
                 float_model: CausalPixelModel | None = None,
                 adapt: int = ADAPT_VERSION) -> None:
        self.model = model
        self.adapt = adapt  # what new shards use (`models.causal_adapt`); 0: none
        self.float_model = float_model
        self._sha256 = sha256
        self._model_bytes = model_bytes

    @property
    def model_sha256(self) -> str:
        return self._sha256

    def model_bytes(self) -> bytes | None:
        """The model file, for the archive's copy."""
        return self._model_bytes

    def neg_elbo_bits_per_dim(self, blocks: np.ndarray,
                              geometry: BlockGeometry | None = None) -> float:
        """The float model's bits per subpixel of `blocks` laid out as a shard of them is (it
        has no latents: this is its exact log-likelihood, what the −ELBO is for Bit-Swap)."""
        if self.float_model is None:
            raise CodecError("causal codec built without its float model has no −ELBO")
        canvas, values, known = self._canvas(blocks, geometry)
        index = torch.from_numpy(canvas.pixel_index.reshape(-1))
        chunk = 16 * ENCODE_CHUNK  # all 10,000 CIFAR-10 images' features at once are GBs
        bits = 0.0
        with torch.no_grad():
            for start in range(0, len(index), chunk):
                bits += float(self.float_model.canvas_bits(values, known,
                                                           index[start:start + chunk],
                                                           canvas.width))
        return bits / blocks.size

    def _canvas(self, blocks: np.ndarray, geometry: BlockGeometry | None
                ) -> tuple[ShardCanvas, torch.Tensor, torch.Tensor]:
        count = len(blocks)
        geometry = geometry if geometry is not None else BlockGeometry.lone(count)
        if len(geometry) != count:
            raise CodecError(f"causal shard: geometry for {len(geometry)} blocks, {count} given")
        # laid out from what the shard's parameters will say, as the decoder lays it out
        canvas = ShardCanvas.lay_out(BlockGeometry.from_params(geometry.to_params(), count))
        values = torch.zeros((canvas.size, 3), dtype=torch.int64)
        flat = torch.from_numpy(canvas.pixel_index.reshape(-1))
        values[flat] = torch.from_numpy(blocks.reshape(-1, 3).astype(np.int64))
        return canvas, values, canvas.known()

    def encode(self, blocks: np.ndarray,
               geometry: BlockGeometry | None = None) -> EncodedShard:
        blocks = check_blocks(blocks, self)
        count = len(blocks)
        geometry = geometry if geometry is not None else BlockGeometry.lone(count)
        canvas, values, known = self._canvas(blocks, geometry)
        flat = torch.from_numpy(canvas.pixel_index.reshape(-1))
        # padding the geometry knows of is not coded: the decoder repeats the edges
        repeated = canvas.repeats is not None
        if repeated:
            _check_padding(canvas, values)
        order, bounds = canvas.decoding_order(False if repeated else None)
        index = flat[torch.from_numpy(order)]
        pixels = values[index]
        symbols = pixels.numpy()
        n, k = len(index), self.model.config.mixtures
        neighbours = self.model.config.neighbours
        means, scales, weights = (np.empty((n, 3, k), np.int64) for _ in range(3))
        with torch.no_grad():
            for start in range(0, n, ENCODE_CHUNK):
                part = slice(start, start + ENCODE_CHUNK)
                features, ref = causal_features(values, known, index[part], canvas.width,
                                                neighbours)
                seen = seen_colours(pixels[part], ref)
                for c in range(3):
                    means[part, c], scales[part, c], weights[part, c] = self.model.parameters(
                        features, ref, seen, c)
        starts = np.empty((n, 3), np.int64)
        freqs = np.empty((n, 3), np.int64)
        histograms = None
        if self.adapt:
            owner = canvas.owners()
            adaptation = PictureAdaptation(values, known, canvas.width, owner)
            if self.adapt >= HISTOGRAM_VERSION:
                histograms = PictureHistograms(int(owner.max(initial=0)) + 1, self.adapt)
            canvas_index = index.numpy()
            for step in range(len(bounds) - 1):
                part = slice(int(bounds[step]), int(bounds[step + 1]))
                if part.start == part.stop:  # a step of padding only: nothing to learn
                    continue
                for c in range(3):
                    _adapt(adaptation, canvas_index[part], c, means[part, c], scales[part, c],
                           weights[part, c])
                    if histograms is not None:
                        net, mixture = _with_histograms(
                            self.model, histograms, adaptation, canvas_index[part],
                            owner[canvas_index[part]], c, symbols[part], means[part, c],
                            scales[part, c], weights[part, c])
                        coded = np.ascontiguousarray(symbols[part, c])
                        starts[part, c], freqs[part, c] = mixture.interval(coded)
                        histograms.observe(coded, net.interval(coded)[1])
                adaptation.update()
                if histograms is not None:
                    histograms.update()
        if histograms is None:
            for start in range(0, n, ENCODE_CHUNK):
                part = slice(start, start + ENCODE_CHUNK)
                for c in range(3):
                    mixture = self.model.mixture_of(means[part, c], scales[part, c],
                                                    weights[part, c])
                    starts[part, c], freqs[part, c] = mixture.interval(
                        np.ascontiguousarray(symbols[part, c]))
        lanes = lanes_for(count, self.adapt)
        message = empty_message(lanes)
        for step in reversed(range(len(bounds) - 1)):
            lo, hi = int(bounds[step]), int(bounds[step + 1])
            for c in reversed(range(3)):
                for group in reversed(_groups(lo, hi, lanes)):
                    mixture_code.push(message, starts[group, c], freqs[group, c], lanes)
        bits = mixture_code.PRECISION - np.log2(freqs.astype(np.float64))
        block_bits = np.zeros(count)
        np.add.at(block_bits, order // (BLOCK_SIZE * BLOCK_SIZE), bits.sum(1))
        params = {"geometry": geometry.to_params(), "lanes": lanes}
        if self.adapt:
            params["adapt"] = self.adapt
        if repeated:
            params["padding"] = REPEATED
        return EncodedShard(message_to_bytes(message), count, 3, params, block_bits=block_bits)

    def decode(self, shard: EncodedShard) -> np.ndarray:
        if shard.channels != 3:
            raise CodecError(f"causal shard claims {shard.channels} channels; it codes RGB")
        count = shard.num_blocks
        adapt = shard.params.get("adapt", 0)
        if adapt not in ADAPT_VERSIONS:
            raise CodecError(f"causal shard asks for adaptation version {adapt!r}; this release "
                             f"knows {', '.join(map(str, ADAPT_VERSIONS))} (upgrade recarchive)")
        lanes = shard.params.get("lanes")
        if lanes != lanes_for(count, adapt):
            raise CodecError(f"causal shard of {count} blocks records {lanes!r} lanes, not "
                             f"{lanes_for(count, adapt)} (damaged parameters)")
        geometry = BlockGeometry.from_params(shard.params.get("geometry", []), count)
        canvas = ShardCanvas.lay_out(geometry)
        repeated = shard.params.get("padding")
        if repeated not in (None, REPEATED) or (repeated and canvas.repeats is None):
            raise CodecError(f"causal shard says its padding is {repeated!r}, its geometry "
                             f"{'has none' if canvas.repeats is None else 'has some'} "
                             "(damaged parameters)")
        try:
            message = message_from_bytes(shard.payload)
        except CorruptMessageError as error:
            raise CodecError(f"causal shard payload is damaged: {error}") from error
        values = torch.zeros((canvas.size, 3), dtype=torch.int64)
        known = canvas.known()
        flat = torch.from_numpy(canvas.pixel_index.reshape(-1))
        order, bounds = canvas.decoding_order(False if repeated else None)
        index_all = flat[torch.from_numpy(order)]
        if repeated:
            fills, fill_bounds = canvas.decoding_order(True)
            fill_all = flat[torch.from_numpy(fills)]
        neighbours = self.model.config.neighbours
        owner = canvas.owners()
        adaptation = (PictureAdaptation(values, known, canvas.width, owner)
                      if adapt else None)
        histograms = (PictureHistograms(int(owner.max(initial=0)) + 1, adapt)
                      if adapt >= HISTOGRAM_VERSION else None)
        try:
            with torch.no_grad():
                for step in range(len(bounds) - 1):
                    if repeated:
                        canvas.repeat_padding(values, fill_all[int(fill_bounds[step]):
                                                               int(fill_bounds[step + 1])])
                    lo, hi = int(bounds[step]), int(bounds[step + 1])
                    if lo == hi:
                        continue
                    index = index_all[lo:hi]
                    step_index = index.numpy()
                    features, ref = causal_features(values, known, index, canvas.width,
                                                    neighbours)
                    seen = torch.zeros((hi - lo, 3), dtype=torch.int64)
                    for c in range(3):
                        mean, scale, weights = self.model.parameters(features, ref, seen, c)
                        if adaptation is not None:
                            _adapt(adaptation, step_index, c, mean, scale, weights)
                        if histograms is not None:
                            net, mixture = _with_histograms(
                                self.model, histograms, adaptation, step_index,
                                owner[step_index], c, values[index].numpy(), mean, scale,
                                weights)
                        else:
                            mixture = self.model.mixture_of(mean, scale, weights)
                        symbols = np.empty(hi - lo, np.int64)
                        for group in _groups(0, hi - lo, lanes):
                            symbols[group] = mixture_code.pop(message, mixture.part(group),
                                                              lanes)
                        if histograms is not None:
                            histograms.observe(symbols, net.interval(symbols)[1])
                        decoded = torch.from_numpy(symbols)
                        values[index, c] = decoded
                        seen[:, c] = seen_colours(decoded[:, None], ref[:, c:c + 1])[:, 0]
                    if adaptation is not None:
                        adaptation.update()
                    if histograms is not None:
                        histograms.update()
        except (CorruptMessageError, IndexError, ValueError) as error:
            raise CodecError(f"causal shard payload is damaged: {error}") from error
        if len(message.stack) or np.any(np.asarray(message.head) != 0):
            raise CodecError("causal shard payload holds more than its pixels (damaged)")
        return values[flat].numpy().astype(np.uint8).reshape(count, BLOCK_SIZE, BLOCK_SIZE, 3)


def _check_padding(canvas: ShardCanvas, values: torch.Tensor) -> None:
    """Padding that is not its edges repeated would not come back as it was given (it is not
    coded; the decoder repeats the edges)."""
    positions = np.flatnonzero(canvas.repeats >= 0)
    wrong = (values[positions] != values[canvas.repeats[positions]]).any(1).numpy()
    if wrong.any():
        block = int(np.nonzero(canvas.pixel_index == positions[wrong][0])[0][0])
        raise CodecError(f"causal shard: block {block} has padding (past its object's size in "
                         "the geometry) that is not its last real row and column repeated: "
                         "cut images with archives.blocks.cut_blocks, or give the geometry "
                         "without object sizes")


def _adapt(adaptation: PictureAdaptation, index: np.ndarray, colour: int, mean: np.ndarray,
           scale: np.ndarray, weights: np.ndarray) -> None:
    """Move one colour's component means and scale indices (in place) by the picture's
    corrections."""
    bias, shift = adaptation.corrections(index, colour, mean, scale, weights)
    mean += bias[:, None]
    np.clip(scale + shift[:, None], 0, PIXEL_GRID.count - 1, out=scale)


def _with_histograms(model: ExactCausalModel, histograms: PictureHistograms,
                     adaptation: PictureAdaptation, index: np.ndarray, picture: np.ndarray,
                     colour: int, before: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                     weights: np.ndarray
                     ) -> tuple[mixture_code.TableMixture, mixture_code.TableMixture]:
    """One colour's mixture from the net alone (what the histograms' costs compare with) and
    with its picture's histograms (what is coded), for the pixels at canvas `index`;
    `before`: the pixels' colours, those before `colour` coded."""
    net = model.mixture_of(mean, scale, weights)
    error = (adaptation.neighbour_error(index, colour)
             if histograms.version >= CONTEXT_VERSION else None)
    return net, net.with_counts(histograms.component(picture, colour, before, mean, scale,
                                                     weights, error))


def _groups(lo: int, hi: int, lanes: int) -> list[slice]:
    """The runs of at most `lanes` symbols a step's colour is coded in, first first."""
    return [slice(s, min(s + lanes, hi)) for s in range(lo, hi, lanes)]
