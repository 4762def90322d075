"""Bit-Swap with a checkerboard pixel context: the second stage of each block's pixels is
coded given the first, exactly, whatever the batch size or threads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from recarchive.codecs import get_codec
from recarchive.codecs.bitswap import BitSwapCodec
from recarchive.datasets import data_dir
from recarchive.models import zoo
from recarchive.models.bitswap import BitSwapConfig, BitSwapModel, space_to_depth
from recarchive.models.exact_bitswap import LATENT_LAYOUTS, convert_to_exact
from recarchive.training.bitswap import initial_weights, load_initial_weights
from tests.threads import torch_threads

TINY = BitSwapConfig(latent_layers=2, latent_channels=4, width=8, res_blocks=1,
                     pixel_context="checkerboard")


def fixture_blocks(count: int = 16) -> np.ndarray:
    return np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")[:count]


def context_model(seed: int = 0) -> BitSwapModel:
    """A tiny model whose context is switched on (a fresh one starts switched off)."""
    torch.manual_seed(seed)
    model = BitSwapModel(TINY)
    with torch.no_grad():
        for out in (model.context.mean, model.context.log_scale):
            out.parametrizations.weight.original0.normal_(0.0, 0.5)
            out.bias.normal_(0.0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "tiny-context.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(context_model(), {"note": "untrained test model"}))
    return path


def codec(model_file: Path, **options) -> BitSwapCodec:
    return get_codec("bitswap", model=str(model_file), **options).rgb


def test_stages_split_each_cell_into_a_checkerboard():
    first, second = TINY.pixel_stages()
    assert first == (0, 3, 4, 7, 8, 11) and second == (1, 2, 5, 6, 9, 10)
    pixels = torch.arange(3 * 32 * 32).reshape(1, 3, 32, 32)
    s2d = space_to_depth(pixels)
    where = s2d[0, list(first)].flatten() % 1024
    rows, cols = where // 32, where % 32
    assert bool(((rows + cols) % 2 == 0).all())  # the first stage: one colour of the board
    assert BitSwapConfig().pixel_stages() == (tuple(range(12)),)
    with pytest.raises(ValueError, match="pixel context"):
        BitSwapConfig(pixel_context="raster")


@pytest.mark.parametrize("mode", ["bitswap", "bbans"])
def test_round_trip_with_other_batch_sizes_and_threads(model_file, mode):
    blocks = fixture_blocks(11)
    shard = codec(model_file, chains=4, mode=mode).encode(blocks)
    with torch_threads(1):
        decoded = codec(model_file, chains=4, net_batch=1).decode(shard)
    assert np.array_equal(decoded, blocks)
    again = codec(model_file, chains=4, mode=mode, net_batch=3).encode(blocks)
    assert again.payload == shard.payload


def test_the_context_changes_what_is_coded(model_file):
    """The second stage's parameters depend on the first stage's pixels, and only on them."""
    exact = zoo.load_bitswap(str(model_file)).exact
    x = space_to_depth(torch.from_numpy(fixture_blocks(4)).permute(0, 3, 1, 2).to(torch.int64))
    z1 = torch.randint(-2047, 2048, (4, TINY.latent_channels, 16, 16)) | 1
    first, second = (list(stage) for stage in TINY.pixel_stages())
    head = exact.pixel_likelihood(z1)
    given = exact.pixel_likelihood(z1, x)
    assert all(torch.equal(h[:, first], g[:, first]) for h, g in zip(head, given, strict=True))
    assert not torch.equal(head[0][:, second], given[0][:, second])
    other = x.clone()
    other[:, second] = 255 - other[:, second]  # the second stage itself is never read
    assert all(torch.equal(a, b) for a, b in zip(given, exact.pixel_likelihood(z1, other),
                                                 strict=True))


def test_exact_context_tracks_the_float_model():
    model = context_model()
    exact = convert_to_exact(model)
    layout = exact.layout
    x = space_to_depth(torch.from_numpy(fixture_blocks(4)).permute(0, 3, 1, 2).to(torch.int64))
    bins = torch.randint(0, layout.bins, (4, TINY.latent_channels, 16, 16))
    z1 = layout.net_input(bins)
    mean_fixed, _ = exact.pixel_likelihood(z1, x)
    with torch.no_grad():
        mean, _ = model.pixel_params(z1 * layout.input_scale, x.float())
    # Pixel means are coded in 1/16 of a level; the integer nets land within a few of them.
    assert (mean_fixed.double() - 16 * mean.double()).abs().max() < 4
    with pytest.raises(ValueError, match="pixel context"):
        convert_to_exact(model, LATENT_LAYOUTS["v1"])  # its nets read latents at 1/128


def test_a_model_file_with_an_unknown_context_is_refused(model_file):
    data = model_file.read_bytes()
    metadata = zoo._metadata(data)
    config = json.loads(metadata["config"])
    metadata["config"] = json.dumps({**config, "pixel_context": "raster"})
    future = safetensors.torch.save(safetensors.torch.load(data), metadata)
    with pytest.raises(zoo.ModelError, match="does not know"):
        zoo.load_bitswap_bytes(future, None, "future.safetensors")


def test_lanes_divide_each_stage(model_file):
    """A stage is half a block's subpixels (1,536): 1,024 lanes cannot split it."""
    coder = codec(model_file)
    assert coder._layout(4_000_000) == (64, 62500, 512)
    with pytest.raises(Exception, match="must divide"):
        codec(model_file, lanes_per_chain=1024)


def test_fine_tuning_adds_a_context_that_starts_switched_off():
    plain = zoo.load_bitswap("bitswap-photo-2026-11").float_model  # shipped, without one
    assert plain.context is None
    config = BitSwapConfig(**{**plain.config.to_dict(), "pixel_context": "checkerboard"})
    weights, _ = initial_weights("bitswap-photo-2026-11", config)
    model = BitSwapModel(config)
    load_initial_weights(model, weights)
    x = torch.from_numpy(fixture_blocks(8)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        torch.manual_seed(3)
        before = plain.bits_per_dim(x)
        torch.manual_seed(3)
        after = model.eval().bits_per_dim(x)
    assert torch.equal(before, after)
    loss = model.train().bits_per_dim(x).mean()
    loss.backward()
    assert float(model.context.mean.parametrizations.weight.original0.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="initial weights do not fit"):
        load_initial_weights(BitSwapModel(plain.config), model.state_dict())


# A small context model kept with the tests, and the payloads it codes the 16 fixture blocks
# to: as for the plain model (tests/test_bitswap_codec.py), never update these to make a
# change pass; archives coded with context models must still decode.
PINNED_MODEL = Path(__file__).parent / "data" / "bitswap-tiny-context.safetensors"
PINNED_MODEL_SHA256 = "87ed3bf98256f8e090354d37c07801f6faedac305ad50f63236280d3143fc8f2"
PINNED_PAYLOADS = {
    "bitswap": "d7b70632bc838c436be812118211436c594b25fd79d9e852b9788ae007ab1043",
    "bbans": "00154a5944d0819ad0e4cddd1c3d4c55f0017b1b7b515c7931b24592adcd8e05",
}


@pytest.mark.parametrize("mode", sorted(PINNED_PAYLOADS))
def test_coded_bytes_are_those_earlier_releases_wrote(mode):
    blocks = fixture_blocks()
    loaded = zoo.load_bitswap(str(PINNED_MODEL), PINNED_MODEL_SHA256)
    coder = BitSwapCodec(loaded.exact, loaded.sha256, mode=mode, chains=1, lanes_per_chain=16,
                         first_block="raw")
    shard = coder.encode(blocks)
    assert zoo.sha256_of(shard.payload) == PINNED_PAYLOADS[mode]
    assert np.array_equal(coder.decode(shard), blocks)
