"""Export a causal pixel model's training checkpoint as a model file.

    python jobs/export_causal.py runs/causal-photo/checkpoint.pt causal-photo

writes recarchive/models/zoo/causal-photo.safetensors (the Polyak-averaged weights and their
exact integer conversion; `--out FILE` writes elsewhere) and prints the sha256 to pin in
`recarchive.models.shipped.SHIPPED`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from recarchive.models import zoo
from recarchive.models.causal import CausalConfig, CausalPixelModel


def export(checkpoint: Path, out: Path) -> str:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = CausalPixelModel(CausalConfig(**state["config"]))
    model.load_state_dict(state["ema"])
    training = {"steps": state["step"], "settings": state["settings"],
                "validation": state["history"][-1:]}
    data = zoo.causal_model_bytes(model.eval(), training)
    out.write_bytes(data)
    return zoo.sha256_of(data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("name")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    target = args.out or zoo.ZOO_DIR / f"{args.name}.safetensors"
    print(f"{args.name} {export(args.checkpoint, target)}")
