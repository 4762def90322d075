"""Bit-Swap training: it learns, it checkpoints, and a rerun resumes where it stopped."""

from __future__ import annotations

from dataclasses import replace

import pytest
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


def test_fine_tuning_starts_from_a_shipped_model_or_a_checkpoint(tmp_path):
    from recarchive.models import zoo
    from recarchive.training.bitswap import initial_weights

    shipped = zoo.load_bitswap("bitswap-cifar").float_model
    weights, origin = initial_weights("bitswap-cifar", shipped.config)
    assert origin == f"model sha256 {zoo.SHIPPED['bitswap-cifar'][:12]}"
    assert weights.keys() == shipped.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in shipped.state_dict().items())
    checkpoint = train(settings(3), tmp_path)
    weights, origin = initial_weights(str(checkpoint), TINY)
    ema = torch.load(checkpoint, weights_only=False)["ema"]
    assert origin == "checkpoint step 3"
    assert all(torch.equal(weights[k], v) for k, v in ema.items())
    tuned = train(replace(settings(4), init_from=str(checkpoint)), tmp_path / "tuned")
    assert torch.load(tuned, weights_only=False)["init_from"] == f"{checkpoint} ({origin})"
    with pytest.raises(ValueError, match=r"--init-from bitswap-cifar .*--width"):
        initial_weights("bitswap-cifar", TINY)
