"""Export a REC model's checkpoint as a REC model file (`rec-cifar`, `rec-photo`).

    python jobs/export_rec.py runs/rec-causal/checkpoint.pt rec-cifar

The checkpoint is a latent causal model's (`recarchive train causal --latent-channels C`), or
a one-layer Gaussian Bit-Swap's (the models before 2026-12-06; or a `recarchive train
rec-decoder` checkpoint: the same posterior, so the same tables).

writes recarchive/models/zoo/rec-cifar.safetensors (the Polyak-averaged weights, their exact
integer conversion and the REC tables fitted on training images: never validation or test)
and prints the sha256 to pin in `recarchive.models.shipped.SHIPPED`. `--out FILE` writes
elsewhere (to measure before shipping); `--block-bits`, `--algorithm`, `--samples` choose the
REC settings the tables are fitted for.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from recarchive import datasets
from recarchive.codecs.rec import RecSettings, fit_rec_tables
from recarchive.codecs.rec_models import CausalRecModel, ConvRecModel
from recarchive.models import zoo
from recarchive.models.causal import CausalConfig
from recarchive.models.causal_latent import CausalLatentVAE

FIT_IMAGES = 2000


def training_images(dataset: str, count: int) -> np.ndarray:
    if dataset == "cifar10":
        images = datasets.cifar10_split("train")
    elif dataset == "photo":
        images = datasets.random_patches(datasets.photo_files("train"), 20 * count, 0, 32)
    else:
        raise ValueError(f"unknown dataset {dataset!r}: cifar10 or photo")
    rng = np.random.default_rng(0)
    return images[np.sort(rng.choice(len(images), count, replace=False))]


def export(checkpoint: Path, out: Path, dataset: str, settings: RecSettings,
           fit_images: int = FIT_IMAGES) -> str:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    training = {"dataset": dataset, "steps": state["step"], "validation": state["history"][-1:],
                "rec_fit_images": fit_images}
    if "latent_channels" in state["config"]:  # a latent causal model
        causal = CausalLatentVAE(CausalConfig(**state["config"]))
        causal.load_state_dict(state["ema"])
        training["settings"] = state["settings"]

        def model_bytes(tables: dict | None) -> bytes:
            return zoo.causal_latent_model_bytes(causal, training, rec_tables=tables)

        adapter = CausalRecModel(zoo.load_causal_latent_bytes(model_bytes(None), None,
                                                              str(checkpoint)))
    else:  # a one-layer Gaussian Bit-Swap model
        model = zoo.float_model_from_checkpoint(checkpoint)
        if state.get("init_from"):
            training["init_from"] = state["init_from"]  # the steps above came on top of these
        if state.get("decoder_fine_tune"):  # `recarchive train rec-decoder`: the validation
            training["decoder_fine_tune"] = state["decoder_fine_tune"]  # is pixels given z sent

        def model_bytes(tables: dict | None) -> bytes:
            return zoo.bitswap_model_bytes(model, training, rec_tables=tables)

        adapter = ConvRecModel(zoo.load_bitswap_bytes(model_bytes(None), None, str(checkpoint)))
    images = training_images(dataset, fit_images)
    data = model_bytes(fit_rec_tables(adapter.posterior, adapter.to_pixels(images), settings))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return zoo.sha256_of(data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("name")
    parser.add_argument("--dataset", default="cifar10", choices=("cifar10", "photo"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--block-bits", type=float, default=RecSettings.block_bits)
    parser.add_argument("--algorithm", default=RecSettings.algorithm, choices=("orc", "pfr"))
    parser.add_argument("--samples", type=int, default=RecSettings.samples)
    parser.add_argument("--fit-images", type=int, default=FIT_IMAGES)
    args = parser.parse_args()
    out = args.out or zoo.ZOO_DIR / f"{args.name}.safetensors"
    rec = RecSettings(args.algorithm, True, args.block_bits, args.samples)
    print(f"{args.name} {export(args.checkpoint, out, args.dataset, rec, args.fit_images)}")
