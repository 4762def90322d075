"""What a photo model pays for the padding of an image's edge blocks, and what filling it
with a constant (and not coding it) would cost the real pixels and the latents instead.

    python studies/study_padding.py [--model bitswap-photo] [--samples 4]

On the validation photos whole, for the blocks with padding only (the others do not change):
the float −ELBO's parts with the padding as `cut_blocks` makes it (edge rows and columns
repeated) and filled with 0 or 128, each over the padding's subpixels and over the real
ones, all in bits per dimension of the whole photos (their real pixels). With edge padding
today's coder codes every part; with a fill it need not code the padding (its subpixels are
certain), so the fill costs the latents' KL plus the real pixels.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from recarchive.archives.blocks import block_grid
from recarchive.bench.codec_bench import load_whole_images
from recarchive.codecs.base import BlockGeometry
from recarchive.codecs.bitswap import ring_of
from recarchive.models import zoo
from recarchive.models.bitswap import (
    discretized_logistic_log_prob,
    logistic_log_density,
    pixels_to_input,
    space_to_depth,
)


def cut(image: np.ndarray, fill: str | int) -> tuple[np.ndarray, np.ndarray]:
    """(blocks, real-pixel masks (N, 32, 32)) of an image padded by `fill`."""
    height, width, channels = image.shape
    rows, cols = block_grid(height, width)
    if fill == "edge":
        padded = np.pad(image, ((0, 32 * rows - height), (0, 32 * cols - width), (0, 0)),
                        mode="edge")
    else:
        padded = np.full((32 * rows, 32 * cols, channels), fill, np.uint8)
        padded[:height, :width] = image
    real = np.zeros((32 * rows, 32 * cols), bool)
    real[:height, :width] = True

    def tiles(a: np.ndarray) -> np.ndarray:
        return a.reshape(rows, 32, cols, 32, *a.shape[2:]).swapaxes(1, 2).reshape(
            rows * cols, 32, 32, *a.shape[2:])

    return tiles(padded), tiles(real)


def parts_in_nats(model, image: np.ndarray, fill, samples: int) -> np.ndarray:
    """(KL, real pixels, padding pixels) in nats over the image's padded blocks."""
    blocks, real = cut(image, fill)
    padded = np.nonzero(~real.reshape(len(real), -1).all(1))[0]
    if len(padded) == 0:
        return np.zeros(3)
    rows, cols = block_grid(*image.shape[:2])
    count = rows * cols
    geometry = BlockGeometry(np.zeros(count, np.int64), np.arange(count),
                             np.full(count, rows), np.full(count, cols))
    pixels = torch.from_numpy(blocks).permute(0, 3, 1, 2).to(torch.int64)
    ring = tuple(part.float() for part in ring_of(pixels, geometry.neighbours()[padded]))
    x = pixels[padded].float()
    mask = space_to_depth(torch.from_numpy(real[padded])[:, None].expand(-1, 3, -1, -1).float())
    total = np.zeros(3)
    for sample in range(samples):
        torch.manual_seed(sample)
        with torch.no_grad():
            h, zs, log_q = space_to_depth(pixels_to_input(x)), [], []
            for net in model.infer:
                mean, log_scale = net(h, ring)
                u = torch.rand_like(mean).clamp(1e-6, 1 - 1e-6)
                z = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
                log_q.append(logistic_log_density(z, mean, log_scale).sum())
                zs.append(z)
                h = z
            target = space_to_depth(x)
            mean, log_scale = model.pixel_params(zs[0], target, ring)
            nll = -discretized_logistic_log_prob(target, mean, log_scale)
            kl = 0.0
            for i, z in enumerate(zs):
                prior = (model.generate[i + 1](zs[i + 1], ring) if i + 1 < len(zs)
                         else (torch.zeros_like(z), torch.zeros_like(z)))
                kl += float(log_q[i] - logistic_log_density(z, *prior).sum())
        total += [kl, float((nll * mask).sum()), float((nll * (1 - mask)).sum())]
    return total / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bitswap-photo")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    model = zoo.load_bitswap(args.model).float_model.eval()
    whole = load_whole_images("photo-val-images", None)
    per_dim = 1 / (sum(image.size for image in whole) * math.log(2))
    cut_pixels = sum(1024 * int(np.prod(block_grid(*image.shape[:2]))) for image in whole)
    real_pixels = sum(image.shape[0] * image.shape[1] for image in whole)
    print(f"{len(whole)} photos; their blocks hold {cut_pixels / real_pixels - 1:.2%} more "
          "pixels than they do")
    for fill in ("edge", 0, 128):
        kl, real, padding = per_dim * sum(parts_in_nats(model, image, fill, args.samples)
                                          for image in whole)
        print(f"fill {fill!s:>4}: latents {kl:.4f}, real pixels {real:.4f}, padding "
              f"{padding:.4f}; without the padding {kl + real:.4f}, with it "
              f"{kl + real + padding:.4f} bits/dim of the whole photos")


if __name__ == "__main__":
    main()
