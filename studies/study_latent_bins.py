"""The measurement behind Bit-Swap's uniform latent bins: how the −ELBO moves with bin width.

    python studies/study_latent_bins.py [MODEL] [--images N]

Codes the float model's latents (drawn from its posteriors, then snapped to bins of width
1/64, 1/128 .. 1/4096 on [-8, 8], the edge bins taking the tails) with the bins' discretized
posteriors and priors, and prints the −ELBO in bits/dim beside the continuous one, on CIFAR-10
validation images (never the test split). Equal −ELBOs mean the bin width costs nothing and
the integer tables, not the bins, decide the exact model's gap. Then, latents continuous, the
latent log-scales rounded to the tables' grid steps of 1/8, 1/16 and 1/32.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from recarchive import datasets
from recarchive.models import zoo
from recarchive.models.bitswap import (
    BitSwapModel,
    discretized_logistic_log_prob,
    logistic_log_density,
    pixels_to_input,
    space_to_depth,
)

LIMIT = 8.0


def _binned_log_prob(z: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                     width: float) -> torch.Tensor:
    """log P(bin of z) under a logistic; z holds bin centres."""
    inv = torch.exp(-log_scale)
    upper, lower = (z + width / 2 - mean) * inv, (z - width / 2 - mean) * inv
    middle = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(lower - upper))
    return torch.where(z - width / 2 <= -LIMIT, F.logsigmoid(upper),
                       torch.where(z + width / 2 >= LIMIT, F.logsigmoid(-lower), middle))


def _snap(z: torch.Tensor, width: float) -> torch.Tensor:
    bins = round(2 * LIMIT / width)
    index = torch.clamp(torch.floor((z + LIMIT) / width), 0, bins - 1)
    return -LIMIT + (index + 0.5) * width


@torch.no_grad()
def neg_elbo(model: BitSwapModel, images: torch.Tensor, width: float | None,
             scale_step: float | None = None) -> float:
    """−ELBO in bits/dim with latents in bins of `width` (None: continuous) and the latent
    log-scales rounded to multiples of `scale_step` (None: as the nets give them)."""
    def on_grid(log_scale):
        if scale_step is None:
            return log_scale
        return torch.round(log_scale / scale_step) * scale_step

    def log_prob(z, mean, log_scale):
        log_scale = on_grid(log_scale)
        if width is None:
            return logistic_log_density(z, mean, log_scale)
        return _binned_log_prob(z, mean, log_scale, width)

    h, zs, log_q = space_to_depth(pixels_to_input(images)), [], []
    for net in model.infer:
        mean, log_scale = net(h)
        log_scale = on_grid(log_scale)
        u = torch.rand_like(mean).clamp(1e-9, 1 - 1e-9)
        z = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
        z = z if width is None else _snap(z, width)
        log_q.append(log_prob(z, mean, log_scale).flatten(1).sum(1))
        zs.append(z)
        h = z
    mean, log_scale = model.pixel_params(zs[0])
    pixels = discretized_logistic_log_prob(space_to_depth(images), mean, log_scale)
    total = -pixels.flatten(1).sum(1)
    for i, z in enumerate(zs):
        if i + 1 < len(zs):
            prior_mean, prior_log_scale = model.generate[i + 1](zs[i + 1])
        else:
            prior_mean, prior_log_scale = torch.zeros_like(z), torch.zeros_like(z)
        total += log_q[i] - log_prob(z, prior_mean, prior_log_scale).flatten(1).sum(1)
    return float(total.mean()) / (images[0].numel() * math.log(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="bitswap-cifar")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    model = zoo.load_bitswap(args.model).float_model.double().eval()
    images = datasets.cifar10_split("validation")[: args.images]
    x = torch.from_numpy(images.copy()).permute(0, 3, 1, 2).double()
    for width in (None, 1 / 64, 1 / 128, 1 / 256, 1 / 1024, 1 / 4096):
        torch.manual_seed(0)
        label = "continuous" if width is None else f"1/{round(1 / width)}"
        print(f"latent bins {label:>10}: {neg_elbo(model, x, width):.4f} bits/dim")
    for step in (8, 16, 32):  # the tables' log-scale grid, latents continuous
        torch.manual_seed(0)
        print(f"log-scale steps 1/{step:<3}: {neg_elbo(model, x, None, 1 / step):.4f} bits/dim")


if __name__ == "__main__":
    main()
