"""How REC's encoder should pick among ORC's candidates: a sample, or the shortest code.

`rec_search(..., index_bits=...)` picks the candidate that minimizes the index's bits minus
log2 dQ/dP, which for a Laplace-fit posterior is the block's whole codelength up to a constant
(`recarchive/rec/search.py`). This codes CIFAR-10 validation images (the last N of the
training file, never the test set) with `rec-cifar` by each rule, several index weights and
candidate budgets, decodes every shard and prints bits/dim (whole payloads), the latent's
bits/dim and the encoding time. The decoder and the model's tables are the same throughout.

    python studies/study_rec_selection.py [--images 256] [--model rec-cifar]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from recarchive import datasets
from recarchive.codecs.rec import RecSettings
from recarchive.codecs.registry import get_codec


def _variants(shipped: RecSettings) -> list[dict]:
    rows = [dict(selection="sample", samples=shipped.samples)]
    rows += [dict(selection="codelength", samples=shipped.samples, index_weight=w)
             for w in (1.0, 1.25, 1.5, 2.0)]
    rows += [dict(selection="sample", samples=4 * shipped.samples),
             dict(selection="codelength", samples=4 * shipped.samples, index_weight=1.5)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--model", default="rec-cifar")
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = datasets.cifar10_split("validation")[-args.images:]
    shipped = get_codec("rec", model=args.model).tables.settings
    train = datasets.cifar10_split("train")[:500]
    for variant in _variants(shipped):
        samples = variant.pop("samples")
        settings = RecSettings(shipped.algorithm, shipped.partitioned, shipped.block_bits, samples)
        codec = get_codec("rec", model=args.model, settings=settings,
                          fit_images=None if samples == shipped.samples else train, **variant)
        start = time.perf_counter()
        shard = codec.encode(images)
        seconds = time.perf_counter() - start
        exact = bool(np.array_equal(codec.decode(shard), images))
        dims = images.size
        print(json.dumps({**variant, "samples": samples,
                          "bits_per_dim": round(8 * len(shard.payload) / dims, 4),
                          "latent_bits_per_dim": round(shard.params["latent_bits"] / dims, 4),
                          "encode_seconds": round(seconds, 1), "roundtrip_exact": exact}),
              flush=True)


if __name__ == "__main__":
    main()
