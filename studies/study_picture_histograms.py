"""What mixing a picture's own histograms into the causal net's distribution would save.

The causal codec's adapted mixture (adaptation version 1: bias and scale tables) gives every
coded symbol of the 37 validation photos a probability; this simulates, in floats, mixing in
histograms learnt on the picture as it is decoded (counts from earlier wavefront steps only),
as `models/causal_histogram.py` (adaptation version 2) does in integers:

    python studies/study_picture_histograms.py [causal-photo-2026-12-06c]

prints bits/dim over the coded blocks (padding included) for each variant in the table of
docs/models.md, "The picture's histograms".
"""

from __future__ import annotations

import argparse

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
                                                               np.diff(bounds))}


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
    args = parser.parse_args()
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
