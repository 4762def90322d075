"""Bit-Swap with the interlace pixel context: four stages per block, each later stage coded
given the stages before it, exactly, whatever the batch size, chains or threads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from recarchive.models import zoo
from recarchive.models.bitswap import BitSwapConfig, BitSwapModel, space_to_depth
from recarchive.models.exact_bitswap import convert_to_exact
from recarchive.training.bitswap import initial_weights, load_initial_weights, split_crops
from tests.photo_blocks import check_round_trips, photo, pinned_payload_sha256, two_images

TINY = BitSwapConfig(latent_layers=2, latent_channels=4, width=8, res_blocks=1,
                     pixel_context="interlace", block_context="ring")


def switched_on(model: BitSwapModel, seed: int = 0) -> BitSwapModel:
    """The model with its context net's output gains random (a fresh one starts at 0)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for out in (model.context.mean, model.context.log_scale):
            out.parametrizations.weight.original0.normal_(0.0, 0.5)
            out.bias.normal_(0.0, 0.1)
    return model.eval()


def interlace_model(seed: int = 0) -> BitSwapModel:
    torch.manual_seed(seed)
    return switched_on(BitSwapModel(TINY), seed)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "tiny-interlace.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(interlace_model(), {"note": "untrained"}))
    return path


def test_the_stages_interlace_a_block():
    """An eighth of the pixels from z1 alone ((0,0) and (2,2) of every 4×4 square), then the
    other eighth of position 0, then the diagonal quarter, then the checkerboard's half; every
    subpixel in exactly one stage."""
    masks = TINY.stage_masks()
    assert [int(m.sum()) for m in masks] == [384, 384, 768, 1536]
    assert torch.equal(masks.sum(0), torch.ones_like(masks[0], dtype=torch.int64))
    pixels = torch.arange(3 * 32 * 32).reshape(1, 3, 32, 32)
    where = [space_to_depth(pixels)[0][m] % 1024 for m in masks]
    squares = [sorted({(int(w // 32 % 4), int(w % 32 % 4)) for w in stage}) for stage in where]
    assert squares == [[(0, 0), (2, 2)], [(0, 2), (2, 0)],
                       [(1, 1), (1, 3), (3, 1), (3, 3)],
                       sorted((r, c) for r in range(4) for c in range(4) if (r + c) % 2)]
    checkerboard = replace(TINY, pixel_context="checkerboard")
    assert [int(m.sum()) for m in checkerboard.stage_masks()] == [1536, 1536]
    with pytest.raises(ValueError, match="interlace"):
        replace(TINY, latent="gaussian", latent_layers=1)


def test_each_stage_reads_only_the_stages_before_it():
    exact = convert_to_exact(interlace_model())
    x = space_to_depth(torch.from_numpy(two_images()[0][:4]).permute(0, 3, 1, 2).to(torch.int64))
    z1 = exact.layout.net_input(torch.randint(0, exact.layout.bins, (4, 4, 16, 16)))
    masks = exact.stage_masks
    head = exact.pixel_head(z1)
    everything = exact.pixel_likelihood(z1, x)
    for k in range(1, len(masks)):
        given = exact.pixel_likelihood(z1, x, head, stage=k)
        # the stage's parameters: the same whether computed alone or with all the others
        assert all(torch.equal(g[:, masks[k]], e[:, masks[k]])
                   for g, e in zip(given, everything, strict=True))
        later = masks[k:].any(0)
        other = torch.where(later, 255 - x, x)  # its own and later pixels are never read
        again = exact.pixel_likelihood(z1, other, head, stage=k)
        assert all(torch.equal(a[:, masks[k]], g[:, masks[k]])
                   for a, g in zip(again, given, strict=True))
        earlier = torch.where(masks[k - 1], 255 - x, x)  # the stage before it is
        moved = exact.pixel_likelihood(z1, earlier, head, stage=k)
        assert not torch.equal(moved[0][:, masks[k]], given[0][:, masks[k]])
    first = exact.pixel_likelihood(z1, None, head)
    assert all(torch.equal(f[:, masks[0]], e[:, masks[0]])
               for f, e in zip(first, everything, strict=True))


def test_exact_interlace_tracks_the_float_model():
    model = interlace_model()
    exact = convert_to_exact(model)
    x = space_to_depth(torch.from_numpy(two_images()[0][:4]).permute(0, 3, 1, 2).to(torch.int64))
    z1 = exact.layout.net_input(torch.randint(0, exact.layout.bins, (4, 4, 16, 16)))
    mean_fixed, _ = exact.pixel_likelihood(z1, x)
    with torch.no_grad():
        mean, _ = model.pixel_params(z1 * exact.layout.input_scale, x.float())
    assert (mean_fixed.double() - 16 * mean.double()).abs().max() < 4


@pytest.mark.parametrize("mode", ["bitswap", "bbans"])
def test_round_trip_with_other_chains_batch_sizes_and_threads(model_file, mode):
    check_round_trips(model_file, mode)


def test_a_checkerboard_model_grows_into_an_interlace_that_codes_as_it_did(tmp_path):
    """Fine-tuning from a checkerboard model starts exactly at it: the interlace's last stage
    gets the checkerboard's context net, its other stages start switched off."""
    torch.manual_seed(5)
    checkerboard = switched_on(BitSwapModel(replace(TINY, pixel_context="checkerboard")), 5)
    source = tmp_path / "checkerboard.safetensors"
    source.write_bytes(zoo.bitswap_model_bytes(checkerboard, {"note": "untrained"}))
    weights, _ = initial_weights(str(source), TINY)
    grown = BitSwapModel(TINY)
    load_initial_weights(grown, weights)
    crops = torch.from_numpy(np.stack([photo(36, 36), photo(72, 36)[36:]])).permute(0, 3, 1, 2)
    x, ring = split_crops(crops.float(), 1.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(3)
        before = checkerboard.bits_per_dim(x, ring)
        torch.manual_seed(3)
        after = grown.eval().bits_per_dim(x, ring)
    assert torch.equal(before, after)
    loss = grown.train().bits_per_dim(x, ring).mean()
    loss.backward()
    gains = grown.context.mean.parametrizations.weight.original0.grad
    assert float(gains.abs().sum()) > 0
    with pytest.raises(ValueError, match="--init-from"):  # growing drops no block context
        initial_weights(str(source), replace(TINY, block_context="none"))


# A small interlace model kept with the tests, and the payloads it codes a real photo's blocks
# to: never update these to make a change pass; archives coded with it must still decode.
PINNED_MODEL = Path(__file__).parent / "data" / "bitswap-tiny-interlace.safetensors"
PINNED_MODEL_SHA256 = "b3fe8928dac8a7a82dff5a3c8c74bfacd47a92b206aa0b56cdc64d48ce7f7405"
PINNED_PAYLOADS = {
    "bitswap": "6d2ad3373fbadaa765de2f8dcfb4e70d1c79f13115144ac094c0bf30b3c8715e",
    "bbans": "9bdb5bc88e03402fbdc29afac191a323c41430f2b891c9c16f9fda4e8e00e79d",
}


@pytest.mark.parametrize("mode", sorted(PINNED_PAYLOADS))
def test_coded_bytes_are_those_earlier_releases_wrote(mode):
    assert pinned_payload_sha256(PINNED_MODEL, PINNED_MODEL_SHA256, mode) == PINNED_PAYLOADS[mode]
