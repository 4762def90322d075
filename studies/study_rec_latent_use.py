"""Does the latent pay for itself in front of the causal pixel model?

For latent causal checkpoints (`recarchive train causal --latent-channels C`, the REC codec's
model), on the last N CIFAR-10 validation images (never the test set): the KL of q(z|x) in
bits per image and per channel, the pixels' bits given a sample of z, given z = 0 (the latent
ignored) and given q's mean, and the −ELBO. A latent earns its place where the pixels' saving
(z = 0 minus the sample) exceeds the KL, which is what REC sends (plus its overhead).

    python studies/study_rec_latent_use.py runs/rec-causal-c4/checkpoint.pt [more ...]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from recarchive import datasets
from recarchive.models.causal import CausalConfig
from recarchive.models.causal_latent import LATENT_UNIT, CausalLatentVAE


def latent_use(checkpoint: str, images: int) -> dict:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = CausalLatentVAE(CausalConfig(**state["config"]))
    model.load_state_dict(state["ema"])
    model.eval()
    x = torch.from_numpy(np.array(datasets.cifar10_split("validation")[-images:]))
    dims = x.numel()
    with torch.no_grad():
        loc, log_scale = model.encoder(x)
        torch.manual_seed(0)
        z = loc + torch.exp(log_scale) * torch.randn_like(loc)
        kl = float(model.kl_bits(loc, log_scale)) / dims
        sampled = float(model.pixel_bits(x, z * LATENT_UNIT)) / dims
        ignored = float(model.pixel_bits(x, torch.zeros_like(z))) / dims
        at_mean = float(model.pixel_bits(x, loc * LATENT_UNIT)) / dims
        per_channel = model.kl_bits_per_channel(loc, log_scale) / images
    return {"checkpoint": checkpoint, "step": state["step"],
            "free_bits": state["settings"].get("free_bits", 0.0),
            "kl_bits_per_dim": kl, "kl_bits_per_image_per_channel":
            [round(float(v), 2) for v in per_channel],
            "pixels_given_sample": sampled, "pixels_given_zero": ignored,
            "pixels_given_mean": at_mean, "neg_elbo_bits_per_dim": sampled + kl,
            "pixel_saving_bits_per_dim": ignored - sampled}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.checkpoints:
        print(json.dumps(latent_use(path, args.images)))
