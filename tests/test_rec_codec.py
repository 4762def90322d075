"""The REC codec: exact round trips whatever the batch size, threads or lanes; every REC
variant; the model file; refusals; the benchmark on MNIST digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recarchive.cli import main
from recarchive.codecs import CodecError, EncodedShard, get_codec
from recarchive.codecs.base import BlockGeometry
from recarchive.codecs.rec import RecCodec, RecSettings, fit_rec_tables
from recarchive.datasets import data_dir
from recarchive.models import zoo
from recarchive.models.vae import VAE, VAEConfig, convert_to_exact, flat_pixels, vae_model_bytes
from tests.threads import torch_threads

RGB = VAEConfig(3, 32, 32, latent_dims=6, hidden=16, layers=1)
MNIST = VAEConfig(1, 28, 28, latent_dims=6, hidden=16, layers=1)


def informative(config: VAEConfig) -> VAE:
    """An untrained model whose posteriors still carry a few bits per dimension, so blocks
    and partitions are non-trivial (a random init's posteriors sit on the prior)."""
    torch.manual_seed(0)
    model = VAE(config).eval()
    with torch.no_grad():
        model.encoder.mean.weight.mul_(40.0)
        model.encoder.log_scale.bias.fill_(-2.5)
        model.encoder.log_scale.weight.mul_(0.1)
    return model


def posterior_of(model: VAE):
    exact = convert_to_exact(model)
    return lambda pixels: exact.posterior(torch.from_numpy(pixels))


@pytest.fixture(scope="module")
def blocks() -> np.ndarray:
    return np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, blocks) -> Path:
    model = informative(RGB)
    tables = fit_rec_tables(posterior_of(model), flat_pixels(blocks[11:]).numpy(),
                            RecSettings("orc", True, 6.0, 64))
    path = tmp_path_factory.mktemp("zoo") / "tiny-rec.safetensors"
    path.write_bytes(vae_model_bytes(model, tables, {"note": "untrained test model"}))
    return path


def codec(model_file: Path, **options) -> RecCodec:
    return get_codec("rec", model=str(model_file), **options)


def test_tables_make_blocks_and_partitions(model_file):
    tables = codec(model_file).tables
    assert tables.num_blocks >= 2 and tables.bits.sum() > 0
    assert tables.cuts[0] == 0 and tables.cuts[-1] == RGB.latent_dims


def test_round_trip_with_other_batch_sizes_and_threads(model_file, blocks):
    encoder = codec(model_file)
    shard = encoder.encode(blocks[:11])
    assert shard.params["layout"] == "objects" and shard.params["latent_bits"] > 0
    with torch_threads(1):
        decoded = codec(model_file, net_batch=1).decode(shard)
    assert np.array_equal(decoded, blocks[:11])
    again = codec(model_file, net_batch=3).encode(blocks[:11])
    assert again.payload == shard.payload


def test_each_object_is_a_unit_that_decodes_alone(model_file, blocks):
    """Objects of several blocks and of one: each unit's bytes (and the shard's parameters)
    give its blocks back without the rest of the payload; the whole shard decodes to the same."""
    geometry = BlockGeometry(np.array([0, 0, 0, 0, 1, 2, 2]), np.array([0, 1, 2, 3, 0, 0, 1]),
                             np.array([2, 2, 2, 2, 1, 1, 1]), np.array([2, 2, 2, 2, 1, 2, 2]))
    c = codec(model_file)
    shard = c.encode(blocks[:7], geometry)
    assert len(shard.units) == 3 and shard.units[0][0] > 0
    ends = [offset + length for offset, length in shard.units]
    assert ends[-1] == len(shard.payload) and [o for o, _ in shard.units[1:]] == ends[:-1]
    firsts, counts = [0, 4, 5], [4, 1, 2]
    for (offset, length), first, count in zip(shard.units, firsts, counts, strict=True):
        unit = shard.payload[offset : offset + length]
        alone = codec(model_file).decode_unit(unit, count, 3, shard.params)
        assert np.array_equal(alone, blocks[first : first + count])
    assert np.array_equal(c.decode(shard), blocks[:7])
    # the same object coded in another shard, beside other objects: the same bytes
    other = c.encode(blocks[4:5])
    assert other.payload[other.units[0][0]:] == shard.payload[shard.units[1][0]:
                                                              shard.units[2][0]]
    # one-block objects cost about a byte more than their symbols (no header, no checksum)
    assert np.all(shard.block_bits > 0)


def test_a_damaged_unit_is_refused(model_file, blocks):
    """A unit carries no checksum of its own (the archive's index keeps one per unit), so a
    flipped bit that leaves every lane decoding back to empty goes unnoticed here; nearly every
    flip is refused all the same, and so is a cut unit."""
    c = codec(model_file)
    shard = c.encode(blocks[:2])
    offset, length = shard.units[1]
    refused = 0
    positions = range(length // 40, length, length // 40)
    for position in positions:
        unit = bytearray(shard.payload[offset : offset + length])
        unit[position] ^= 0x10
        try:
            c.decode_unit(bytes(unit), 1, 3, shard.params)
        except CodecError:
            refused += 1
    assert refused >= len(positions) - 2
    with pytest.raises(CodecError):
        c.decode_unit(shard.payload[offset : offset + length - 4], 1, 3, shard.params)


def test_shards_written_before_units_still_decode():
    """A shard of the interleaved layout (2026-12-02 .. 12-04: images dealt to lanes over one
    shared stack), written then by the pinned tiny model, decodes to the same blocks."""
    here = Path(__file__).parent / "data"
    c = get_codec("rec", model=str(here / "rec-tiny.safetensors"),
                  model_sha256="eff3875ccc85013d3acdf0300219beb41ac949b70f8a28861641931ee118f472")
    payload = (here / "rec-tiny-interleaved.bin").read_bytes()
    params = json.loads((here / "rec-tiny-interleaved.json").read_text())
    assert "layout" not in params and params["lanes"] == 2
    images = np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")[:3]
    assert np.array_equal(c.decode(EncodedShard(payload, 3, 3, params)), images)
    with pytest.raises(CodecError):
        c.decode_unit(payload, 3, 3, params)


def test_idle_lanes_cost_almost_nothing(model_file):
    """Lanes past a shard's end code n = 1 under the idle row and no bin bits: well under a
    tenth of a bit per block, where padding with a dummy image would cost a whole image."""
    c = codec(model_file)
    idle = c.tables.num_blocks
    assert c.code.symbol_bits(np.array([idle]), np.array([1]))[0] < 0.05
    busy = c.code.symbol_bits(np.arange(idle), np.ones(idle, np.int64))
    assert np.all(busy > c.code.symbol_bits(np.array([idle]), np.array([1]))[0])


@pytest.mark.parametrize("settings", [RecSettings("pfr", True, 6.0, 1 << 16),
                                      RecSettings("pfr", False, 6.0, 1 << 12),
                                      RecSettings("orc", False, 6.0, 64)])
def test_every_rec_variant_round_trips(model_file, blocks, settings):
    encoder = codec(model_file, settings=settings, fit_images=blocks[11:], lanes=3)
    shard = encoder.encode(blocks[:5])
    assert shard.params["rec"]["algorithm"] == settings.algorithm
    assert np.array_equal(encoder.decode(shard), blocks[:5])
    # The shipped tables are other tables: that codec refuses the shard instead of garbling it.
    with pytest.raises(CodecError):
        codec(model_file).decode(shard)


def test_other_settings_need_fitting_images(model_file):
    with pytest.raises(CodecError):
        codec(model_file, settings=RecSettings("pfr", False, 6.0, 64))


def test_decoder_from_model_bytes_as_an_archive_carries_them(model_file, blocks):
    encoder = codec(model_file)
    shard = encoder.encode(blocks[:3])
    decoder = get_codec("rec", model_bytes=encoder.model_bytes(),
                        model_sha256=encoder.model_sha256)
    assert np.array_equal(decoder.decode(shard), blocks[:3])
    assert encoder.channel_layouts == (3,) and encoder.name == "rec"


def test_damaged_payload_is_refused(model_file, blocks):
    shard = codec(model_file).encode(blocks[:2])
    broken = bytearray(shard.payload)
    broken[len(broken) // 2] ^= 0xFF
    with pytest.raises(CodecError):
        codec(model_file).decode(EncodedShard(bytes(broken), 2, 3, shard.params))


def test_wrong_layout_is_refused(model_file):
    with pytest.raises(CodecError):
        codec(model_file).encode(np.zeros((2, 32, 32, 1), np.uint8))
    with pytest.raises(CodecError):
        codec(model_file).encode(np.zeros((2, 28, 28, 3), np.uint8))


def test_model_file_is_pinned_by_hash(model_file):
    data = model_file.read_bytes()
    with pytest.raises(zoo.ModelError):
        get_codec("rec", model=str(model_file), model_sha256="0" * 64)
    damaged = bytearray(data)
    damaged[-3] ^= 1
    with pytest.raises(zoo.ModelError):
        get_codec("rec", model_bytes=bytes(damaged), model_sha256=zoo.sha256_of(data))


@pytest.fixture(scope="module")
def mnist_file(tmp_path_factory) -> Path:
    model = informative(MNIST)
    digits = np.load(data_dir() / "fixtures" / "mnist_test_first16_uint8.npy")[..., None]
    tables = fit_rec_tables(posterior_of(model), flat_pixels(digits[8:]).numpy(),
                            RecSettings("orc", True, 6.0, 64))
    path = tmp_path_factory.mktemp("zoo") / "tiny-mnist.safetensors"
    path.write_bytes(vae_model_bytes(model, tables))
    return path


def test_mnist_benchmark_codes_whole_digits(mnist_file, capsys):
    assert main(["bench", "codec", "--json", "--codec", "rec", "--model", str(mnist_file),
                 "--dataset", "mnist-test", "--limit", "7", "--shard-blocks", "4",
                 "--chains", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["roundtrip_exact"] is True and result["shards"] == 2
    assert result["initial_bits_per_shard"] == 0 and result["latent_bits_per_image"] > 0
    # An untrained decoder: far worse than PNG, but coded at about its own (exact) −ELBO.
    assert result["bits_per_dim"] > 1.0 and result["neg_elbo_bits_per_dim"] > 1.0
    # (below it by ~7 % here: the untrained posteriors' KL is what REC spends least on, and
    # units carry no headers; the interleaved layout's two message headers hid that before)
    assert 0.88 < result["bits_per_dim"] / result["exact_neg_elbo_bits_per_dim"] < 1.05
    assert result["rec_overhead_bits_per_dim"] == pytest.approx(
        result["bits_per_dim"] - result["neg_elbo_bits_per_dim"])
    assert 0 < result["rec_search_share"] < 1
    assert 1 < result["png_bits_per_dim"] < 8 and result["webp_bits_per_dim"] > 0


def test_rec_sweep_runs_each_variant_on_the_same_images(mnist_file):
    from recarchive.bench.codec_bench import run_rec_sweep

    variants = [{"algorithm": "orc", "partitioned": False, "block_bits": 6.0, "samples": 16,
                 "selection": "sample"},
                {"algorithm": "orc", "partitioned": False, "block_bits": 6.0, "samples": 16},
                {"algorithm": "pfr", "partitioned": True, "block_bits": 6.0, "samples": 4096}]
    rows = run_rec_sweep(str(mnist_file), "mnist-test", 3, variants, fit_images=20)
    assert [r["rec"] for r in rows] == variants
    assert all(r["roundtrip_exact"] and r["images"] == 3 for r in rows)
    assert rows[0]["search_steps_mean"] <= 16  # ORC's budget
    assert rows[1]["search_steps_mean"] > 16  # by codelength: more where the KL outgrows it


def test_archive_round_trip_with_rec(model_file, tmp_path):
    """`--codec rec` in the archive: the model is copied in and restore uses that copy."""
    from recarchive.archives import ArchiveSettings, archive, restore
    from recarchive.archives.format import MANIFEST
    from recarchive.storage import open_location
    from tests.test_archive_helpers import assert_same_raster, demo_objects, make_bucket_on

    objects = {k: v for k, v in demo_objects(with_photos=False).items() if "cifar" in k}
    make_bucket_on(open_location(str(tmp_path)).fs, str(tmp_path / "src"), objects)
    archive(str(tmp_path / "src"), str(tmp_path / "arch"),
            ArchiveSettings(codec="rec", codec_options={"model": str(model_file)}))
    manifest = json.loads((tmp_path / "arch" / MANIFEST).read_text())
    assert [m["sha256"] for m in manifest["models"]] == [zoo.sha256_of(model_file.read_bytes())]
    model_file_copy = model_file.with_suffix(".moved")
    model_file.rename(model_file_copy)  # restore must not need the original file
    try:
        restore(str(tmp_path / "arch"), str(tmp_path / "out"))
    finally:
        model_file_copy.rename(model_file)
    for key, data in objects.items():
        assert_same_raster(data, (tmp_path / "out" / key).read_bytes(), key)


@pytest.mark.parametrize("name", ["rec-mnist", "rec-cifar-mlp"])
def test_shipped_models_round_trip_near_their_elbo(name):
    """The zoo's files load under their pinned sha256 and code real images exactly, at about
    the exact model's −ELBO (REC's per-block overhead and the ANS heads on top)."""
    fixtures = data_dir() / "fixtures"
    if name == "rec-mnist":
        images = np.load(fixtures / "mnist_test_first16_uint8.npy")[..., None]
    else:
        images = np.load(fixtures / "cifar10_test_first16_uint8_NHWC.npy")
    shipped = get_codec("rec", model=name)
    assert shipped.model_sha256 == zoo.SHIPPED[name]
    shard = shipped.encode(images)
    assert np.array_equal(shipped.decode(shard), images)
    rate = 8 * len(shard.payload) / images.size
    assert 1.0 < rate / shipped.exact_neg_elbo_bits_per_dim(images) < 1.08
