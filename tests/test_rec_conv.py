"""REC with a convolutional model: a one-layer Gaussian Bit-Swap model (int8 nets, the
checkerboard stages and the linear channel context) coded exactly, object by object; its
Gaussian training terms; pinned bytes of a tiny such model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recarchive.archives.blocks import cut_blocks
from recarchive.codecs import CodecError, get_codec
from recarchive.codecs.base import BlockGeometry
from recarchive.codecs.rec import EXTRA_FROM_BITS, RecSettings, Shortest, fit_rec_tables
from recarchive.codecs.rec_models import ConvRecModel
from recarchive.datasets import cifar10_split, data_dir
from recarchive.models import zoo
from recarchive.models.bitswap import (
    BitSwapConfig,
    BitSwapModel,
    channel_shift,
    gaussian_kl_to_standard,
    space_to_depth,
)
from recarchive.models.exact_bitswap import exact_channel_shift
from recarchive.rec.index_code import IndexCode
from recarchive.training.bitswap import calibrate_activations
from tests.threads import torch_threads

TINY = BitSwapConfig(latent_layers=1, latent_channels=2, width=8, res_blocks=1,
                     pixel_context="checkerboard", arithmetic="int8", latent="gaussian",
                     channel_context="linear")
PINNED_MODEL = Path(__file__).parent / "data" / "rec-tiny-conv.safetensors"
PINNED_MODEL_SHA256 = "eebb87e3d60b164504ea57635f661443814bb94ccc0e95104319aa3240ddff93"
PINNED_PAYLOAD_SHA256 = "8fab55bfc75bdeb9801bc7e5fa448929290c2d5b0c441dba2a6e0a482f9cb39f"
# Since 2026-12-06 the encoder sends ORC's shortest candidate, not a sample (`selection`).
PINNED_CODELENGTH_PAYLOAD_SHA256 = (
    "b1fc9149dea8701d6b27d55263e50167480a3d77de0d7a38496de167bea32beb")


def tiny_model(seed: int = 0) -> BitSwapModel:
    """Untrained, with posteriors narrow enough to carry bits and nonzero colour
    coefficients and context, so every part of the coder is exercised."""
    torch.manual_seed(seed)
    model = BitSwapModel(TINY)
    with torch.no_grad():
        model.infer[0].log_scale.bias.fill_(-2.0)
        model.infer[0].mean.parametrizations.weight.original0.mul_(4.0)
        for out in (model.context.mean, model.context.log_scale):
            out.parametrizations.weight.original0.normal_(0.0, 0.5)
            out.bias.normal_(0.0, 0.1)
        model.generate[0].mean.bias[12:].fill_(0.5)  # G and B lean on R, B on G
    calibrate_activations(model, np.asarray(cifar10_split("validation")[:64]),
                          torch.device("cpu"))
    return model.eval()


def model_bytes(model: BitSwapModel) -> bytes:
    bare = zoo.load_bitswap_bytes(zoo.bitswap_model_bytes(model), None, "tiny")
    adapter = ConvRecModel(bare)
    fit = np.asarray(cifar10_split("train")[:64])
    tables = fit_rec_tables(adapter.posterior, adapter.to_pixels(fit),
                            RecSettings("orc", True, 24.0, 128))
    return zoo.bitswap_model_bytes(model, {"note": "untrained test model"}, rec_tables=tables)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "tiny-rec-conv.safetensors"
    path.write_bytes(model_bytes(tiny_model()))
    return path


@pytest.fixture(scope="module")
def blocks() -> np.ndarray:
    return np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")


def test_gaussian_kl_has_its_closed_form():
    mean, log_scale = torch.tensor([0.0, 1.0, -0.5]), torch.tensor([0.0, -1.0, 0.3])
    var = torch.exp(2 * log_scale)
    expected = 0.5 * (var + mean**2 - 1) - log_scale
    assert torch.allclose(gaussian_kl_to_standard(mean, log_scale), expected)
    assert float(gaussian_kl_to_standard(torch.zeros(1), torch.zeros(1))) == 0.0


def test_wider_latent_noise_changes_what_the_pixels_see_not_the_kl(blocks):
    model = tiny_model()
    x = torch.from_numpy(np.asarray(blocks[:8])).permute(0, 3, 1, 2).float()
    terms = {}
    for noise in (1.0, 1.0, 3.0):
        torch.manual_seed(5)
        terms.setdefault(noise, []).append(model.elbo_terms(x, latent_noise=noise))
    same, wide = terms[1.0], terms[3.0][0]
    assert torch.equal(same[0]["recon"], same[1]["recon"])  # seeded: the same sample
    assert torch.equal(wide["kl"], same[0]["kl"])
    assert float(wide["recon"].mean()) > float(same[0]["recon"].mean())
    with pytest.raises(ValueError, match="Gaussian"):
        BitSwapModel(BitSwapConfig(latent_layers=1, latent_channels=2, width=8,
                                   res_blocks=1)).elbo_terms(x, latent_noise=1.5)


def test_the_channel_shift_in_integers_is_the_float_shift_with_each_term_floored():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (3, 12, 4, 4)))
    k = torch.from_numpy(rng.integers(-4000, 4000, (3, 12, 4, 4)))
    exact = exact_channel_shift(k, x)
    as_float = channel_shift(k.double() / 2040, x.double()) * 16  # in 1/16 pixel
    below = as_float - exact  # each term floored on its own: G one, B two
    assert bool((below > -1e-9).all()) and bool((below[:, 4:8] < 1).all())
    assert bool((below[:, 8:] < 2).all()) and bool((below[:, 8:] >= 1).any())
    assert torch.equal(exact[:, :4], torch.zeros_like(exact[:, :4]))  # R reads nothing


def test_a_channel_context_model_codes_r_g_b_in_turn():
    assert TINY.coding_stages() == ((0, 3), (4, 7), (8, 11), (1, 2), (5, 6), (9, 10))
    with pytest.raises(ValueError):
        BitSwapConfig(image_channels=1, channel_context="linear")


def test_round_trip_whatever_the_batch_and_threads(model_file, blocks):
    codec = get_codec("rec", model=str(model_file))
    shard = codec.encode(blocks[:6])
    assert shard.params["latent_bits"] > 0
    with torch_threads(1):
        assert np.array_equal(get_codec("rec", model=str(model_file), net_batch=1)
                              .decode(shard), blocks[:6])
    assert get_codec("rec", model=str(model_file), net_batch=4).encode(blocks[:6]).payload \
        == shard.payload


def test_objects_decode_alone(model_file, blocks):
    geometry = BlockGeometry(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([1, 1, 1]),
                             np.array([2, 2, 1]))
    codec = get_codec("rec", model=str(model_file))
    shard = codec.encode(blocks[:3], geometry)
    offset, length = shard.units[1]
    alone = codec.decode_unit(shard.payload[offset : offset + length], 1, 3, shard.params)
    assert np.array_equal(alone, blocks[2:3])


def test_decoding_runs_the_context_net_once(model_file, blocks):
    codec = get_codec("rec", model=str(model_file))
    shard = codec.encode(blocks[:4])
    calls = []
    hook = codec.model.exact.context.register_forward_hook(lambda *_: calls.append(1))
    try:
        assert np.array_equal(codec.decode(shard), blocks[:4])
    finally:
        hook.remove()
    assert codec.model.context_stage == 3  # R, G, B of the first checkerboard stage first
    assert len(calls) == 1


def test_the_coder_spends_about_the_exact_models_rate(model_file, blocks):
    codec = get_codec("rec", model=str(model_file))
    rate = 8 * len(codec.encode(blocks).payload) / blocks.size
    exact = codec.exact_neg_elbo_bits_per_dim(blocks, samples=2)
    assert 0.9 < rate / exact < 1.15
    assert math.isfinite(codec.neg_elbo_bits_per_dim(blocks))


def test_bitswap_refuses_a_model_made_for_rec(model_file):
    with pytest.raises(CodecError):
        get_codec("bitswap", model=str(model_file))


def test_a_bitswap_model_without_rec_tables_is_refused():
    with pytest.raises(CodecError):
        get_codec("rec", model=str(Path(__file__).parent / "data" /
                                   "bitswap-tiny-int8.safetensors"))


@pytest.mark.parametrize(("selection", "pinned"), [
    ("sample", PINNED_PAYLOAD_SHA256), (None, PINNED_CODELENGTH_PAYLOAD_SHA256)])
def test_coded_bytes_are_those_earlier_releases_wrote(blocks, selection, pinned):
    """A pinned tiny model file and the payloads it coded, by sampling (until 2026-12-05) and
    by codelength (the default since): any change to the nets, tables, search, lanes or
    layout that changes the bytes fails here. One decoder reads both."""
    options = {} if selection is None else {"selection": selection}
    codec = get_codec("rec", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256,
                      **options)
    shard = codec.encode(blocks[:4], BlockGeometry.lone(4))
    assert zoo.sha256_of(shard.payload) == pinned
    assert shard.params["selection"] == (selection or "codelength")
    decoder = get_codec("rec", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256)
    assert np.array_equal(decoder.decode(shard), blocks[:4])
    x = space_to_depth(torch.from_numpy(blocks[:1]).permute(0, 3, 1, 2))
    assert x.shape == (1, 12, 16, 16)


def test_the_shipped_model_round_trips_real_images_near_its_rate():
    """`rec-cifar-2026-12-06b` (the convolutional model) loads under its pinned sha256 and
    codes real images exactly, 5-10 % over
    the exact −ELBO (the latent's code, and what the chosen candidate costs the pixels:
    recarchive/rec/README.md)."""
    images = np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")[:8]
    shipped = get_codec("rec", model="rec-cifar-2026-12-06b")
    assert shipped.model_sha256 == zoo.SHIPPED["rec-cifar-2026-12-06b"]
    shard = shipped.encode(images)
    assert np.array_equal(shipped.decode(shard), images)
    rate = 8 * len(shard.payload) / images.size
    assert 1.0 < rate / shipped.exact_neg_elbo_bits_per_dim(images, samples=1) < 1.25


def test_choosing_by_codelength_codes_real_images_shorter_than_sampling(blocks):
    """`rec-cifar-2026-12-06b` on 16 real images: ORC's shortest candidate codes them in fewer
    bytes than
    its sample (4.422 against 4.474 bits/dim with 0af19b27…), and more candidates where a
    block's KL outgrows its partition shorter still (4.399); the decoder reads them all
    alike."""
    sizes, steps = {}, {}
    decoder = get_codec("rec", model="rec-cifar-2026-12-06b")
    for selection, most in (("sample", 256), ("codelength", 256), ("codelength", 4096)):
        codec = get_codec("rec", model="rec-cifar-2026-12-06b", selection=selection,
                          max_candidates=most)
        shard = codec.encode(blocks)
        assert np.array_equal(decoder.decode(shard), blocks)
        sizes[selection, most] = len(shard.payload)
        steps[selection, most] = shard.params["search_steps_mean"]
    assert sizes["codelength", 256] < 0.995 * sizes["sample", 256]
    assert sizes["codelength", 4096] < 0.995 * sizes["codelength", 256]
    assert steps["codelength", 256] == 256 < steps["codelength", 4096]


def test_more_candidates_only_where_the_kl_outgrows_the_partition():
    shortest = Shortest(IndexCode(np.array([[0, 1 << 15, 1 << 16]])), max_candidates=4096)
    excess = np.array([-3.0, 0.0, EXTRA_FROM_BITS, EXTRA_FROM_BITS + 0.5, EXTRA_FROM_BITS + 2,
                       EXTRA_FROM_BITS + 9])
    assert shortest.candidates(excess, 256).tolist() == [256, 256, 256, 512, 1024, 4096]
    assert Shortest(shortest.code, max_candidates=256).candidates(excess, 256).max() == 256


def test_a_selection_the_settings_cannot_make_is_refused(model_file):
    with pytest.raises(CodecError, match="unknown REC selection"):
        get_codec("rec", model=str(model_file), selection="best")
    pfr = RecSettings("pfr", True, 32.0, 4096)
    train = np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")
    with pytest.raises(CodecError, match="ORC's fixed list"):
        get_codec("rec", model=str(model_file), settings=pfr, fit_images=train,
                  selection="codelength")
    assert get_codec("rec", model=str(model_file), settings=pfr,
                     fit_images=train).selection == "sample"


@pytest.mark.parametrize("name", ["rec-photo", "rec-photo-2026-12-06b"])
def test_the_photo_model_codes_a_photo_object_by_object(name):
    """The photo models (the latent causal one and the convolutional one before it) load under
    their pinned sha256 and code a real photo's blocks exactly, each of the two objects its own
    unit that decodes alone."""
    with Image.open(data_dir() / "fixtures" / "skimage_chelsea_CC0.png") as image:
        pixels = np.asarray(image.convert("RGB"))[:64, :96]
    blocks = cut_blocks(np.ascontiguousarray(pixels))  # 2×3 blocks
    geometry = BlockGeometry(np.array([0, 0, 0, 0, 0, 0, 1]), np.array([0, 1, 2, 3, 4, 5, 0]),
                             np.array([2] * 6 + [1]), np.array([3] * 6 + [1]))
    blocks = np.concatenate([blocks, blocks[:1, ::-1]])
    shipped = get_codec("rec", model=name)
    assert shipped.model_sha256 == zoo.SHIPPED[name]
    shard = shipped.encode(blocks, geometry)
    assert np.array_equal(shipped.decode(shard), blocks)
    offset, length = shard.units[0]
    alone = shipped.decode_unit(shard.payload[offset : offset + length], 6, 3, shard.params)
    assert np.array_equal(alone, blocks[:6])
    assert 8 * len(shard.payload) / blocks.size < 6.0  # below PNG's 8-bit raw by far
