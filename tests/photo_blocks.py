"""A real photo's blocks, for the tests of models that read across blocks: the fixture photo,
the blocks of a 3×4 image and a 2×2 one with their geometry, and the checks every such model
passes on them (pinned payloads, round trips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from recarchive.archives.blocks import cut_blocks
from recarchive.codecs import get_codec
from recarchive.codecs.base import BlockGeometry
from recarchive.codecs.bitswap import BitSwapCodec
from recarchive.datasets import data_dir
from recarchive.models import zoo
from tests.threads import torch_threads


def photo(height: int = 96, width: int = 128) -> np.ndarray:
    """A crop of a real photo (a 3×4 grid of blocks by default)."""
    with Image.open(data_dir() / "fixtures" / "skimage_chelsea_CC0.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(pixels[:height, :width])


def grid_geometry(*grids: tuple[int, int]) -> BlockGeometry:
    """Whole objects of these (rows, cols), one after another."""
    objects, cells, rows, cols = [], [], [], []
    for number, (r, c) in enumerate(grids):
        objects += [number] * (r * c)
        cells += list(range(r * c))
        rows += [r] * (r * c)
        cols += [c] * (r * c)
    return BlockGeometry(*(np.asarray(a) for a in (objects, cells, rows, cols)))


def two_images() -> tuple[np.ndarray, BlockGeometry]:
    """The blocks of a 3×4 image and a 2×2 one (flipped, so unlike the first), and their
    geometry."""
    blocks = np.concatenate([cut_blocks(photo()), cut_blocks(photo(64, 64)[::-1])])
    return blocks, grid_geometry((3, 4), (2, 2))


def pinned_payload_sha256(model: Path, model_sha256: str, mode: str) -> str:
    """The sha256 of the payload a pinned model file codes `two_images` to (two chains of 16
    lanes, raw first blocks), after checking that it decodes to them."""
    loaded = zoo.load_bitswap(str(model), model_sha256)
    coder = BitSwapCodec(loaded.exact, loaded.sha256, mode=mode, chains=2, lanes_per_chain=16,
                         first_block="raw")
    blocks, geometry = two_images()
    shard = coder.encode(blocks, geometry)
    assert np.array_equal(coder.decode(shard), blocks)
    return zoo.sha256_of(shard.payload)


def check_round_trips(model_file: Path, mode: str) -> None:
    """`two_images` coded with a model file come back exactly whatever the chains, net batch
    or threads, and the same chains write the same bytes with another net batch."""
    def codec(**options) -> BitSwapCodec:
        return get_codec("bitswap", model=str(model_file), **options).rgb

    data, where = two_images()
    shard = codec(chains=2, mode=mode).encode(data, where)
    with torch_threads(1):
        decoded = codec(chains=2, net_batch=1).decode(shard)
    assert np.array_equal(decoded, data)
    again = codec(chains=2, mode=mode, net_batch=3).encode(data, where)
    assert again.payload == shard.payload
    other = codec(chains=3, mode=mode).encode(data, where)
    assert np.array_equal(codec().decode(other), data)
