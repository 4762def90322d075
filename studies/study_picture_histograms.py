"""What mixing a picture's own histograms into the causal net's distribution would save.

The causal codec's adapted mixture (adaptation version 1: bias and scale tables) gives every
coded symbol of the 37 validation photos a probability; this simulates, in floats, mixing in
histograms learnt on the picture as it is decoded (counts from earlier wavefront steps only),
as `models/causal_histogram.py` (adaptation versions 2 and 3) does in integers:

    python studies/study_picture_histograms.py [causal-photo-2026-12-06c]
    python studies/study_picture_histograms.py causal-photo --version 3

prints bits/dim over the coded blocks (padding included) for each variant in the tables of
docs/models.md, "The picture's histograms" and "Adaptation version 3". Version 3's variants
code the photos eight to a shard, as the benchmark's shards hold them (the shard's histogram
pools them); its neighbours' errors are the residuals' |x − round(μ)| of W, N and half of NW
and NE, in octaves (the codec uses what its adaptation left of them: close, not the same).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from PIL import Image

from recarchive.archives.blocks import cut_blocks
from recarchive.codecs import get_codec
from recarchive.codecs.base import BlockGeometry
from recarchive.codecs.causal import ENCODE_CHUNK, _adapt
from recarchive.datasets import photo_files
from recarchive.models.causal import causal_features, seen_colours
from recarchive.models.causal_adapt import PictureAdaptation

PAIRS = np.array([(a, b) for a in (0, 2, 4, 8, 12) for b in (0, 2, 4, 8) if a + b <= 14]) / 16


def adapted_outputs(model: str, path) -> dict[str, np.ndarray]:
    """One photo coded alone as one object: per symbol (decoding order) its value, its
    probability under the adapted mixture, the mixture's mean and scale index, its step."""
    codec = get_codec("causal", model=model, adapt=1).rgb
    with Image.open(path) as image:
        pixels = np.array(image.convert("RGB"))
    blocks = cut_blocks(pixels)
    rows, cols = -(-pixels.shape[0] // 32), -(-pixels.shape[1] // 32)
    count = rows * cols
    geometry = BlockGeometry(np.zeros(count, np.int64), np.arange(count),
                             np.full(count, rows), np.full(count, cols))
    canvas, values, known = codec._canvas(blocks, geometry)
    order, bounds = canvas.decoding_order()
    index = torch.from_numpy(canvas.pixel_index.reshape(-1))[torch.from_numpy(order)]
    symbols = values[index]
    n, k = len(index), codec.model.config.mixtures
    means, scales, weights = (np.empty((n, 3, k), np.int64) for _ in range(3))
    with torch.no_grad():
        for start in range(0, n, ENCODE_CHUNK):
            part = slice(start, start + ENCODE_CHUNK)
            features, ref = causal_features(values, known, index[part], canvas.width,
                                            codec.model.config.neighbours)
            seen = seen_colours(symbols[part], ref)
            for c in range(3):
                means[part, c], scales[part, c], weights[part, c] = codec.model.parameters(
                    features, ref, seen, c)
    adaptation = PictureAdaptation(values, known, canvas.width, canvas.owners())
    at = index.numpy()
    for step in range(len(bounds) - 1):
        part = slice(int(bounds[step]), int(bounds[step + 1]))
        for c in range(3):
            _adapt(adaptation, at[part], c, means[part, c], scales[part, c], weights[part, c])
        adaptation.update()
    symbols = symbols.numpy()
    probability = np.empty((n, 3))
    for c in range(3):
        mixture = codec.model.mixture_of(means[:, c], scales[:, c], weights[:, c])
        probability[:, c] = mixture.interval(np.ascontiguousarray(symbols[:, c]))[1] / 2**30
    share = weights / weights.sum(2, keepdims=True)
    return {"symbols": symbols, "p": probability, "mu": (share * means).sum(2) / 16,
            "sigma": (share * scales).sum(2), "step": np.repeat(np.arange(len(bounds) - 1),
                                                               np.diff(bounds)),
            "at": at, "width": np.array(canvas.width)}


def earlier_counts(keys: np.ndarray, step: np.ndarray) -> np.ndarray:
    """For each symbol, how many symbols of earlier steps share its key."""
    order = np.lexsort((step, keys))
    sorted_keys, sorted_steps = keys[order], step[order]
    starts = np.r_[0, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1]
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(keys)]))
    first_of_step = np.searchsorted(group * (1 << 20) + sorted_steps,
                                    group * (1 << 20) + sorted_steps)
    out = np.empty(len(keys), np.int64)
    out[order] = first_of_step - starts[group]
    return out


def follow_the_leader(costs: np.ndarray, step: np.ndarray, group: np.ndarray) -> float:
    """Bits when each group uses, at each step, the candidate cheapest on its earlier steps."""
    steps = step.max() + 1
    key = group * steps + step
    per_step = np.stack([np.bincount(key, c, (group.max() + 1) * steps).reshape(-1, steps)
                         for c in costs])
    choice = (np.cumsum(per_step, 2) - per_step).argmin(0)
    return float(costs[choice[group, step], np.arange(len(step))].sum())


def variant_bits(out: dict[str, np.ndarray], variant: str) -> float:
    symbols, p, step = out["symbols"], out["p"], out["step"]
    total = 0.0
    for c in range(3):
        band = (out["sigma"][:, c] // 8).astype(np.int64)
        centre = np.clip(np.round(out["mu"][:, c]), 0, 255)
        fraction = np.clip(np.floor((out["mu"][:, c] - np.round(out["mu"][:, c]) + 0.5) * 4),
                           0, 3).astype(np.int64)
        residual = symbols[:, c] - centre.astype(np.int64)
        context = band if variant == "band" else band * 4 + fraction
        seen = earlier_counts(context * 512 + residual + 256, step)
        count = earlier_counts(context, step)
        histogram = np.where(count > 0, seen / np.maximum(count, 1), 0)
        if variant in ("band", "fraction"):  # best single weight per photo in hindsight
            lam = count / (count + 8)
            total += min((-np.log2((1 - a * lam) * p[:, c] + a * lam * histogram)).sum()
                         for a in (0, 0.05, 0.1, 0.2, 0.3))
            continue
        lam = count / (count + 64)
        colour_p, colour_lam = np.zeros_like(histogram), np.zeros_like(lam)
        if c and variant != "leader":
            context = symbols[:, 0] if c == 1 else symbols[:, 1] * 5 + np.clip(
                symbols[:, 0] - symbols[:, 1], -2, 2) + 2
            seen = earlier_counts(context * 256 + symbols[:, c], step)
            count = earlier_counts(context, step)
            colour_p = np.where(count > 0, seen / np.maximum(count, 1), 0)
            colour_lam = count / (count + 2)
        costs = np.array([-np.log2((1 - a * lam - b * colour_lam) * p[:, c]
                                   + a * lam * histogram + b * colour_lam * colour_p)
                          for a, b in PAIRS])
        group = np.clip(band, 0, 13) if variant == "per-band" else np.zeros_like(band)
        total += follow_the_leader(costs, step, group)
    return total


VERSION_3_VARIANTS = {
    "built-2": "version 2 (residual and colour histograms, weights per band)",
    "octave": "residual contexts by the neighbours' errors too (7 octaves)",
    "cross": "and green's, blue's residual by the previous colour's residual (-6 ... 6)",
    "choice": "and the weights chosen per neighbours'-error octave too",
    "shared": "and the shard's residual histogram, every picture's pixels pooled (built)",
}
WEIGHTS_3 = (0, 2, 4, 8)  # the cross-colour and the shard's sources' full weights


def _octave(error: np.ndarray) -> np.ndarray:
    return np.minimum(np.ceil(np.log2(error + 1)).astype(np.int64), 6)


def _neighbour(size: np.ndarray, at: np.ndarray, offset: int) -> np.ndarray:
    """|residual| of each symbol's neighbour at `offset` on the canvas (0 where none; every
    neighbour read is coded at an earlier step, or is outside the pictures)."""
    where = np.clip(at + offset, 0, None)
    return np.where(at + offset >= 0, size[where], 0)


def _histogram(keys: np.ndarray, slots: np.ndarray, step: np.ndarray, prior: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each symbol's probability under its key's histogram of earlier steps, and its
    source's weight factor n / (n + prior)."""
    seen = earlier_counts(keys * 512 + slots, step)
    count = earlier_counts(keys, step)
    return np.where(count > 0, seen / np.maximum(count, 1), 0), count / (count + prior)


def version_3_bits(out: dict[str, np.ndarray], variant: str) -> float:
    """Bits of a shard's photos (`out`: their symbols side by side, `picture` telling them
    apart, canvas positions apart) under a version-3 variant."""
    symbols, p, step, at = out["symbols"], out["p"], out["step"], out["at"]
    picture, width = out["picture"], int(out["width"])
    level = list(VERSION_3_VARIANTS).index(variant)
    apart = 1 << 22  # keys of different pictures never meet
    total, previous = 0.0, None
    for c in range(3):
        mu, band = out["mu"][:, c], (out["sigma"][:, c] // 8).astype(np.int64)
        centre = np.clip(np.round(mu), 0, 255).astype(np.int64)
        fraction = np.clip(np.floor((mu - centre + 0.5) * 4), 0, 3).astype(np.int64)
        residual = symbols[:, c] - centre
        size = np.zeros(at.max() + 1, np.int64)
        size[at] = np.abs(residual)
        near = [_neighbour(size, at, offset) for offset in (-1, -width, -width - 1, -width + 1)]
        octave = _octave(near[0] + near[1] + (near[2] + near[3]) // 2)
        context = band * 4 + fraction
        if level >= 1:
            context = context * 7 + octave
        sources = [(*_histogram(context + picture * apart, residual + 256, step, 64),
                    (0, 2, 4, 8, 12))]
        if c:
            colour = symbols[:, 0] if c == 1 else symbols[:, 1] * 5 + np.clip(
                symbols[:, 0] - symbols[:, 1], -2, 2) + 2
            sources.append((*_histogram(colour + picture * apart, symbols[:, c], step, 2),
                            (0, 2, 4, 8)))
            if level >= 2:
                cross = band * 13 + np.clip(previous, -6, 6) + 6
                sources.append((*_histogram(cross + picture * apart, residual + 256, step, 64),
                                WEIGHTS_3))
        if level >= 4:
            sources.append((*_histogram(context, residual + 256, step, 64), WEIGHTS_3))
        previous = residual
        pairs = [w for w in itertools.product(*(s[2] for s in sources)) if sum(w) <= 14]
        costs = np.array([-np.log2(
            (1 - sum(w / 16 * s[1] for w, s in zip(ws, sources, strict=True))) * p[:, c]
            + sum(w / 16 * s[1] * s[0] for w, s in zip(ws, sources, strict=True)))
            for ws in pairs])
        group = np.clip(band, 0, 13) * (7 if level >= 3 else 1)
        if level >= 3:
            group = group + octave
        total += follow_the_leader(costs, step, picture * 100 + group)
    return total


def version_3(model: str, per_shard: int = 8) -> None:
    paths = photo_files("validation")
    bits = dict.fromkeys(VERSION_3_VARIANTS, 0.0)
    dims = 0
    for first in range(0, len(paths), per_shard):
        outs = [adapted_outputs(model, path) for path in paths[first:first + per_shard]]
        offset = 0
        for number, out in enumerate(outs):
            out["picture"] = np.full(len(out["at"]), number)
            out["at"] = out["at"] + offset
            offset += int(out["at"].max()) + 4 * int(out["width"]) + 10
        shard = {key: np.concatenate([o[key] for o in outs])
                 for key in ("symbols", "p", "mu", "sigma", "step", "at", "picture")}
        shard["width"] = outs[0]["width"]
        dims += shard["symbols"].size
        for variant in VERSION_3_VARIANTS:
            bits[variant] += version_3_bits(shard, variant)
    for variant, label in VERSION_3_VARIANTS.items():
        print(f"{label:80s} {bits[variant] / dims:.4f}")


VARIANTS = {
    "none": "nothing (adaptation version 1)",
    "band": "a residual histogram per colour and scale band, best weight per photo",
    "fraction": "per colour, band and quarter-pixel of the mean",
    "leader": "weights up to 3/4, count prior 64, following the leader",
    "colour": "and the colour histograms",
    "per-band": "the weights chosen per scale band too (built)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", default="causal-photo-2026-12-06c")
    parser.add_argument("--version", type=int, choices=(2, 3), default=2,
                        help="the variants that chose version 2 (each photo alone) or 3")
    args = parser.parse_args()
    if args.version == 3:
        version_3(args.model)
        return
    bits = dict.fromkeys(VARIANTS, 0.0)
    dims = 0
    for path in photo_files("validation"):
        out = adapted_outputs(args.model, path)
        dims += out["symbols"].size
        bits["none"] += float(-np.log2(out["p"]).sum())
        for variant in list(VARIANTS)[1:]:
            bits[variant] += variant_bits(out, variant)
    for variant, label in VARIANTS.items():
        print(f"{label:75s} {bits[variant] / dims:.4f}")


if __name__ == "__main__":
    main()
