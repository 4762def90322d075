"""Bit-Swap with a coarse path in every net (`reach="block"`): a block's centre reads the ring of
neighbour pixels, the integer nets compute it exactly, and a model grows one without changing
what it computes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from recarchive.codecs.bitswap import BitSwapCodec
from recarchive.exact import int8, int8_kernels
from recarchive.models import zoo
from recarchive.models.bitswap import (
    BitSwapConfig,
    BitSwapModel,
    ConditionalNet,
    border_canvas,
    space_to_depth,
)
from recarchive.models.exact_bitswap import convert_to_exact
from recarchive.training.bitswap import (
    calibrate_activations,
    initial_weights,
    load_initial_weights,
    split_crops,
)
from tests.photo_blocks import check_round_trips, photo, pinned_payload_sha256, two_images

TINY = BitSwapConfig(latent_layers=2, latent_channels=4, width=8, res_blocks=1,
                     pixel_context="checkerboard", block_context="ring", arithmetic="int8",
                     reach="block")


def crops() -> np.ndarray:
    """36×36 crops of a real photo: blocks with their ring, to calibrate on."""
    image = photo(144, 180)
    return np.stack([image[r:r + 36, c:c + 36] for r in range(0, 108, 12)
                     for c in range(0, 144, 12)])


def switched_on(model: BitSwapModel, seed: int) -> BitSwapModel:
    """Random output gains for what a fresh model starts switched off (the context net and
    every coarse path's second conv), then activation grids calibrated on photo crops."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for net in model.modules():
            if isinstance(net, ConditionalNet) and net.coarse is not None:
                net.coarse.conv2.parametrizations.weight.original0.normal_(0.0, 0.5)
                net.coarse.conv2.bias.normal_(0.0, 0.1)
        for out in (model.context.mean, model.context.log_scale):
            out.parametrizations.weight.original0.normal_(0.0, 0.5)
            out.bias.normal_(0.0, 0.1)
    calibrate_activations(model, crops(), torch.device("cpu"))
    return model.eval()


def reach_model(seed: int = 0, config: BitSwapConfig = TINY) -> BitSwapModel:
    torch.manual_seed(seed)
    return switched_on(BitSwapModel(config), seed)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "tiny-reach.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(reach_model(), {"note": "untrained"}))
    return path


def rings_differing_above() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """Two rings of four blocks that differ only in the row of pixels above the block."""
    around = torch.randint(0, 256, (4, 3, 36, 36))
    other = around.clone()
    other[:, :, :2, 2:34] = 255 - other[:, :, :2, 2:34]
    known = torch.ones((4, 4), dtype=torch.bool)
    return border_canvas(around, known), border_canvas(other, known)


@pytest.mark.parametrize("reach", ["block", "local"])
def test_the_centre_of_a_block_reads_the_ring_only_with_a_coarse_path(reach):
    """The centre rows of cells (8–11 of 16) see the pixels above the block through the coarse
    path; four 3×3 convs alone carry them four cells in."""
    exact = convert_to_exact(reach_model(config=replace(TINY, reach=reach)))
    z1 = torch.randint(-2047, 2048, (4, TINY.latent_channels, 16, 16)) | 1
    h = 2 * space_to_depth(torch.randint(0, 256, (4, 3, 32, 32))) - 255
    first, second = rings_differing_above()
    for compute in (lambda ring: exact.pixel_head(z1, ring),
                    lambda ring: exact.posterior(0, h, ring),
                    lambda ring: exact.latent_prior(1, z1, ring)):
        a, b = compute(first)[0], compute(second)[0]
        assert not torch.equal(a[..., :4, :], b[..., :4, :])
        assert torch.equal(a[..., 8:12, :], b[..., 8:12, :]) == (reach == "local")


def test_exact_coarse_path_tracks_the_float_model():
    model = reach_model()
    exact = convert_to_exact(model)
    around = torch.from_numpy(crops()[:3]).permute(0, 3, 1, 2)
    x, ring = split_crops(around.to(torch.int64), 1.0)
    z1 = exact.layout.net_input(torch.randint(0, exact.layout.bins,
                                              (3, TINY.latent_channels, 16, 16)))
    mean_fixed, _ = exact.pixel_likelihood(z1, space_to_depth(x), ring=ring)
    posterior_fixed, _ = exact.posterior(0, 2 * space_to_depth(x) - 255, ring)
    with torch.no_grad():
        float_ring = tuple(part.float() for part in ring)
        mean, _ = model.pixel_params(z1 * exact.layout.input_scale,
                                     space_to_depth(x).float(), float_ring)
        posterior, _ = model.infer[0](space_to_depth(x.float() * 2 / 255 - 1), float_ring)
    assert (mean_fixed.double() - 16 * mean.double()).abs().max() < 4
    in_bins = (posterior_fixed - exact.layout.mean_offset) * exact.layout.mean_scale
    assert (in_bins.double() - posterior.double()).abs().max() < 0.02
    # the coarse path is really there: switching it off moves the means by far more
    for net in model.modules():
        if isinstance(net, ConditionalNet):
            net.coarse = None
    with torch.no_grad():
        without, _ = model.pixel_params(z1 * exact.layout.input_scale,
                                        space_to_depth(x).float(), float_ring)
    assert (mean_fixed.double() - 16 * without.double()).abs().max() > 16


@pytest.mark.parametrize("mode", ["bitswap", "bbans"])
def test_round_trip_with_other_chains_batch_sizes_and_threads(model_file, mode):
    check_round_trips(model_file, mode)


def test_a_model_grows_a_coarse_path_that_starts_switched_off(tmp_path):
    """Fine-tuning a model without a coarse path into one with it starts exactly where the
    source was, in float and in integers; training then moves the path."""
    local = reach_model(3, replace(TINY, reach="local"))
    source = tmp_path / "local.safetensors"
    source.write_bytes(zoo.bitswap_model_bytes(local, {"note": "untrained"}))
    weights, _ = initial_weights(str(source), TINY)
    grown = BitSwapModel(TINY)
    load_initial_weights(grown, weights)
    calibrate_activations(grown, crops(), torch.device("cpu"))
    # recalibrating the source's grids on the same crops gives the fracs it had
    assert all(torch.equal(grown.state_dict()[key], value)
               for key, value in local.state_dict().items())
    x, ring = split_crops(torch.from_numpy(crops()[:6]).permute(0, 3, 1, 2).float(), 1.0)
    with torch.no_grad():
        torch.manual_seed(4)
        before = local.bits_per_dim(x, ring)
        torch.manual_seed(4)
        after = grown.eval().bits_per_dim(x, ring)
    assert torch.equal(before, after)
    h = 2 * space_to_depth(x.to(torch.int64)) - 255
    integer_ring = tuple(part.to(torch.int64) for part in ring)
    assert torch.equal(convert_to_exact(grown).posterior(0, h, integer_ring)[0],
                       convert_to_exact(local).posterior(0, h, integer_ring)[0])
    grown.train().bits_per_dim(x, ring).mean().backward()
    gains = grown.infer[0].coarse.conv2.parametrizations.weight.original0
    assert float(gains.abs().sum()) == 0 and float(gains.grad.abs().sum()) > 0


def test_the_coarse_path_is_int8s_and_old_files_hash_the_same():
    with pytest.raises(ValueError, match="int8"):
        replace(TINY, arithmetic="fixed64")
    with pytest.raises(ValueError, match="reach"):
        replace(TINY, reach="image")
    assert "reach" not in replace(TINY, reach="local").to_dict()


# A small model with coarse paths kept with the tests, and the payloads it codes a real photo's
# blocks to (a 3×4 image and a 2×2 one, two chains): never update these to make a change
# pass; archives coded with such models must still decode.
PINNED_MODEL = Path(__file__).parent / "data" / "bitswap-tiny-reach.safetensors"
PINNED_MODEL_SHA256 = "c5796b0c3abf85c32e59d3e6f9f8acd19dfa3660d65dd64707ce4e3cae427a02"
PINNED_PAYLOADS = {
    "bitswap": "620ce7a1cc29c52a52e506ec5732bd5c2a7b6eeab4cd9c6068918dee4386c6c3",
    "bbans": "436101e66fdcd2b70ebe65b6230fac5106e1084db0d361410de284c538f14985",
}


@pytest.mark.parametrize("mode", sorted(PINNED_PAYLOADS))
def test_coded_bytes_are_those_earlier_releases_wrote(mode):
    assert pinned_payload_sha256(PINNED_MODEL, PINNED_MODEL_SHA256, mode) == PINNED_PAYLOADS[mode]


def test_the_gemm_kernel_and_compiled_loops_do_not_change_the_bytes(monkeypatch):
    """The float32 GEMM fallback and the torch operations around it (CUDA's path, or a machine
    without numba) code the coarse path's wide sums as the compiled loops do."""
    loaded = zoo.load_bitswap(str(PINNED_MODEL), PINNED_MODEL_SHA256)
    coder = BitSwapCodec(loaded.exact, loaded.sha256, mode="bitswap", chains=2,
                         lanes_per_chain=16, first_block="raw")
    monkeypatch.setattr(int8, "_int_mm_is_exact", lambda device_type: False)
    monkeypatch.setattr(int8_kernels, "AVAILABLE", False)
    shard = coder.encode(*two_images())
    assert zoo.sha256_of(shard.payload) == PINNED_PAYLOADS["bitswap"]


def test_the_compiled_coarse_path_computes_the_torch_integers(monkeypatch):
    """Over the residual stream's whole range (so the clamps engage), the compiled pooling and
    spreading give the integers of the torch operations CUDA runs."""
    path = convert_to_exact(reach_model()).infer[0].coarse
    limit = 1 << 19
    h = torch.randint(-limit, limit, (3, 16, 16, TINY.width), dtype=torch.int32)
    h[0] = limit - 1  # at the top, every addition clamps
    compiled = path(h.clone())
    monkeypatch.setattr(int8_kernels, "AVAILABLE", False)
    composed = path(h.clone())
    assert torch.equal(compiled, composed)
    assert int(compiled.max()) == limit - 1 and not torch.equal(compiled, h)
