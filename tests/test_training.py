"""Bit-Swap training: it learns, it checkpoints, and a rerun resumes where it stopped."""

from __future__ import annotations

import torch

from recarchive.models.bitswap import BitSwapConfig
from recarchive.training.bitswap import TrainSettings, train

TINY = BitSwapConfig(latent_layers=2, latent_channels=4, width=8, res_blocks=0)


def settings(steps: int) -> TrainSettings:
    return TrainSettings(steps=steps, batch_size=16, warmup_steps=2, checkpoint_every=3,
                         validate_every=3, validation_images=64, device="cpu", config=TINY)


def test_training_learns_and_resumes(tmp_path):
    lines: list[str] = []
    checkpoint = train(settings(6), tmp_path, log=lines.append)
    state = torch.load(checkpoint, weights_only=False)
    assert state["step"] == 6 and len(state["history"]) == 2
    first, second = (h["val_bits_per_dim"] for h in state["history"])
    assert second < first  # six steps of Adamax already lower the validation -ELBO
    train(settings(9), tmp_path, log=lines.append)
    state = torch.load(checkpoint, weights_only=False)
    assert state["step"] == 9 and "resumed from step 6" in lines
