"""The `causal` codec: exact round trips whatever the layout, batch or threads, the integer
model agreeing with the float one it came from, its exact mixtures, pinned payloads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recarchive.archives.blocks import cut_blocks
from recarchive.codecs import CodecError, get_codec
from recarchive.codecs.base import BlockGeometry, EncodedShard
from recarchive.codecs.causal import ShardCanvas
from recarchive.datasets import data_dir
from recarchive.entropy import mixture
from recarchive.models import causal_adapt, zoo
from recarchive.models.causal import (
    NEIGHBOURHOOD,
    WINDOW,
    CausalConfig,
    CausalPixelModel,
    crop_canvas,
    wave_step,
    with_neighbours,
    with_width,
)
from recarchive.models.exact_bitswap import PIXEL_TABLE_SHA256, pinned_table, pixel_table_spec
from tests.photo_blocks import grid_geometry, photo, two_images
from tests.threads import torch_threads

# a width-8 model as initialized (torch seed 0), and what it codes `two_images` to
PINNED_MODEL = Path(__file__).parent / "data" / "causal-tiny.safetensors"
PINNED_MODEL_SHA256 = "4ceb2c22fd8fb15dfc64db7c899723a5e2b63df3fa88de68cbd374f76a30c638"
# adaptation 0 (shards written before it existed), 1 (the tables), 2 (and the residual
# histograms) and 3 (their contexts by the neighbours' errors, and the cross-colour ones)
PINNED_PAYLOAD_SHA256 = {
    0: "c188c7e4a0550f759a3db9ef72ea94433aec073bb01d5623919e0fdc9714e61a",
    1: "a3ad4ccba1a5b75fc641b54b29a13ebfde8a69438764487a354e5405e229e5c5",
    2: "3b6486bb806051fbc395ec7f09804e9286183cda1d6afb33fc18aefcef21ea85",
    3: "e1b655df1c33670cab91b1dd10bdc9aa923f45703474b7d0ab8e5a8672b87467"}
# adaptation 2, `padded_images` (padding repeated, not coded)
PINNED_PADDED_PAYLOAD_SHA256 = "7235b9892987a08c87044c06246dfdfac9169f0ab36266d806efa14fbdd52958"
ADAPT_TABLE_SHA256 = {
    "EXPECTED_ABS": "9805b392f0a3189c199f0dcc6e1d04b4cf8ea1521b48b2a5c9fb95e7f99be59c",
    "RATIO_THRESHOLDS": "2e5b7255ff67a5df3fbb0bdb20c3243bbaa96cb8268f69815b31b6cf69fb40a1"}
EXP_TABLE_SHA256 = "0edc8efe4128e6d56644a956b85e7c2637b48139d764a9354162f68e7b19a527"


def tiny_model_file(tmp_path, seed: int = 0, width: int = 8) -> str:
    torch.manual_seed(seed)
    path = tmp_path / f"causal-{seed}-{width}.safetensors"
    path.write_bytes(zoo.causal_model_bytes(CausalPixelModel(CausalConfig(width=width))))
    return str(path)


def cifar16() -> np.ndarray:
    return np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")


def test_window_is_causal_for_the_wavefront():
    # what the first models read, in this order: their files say nothing of it
    assert WINDOW == ((0, -1), (0, -2), (-1, -1), (-1, 0), (-1, 1), (-2, 0), (-2, -1),  # noqa: SIM300
                      (-2, 1), (-1, -2), (0, -3), (-2, 2), (-3, 0))
    assert NEIGHBOURHOOD[:12] == WINDOW
    assert len(set(NEIGHBOURHOOD)) == len(NEIGHBOURHOOD)
    for dy, dx in NEIGHBOURHOOD:
        assert int(wave_step(torch.tensor(dy), torch.tensor(dx))) < 0


def test_lone_blocks_and_whole_images_round_trip(tmp_path):
    codec = get_codec("causal", model=tiny_model_file(tmp_path))
    images = cifar16()
    shard = codec.encode(images)
    assert np.array_equal(codec.decode(shard), images)
    nothing = codec.encode(images[:0])
    assert codec.decode(nothing).shape == (0, 32, 32, 3)
    blocks, geometry = two_images()
    shard = codec.encode(blocks, geometry)
    assert np.array_equal(codec.decode(shard), blocks)
    # the geometry travels in the shard's parameters: a fresh codec decodes it alone
    again = get_codec("causal", model=tiny_model_file(tmp_path))
    assert np.array_equal(again.decode(EncodedShard(shard.payload, shard.num_blocks, 3,
                                                    shard.params)), blocks)


def test_a_shard_holding_part_of_an_image_decodes_alone(tmp_path):
    """The second and third block rows of a 3×4 image (what a shard cut between rows holds),
    then a lone block: the missing row reads as unknown in encoder and decoder alike."""
    codec = get_codec("causal", model=tiny_model_file(tmp_path))
    blocks, geometry = two_images()
    part = slice(4, 13)
    shard = codec.encode(np.ascontiguousarray(blocks[part]), geometry[part])
    assert np.array_equal(codec.decode(shard), blocks[part])


def padded_images() -> tuple[np.ndarray, BlockGeometry]:
    """A 90×115 photo (its 3×4 blocks padded at the bottom and right) and a 40×20 one (2×1
    blocks), with the sizes an archive's geometry gives."""
    first, second = photo(90, 115), photo(40, 20)[::-1]
    geometry = grid_geometry((3, 4), (2, 1))
    sizes = np.repeat([[90, 115], [40, 20]], [12, 2], axis=0)
    return (np.concatenate([cut_blocks(first), cut_blocks(second)]),
            BlockGeometry(geometry.objects, geometry.cells, geometry.rows, geometry.cols,
                          sizes[:, 0], sizes[:, 1]))


def test_padding_the_geometry_knows_is_repeated_not_coded(tmp_path):
    """With the objects' sizes, the padding past their edges costs nothing and comes back as
    `cut_blocks` made it (also in a shard holding only an image's lower block rows); without
    them it is coded like any pixel, as shards written before this were."""
    codec = get_codec("causal", model=tiny_model_file(tmp_path))
    blocks, geometry = padded_images()
    repeated = codec.encode(blocks, geometry)
    assert repeated.params["padding"] == "repeated"
    assert np.array_equal(codec.decode(repeated), blocks)
    lone = BlockGeometry(geometry.objects, geometry.cells, geometry.rows, geometry.cols)
    coded = codec.encode(blocks, lone)
    assert "padding" not in coded.params
    assert np.array_equal(codec.decode(coded), blocks)
    assert len(repeated.payload) < 0.97 * len(coded.payload)
    # the 90×115 image's last block: 26 of its 32 rows and 19 of its columns are real
    assert repeated.block_bits[11] < 0.6 * coded.block_bits[11]
    part = slice(4, 14)
    lower = codec.encode(np.ascontiguousarray(blocks[part]), geometry[part])
    assert lower.params["padding"] == "repeated"
    assert np.array_equal(codec.decode(lower), blocks[part])
    whole, _ = two_images()
    unpadded = codec.encode(whole[:12], BlockGeometry(*(a[:12] for a in (
        geometry.objects, geometry.cells, geometry.rows, geometry.cols)), np.full(12, 96),
        np.full(12, 128)))
    assert "padding" not in unpadded.params  # sizes that leave no padding change nothing


def test_padding_that_is_not_the_edges_repeated_is_refused(tmp_path):
    codec = get_codec("causal", model=tiny_model_file(tmp_path))
    blocks, geometry = padded_images()
    blocks = blocks.copy()
    blocks[11, 31, 31] += 1  # the 90×115 image's last block, past both its edges
    with pytest.raises(CodecError, match="block 11 has padding"):
        codec.encode(blocks, geometry)


def test_padding_parameter_must_match_the_geometry(tmp_path):
    codec = get_codec("causal", model=tiny_model_file(tmp_path))
    blocks, geometry = padded_images()
    shard = codec.encode(blocks, geometry)
    for params, says in ((dict(shard.params, padding="mirrored"), "'mirrored'"),
                         (dict(shard.params, geometry=[[12, 3, 4, 0], [2, 2, 1, 0]]), "none")):
        forged = EncodedShard(shard.payload, shard.num_blocks, 3, params)
        with pytest.raises(CodecError, match=says):
            codec.decode(forged)


def test_bytes_do_not_depend_on_threads_and_decoding_matches(tmp_path):
    model = tiny_model_file(tmp_path)
    blocks, geometry = two_images()
    with torch_threads(1):
        one = get_codec("causal", model=model).encode(blocks, geometry)
    with torch_threads(2):
        two = get_codec("causal", model=model).encode(blocks, geometry)
        assert np.array_equal(get_codec("causal", model=model).decode(one), blocks)
    assert one.payload == two.payload


def test_exact_model_codes_what_the_float_model_predicts(tmp_path):
    """The integer conversion keeps the float model's units: coded bits within 1 % of the
    float model's log-likelihood on the same layout (a unit slip costs far more)."""
    torch.manual_seed(3)
    model = CausalPixelModel(CausalConfig(width=16))
    # train a few steps so the heads are far from their initial values
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    crops = torch.from_numpy(photo(64, 64))[None]
    for _ in range(40):
        loss = model.neg_log_likelihood_bits(crops) / crops.numel()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path / "trained.safetensors"
    path.write_bytes(zoo.causal_model_bytes(model.eval()))
    codec = get_codec("causal", model=str(path), adapt=0)
    blocks, geometry = two_images()
    shard = codec.encode(blocks, geometry)
    coded = 8 * len(shard.payload) / blocks.size
    ideal = shard.block_bits.sum() / blocks.size  # −log2 of the exact model's probabilities
    float_bits = codec.neg_elbo_bits_per_dim(blocks, geometry)
    assert float_bits < 7.0  # it learnt something
    assert abs(ideal - float_bits) < 0.01 * float_bits, (ideal, float_bits)
    assert 0 < coded - ideal < 0.005 * coded, (coded, ideal)  # the lanes' heads
    # adapting to the pictures: fewer bits than the model alone, back exactly
    adapted = get_codec("causal", model=str(path))
    adapted_shard = adapted.encode(blocks, geometry)
    assert len(adapted_shard.payload) < 0.97 * len(shard.payload)
    assert np.array_equal(adapted.decode(adapted_shard), blocks)


def test_float_model_reads_crops_as_the_codec_reads_a_lone_image(tmp_path):
    """Training's crop canvas and the codec's shard canvas give one picture the same bits."""
    path = tiny_model_file(tmp_path, seed=5)
    codec = get_codec("causal", model=path)
    image = photo(64, 96)
    blocks = np.ascontiguousarray(image.reshape(2, 32, 3, 32, 3).transpose(0, 2, 1, 3, 4)
                                  .reshape(6, 32, 32, 3))
    shard_bits = codec.neg_elbo_bits_per_dim(blocks, grid_geometry((2, 3)))
    loaded = zoo.load_causal(path)
    with torch.no_grad():
        crop_bits = float(loaded.float_model.neg_log_likelihood_bits(
            torch.from_numpy(image)[None])) / image.size
    assert abs(shard_bits - crop_bits) < 1e-6


def test_canvas_keeps_objects_apart():
    """Every neighbour a pixel reads is in its own object's canvas or in an empty margin."""
    blocks, geometry = two_images()
    canvas = ShardCanvas.lay_out(geometry)
    owner = np.full(canvas.size, -1)
    for b in range(len(geometry)):
        owner[canvas.pixel_index[b]] = geometry.objects[b]
    for b in range(len(geometry)):
        for dy, dx in NEIGHBOURHOOD:
            near = owner[canvas.pixel_index[b] + dy * canvas.width + dx]
            assert np.all((near == -1) | (near == geometry.objects[b]))
    assert canvas.steps.max() == 4 * 32 - 1 + 2 * (3 * 32 - 1)  # the 3×4 image's last pixel


def test_damaged_payloads_are_refused(tmp_path):
    codec = get_codec("causal", model=tiny_model_file(tmp_path))
    images = cifar16()[:2]
    shard = codec.encode(images)
    cut = EncodedShard(shard.payload[: len(shard.payload) // 2], 2, 3, shard.params)
    with pytest.raises(CodecError):
        codec.decode(cut)
    wrong_lanes = EncodedShard(shard.payload, 2, 3, {**shard.params, "lanes": 7})
    with pytest.raises(CodecError, match="lanes"):
        codec.decode(wrong_lanes)


def test_model_file_is_checked(tmp_path):
    path = tiny_model_file(tmp_path)
    data = Path(path).read_bytes()
    with pytest.raises(zoo.ModelError, match="expected"):
        zoo.load_causal_bytes(data, "0" * 64, "test file")
    with pytest.raises(zoo.ModelError, match="causal"):
        zoo.load_bitswap_bytes(data, None, "test file")


def test_mixture_weights_and_intervals_are_exact():
    table = pinned_table(pixel_table_spec(), PIXEL_TABLE_SHA256, "pixel")
    rng = np.random.default_rng(0)
    n = 64
    logits = rng.integers(-400, 400, (n, 3))
    logits[0] = [0, -10_000, -10_000]  # two components far below: weight 0
    weights = mixture.mixture_weights(logits)
    assert np.all(weights.sum(1) == 1 << mixture.WEIGHT_BITS) and np.all(weights >= 0)
    assert list(weights[0]) == [1 << mixture.WEIGHT_BITS, 0, 0]
    located = [table.locate(rng.integers(0, 4081, n), rng.integers(0, 100, n))
               for _ in range(3)]
    mix = mixture.TableMixture(table, located, weights)
    every = np.arange(257)
    cum = np.stack([mix.cumulative(np.full(n, x)) for x in every], 1)
    assert np.all(cum[:, 0] == 0) and np.all(cum[:, -1] == 1 << mixture.PRECISION)
    assert np.all(np.diff(cum, axis=1) >= 1)  # every symbol codable
    slots = rng.integers(0, 1 << mixture.PRECISION, n)
    found = mix.find(slots)
    start, freq = mix.interval(found)
    assert np.all((start <= slots) & (slots < start + freq))


def test_exp_table_is_pinned():
    """Mixture weights come from this table: it must be the same integers everywhere."""
    assert mixture.EXP_TABLE[0] == 1 << mixture.EXP_BITS
    assert zoo.sha256_of(mixture.EXP_TABLE.astype("<i8").tobytes()) == EXP_TABLE_SHA256


def pinned_images(adapt: int) -> tuple[np.ndarray, BlockGeometry]:
    """`two_images`; with adaptation also a 5×4 image, large enough for tables of its own."""
    blocks, geometry = two_images()
    if not adapt:
        return blocks, geometry
    return (np.concatenate([blocks, cut_blocks(photo(160, 128))]),
            grid_geometry((3, 4), (2, 2), (5, 4)))


@pytest.mark.parametrize("adapt", [0, 1, 2, 3])
def test_pinned_payload(adapt):
    """This release writes, and reads back, exactly the bytes pinned for the tiny model, with
    and without adaptation: an archive written today decodes tomorrow, and one written before
    adaptation existed (no `adapt` parameter) decodes as it was written."""
    codec = get_codec("causal", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256,
                      adapt=adapt)
    blocks, geometry = pinned_images(adapt)
    shard = codec.encode(blocks, geometry)
    assert zoo.sha256_of(shard.payload) == PINNED_PAYLOAD_SHA256[adapt]
    assert ("adapt" in shard.params) == bool(adapt)
    # one lane a block, at most 128 (versions 0 to 2: 16 and 36 blocks) or 32 (3: 36 blocks)
    assert shard.params["lanes"] == {0: 16, 1: 36, 2: 36, 3: 32}[adapt]
    assert np.array_equal(codec.decode(shard), blocks)


def test_pinned_payload_with_repeated_padding():
    codec = get_codec("causal", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256,
                      adapt=2)
    blocks, geometry = padded_images()
    shard = codec.encode(blocks, geometry)
    assert zoo.sha256_of(shard.payload) == PINNED_PADDED_PAYLOAD_SHA256
    assert np.array_equal(codec.decode(shard), blocks)


def test_small_objects_share_adaptation_tables_large_ones_have_their_own():
    _, geometry = pinned_images(1)
    canvas = ShardCanvas.lay_out(geometry)
    owner = canvas.owners()
    tables = [set(owner[canvas.pixel_index[geometry.objects == k]].ravel()) for k in range(3)]
    assert tables == [{0}, {0}, {1}]  # 12 and 4 blocks share table 0; 20 blocks: table 1
    assert set(owner[canvas.known().numpy() == 0]) == {0}


def test_adaptation_tables_are_pinned():
    for name, expected in ADAPT_TABLE_SHA256.items():
        table = getattr(causal_adapt, name)
        assert zoo.sha256_of(table.astype("<i8").tobytes()) == expected, name


def test_adaptation_learns_a_pictures_bias_and_spread():
    """A model that places every pixel 3 pixels too low and twice too wide, on noise: after
    some rows, coded one pixel a step, the corrections move its means up by 3 pixels (48
    sixteenths) and its scales down by ln 2 (12 grid steps per nat: 8 steps)."""
    width, rows = 40, 60
    values = torch.zeros((width * (rows + 3), 3), dtype=torch.int64)
    known = torch.zeros((rows + 3, width), dtype=torch.int64)
    known[3:, 3:-2] = 1  # the picture's pixels, as a shard's canvas marks them
    adaptation = causal_adapt.PictureAdaptation(values, known.reshape(-1), width)
    rng = np.random.default_rng(0)
    scale_index = 60  # a model scale of about 6 pixels, an expected |error| of 8
    wide = causal_adapt.EXPECTED_ABS[scale_index] / 16
    one = np.ones((1, 1), np.int64)
    biases, shifts = [], []
    for index in np.flatnonzero(known.reshape(-1).numpy()):
        truth = 128 + rng.logistic(0, wide / 2 / 2 / math.log(2), 3).round()
        for c in range(3):
            bias, shift = adaptation.corrections(np.array([index]), c, 16 * (128 - 3) * one,
                                                 scale_index * one, (1 << 16) * one)
            biases.append(int(bias[0]))
            shifts.append(int(shift[0]))
        values[index] = torch.from_numpy(truth.astype(np.int64))
        adaptation.update()
    late = slice(len(biases) // 2, None)
    assert 42 <= np.mean(biases[late]) <= 50, np.mean(biases[late])  # (shrunk a little)
    assert abs(np.mean(shifts[late]) + 8) <= 1.5, np.mean(shifts[late])
    assert biases[0] == shifts[0] == 0  # nothing learnt yet


def _remaining_error(rows: int = 60, width: int = 40) -> float:
    """Mean |x − μ − bias| (pixels) over the second half of a picture whose model errs by a
    smooth random field (what the neighbours' errors foretell), coded a pixel a step."""
    values = torch.zeros((width * (rows + 3), 3), dtype=torch.int64)
    known = torch.zeros((rows + 3, width), dtype=torch.int64)
    known[3:, 3:-2] = 1
    adaptation = causal_adapt.PictureAdaptation(values, known.reshape(-1), width)
    rng = np.random.default_rng(0)
    field = rng.normal(0, 8, (rows + 3, width))
    for _ in range(3):
        field = (field + np.roll(field, 1, 0) + np.roll(field, 1, 1) + np.roll(field, -1, 1)) / 2
    one = np.ones((1, 1), np.int64)
    errors = []
    for index in np.flatnonzero(known.reshape(-1).numpy()):
        y, x = divmod(int(index), width)
        truth = np.clip(128 + field[y, x] + rng.logistic(0, 1, 3), 0, 255).round()
        for c in range(3):
            bias, _ = adaptation.corrections(np.array([index]), c, 16 * 128 * one, 60 * one,
                                             (1 << 16) * one)
            errors.append(abs(16 * truth[c] - 16 * 128 - bias[0]) / 16)
        values[index] = torch.from_numpy(truth.astype(np.int64))
        adaptation.update()
    return float(np.mean(errors[len(errors) // 2:]))


def test_adaptation_follows_the_errors_its_neighbours_made(monkeypatch):
    """The LMS part reads the neighbours' remaining errors: on a smooth error field (about 15
    pixels on average) it leaves clearly less than the context biases alone (9.1 against
    10.2 pixels when this was written)."""
    with_lms = _remaining_error()
    monkeypatch.setattr(causal_adapt, "LMS_RATE", 10**15)  # steps of 0: the weights stay 0
    without = _remaining_error()
    assert with_lms < 0.95 * without < 0.8 * 15, (with_lms, without)


def test_a_shard_asking_for_an_unknown_adaptation_is_refused():
    codec = get_codec("causal", model=str(PINNED_MODEL), model_sha256=PINNED_MODEL_SHA256)
    blocks, geometry = two_images()
    shard = codec.encode(blocks, geometry)
    damaged = EncodedShard(shard.payload, shard.num_blocks, shard.channels,
                           {**shard.params, "adapt": 4})
    with pytest.raises(CodecError, match="adaptation version 4"):
        codec.decode(damaged)
    with pytest.raises(CodecError, match="adapt is one of"):
        get_codec("causal", model=str(PINNED_MODEL), adapt=4)


def test_crop_canvas_margins():
    values, known, index, width = crop_canvas(torch.zeros((2, 5, 7, 3), dtype=torch.uint8))
    assert int(known.sum()) == 2 * 5 * 7 and len(index) == 70


def test_compiled_and_array_mixture_code_agree(monkeypatch):
    """numba's loops and the array code give the same intervals and symbols."""
    table = pinned_table(pixel_table_spec(), PIXEL_TABLE_SHA256, "pixel")
    rng = np.random.default_rng(1)
    n = 200
    located = [table.locate(rng.integers(0, 4081, n), rng.integers(0, 100, n))
               for _ in range(3)]
    mix = mixture.TableMixture(table, located,
                               mixture.mixture_weights(rng.integers(-300, 300, (n, 3))))
    symbols = rng.integers(0, 256, n)
    slots = rng.integers(0, 1 << mixture.PRECISION, n)
    compiled = mix.interval(symbols), mix.find(slots)
    monkeypatch.setattr(mixture.kernels, "AVAILABLE", False)
    array = mix.interval(symbols), mix.find(slots)
    assert all(np.array_equal(a, b) for a, b in zip(compiled[0], array[0], strict=True))
    assert np.array_equal(compiled[1], array[1])


def test_an_archive_with_the_causal_codec_restores_byte_for_byte(tmp_path):
    """Shards of 8 blocks cut a 3×4 image between block rows; the model travels with the
    archive; the benchmark's photo path codes a photo to the archive's payload bytes."""
    import shutil

    from PIL import Image

    from recarchive.archives import ArchiveSettings, archive
    from recarchive.archives.restore import restore
    from recarchive.bench.codec_bench import run_codec_benchmark
    from recarchive.datasets import photo_files

    model = tiny_model_file(tmp_path)
    source = tmp_path / "bucket"
    source.mkdir()
    Image.fromarray(photo(64, 32)).save(source / "a_tall.png")
    Image.fromarray(photo(96, 128)).save(source / "b_wide.png")
    Image.fromarray(photo(40, 40)[::-1]).save(source / "c_edge.png")
    archive(str(source), str(tmp_path / "archive"), ArchiveSettings(
        codec="causal", codec_options={"model": model}, shard_blocks=8))
    Path(model).unlink()  # restore needs only the archive's copy
    report = restore(str(tmp_path / "archive"), str(tmp_path / "restored"))
    assert not report.problems
    for path in source.iterdir():
        assert (tmp_path / "restored" / path.name).read_bytes() == path.read_bytes()

    model = tiny_model_file(tmp_path)
    result = run_codec_benchmark("causal", model, "photo-val-images", 1, shard_blocks=64,
                                 baselines=False)
    assert result["roundtrip_exact"] is True and result["neg_elbo_bits_per_dim"] > 0
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_files("validation")[0], photos)
    manifest = archive(str(photos), str(tmp_path / "archive2"), ArchiveSettings(
        codec="causal", codec_options={"model": model}, shard_blocks=64))
    assert manifest["totals"]["pixel_payload_bytes"] == result["payload_bytes"]


def test_training_resumes_and_exports_a_codable_model(tmp_path):
    import subprocess
    import sys

    from recarchive.training.causal import CausalSettings, train

    settings = CausalSettings(dataset="cifar10", width=8, steps=4, batch_size=2,
                              validate_every=2, checkpoint_every=2, validation_images=8)
    lines: list[str] = []
    checkpoint = train(settings, tmp_path / "run", log=lines.append)
    history = torch.load(checkpoint, weights_only=False)["history"]
    assert [h["step"] for h in history] == [2, 4] and history[-1]["val_bits_per_dim"] < 9
    settings.steps = 6
    train(settings, tmp_path / "run", log=lines.append)
    assert "resumed from step 4" in lines
    out = tmp_path / "model.safetensors"
    subprocess.run([sys.executable, "jobs/export_causal.py", str(checkpoint), "t", "--out",
                    str(out)], check=True, cwd=Path(__file__).resolve().parents[1])
    codec = get_codec("causal", model=str(out))
    assert np.array_equal(codec.decode(codec.encode(cifar16()[:3])), cifar16()[:3])


def test_a_model_made_wider_computes_the_same_and_its_new_units_learn(tmp_path):
    """`with_width` adds hidden units that change nothing until trained, and `init_from`
    with a larger width trains them."""
    from recarchive.training.causal import CausalSettings, train

    narrow = zoo.load_causal(tiny_model_file(tmp_path)).float_model
    wide = with_width(narrow, 12)
    crops = torch.from_numpy(photo(40, 48))[None]
    with torch.no_grad():
        assert torch.allclose(wide.neg_log_likelihood_bits(crops),
                              narrow.neg_log_likelihood_bits(crops))
    assert wide.colours[0].hidden.weight.shape == (12, 12)
    with pytest.raises(ValueError, match="cannot be narrowed"):
        with_width(wide, 8)
    settings = CausalSettings(dataset="cifar10", steps=2, batch_size=2, validate_every=2,
                              checkpoint_every=2, validation_images=8, width=12,
                              init_from=tiny_model_file(tmp_path))
    state = torch.load(train(settings, tmp_path / "wider", log=lambda line: None),
                       weights_only=False)
    assert state["config"]["width"] == 12
    assert state["model"]["colours.1.mean.weight"][:, 8:].abs().sum() > 0  # were 0


def test_a_widened_model_computes_the_same_and_trains_on_from_a_file(tmp_path):
    """`with_neighbours` gives a model reading all 24 neighbours whose likelihood is the
    narrow model's, which codes exactly and, trained from (`init_from`), moves on."""
    from recarchive.training.causal import CausalSettings, train

    narrow = zoo.load_causal(tiny_model_file(tmp_path)).float_model
    wide = with_neighbours(narrow, len(NEIGHBOURHOOD))
    assert wide.config.neighbours == 24
    crops = torch.from_numpy(photo(40, 48))[None]
    with torch.no_grad():
        assert torch.allclose(wide.neg_log_likelihood_bits(crops),
                              narrow.neg_log_likelihood_bits(crops))
    with pytest.raises(ValueError, match="cannot be narrowed"):
        with_neighbours(wide, 12)
    settings = CausalSettings(dataset="cifar10", steps=2, batch_size=2, validate_every=2,
                              checkpoint_every=2, validation_images=8, neighbours=24,
                              init_from=tiny_model_file(tmp_path))
    checkpoint = train(settings, tmp_path / "wide", log=lambda line: None)
    state = torch.load(checkpoint, weights_only=False)
    assert state["config"]["neighbours"] == 24 and state["config"]["width"] == 8
    path = tmp_path / "wide.safetensors"
    path.write_bytes(zoo.causal_model_bytes(wide))
    codec = get_codec("causal", model=str(path))
    blocks, geometry = two_images()
    assert np.array_equal(codec.decode(codec.encode(blocks, geometry)), blocks)


def test_the_shipped_photo_model_codes_a_photo_exactly():
    """`causal-photo` as shipped: its pinned file, a real photo back exactly at its rate (2.71
    bits/dim on this crop with the first file; JPEG-XL at effort 9 takes 2.64)."""
    codec = get_codec("causal")
    assert codec.model_sha256 == zoo.SHIPPED["causal-photo"]
    image = photo(96, 128)
    blocks = cut_blocks(image)
    shard = codec.encode(blocks, grid_geometry((3, 4)))
    assert np.array_equal(codec.decode(shard), blocks)
    assert 8 * len(shard.payload) / image.size < 2.75
