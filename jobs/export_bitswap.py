"""Export a Bit-Swap training checkpoint as a shipped model file.

    python jobs/export_bitswap.py runs/bitswap-cifar/checkpoint.pt bitswap-cifar

writes recarchive/models/zoo/bitswap-cifar.safetensors (the Polyak-averaged weights and their
exact integer conversion) and prints the sha256 to pin in `recarchive.models.zoo.SHIPPED`.

    python jobs/export_bitswap.py bitswap-photo bitswap-photo

converts a model file's (or shipped model's) float weights again, for the current latent
layout, keeping its training record and naming the file it came from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from recarchive.models import zoo


def export(checkpoint: Path, name: str, dataset: str) -> str:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = zoo.float_model_from_checkpoint(checkpoint)
    training = {"dataset": dataset, "steps": state["step"], "validation": state["history"][-1:]}
    if state.get("init_from"):
        training["init_from"] = state["init_from"]  # the steps above came on top of these
    data = zoo.bitswap_model_bytes(model, training)
    (zoo.ZOO_DIR / f"{name}.safetensors").write_bytes(data)
    return zoo.sha256_of(data)


def reconvert(source: str, name: str) -> str:
    loaded = zoo.load_bitswap(source)
    training = json.loads(loaded.metadata.get("training", "{}"))
    training["converted_from"] = {"sha256": loaded.sha256,
                                  "latent_layout": loaded.exact.layout.name}
    data = zoo.bitswap_model_bytes(loaded.float_model, training)
    (zoo.ZOO_DIR / f"{name}.safetensors").write_bytes(data)
    return zoo.sha256_of(data)


if __name__ == "__main__":
    source, model_name = sys.argv[1], sys.argv[2]
    if source in zoo.SHIPPED or source.endswith(".safetensors"):
        print(f"{model_name} {reconvert(source, model_name)}")
    else:
        trained_on = sys.argv[3] if len(sys.argv) > 3 else "cifar10"
        print(f"{model_name} {export(Path(source), model_name, trained_on)}")
