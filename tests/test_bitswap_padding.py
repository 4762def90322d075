"""Padding is not coded: where a shard's geometry knows its objects' sizes, a block-context
model's coder sets the pixels past an object's right and bottom edges to a fixed value, codes
them as certain and fills the edges in again after decoding, so the blocks come back exactly
as `cut_blocks` cut them and the padding costs next to nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recarchive.archives.blocks import cut_blocks
from recarchive.bench.codec_bench import whole_image_shards
from recarchive.codecs.base import BlockGeometry, CodecError
from recarchive.codecs.bitswap import BitSwapCodec
from recarchive.models import zoo
from tests.photo_blocks import grid_geometry, photo
from tests.test_block_context import PINNED_MODEL, PINNED_MODEL_SHA256
from tests.threads import torch_threads

HEIGHT, WIDTH = 70, 90  # a 3×3 grid: the last row of blocks has 6 real rows, the last column 26


def padded_shard() -> tuple[np.ndarray, BlockGeometry]:
    """The blocks of a photo whose size is no multiple of 32, and a 2×2 one flipped, with
    their sizes in the geometry."""
    small = photo(64, 64)[::-1]
    blocks = np.concatenate([cut_blocks(photo(HEIGHT, WIDTH)), cut_blocks(small)])
    grids = grid_geometry((3, 3), (2, 2))
    sizes = np.repeat([[HEIGHT, WIDTH], [64, 64]], [9, 4], axis=0)
    return blocks, replace(grids, heights=sizes[:, 0], widths=sizes[:, 1])


def coder(**options) -> BitSwapCodec:
    loaded = zoo.load_bitswap(str(PINNED_MODEL), PINNED_MODEL_SHA256)
    return BitSwapCodec(loaded.exact, loaded.sha256, **options)


def test_sizes_give_each_blocks_real_extent_and_travel_in_the_params():
    _, geometry = padded_shard()
    rows, cols = geometry.real_extent()
    assert rows.tolist() == [32] * 6 + [6] * 3 + [32] * 4
    assert cols.tolist() == [32, 32, 26] * 3 + [32] * 4
    runs = geometry.to_params()
    assert runs == [[9, 3, 3, 0, HEIGHT, WIDTH], [4, 2, 2, 0, 64, 64]]
    back = BlockGeometry.from_params(runs, 13)
    assert all(np.array_equal(a, b) for a, b in zip(back.real_extent(), (rows, cols),
                                                    strict=True))
    assert geometry[9:].to_params() == [[4, 2, 2, 0, 64, 64]]
    # runs without sizes (shards before 2026-12-05) know none
    assert BlockGeometry.from_params([[9, 3, 3, 0]], 9).real_extent() is None
    for wrong in ([[9, 3, 3, 0, 97, 90]], [[9, 3, 3, 0, HEIGHT]], [[4, 2, 2, 0, 64, 64],
                                                                    [9, 3, 3, 0]]):
        with pytest.raises(CodecError, match="geometry"):
            BlockGeometry.from_params(wrong, 13)


def test_the_photo_benchmark_gives_the_sizes_as_an_archive_does():
    """`bench codec --dataset photo-val-images` cuts shards with the objects' sizes, as the
    archive's writer does (`test_block_context`'s archive test), so both skip the padding."""
    _, geometry, _ = whole_image_shards([photo(HEIGHT, WIDTH), photo(64, 64)], 64)
    assert geometry.to_params() == [[9, 3, 3, 0, HEIGHT, WIDTH], [4, 2, 2, 0, 64, 64]]


def test_padding_is_not_coded_and_comes_back_as_cut():
    blocks, geometry = padded_shard()
    unsized = replace(geometry, heights=None, widths=None)
    with_sizes = coder(chains=2).encode(blocks, geometry)
    without = coder(chains=2).encode(blocks, unsized)
    assert np.array_equal(coder().decode(with_sizes), blocks)
    assert np.array_equal(coder().decode(without), blocks)
    padding = 3 * (96 * 96 - HEIGHT * WIDTH)  # subpixels the shard no longer codes
    saved_bits = 8 * (len(without.payload) - len(with_sizes.payload))
    assert saved_bits > padding  # the untrained model paid more than a bit for each


def test_padded_shards_decode_with_other_chains_batch_sizes_and_threads():
    blocks, geometry = padded_shard()
    shard = coder(chains=3).encode(blocks, geometry)
    with torch_threads(1):
        assert np.array_equal(coder(net_batch=1).decode(shard), blocks)
    assert coder(chains=3, net_batch=2).encode(blocks, geometry).payload == shard.payload


def test_padding_that_is_not_the_edges_repeated_is_refused():
    blocks, geometry = padded_shard()
    blocks = blocks.copy()
    blocks[5, :, 28:] = 7  # block 5 (row 1, column 2) has 26 real columns
    with pytest.raises(CodecError, match="block 5 .* padding"):
        coder(chains=2).encode(blocks, geometry)


# The pinned block-context model's payload for `padded_shard` (two chains, 16 lanes, raw first
# blocks): never update it to make a change pass; archives whose shards skip padding must
# still decode.
PINNED_PAYLOAD_SHA256 = "c9de9aa459d99462755fbb33198a8036995f05a217520dd8ce624e291c234453"


def test_coded_bytes_are_those_earlier_releases_wrote():
    blocks, geometry = padded_shard()
    codec = coder(chains=2, lanes_per_chain=16, first_block="raw")
    shard = codec.encode(blocks, geometry)
    assert np.array_equal(codec.decode(shard), blocks)
    assert zoo.sha256_of(shard.payload) == PINNED_PAYLOAD_SHA256
