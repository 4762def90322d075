"""Shards coded together (`encode_many`, `decode_many`): one wider batch of chains for the
nets, yet every shard's bytes are exactly those it gets coded alone, and any group of shards
decodes to their blocks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recarchive.ans import clean_message, message_to_bytes
from recarchive.ans.group import MessageGroup
from recarchive.archives import ArchiveSettings, archive
from recarchive.archives.blocks import cut_blocks
from recarchive.archives.errors import IntegrityError
from recarchive.archives.parts import PartBuilder
from recarchive.archives.reader import ArchiveReader
from recarchive.archives.restore import restore
from recarchive.bench.codec_bench import shard_groups
from recarchive.codecs import CodecError, EncodedShard, get_codec
from recarchive.codecs.base import decode_shards, encode_shards
from recarchive.datasets import data_dir
from recarchive.models import zoo
from recarchive.models.bitswap import BitSwapConfig, BitSwapModel
from tests.test_block_context import block_context_model, grid_geometry, photo
from tests.threads import torch_threads

TINY = BitSwapConfig(latent_layers=2, latent_channels=4, width=8, res_blocks=1)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("zoo") / "tiny.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(BitSwapModel(TINY).eval(), {"note": "untrained"}))
    return path


@pytest.fixture(scope="module")
def blocks() -> np.ndarray:
    return np.load(data_dir() / "fixtures" / "cifar10_test_first16_uint8_NHWC.npy")


def shards_of(blocks: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Shards of these sizes, cut from the blocks (tiled, flipped where more are needed)."""
    pool = np.concatenate([blocks, blocks[:, ::-1], blocks[:, :, ::-1], blocks[:, ::-1, ::-1]])
    pool = np.concatenate([pool] * (1 + sum(sizes) // len(pool)))
    ends = np.cumsum([0, *sizes])
    return [np.ascontiguousarray(pool[a:b]) for a, b in zip(ends[:-1], ends[1:], strict=True)]


def assert_same_as_alone(codec, shards: list[np.ndarray], geometries=None) -> list:
    geometries = geometries or [None] * len(shards)
    together = codec.encode_many(list(zip(shards, geometries, strict=True)))
    for shard, geometry, coded in zip(shards, geometries, together, strict=True):
        alone = codec.encode(shard, geometry)
        assert coded.payload == alone.payload
        assert coded.params == alone.params
        assert np.array_equal(coded.block_bits, alone.block_bits, equal_nan=True)
    return together


@pytest.mark.parametrize("first_block", ["raw", "bits-back"])
@pytest.mark.parametrize("mode", ["bitswap", "bbans"])
def test_shards_of_other_lengths_code_as_they_do_alone(model_file, blocks, mode, first_block):
    codec = get_codec("bitswap", model=str(model_file), chains=3, mode=mode,
                      first_block=first_block)
    shards = shards_of(blocks, [11, 4, 16, 1])  # 4, 2, 6 and 1 steps; the last chain of 1
    together = assert_same_as_alone(codec, shards)
    with torch_threads(1):
        decoded = get_codec("bitswap", model=str(model_file), net_batch=2).decode_many(together)
    for shard, back in zip(shards, decoded, strict=True):
        assert np.array_equal(back, shard)


def test_shards_with_other_lanes_per_chain_are_coded_side_by_side(model_file, blocks):
    codec = get_codec("bitswap", model=str(model_file), chains=1)
    shards = shards_of(blocks, [600, 9, 200])  # one chain each: 64, 16 and 16 lanes
    together = assert_same_as_alone(codec, shards)
    assert [s.params["lanes_per_chain"] for s in together] == [64, 16, 16]
    decoded = codec.decode_many(list(reversed(together)))
    for shard, back in zip(reversed(shards), decoded, strict=True):
        assert np.array_equal(back, shard)


def test_block_context_shards_read_only_their_own_neighbours(tmp_path):
    path = tmp_path / "tiny-block-context.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(block_context_model(), {"note": "untrained"}))
    codec = get_codec("bitswap", model=str(path), chains=2)
    shards = [cut_blocks(photo()), cut_blocks(photo(64, 96)[::-1]), cut_blocks(photo(32, 64))]
    geometries = [grid_geometry((3, 4)), grid_geometry((2, 3)), None]
    together = assert_same_as_alone(codec, shards, geometries)
    for shard, back in zip(shards, codec.decode_many(together), strict=True):
        assert np.array_equal(back, shard)


def test_other_channel_layouts_are_coded_alone_beside_rgb(model_file, blocks):
    codec = get_codec("bitswap", model=str(model_file), chains=2)
    rgb = shards_of(blocks, [5, 7])
    rgba = np.concatenate([rgb[0], rgb[0][..., :1]], axis=3)
    gray = np.ascontiguousarray(rgb[1][..., :1])
    shards = [rgb[0], rgba, gray, rgb[1]]
    together = encode_shards(codec, [(s, None) for s in shards])
    for shard, coded in zip(shards, together, strict=True):
        assert coded.payload == codec.encode(shard).payload
    for shard, back in zip(shards, decode_shards(codec, together), strict=True):
        assert np.array_equal(back, shard)


def test_codecs_without_shards_together_code_one_by_one(blocks):
    codec = get_codec("order0")
    shards = shards_of(blocks, [3, 2])
    together = encode_shards(codec, [(s, None) for s in shards])
    assert [c.payload for c in together] == [codec.encode(s).payload for s in shards]
    assert all(np.array_equal(a, b) for a, b in zip(decode_shards(codec, together), shards,
                                                    strict=True))


def test_a_damaged_shard_in_a_group_is_refused(model_file, blocks):
    codec = get_codec("bitswap", model=str(model_file), chains=2)
    good, bad = codec.encode_many([(s, None) for s in shards_of(blocks, [6, 6])])
    cut = EncodedShard(bad.payload[:-9], bad.num_blocks, bad.channels, bad.params)
    with pytest.raises(CodecError, match="damaged"):
        codec.decode_many([good, cut])


def test_a_message_group_pushes_and_pops_as_its_messages_alone():
    rng = np.random.default_rng(3)
    shapes = [(2, 4), (3, 8)]  # chains, lanes: other lanes per chain too
    chains = sum(c for c, _ in shapes)
    bounds = np.cumsum([0, *(c for c, _ in shapes)])
    variables = []
    for _ in range(5):
        freqs = rng.integers(1, 1 << 10, size=(chains, 16))
        variables.append((rng.integers(0, (1 << 12) - freqs), freqs))
    alone = [clean_message(shape, seed=7) for shape in shapes]
    grouped = MessageGroup([clean_message(shape, seed=7) for shape in shapes])
    for starts, freqs in variables:
        grouped.push_groups(starts, freqs, 12)
        for k, (message, (_, lanes)) in enumerate(zip(alone, shapes, strict=True)):
            rows = slice(bounds[k], bounds[k + 1])
            message.push_groups(starts[rows], freqs[rows], 12, lanes)
    assert grouped.chains == 5
    assert [message_to_bytes(m) for m in grouped.messages] == \
        [message_to_bytes(m) for m in alone]
    seen = []

    def pop(message, rows, lanes):
        seen.append((rows, lanes))
        return np.full((rows.stop - rows.start, 16), lanes), np.ones((rows.stop - rows.start, 16))

    symbols, freqs = grouped.pop_each(pop)
    assert seen == [(slice(0, 2), 4), (slice(2, 5), 8)]
    assert symbols[:, 0].tolist() == [4, 4, 8, 8, 8] and freqs.shape == (5, 16)


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def build_part(codec, objects: list[bytes], together: int) -> tuple[PartBuilder, bytes]:
    builder = PartBuilder(0, codec, shard_blocks=4, blob_shard_bytes=1 << 20,
                          shards_together=together)
    for number, data in enumerate(objects):
        builder.add(f"img/{number:02d}.png", data)
    return builder, builder.finish()[0]


def test_a_part_writes_the_same_file_coding_its_shards_together(model_file, blocks):
    codec = get_codec("bitswap", model=str(model_file))
    objects = [png_bytes(b) for b in blocks[:13]] + [png_bytes(photo(64, 96))]
    alone, alone_data = build_part(codec, objects, 1)
    together, together_data = build_part(codec, objects, 3)
    assert together_data == alone_data
    assert together.stats.pixel_shards == alone.stats.pixel_shards == 5


class _ThirdShardDecodesWrong:
    """A Bit-Swap codec whose decoding of every third shard of a group goes wrong."""

    def __init__(self, codec) -> None:
        self.codec = codec

    def __getattr__(self, name: str):
        return getattr(self.codec, name)

    def decode(self, shard: EncodedShard) -> np.ndarray:
        return self.codec.decode(shard)

    def decode_many(self, shards: list[EncodedShard]) -> list[np.ndarray]:
        decoded = self.codec.decode_many(shards)
        for blocks in decoded[2::3]:
            blocks[0, 0, 0, 0] ^= 1
        return decoded


def test_a_shard_of_a_group_that_decodes_wrong_is_coded_again_alone(model_file, blocks):
    codec = _ThirdShardDecodesWrong(get_codec("bitswap", model=str(model_file)))
    builder, _ = build_part(codec, [png_bytes(b) for b in blocks[:12]], 3)
    assert builder.stats.pixel_shards == 3
    assert builder.stats.shards_recoded == 1
    assert builder.stats.model_shards == 2


def archived(model_file: Path, blocks: np.ndarray, tmp_path: Path) -> Path:
    """Thirteen CIFAR-10 images archived in shards of 4 blocks (four shards)."""
    source = tmp_path / "bucket"
    source.mkdir()
    for number, pixels in enumerate(blocks[:13]):
        Image.fromarray(pixels).save(source / f"{number:02d}.png")
    archive(str(source), str(tmp_path / "archive"), ArchiveSettings(
        codec="bitswap", codec_options={"model": str(model_file)}, shard_blocks=4))
    return source


def test_a_restore_decodes_the_shards_it_needs_together(model_file, blocks, tmp_path,
                                                        monkeypatch):
    source = archived(model_file, blocks, tmp_path)
    groups = []
    original = ArchiveReader.decode_pixels_many

    def recording(self, part, numbers):
        groups.append(list(numbers))
        return original(self, part, numbers)

    monkeypatch.setattr(ArchiveReader, "decode_pixels_many", recording)
    report = restore(str(tmp_path / "archive"), str(tmp_path / "restored"))
    assert not report.problems and report.shards_decoded == 4
    assert groups == [[0, 1, 2, 3]]
    for path in source.iterdir():
        assert (tmp_path / "restored" / path.name).read_bytes() == path.read_bytes()


def test_a_shard_that_does_not_decode_fails_only_its_own_objects(model_file, blocks,
                                                                  tmp_path, monkeypatch):
    archived(model_file, blocks, tmp_path)
    reader = ArchiveReader(str(tmp_path / "archive"))
    bad = reader.read_shard(0, 2).payload
    codec = reader.codecs.get("bitswap", reader.read_shard(0, 2).model_sha256, "test")
    decode = codec.decode

    def refusing(shard: EncodedShard) -> np.ndarray:
        if shard.payload == bad:
            raise CodecError("Bit-Swap shard payload is damaged: made so by the test")
        return decode(shard)

    monkeypatch.setattr(codec, "decode", refusing)
    monkeypatch.setattr(codec, "decode_many", lambda shards: [refusing(s) for s in shards])
    decoded = reader.decode_pixels_many(0, [0, 1, 2, 3])
    assert isinstance(decoded[2], IntegrityError)
    assert "shard 2" in str(decoded[2]) and "made so by the test" in str(decoded[2])
    for number in (0, 1, 3):
        assert np.array_equal(decoded[number], reader.decode_pixels(0, number))


def test_benchmark_groups_keep_every_worker_busy_and_shards_in_order():
    assert shard_groups(10, 2, 8) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert shard_groups(10, 1, 4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert shard_groups(3, 4, 8) == [[0], [1], [2]]
    assert shard_groups(0, 2, 8) == []
