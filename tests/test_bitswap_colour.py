"""Bit-Swap with a channel context (`channel_context="linear"`): each pixel stage is coded
colour by colour, R, G, B, G's and B's means shifted by the earlier colours of the same pixel;
the codec pops them in that order, the integers are exact, and a model grows the context
without changing what it computes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from recarchive.codecs import bitswap as bitswap_codec
from recarchive.codecs.base import CodecError
from recarchive.codecs.bitswap import BitSwapCodec
from recarchive.models import zoo
from recarchive.models.bitswap import BitSwapConfig, BitSwapModel, space_to_depth
from recarchive.models.exact_bitswap import convert_to_exact
from recarchive.training.bitswap import (
    calibrate_activations,
    initial_weights,
    load_initial_weights,
    split_crops,
)
from tests.photo_blocks import check_round_trips, pinned_payload_sha256, two_images
from tests.test_bitswap_reach import TINY as REACH
from tests.test_bitswap_reach import crops, reach_model

TINY = replace(REACH, channel_context="linear")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "tiny-colour.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(reach_model(7, TINY), {"note": "untrained"}))
    return path


def _means(exact, x: torch.Tensor, ring) -> torch.Tensor:
    z1 = exact.layout.net_input(torch.full((x.shape[0], TINY.latent_channels, 16, 16), 700))
    return exact.pixel_likelihood(z1, x, ring=ring)[0]


def test_green_reads_red_and_blue_reads_both_but_red_reads_neither():
    exact = convert_to_exact(reach_model(7, TINY))
    x, ring = split_crops(torch.from_numpy(crops()[:3]).permute(0, 3, 1, 2), 1.0)
    x = space_to_depth(x.to(torch.int64))
    base = _means(exact, x, ring)
    for colour, moved in ((0, (1, 2)), (1, (2,)), (2, ())):
        other = x.clone()
        other[:, 4 * colour : 4 * colour + 4] = 255 - other[:, 4 * colour : 4 * colour + 4]
        means = _means(exact, other, ring)
        for c in range(3):
            # the first stage's (positions 0 and 3): the second's read every first-stage
            # pixel through the context net
            first = [4 * c, 4 * c + 3]
            assert torch.equal(means[:, first], base[:, first]) == (c not in moved), (colour, c)


def test_exact_channel_context_tracks_the_float_model():
    model = reach_model(7, TINY)
    exact = convert_to_exact(model)
    x, ring = split_crops(torch.from_numpy(crops()[:3]).permute(0, 3, 1, 2).to(torch.int64), 1.0)
    z1 = exact.layout.net_input(torch.randint(0, exact.layout.bins,
                                              (3, TINY.latent_channels, 16, 16)))
    mean_fixed, _ = exact.pixel_likelihood(z1, space_to_depth(x), ring=ring)
    with torch.no_grad():
        mean, _ = model.pixel_params(z1 * exact.layout.input_scale, space_to_depth(x).float(),
                                     tuple(part.float() for part in ring))
    assert (mean_fixed.double() - 16 * mean.double()).abs().max() < 6
    # the shifts are really there: G's and B's means move by far more without them
    unshifted, _ = exact.pixel_likelihood(z1, space_to_depth(x) * 0 + 128, ring=ring)
    assert (mean_fixed[:, 4:] - unshifted[:, 4:]).abs().max() > 64


@pytest.mark.parametrize("mode", ["bitswap", "bbans"])
def test_round_trip_with_other_chains_batch_sizes_and_threads(model_file, mode):
    check_round_trips(model_file, mode)


def test_popping_a_stage_whole_does_not_decode(model_file, monkeypatch):
    """The colours must be popped in turn: a decoder that pops each stage whole reads G and B
    with the shift of R = 0 and decodes other pixels (so the order is what the test above
    exercises)."""
    loaded = zoo.load_bitswap(str(model_file))
    blocks, geometry = two_images()
    shard = BitSwapCodec(loaded.exact, loaded.sha256, chains=2).encode(blocks, geometry)
    by_colour = bitswap_codec._coded_parts
    monkeypatch.setattr(bitswap_codec, "_coded_parts", lambda model: [
        [torch.sort(torch.cat(stage)).values] for stage in by_colour(model)])
    coder = BitSwapCodec(loaded.exact, loaded.sha256, chains=2)
    try:
        decoded = coder.decode(shard)
    except CodecError:
        return
    assert not np.array_equal(decoded, blocks)


def test_a_model_grows_a_channel_context_that_starts_switched_off(tmp_path):
    plain = reach_model(3, REACH)
    source = tmp_path / "plain.safetensors"
    source.write_bytes(zoo.bitswap_model_bytes(plain, {"note": "untrained"}))
    weights, _ = initial_weights(str(source), TINY)
    grown = BitSwapModel(TINY)
    load_initial_weights(grown, weights)
    calibrate_activations(grown, crops(), torch.device("cpu"))
    x, ring = split_crops(torch.from_numpy(crops()[:6]).permute(0, 3, 1, 2).float(), 1.0)
    with torch.no_grad():
        torch.manual_seed(4)
        before = plain.bits_per_dim(x, ring)
        torch.manual_seed(4)
        after = grown.eval().bits_per_dim(x, ring)
    assert torch.equal(before, after)
    grown.train().bits_per_dim(x, ring).mean().backward()
    gains = grown.generate[0].mean.parametrizations.weight.original0
    assert float(gains.detach()[-TINY.coefficient_channels:].abs().sum()) == 0
    assert float(gains.grad[-TINY.coefficient_channels:].abs().sum()) > 0


def test_the_rec_codecs_gaussian_models_are_still_refused():
    model = BitSwapModel(BitSwapConfig(latent="gaussian", latent_layers=1, latent_channels=4,
                                       width=8, res_blocks=1))
    with pytest.raises(CodecError, match="--codec rec"):
        BitSwapCodec(convert_to_exact(model), "0" * 64)


# A small model with a channel context kept with the tests, and the payloads it codes a real
# photo's blocks to: never update these to make a change pass; archives coded with such
# models must still decode.
PINNED_MODEL = Path(__file__).parent / "data" / "bitswap-tiny-colour.safetensors"
PINNED_MODEL_SHA256 = "73c769f55ca051946868cf9596230d242162dc70b8ffa100cc993367bd9cb293"
PINNED_PAYLOADS = {
    "bitswap": "bb2fcb3fcc4c826819887353d34743a79af082d73ba5d49d08cf98962895fe01",
    "bbans": "89e48ebaa55b3abb6ba87fdcccfc71564bc9cab67e76a3adcdb4d7e38d9ff29b",
}


@pytest.mark.parametrize("mode", sorted(PINNED_PAYLOADS))
def test_coded_bytes_are_those_earlier_releases_wrote(mode):
    assert pinned_payload_sha256(PINNED_MODEL, PINNED_MODEL_SHA256, mode) == PINNED_PAYLOADS[mode]
