"""How REC's encoder should pick among ORC's candidates: a sample, or the shortest code.

`rec_search(..., index_bits=...)` picks the candidate that minimizes the index's bits minus
log2 dQ/dP, which for a Laplace-fit posterior is the block's whole codelength up to a constant
(`recarchive/rec/search.py`). This codes CIFAR-10 validation images (the last N of the
training file, never the test set) with `rec-cifar` by each rule, several index weights and
candidate budgets, decodes every shard and prints bits/dim (whole payloads), the latent's
bits/dim and the encoding time. The decoder and the model's tables are the same throughout.

    python studies/study_rec_selection.py [--images 256] [--model rec-cifar]
    python studies/study_rec_selection.py --model rec-mnist --dataset mnist --images 2000
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from recarchive import datasets
from recarchive.codecs.rec import RecSettings
from recarchive.codecs.registry import get_codec


def _variants(samples: int) -> list[dict]:
    """Every row: the selection, the candidates (uniform, or more where a block's KL outgrows
    its partition: `max_candidates` and `extra_from_bits`), the index weight."""
    rows = [dict(selection="sample", samples=samples)]
    rows += [dict(selection="codelength", samples=samples, index_weight=w,
                  max_candidates=samples) for w in (1.0, 1.25, 1.5, 2.0)]
    rows += [dict(selection="codelength", samples=samples, max_candidates=most,
                  extra_from_bits=extra)
             for most, extra in ((4096, 8.0), (4096, 6.0), (4096, 3.0), (16384, 6.0))]
    rows += [dict(selection="sample", samples=4 * samples),
             dict(selection="codelength", samples=4 * samples, max_candidates=4 * samples)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--model", default="rec-cifar")
    parser.add_argument("--dataset", choices=("cifar10", "mnist"), default="cifar10")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.dataset == "mnist":
        images = datasets.load_mnist_images("validation")[-args.images:, ..., None]
        train = datasets.load_mnist_images("train")[:500, ..., None]
    else:
        images = datasets.cifar10_split("validation")[-args.images:]
        train = datasets.cifar10_split("train")[:500]
    shipped = get_codec("rec", model=args.model).tables.settings
    for variant in _variants(shipped.samples):
        options = dict(variant)
        samples, extra = options.pop("samples"), options.pop("extra_from_bits", None)
        settings = RecSettings(shipped.algorithm, shipped.partitioned, shipped.block_bits, samples)
        codec = get_codec("rec", model=args.model, settings=settings,
                          fit_images=None if samples == shipped.samples else train, **options)
        if extra is not None:
            codec.shortest = replace(codec.shortest, extra_from_bits=extra)
        start = time.perf_counter()
        shard = codec.encode(images)
        seconds = time.perf_counter() - start
        exact = bool(np.array_equal(codec.decode(shard), images))
        dims = images.size
        print(json.dumps({**variant,
                          "bits_per_dim": round(8 * len(shard.payload) / dims, 4),
                          "latent_bits_per_dim": round(shard.params["latent_bits"] / dims, 4),
                          "search_steps_mean": round(shard.params["search_steps_mean"]),
                          "encode_seconds": round(seconds, 1), "roundtrip_exact": exact}),
              flush=True)


if __name__ == "__main__":
    main()
