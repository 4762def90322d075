"""How far the ELBO sits below the model's likelihood: what Monte Carlo bits-back could win.

    python studies/study_iwae_gap.py [MODEL] [--images N] [--samples K]

Bit-Swap codes at the −ELBO. Bits-back with K importance-weighted latent draws (Ruan et al.,
"Improving Lossless Compression Rates via Monte Carlo Bits-Back Coding", ICML 2021) codes near
the K-sample importance-weighted bound instead, for about K times the net compute. This prints
that bound for K = 1, 4, 16, ... on CIFAR-10 validation images (never the test split), from the
same draws, so the gaps are what K-fold compute would buy this model.
"""

from __future__ import annotations

import argparse
import math

import torch

from recarchive import datasets
from recarchive.models import zoo
from recarchive.training.bitswap import to_tensor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="bitswap-cifar")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    model = zoo.load_bitswap(args.model).float_model.eval()
    x = to_tensor(datasets.cifar10_split("validation")[: args.images], torch.device("cpu"))
    torch.manual_seed(0)
    with torch.no_grad():
        # log p(x, z) − log q(z | x) per draw and image, in nats.
        log_weights = []
        for _ in range(args.samples):
            terms = model.elbo_terms(x)
            log_weights.append(-(terms["recon"] + terms["kl"]))
    log_weights = torch.stack(log_weights)
    dims = x[0].numel() * math.log(2)
    k = 1
    while k <= args.samples:
        bound = -(torch.logsumexp(log_weights[:k], 0) - math.log(k)) / dims
        print(f"importance-weighted bound, K = {k:>4}: {float(bound.mean()):.4f} bits/dim")
        k *= 4


if __name__ == "__main__":
    main()
