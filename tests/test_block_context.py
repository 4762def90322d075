"""Bit-Swap with context across blocks: a block of a larger image reads the border pixels of
the neighbours decoded before it, exactly, whatever the chains, batch size or threads; and the
geometry a shard needs for that travels in its parameters."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recarchive.archives.blocks import cut_blocks
from recarchive.codecs import get_codec
from recarchive.codecs.base import BlockGeometry, CodecError, EncodedShard
from recarchive.codecs.bitswap import BitSwapCodec, _slots
from recarchive.models import zoo
from recarchive.models.bitswap import (
    BitSwapConfig,
    BitSwapModel,
    border_canvas,
    space_to_depth,
)
from recarchive.models.exact_bitswap import convert_to_exact
from recarchive.training.bitswap import initial_weights, load_initial_weights, split_crops
from tests.photo_blocks import grid_geometry, photo, pinned_payload_sha256, two_images
from tests.threads import torch_threads

TINY = BitSwapConfig(latent_layers=2, latent_channels=4, width=8, res_blocks=1,
                     pixel_context="checkerboard", block_context="ring")


def block_context_model(seed: int = 0) -> BitSwapModel:
    """A tiny model whose pixel context is switched on (its nets' ring weights are random, as
    in any fresh model)."""
    torch.manual_seed(seed)
    model = BitSwapModel(TINY)
    with torch.no_grad():
        for out in (model.context.mean, model.context.log_scale):
            out.parametrizations.weight.original0.normal_(0.0, 0.5)
            out.bias.normal_(0.0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "tiny-block-context.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(block_context_model(), {"note": "untrained"}))
    return path


def codec(model_file: Path, **options) -> BitSwapCodec:
    return get_codec("bitswap", model=str(model_file), **options).rgb


def test_geometry_runs_are_compact_and_come_back():
    lone = BlockGeometry.lone(1024)
    assert lone.to_params() == [[1024, 1, 1, 0]]
    two = grid_geometry((3, 4), (3, 4), (2, 2))
    assert two.to_params() == [[24, 3, 4, 0], [4, 2, 2, 0]]
    back = BlockGeometry.from_params(two.to_params(), 28)
    assert np.array_equal(back.neighbours(), two.neighbours())
    assert np.array_equal(back.cells, two.cells) and np.array_equal(back.cols, two.cols)
    # an image continued from an earlier shard: its first cells are elsewhere
    tail = BlockGeometry.from_params([[8, 3, 4, 4]], 8)
    assert tail.cells.tolist() == list(range(4, 12))
    for runs, count in (([[8, 3, 4, 4]], 9), ([[3, 0, 4, 0]], 3), ([[2, 1, 1, 1]], 2)):
        with pytest.raises(CodecError, match="geometry"):
            BlockGeometry.from_params(runs, count)


def test_neighbours_stay_inside_their_object_and_shard():
    geometry = grid_geometry((3, 4), (1, 1))
    found = geometry.neighbours()  # above-left, above, above-right, left
    assert found[0].tolist() == [-1, -1, -1, -1]
    assert found[1].tolist() == [-1, -1, -1, 0]
    assert found[5].tolist() == [0, 1, 2, 4]
    assert found[7].tolist() == [2, 3, -1, 6]       # the last column has no above-right
    assert found[8].tolist() == [-1, 4, 5, -1]      # the first column no left
    assert found[12].tolist() == [-1, -1, -1, -1]   # the next object sees nothing of this one
    tail = BlockGeometry.from_params([[8, 3, 4, 4]], 8).neighbours()
    assert tail[0].tolist() == [-1, -1, -1, -1]     # its first row's above is in another shard
    assert tail[5].tolist() == [0, 1, 2, 4]


def test_runs_push_each_chain_last_block_first():
    slots = _slots(10, 3, 4, "runs")
    assert slots.T.tolist() == [[3, 2, 1, 0], [6, 5, 4, -1], [9, 8, 7, -1]]
    old = _slots(10, 3, 4, None)
    assert old.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, -1, -1]]


@pytest.mark.parametrize("chains", [1, 3])
def test_round_trip_with_other_batch_sizes_and_threads(model_file, chains):
    blocks, geometry = two_images()
    shard = codec(model_file, chains=chains).encode(blocks, geometry)
    assert shard.params["block_order"] == "runs"
    assert shard.params["geometry"] == geometry.to_params()
    with torch_threads(1):
        decoded = codec(model_file, chains=chains, net_batch=1).decode(shard)
    assert np.array_equal(decoded, blocks)
    again = codec(model_file, chains=chains, net_batch=2).encode(blocks, geometry)
    assert again.payload == shard.payload
    assert np.isnan(shard.block_bits).sum() == chains  # each chain's raw first block


def test_neighbours_change_what_is_coded(model_file):
    blocks = cut_blocks(photo())
    coder = codec(model_file, chains=1)
    with_context = coder.encode(blocks, grid_geometry((3, 4)))
    alone = coder.encode(blocks)
    assert alone.params["geometry"] == [[12, 1, 1, 0]]
    assert with_context.payload != alone.payload
    assert np.array_equal(coder.decode(alone), blocks)
    # a decoder told another geometry reads other neighbours: it cannot give the blocks back
    lied = EncodedShard(with_context.payload, 12, 3, {**with_context.params,
                                                       "geometry": [[12, 4, 3, 0]]})
    with contextlib.suppress(CodecError):  # refused, or other blocks: never these
        assert not np.array_equal(coder.decode(lied), blocks)


def test_a_shard_must_name_the_order_its_model_codes_with(model_file):
    blocks = cut_blocks(photo(64, 64))
    shard = codec(model_file, chains=1).encode(blocks, grid_geometry((2, 2)))
    del shard.params["block_order"]
    with pytest.raises(CodecError, match="order"):
        codec(model_file).decode(shard)


def test_unknown_neighbours_read_as_none():
    """Every net reads the ring (here the pixel head and a posterior); a ring whose neighbours
    are all unknown reads as no ring at all."""
    exact = convert_to_exact(block_context_model())
    h = 2 * space_to_depth(torch.randint(0, 256, (4, 3, 32, 32))) - 255
    pixels = torch.from_numpy(cut_blocks(photo(64, 64))).permute(0, 3, 1, 2).to(torch.int64)
    z1 = torch.randint(-2047, 2048, (4, TINY.latent_channels, 16, 16)) | 1
    around = torch.randint(0, 256, (4, 3, 36, 36))
    nothing = border_canvas(around, torch.zeros((4, 4), dtype=torch.bool))
    assert all(torch.equal(a, b) for a, b in zip(exact.pixel_head(z1, nothing),
                                                 exact.pixel_head(z1), strict=True))
    known = border_canvas(around, torch.ones((4, 4), dtype=torch.bool))
    assert not torch.equal(exact.pixel_head(z1, known)[0], exact.pixel_head(z1)[0])
    assert torch.equal(exact.posterior(0, h, nothing)[0], exact.posterior(0, h)[0])
    assert not torch.equal(exact.posterior(0, h, known)[0], exact.posterior(0, h)[0])
    assert not torch.equal(exact.latent_prior(1, z1, known)[0], exact.latent_prior(1, z1)[0])
    # only the ring is read: the middle of `around` (the block itself) is not
    inside = around.clone()
    inside[:, :, 2:34, 2:34] = pixels
    assert all(torch.equal(a, b) for a, b in zip(
        exact.pixel_head(z1, border_canvas(inside, torch.ones((4, 4), dtype=torch.bool))),
        exact.pixel_head(z1, known), strict=True))


def test_exact_border_tracks_the_float_model():
    model = block_context_model()
    exact = convert_to_exact(model)
    crops = torch.from_numpy(photo(36, 36)[None].repeat(3, 0)).permute(0, 3, 1, 2)
    x, ring = split_crops(crops.to(torch.int64), 1.0)
    bins = torch.randint(0, exact.layout.bins, (3, TINY.latent_channels, 16, 16))
    z1 = exact.layout.net_input(bins)
    mean_fixed, _ = exact.pixel_likelihood(z1, space_to_depth(x), ring=ring)
    with torch.no_grad():
        float_ring = tuple(part.float() for part in ring)
        mean, _ = model.pixel_params(z1 * exact.layout.input_scale,
                                     space_to_depth(x).float(), float_ring)
    assert (mean_fixed.double() - 16 * mean.double()).abs().max() < 4


def test_fine_tuning_adds_a_block_context_that_starts_switched_off():
    plain = zoo.load_bitswap("bitswap-photo-2026-12").float_model  # pixel context only
    config = BitSwapConfig(**{**plain.config.to_dict(), "block_context": "ring"})
    weights, _ = initial_weights("bitswap-photo-2026-12", config)
    model = BitSwapModel(config)
    load_initial_weights(model, weights)
    crops = torch.from_numpy(photo(72, 72)[None]).permute(0, 3, 1, 2).float()
    crops = torch.cat([crops[..., :36, :36], crops[..., 36:, 36:], crops[..., :36, 36:]])
    x, ring = split_crops(crops, 1.0)
    assert x.shape[-1] == 32
    with torch.no_grad():
        torch.manual_seed(3)
        before = plain.bits_per_dim(x)
        torch.manual_seed(3)
        after = model.eval().bits_per_dim(x, ring)
    assert torch.equal(before, after)
    model.train().bits_per_dim(x, ring).mean().backward()
    for net in (*model.infer, *model.generate, model.context):
        ring_weights = net.inp.parametrizations.weight.original1
        assert float(ring_weights[:, -13:].abs().sum()) == 0  # they start at 0
        assert float(ring_weights.grad[:, -13:].abs().sum()) > 0  # and training moves them
    assert BitSwapConfig().to_dict().get("block_context") is None  # old files hash the same
    with pytest.raises(ValueError, match="block context"):
        BitSwapConfig(block_context="everything")


def test_an_archive_cuts_images_between_block_rows_and_restores_them(model_file, tmp_path):
    """Shards of 8 blocks: a 3×4 image spans two shards (two rows, then one), and each shard
    carries its geometry; everything restores byte for byte."""
    from recarchive.archives import ArchiveSettings, archive
    from recarchive.archives.reader import ArchiveReader
    from recarchive.archives.restore import restore

    source = tmp_path / "bucket"
    source.mkdir()
    Image.fromarray(photo(64, 32)).save(source / "a_tall.png")      # 2×1 blocks
    Image.fromarray(photo(96, 128)).save(source / "b_wide.png")     # 3×4 blocks
    Image.fromarray(photo(40, 40)[::-1]).save(source / "c_edge.png")  # 2×2, padded
    archive(str(source), str(tmp_path / "archive"), ArchiveSettings(
        codec="bitswap", codec_options={"model": str(model_file), "chains": 2},
        shard_blocks=8))
    reader = ArchiveReader(str(tmp_path / "archive"))
    rows = {row.key: row for row in reader.rows()}
    # a_tall fills two blocks; b_wide's first row would cross the cut at 8: the shard ends
    # after a_tall and b_wide's first row (6 blocks), its other two rows fill the next
    assert (rows["b_wide.png"].shard, rows["b_wide.png"].block_start) == (0, 2)
    shards = [reader.read_shard(0, number) for number in range(3)]
    assert [s.num_blocks for s in shards] == [6, 8, 4]
    assert [s.codec_params["geometry"] for s in shards] == [
        [[2, 2, 1, 0, 64, 32], [4, 3, 4, 0, 96, 128]], [[8, 3, 4, 4, 96, 128]],
        [[4, 2, 2, 0, 40, 40]]]
    report = restore(str(tmp_path / "archive"), str(tmp_path / "restored"))
    assert not report.problems
    for path in source.iterdir():
        assert (tmp_path / "restored" / path.name).read_bytes() == path.read_bytes()


# A small block-context model kept with the tests, and the payloads it codes a real photo's
# blocks to (a 3×4 image and a 2×2 one, two chains): never update these to make a change
# pass; archives coded with block-context models must still decode.
PINNED_MODEL = Path(__file__).parent / "data" / "bitswap-tiny-block-context.safetensors"
PINNED_MODEL_SHA256 = "9ab96c1047e7eb3568f86624d0e732544d805b63e0fe2b69138672367de65dac"
PINNED_PAYLOADS = {
    "bitswap": "287b6f7ab7231c47823ccb3dfd0711955779676a5c9800b407e4562312a1468b",
    "bbans": "0eb90007650300f36ba6315554f5595888e4fc0c40e9a9fae93943597478887e",
}


@pytest.mark.parametrize("mode", sorted(PINNED_PAYLOADS))
def test_coded_bytes_are_those_earlier_releases_wrote(mode):
    assert pinned_payload_sha256(PINNED_MODEL, PINNED_MODEL_SHA256, mode) == PINNED_PAYLOADS[mode]


def test_the_photo_benchmark_codes_as_an_archive_does(model_file, tmp_path):
    """`bench codec --dataset photo-val-images` with a block-context model: the same shards,
    geometry and payload bytes as an archive of the same photo, and both come back exact."""
    import shutil

    from recarchive.archives import ArchiveSettings, archive
    from recarchive.bench.codec_bench import run_codec_benchmark
    from recarchive.datasets import photo_files

    result = run_codec_benchmark("bitswap", str(model_file), "photo-val-images", 1,
                                 shard_blocks=64, baselines=False)
    assert result["roundtrip_exact"] is True
    assert result["neg_elbo_bits_per_dim"] > 0 and result["exact_neg_elbo_bits_per_dim"] > 0
    source = tmp_path / "photos"
    source.mkdir()
    shutil.copy(photo_files("validation")[0], source)
    manifest = archive(str(source), str(tmp_path / "archive"), ArchiveSettings(
        codec="bitswap", codec_options={"model": str(model_file)}, shard_blocks=64))
    assert manifest["totals"]["pixel_payload_bytes"] == result["payload_bytes"]
