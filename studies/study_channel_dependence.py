"""The measurement behind Bit-Swap's per-subpixel pixel likelihood: is PixelCNN++'s linear
channel dependence (R -> G -> B within a pixel) worth having in p(x|z1)?

    python studies/study_channel_dependence.py [MODEL] [--images N] [--steps S]

On CIFAR-10 validation images (never the test split), with z1 drawn from the model's
posterior: (1) the correlation between the red, green and blue residuals (x - mean) / scale of
the pixel likelihood; correlated residuals are what a channel dependence would code away.
(2) Two head-only fine-tunes of p(x|z1) for S steps on training images, the encoder frozen:
one as it is, one with per-subpixel coefficients (G += a·R, B += b·R + c·G, read from the
head's last hidden layer, starting at 0), and their reconstruction bits/dim on the validation
images. The difference is what the dependence buys.
"""

from __future__ import annotations

import argparse
import copy
import math

import torch
from head_study import fine_tune, frozen_model, validation

from recarchive.models.bitswap import (
    BitSwapModel,
    conv3x3,
    discretized_logistic_log_prob,
    elu,
    pixels_to_input,
    space_to_depth,
)


def _hidden(head, z1: torch.Tensor) -> torch.Tensor:
    h = head.inp(z1)
    for block in head.blocks:
        h = block(h)
    return elu(h)


def _recon_bits(head, coefficients, x: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Per-image reconstruction bits/dim; `coefficients` None for the plain likelihood."""
    h = _hidden(head, z1)
    log_scale = torch.clamp(head.log_scale(h), head.min_log_scale, head.max_log_scale)
    mean = head.mean(h)
    target = space_to_depth(x)  # channel c·4 + position: colour-major
    if coefficients is not None:
        a = torch.tanh(coefficients(h)).view(-1, 3, 4, 16, 16)
        xn = pixels_to_input(target).view(-1, 3, 4, 16, 16)
        m = mean.view(-1, 3, 4, 16, 16)
        mean = torch.stack([m[:, 0], m[:, 1] + a[:, 0] * xn[:, 0],
                            m[:, 2] + a[:, 1] * xn[:, 0] + a[:, 2] * xn[:, 1]], 1)
        mean = mean.view(-1, 12, 16, 16)
    logp = discretized_logistic_log_prob(target, 127.5 + 127.5 * mean,
                                         log_scale + math.log(127.5))
    return -logp.flatten(1).sum(1) / (x[0].numel() * math.log(2))


def _residual_correlation(model: BitSwapModel, x: torch.Tensor, z1: torch.Tensor) -> dict:
    with torch.no_grad():
        mean, log_scale = model.pixel_params(z1)
        r = ((space_to_depth(x) - mean) * torch.exp(-log_scale)).view(-1, 3, 4, 16, 16)

    def corr(i: int, j: int) -> float:
        return float(torch.corrcoef(torch.stack([r[:, i].flatten(), r[:, j].flatten()]))[0, 1])

    return {"red_green": corr(0, 1), "red_blue": corr(0, 2), "green_blue": corr(1, 2)}


def _fine_tune(model: BitSwapModel, with_coefficients: bool, x_val: torch.Tensor,
               z_val: torch.Tensor, steps: int) -> float:
    head = copy.deepcopy(model.generate[0]).requires_grad_(True)
    coefficients = None
    params = list(head.parameters())
    if with_coefficients:
        coefficients = conv3x3(model.config.width, 12)
        with torch.no_grad():  # zero magnitude: the dependence starts switched off
            coefficients.parametrizations.weight.original0.zero_()
            coefficients.bias.zero_()
        params += list(coefficients.parameters())
    fine_tune(model, params, steps, lambda x, z1: _recon_bits(head, coefficients, x, z1))
    with torch.no_grad():
        return float(_recon_bits(head, coefficients, x_val, z_val).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="bitswap-cifar")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    model = frozen_model(args.model)
    x_val, z_val = validation(model, args.images)
    print("residual correlation:", _residual_correlation(model, x_val, z_val))
    with torch.no_grad():
        print(f"reconstruction bits/dim as shipped: "
              f"{float(_recon_bits(model.generate[0], None, x_val, z_val).mean()):.4f}")
    for with_coefficients in (False, True):
        torch.manual_seed(2)
        bits = _fine_tune(model, with_coefficients, x_val, z_val, args.steps)
        label = "with channel dependence" if with_coefficients else "plain"
        print(f"head fine-tuned {args.steps} steps, {label}: {bits:.4f} bits/dim")


if __name__ == "__main__":
    main()
