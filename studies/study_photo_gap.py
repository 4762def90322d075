"""Where a photo model loses to JPEG-XL, photo by photo, and which part of its −ELBO it is.

    python studies/study_photo_gap.py [--model bitswap-photo] [--limit N] [--every K]

Prints, for every validation photo (whole, the archive's cut into blocks, each photo alone),
the model's float −ELBO with its neighbours' rings against JPEG-XL lossless (effort 9) on the
whole photo; then, over every K-th photo, the −ELBO's parts (pixels given z1, each latent
layer's KL) and how the colours' residuals given z1 correlate (what a channel context could
still use).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from recarchive import datasets
from recarchive.bench import codec_bench
from recarchive.codecs import get_codec
from recarchive.codecs.bitswap import ring_of
from recarchive.models import zoo
from recarchive.models.bitswap import pixels_to_input, space_to_depth
from recarchive.report.classical import jpegxl_bytes


def blocks_and_ring(image: np.ndarray):
    blocks, geometry, _ = codec_bench.whole_image_shards([image], 10**6)
    pixels = torch.from_numpy(blocks).permute(0, 3, 1, 2).to(torch.int64)
    centred, mask = ring_of(pixels, geometry.neighbours())
    return blocks, geometry, pixels.float(), (centred.float(), mask.float())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bitswap-photo")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--every", type=int, default=2)
    args = parser.parse_args()
    codec = get_codec("bitswap", model=args.model)
    model = zoo.load_bitswap_bytes(codec.model_bytes(), None, args.model).float_model.eval()
    images = codec_bench.load_whole_images("photo-val-images", args.limit)
    names = [path.name for path in datasets.photo_files("validation")][: len(images)]
    print(f"{'photo':48s} {'model':>7s} {'JPEG-XL':>7s} {'ratio':>6s}")
    for name, image in zip(names, images, strict=True):
        blocks, geometry, _, _ = blocks_and_ring(image)
        padded = codec_bench.neg_elbo_bits_per_dim(codec, blocks, geometry=geometry)
        model_bits = padded * blocks[0].size * len(blocks) / image.size
        jpegxl = 8 * jpegxl_bytes(image) / image.size
        print(f"{name[:48]:48s} {model_bits:7.3f} {jpegxl:7.3f} {model_bits / jpegxl:6.3f}")

    parts = {"recon": 0.0}
    layers = np.zeros(model.config.latent_layers)
    residuals, count = [], 0
    for image in images[:: args.every]:
        _, _, x, ring = blocks_and_ring(image)
        torch.manual_seed(0)
        with torch.no_grad():
            terms = model.elbo_terms(x, ring=ring)
        parts["recon"] += float(terms["recon"].sum())
        layers += terms["kl_layers"].sum(0).numpy()
        count += len(x)
        with torch.no_grad():  # residuals given one posterior draw of z1
            mean, log_scale = model.infer[0](space_to_depth(pixels_to_input(x)), ring)
            u = torch.rand_like(mean).clamp(1e-6, 1 - 1e-6)
            z1 = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
            xs = space_to_depth(x)
            pixel_mean, pixel_log_scale = model.pixel_params(z1, xs, ring)
        standard = ((xs - pixel_mean) / torch.exp(pixel_log_scale)).clamp(-20, 20)
        residuals.append(standard.view(len(x), 3, 4, 16, 16).transpose(0, 1).reshape(3, -1))
    dims = 3072 * math.log(2) * count
    kls = ", ".join(f"z{i + 1} {kl / dims:.3f}" for i, kl in enumerate(layers))
    print(f"\nevery {args.every}th photo: pixels given z1 {parts['recon'] / dims:.3f} bits/dim; "
          f"KL {kls}")
    correlation = np.corrcoef(torch.cat(residuals, 1).numpy())
    print(f"residual correlation given z1: R-G {correlation[0, 1]:.3f}, "
          f"R-B {correlation[0, 2]:.3f}, G-B {correlation[1, 2]:.3f}")


if __name__ == "__main__":
    main()
