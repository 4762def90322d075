"""REC with the latent causal model (`models.causal_latent`): a latent per block sent by REC,
the pixels coded by the causal model reading it, one unit per object; exact whatever the
batch, the company or the threads; pinned bytes of a tiny such model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recarchive.cli import main
from recarchive.codecs import CodecError, get_codec
from recarchive.codecs.base import BlockGeometry
from recarchive.codecs.rec import RecSettings, fit_rec_tables
from recarchive.codecs.rec_models import CausalRecModel
from recarchive.datasets import cifar10_split, data_dir
from recarchive.models import zoo
from recarchive.models.causal import CausalConfig, CausalPixelModel, with_latent, with_neighbours
from recarchive.models.causal_latent import (
    CausalLatentVAE,
    latent_feature_ints,
    pixel_latents,
)
from recarchive.training.causal import CausalSettings, train
from tests.threads import torch_threads

TINY = CausalConfig(width=8, mixtures=2, neighbours=12, latent_channels=2)
PINNED_MODEL = Path(__file__).parent / "data" / "rec-tiny-causal.safetensors"
PINNED_MODEL_SHA256 = "69519295f25c9945feab198f09f99e07fb40cfb1926c240e9aca7788426f5efe"
PINNED_PAYLOAD_SHA256 = "3a663dd8f9c382012deafaf4100565cca18660909e487f4ae53b60e4cb22023a"


def tiny_model(seed: int = 0) -> CausalLatentVAE:
    """Untrained, with posteriors narrow enough to carry bits and latent weights large enough
    for the pixels to depend on them."""
    torch.manual_seed(seed)
    model = CausalLatentVAE(TINY, encoder_width=8)
    with torch.no_grad():
        last = model.encoder.net[-1]
        last.weight.normal_(0.0, 0.5)
        last.bias[:TINY.latent_channels].zero_()
        last.bias[TINY.latent_channels:].fill_(-2.0)
        for net in model.pixels.colours:
            features = TINY.inputs - TINY.latent_channels
            net.linear_mean.weight[:, features:TINY.inputs].normal_(0.0, 0.5)
    return model.eval()


def model_bytes(model: CausalLatentVAE) -> bytes:
    bare = CausalRecModel(zoo.load_causal_latent_bytes(zoo.causal_latent_model_bytes(model),
                                                       None, "tiny"))
    fit = np.asarray(cifar10_split("train")[:64])
    tables = fit_rec_tables(bare.posterior, bare.to_pixels(fit),
                            RecSettings("orc", True, 24.0, 128))
    return zoo.causal_latent_model_bytes(model, {"note": "untrained test model"},
                                         rec_tables=tables)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "tiny-rec-causal.safetensors"
    path.write_bytes(model_bytes(tiny_model()))
    return path


@pytest.fixture(scope="module")
def blocks() -> np.ndarray:
    return np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")


def units_of(shard) -> list[bytes]:
    return [shard.payload[start:start + length] for start, length in shard.units]


def test_with_latent_keeps_the_function_at_a_zero_latent():
    """A causal model given latent inputs codes exactly as before while the latent reads 0
    (the training's warm start), and widening its window still keeps the function."""
    torch.manual_seed(1)
    base = CausalPixelModel(CausalConfig(width=8, mixtures=2, neighbours=12))
    widened = with_latent(base, 3)
    assert widened.config.latent_channels == 3
    crops = torch.from_numpy(np.asarray(cifar10_split("validation")[:4]).copy())
    vae = CausalLatentVAE(widened.config)
    vae.pixels = widened
    with torch.no_grad():
        before = float(base.neg_log_likelihood_bits(crops))
        at_zero = float(vae.pixel_bits(crops, torch.zeros(4, 3, 4, 4)))
        moved = float(vae.pixel_bits(crops, torch.full((4, 3, 4, 4), 64.0)))
        vae.pixels = with_neighbours(widened, 24)
        wider = float(vae.pixel_bits(crops, torch.full((4, 3, 4, 4), 64.0)))
    assert at_zero == pytest.approx(before, rel=1e-6)
    assert moved != pytest.approx(before, rel=1e-6)  # the latent is read
    assert wider == pytest.approx(moved, rel=1e-6)
    with pytest.raises(ValueError, match="reads a latent already"):
        with_latent(widened, 2)


def test_latent_features_are_floor_divisions_clamped():
    z24 = torch.tensor([0, 1, -1, (1 << 18) - 1, 1 << 18, -(1 << 18), -(1 << 18) - 1,
                        100 << 24, -(100 << 24)])
    assert latent_feature_ints(z24).tolist() == [0, 0, -1, 0, 1, -1, -2, 512, -512]
    cells = torch.arange(2 * 1 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    per_pixel = pixel_latents(cells)
    assert per_pixel.shape == (2 * 1024, 1)
    assert per_pixel[0, 0] == 0 and per_pixel[31, 0] == 3  # row 0: cells 0..3
    assert per_pixel[8 * 32, 0] == 4 and per_pixel[1024 + 1023, 0] == 31


def test_roundtrip_units_and_batches_are_exact(model_file, blocks):
    """Every object decodes from its unit alone, with the whole shard, with other objects in
    another order, and under other thread counts, to the same pixels; the latents carry bits."""
    codec = get_codec("rec", model=str(model_file))
    grids = [(1, 1), (1, 2), (1, 1), (2, 2)] + [(1, 1)] * 8  # objects' block grids
    geometry = BlockGeometry(
        np.repeat(np.arange(len(grids)), [r * c for r, c in grids]),
        np.concatenate([np.arange(r * c) for r, c in grids]),
        np.repeat([r for r, _ in grids], [r * c for r, c in grids]),
        np.repeat([c for _, c in grids], [r * c for r, c in grids]))
    shard = codec.encode(blocks, geometry)
    assert shard.params["latent_bits"] > 16 * 4  # the latent is sent, not idle
    assert np.array_equal(codec.decode(shard), blocks)
    units = units_of(shard)
    starts = [0, 1, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    for k in (0, 1, 3):
        alone = codec.decode_unit(units[k], starts[k + 1] - starts[k], 3, shard.params)
        assert np.array_equal(alone, blocks[starts[k]:starts[k + 1]])
    with torch_threads(1):
        again = get_codec("rec", model=str(model_file)).encode(blocks, geometry)
    assert again.payload == shard.payload


def test_damaged_unit_is_refused(model_file, blocks):
    codec = get_codec("rec", model=str(model_file))
    shard = codec.encode(blocks[:2])
    unit = bytearray(units_of(shard)[0])
    unit[len(unit) // 2] ^= 0x40
    with pytest.raises(CodecError, match="damaged"):
        codec.decode_unit(bytes(unit), 1, 3, shard.params)


def test_exact_rate_matches_the_payload(model_file, blocks):
    """What the coder spends is the exact model's rate plus a few bytes per unit: the pixels'
    ideal bits given the latents sent plus the latents' bits."""
    codec = get_codec("rec", model=str(model_file))
    shard = codec.encode(blocks)
    atoms = codec.chosen_latents(blocks)
    ideal = codec.model.pixel_bits(codec.model.to_pixels(blocks), atoms).sum() + \
        shard.params["latent_bits"]
    assert 8 * len(shard.payload) == pytest.approx(ideal, abs=16 * 80)
    assert 8 * len(shard.payload) > ideal


def test_benchmark_reports_rec_keys(model_file, capsys):
    """`bench codec --codec rec` with a latent causal model: exact, its rate near the exact
    model's −ELBO (the units' heads above it), REC's keys and the search's share."""
    assert main(["bench", "codec", "--json", "--codec", "rec", "--model", str(model_file),
                 "--dataset", "cifar10-test", "--limit", "6", "--shard-blocks", "4",
                 "--no-baselines"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["roundtrip_exact"] is True and result["shards"] == 2
    assert result["latent_bits_per_image"] > 16
    assert 1.0 < result["bits_per_dim"] / result["exact_neg_elbo_bits_per_dim"] < 1.05
    assert result["rec_overhead_bits_per_dim"] == pytest.approx(
        result["bits_per_dim"] - result["neg_elbo_bits_per_dim"])
    assert 0 < result["rec_search_share"] < 1


def test_training_a_latent_model_learns(tmp_path):
    """`recarchive train causal --latent-channels` trains the latent model from a causal file
    and writes a checkpoint whose validation −ELBO is finite and recorded."""
    base = CausalPixelModel(CausalConfig(width=8, mixtures=2, neighbours=12))
    start = tmp_path / "start.safetensors"
    start.write_bytes(zoo.causal_model_bytes(base))
    settings = CausalSettings(dataset="cifar10", width=8, mixtures=2, neighbours=12,
                              init_from=str(start), steps=4, batch_size=2,
                              validate_every=4, checkpoint_every=4, validation_images=8,
                              latent_channels=2, kl_warmup_steps=2, warmup_steps=1)
    checkpoint = train(settings, tmp_path / "run", log=lambda line: None)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["step"] == 4 and state["config"]["latent_channels"] == 2
    assert np.isfinite(state["history"][-1]["val_bits_per_dim_ema"])


def test_the_shipped_model_codes_real_images_alone_below_jpegxl(blocks):
    """`rec-cifar` loads under its pinned sha256 and codes 16 CIFAR-10 test images exactly,
    each its own unit, near its exact −ELBO (the latent it sends is ~0 bits: it collapsed to
    the prior in training, `recarchive/rec/README.md`) and far below JPEG-XL's ~4.1."""
    codec = get_codec("rec", model="rec-cifar")
    assert codec.model_sha256 == zoo.SHIPPED["rec-cifar"]
    shard = codec.encode(blocks)
    assert len(shard.units) == 16 and np.array_equal(codec.decode(shard), blocks)
    rate = 8 * len(shard.payload) / blocks.size
    assert shard.params["latent_bits"] < 16
    assert 3.0 < rate < 4.0
    assert rate == pytest.approx(codec.exact_neg_elbo_bits_per_dim(blocks, samples=1), rel=0.02)


def test_pinned_payload():
    """This release writes, and reads back, exactly the bytes pinned for the tiny model."""
    assert zoo.sha256_of(PINNED_MODEL.read_bytes()) == PINNED_MODEL_SHA256
    codec = get_codec("rec", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256)
    images = np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")[:4]
    shard = codec.encode(images)
    assert zoo.sha256_of(shard.payload) == PINNED_PAYLOAD_SHA256
    assert np.array_equal(codec.decode(shard), images)
