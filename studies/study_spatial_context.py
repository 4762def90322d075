"""Is a spatial context worth adding to Bit-Swap's p(x|z1)?

    python studies/study_spatial_context.py [MODEL] [--images N] [--steps S] [--dataset photo]

Given z1 the pixel likelihood codes every subpixel independently. This measures (1) how
correlated the residuals (x - mean) / scale of neighbouring pixels still are, and (2) what
coding the 2×2 positions of the space-to-depth block in stages buys: stage 0 as now, each later
stage with a context net that sees z1 and the pixels of the earlier stages and corrects the
head's mean and log-scale (starting small, so near the plain model). Head-only
fine-tunes of S steps on CIFAR-10 training images, the encoder frozen, scored on validation
images (never the test split); the plain fine-tune is the baseline. `--dataset photo` does the
same on 32×32 patches of the photo corpus (training files to train, validation files to score).
"""

from __future__ import annotations

import argparse
import copy
import math

import torch
from head_study import DATASETS, fine_tune, frozen_model, validation

from recarchive.models.bitswap import (
    BitSwapModel,
    ConditionalNet,
    depth_to_space,
    discretized_logistic_log_prob,
    pixels_to_input,
    space_to_depth,
)

# Stages over the positions p = 2·dy + dx of each 2×2 cell (space-to-depth channel c·4 + p).
# The context's output convs start at this fraction of their usual weight-norm gain: near the
# plain model, with gradients reaching the context net (at exactly 0 they would not).
INITIAL_GAIN = 0.1
SCHEMES = {"plain": [[0, 1, 2, 3]], "checkerboard": [[0, 3], [1, 2]],
           "four-stage": [[0], [3], [1], [2]]}


def _channel_mask(positions: list[int]) -> torch.Tensor:
    return torch.tensor([float(c % 4 in positions) for c in range(12)]).view(1, 12, 1, 1)


def _recon_bits(head, context, stages, x: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Per-image reconstruction bits/dim under a staged scheme."""
    target = space_to_depth(x)
    x_in = pixels_to_input(target)
    mean, log_scale = head(z1)
    logp = torch.zeros(x.shape[0])
    known = torch.zeros(1, 12, 1, 1)
    for k, positions in enumerate(stages):
        mask = _channel_mask(positions)
        m, s = mean, log_scale
        if k > 0:
            stage = torch.zeros(x.shape[0], len(stages) - 1, 16, 16)
            stage[:, k - 1] = 1.0
            dm, ds = context(torch.cat([z1, x_in * known, stage], 1))
            m, s = mean + dm, torch.clamp(log_scale + ds, head.min_log_scale, head.max_log_scale)
        lp = discretized_logistic_log_prob(target, 127.5 + 127.5 * m, s + math.log(127.5))
        logp = logp + (lp * mask).flatten(1).sum(1)
        known = known + mask
    return -logp / (x[0].numel() * math.log(2))


def _neighbour_correlation(model: BitSwapModel, x: torch.Tensor, z1: torch.Tensor) -> dict:
    with torch.no_grad():
        mean, log_scale = model.pixel_params(z1)
        r = depth_to_space((space_to_depth(x) - mean) * torch.exp(-log_scale))

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return round(float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]), 4)

    return {"horizontal": corr(r[..., :-1], r[..., 1:]),
            "vertical": corr(r[..., :-1, :], r[..., 1:, :]),
            "diagonal": corr(r[..., :-1, :-1], r[..., 1:, 1:])}


def _fine_tune(model: BitSwapModel, stages, x_val: torch.Tensor, z_val: torch.Tensor,
               steps: int, dataset: str) -> float:
    head = copy.deepcopy(model.generate[0]).requires_grad_(True)
    params = list(head.parameters())
    context = None
    if len(stages) > 1:
        cfg = model.config
        context = ConditionalNet(cfg.latent_channels + 12 + len(stages) - 1, 12, cfg)
        with torch.no_grad():  # small output magnitude: the context starts nearly switched off
            for out in (context.mean, context.log_scale):
                out.parametrizations.weight.original0.mul_(INITIAL_GAIN)
                out.bias.zero_()
        params += list(context.parameters())
    fine_tune(model, params, steps, lambda x, z1: _recon_bits(head, context, stages, x, z1),
              dataset)
    with torch.no_grad():
        return float(_recon_bits(head, context, stages, x_val, z_val).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="bitswap-cifar")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--dataset", choices=DATASETS, default="cifar10")
    args = parser.parse_args()
    model = frozen_model(args.model)
    x_val, z_val = validation(model, args.images, args.dataset)
    print("neighbour residual correlation:", _neighbour_correlation(model, x_val, z_val),
          flush=True)
    for name in args.schemes.split(","):
        torch.manual_seed(2)
        bits = _fine_tune(model, SCHEMES[name], x_val, z_val, args.steps, args.dataset)
        print(f"head fine-tuned {args.steps} steps, {name}: {bits:.4f} bits/dim", flush=True)


if __name__ == "__main__":
    main()
