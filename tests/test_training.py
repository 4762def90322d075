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


def test_bfloat16_autocast_runs_only_the_residual_blocks_in_bfloat16():
    from recarchive.models.bitswap import BitSwapModel, pixels_to_input, space_to_depth

    torch.manual_seed(0)
    net = BitSwapModel(replace(TINY, width=16, res_blocks=1)).infer[0]
    h = space_to_depth(pixels_to_input(torch.randint(0, 256, (4, 3, 32, 32)).float()))
    block_dtypes = []
    net.blocks[0].conv1.register_forward_hook(lambda m, i, out: block_dtypes.append(out.dtype))
    with torch.no_grad():
        full = net(h)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(h)
    assert block_dtypes == [torch.float32, torch.bfloat16]
    for a, b in zip(full, mixed, strict=True):
        assert b.dtype == torch.float32
        assert 0 < float((a - b).abs().max()) < 0.05  # bfloat16 rounding, nothing more


def test_bfloat16_training_learns(tmp_path):
    run = replace(settings(6), config=replace(TINY, res_blocks=1))
    quiet = {"log": lambda line: None}
    mixed = torch.load(train(replace(run, bfloat16=True), tmp_path / "bf16", **quiet),
                       weights_only=False)
    first, second = (h["val_bits_per_dim"] for h in mixed["history"])
    assert second < first
    assert all(v.dtype == torch.float32 for v in mixed["ema"].values())
    full = torch.load(train(run, tmp_path / "fp32", **quiet), weights_only=False)
    assert any(not torch.equal(full["ema"][k], v) for k, v in mixed["ema"].items())
