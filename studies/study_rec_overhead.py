"""Where REC's overhead over the −ELBO goes: the latents' bits against their KL, and the
pixels' bits given the latents REC sends against z ~ q and against the posterior mean.

Codes the last N CIFAR-10 validation images (never the test set; or photo validation
patches) one object each, as an archive's REC shard does, with the shipped encoder (ORC's
shortest candidates), and prints bits/dim: the whole payload, its latent part, the
posterior's KL, and the exact pixel cost given the sent latents, given two draws z ~ q (the
−ELBO's) and given the posterior mean. `training.rec_decoder` is the fine-tune this motivates.

    python studies/study_rec_overhead.py [--model rec-cifar] [--images 256]
    python studies/study_rec_overhead.py --model rec-photo --dataset photo
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from recarchive import datasets
from recarchive.codecs.rec import batched_posterior
from recarchive.codecs.registry import get_codec
from recarchive.exact.normal import default_table
from recarchive.rec import kl_bits


def pixel_bits(codec, pixels: np.ndarray, z: np.ndarray) -> float:
    """Exact pixel bits given latents z (float, as REC's fixed point)."""
    z24 = torch.from_numpy(np.floor(z * 2.0**default_table().frac_bits).astype(np.int64))
    mean, index = codec._pixel_params(z24, pixels)
    return float(np.sum(codec.pixel.bits(pixels, mean, index)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rec-cifar")
    parser.add_argument("--dataset", choices=("cifar10", "photo"), default="cifar10")
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.dataset == "photo":
        images = datasets.random_patches(datasets.photo_files("validation"), args.images, 1, 32)
    else:
        images = datasets.cifar10_split("validation")[-args.images:]
    codec = get_codec("rec", model=args.model)
    pixels = codec.model.to_pixels(images)
    loc, scale = batched_posterior(codec.model.posterior, pixels, None)
    shard = codec.encode(images)
    sent = codec.chosen_latents(images)
    mean, index = codec._pixel_params(sent, pixels)
    rng = np.random.default_rng(0)
    sampled = np.mean([pixel_bits(codec, pixels, loc + scale * rng.standard_normal(loc.shape))
                       for _ in range(2)])
    dims = images.size
    print(json.dumps({
        "model": args.model, "images": len(images),
        "bits_per_dim": round(8 * len(shard.payload) / dims, 4),
        "latent_bits_per_dim": round(shard.params["latent_bits"] / dims, 4),
        "kl_bits_per_dim": round(float(kl_bits(loc, scale).sum()) / dims, 4),
        "pixels_given_sent": round(float(np.sum(codec.pixel.bits(pixels, mean, index))) / dims,
                                   4),
        "pixels_given_posterior_sample": round(sampled / dims, 4),
        "pixels_given_posterior_mean": round(pixel_bits(codec, pixels, loc) / dims, 4)}))


if __name__ == "__main__":
    main()
