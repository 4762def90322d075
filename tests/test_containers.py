"""Byte-exact container rebuilding (`archive.containers`): split a raster file into pixels +
recipe and rebuild the very same bytes; decline, with a reason, what cannot be rebuilt.

The PNG fixtures in tests/data/png_encoders were written by external encoders (ImageMagick,
optipng, pngcrush, zopflipng; `studies/png_encoders.py --fixtures` regenerates them): the tests
only read them, CI needs none of those tools.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recarchive.archives.containers import (
    NotRebuildable,
    Split,
    describe_recipe,
    rebuild_container,
    split_container,
)
from recarchive.datasets import data_dir

ENCODER_FIXTURES = Path(__file__).parent / "data" / "png_encoders"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))
# Measured: 39 bytes for a Pillow-default 32x32 RGB PNG (zlib version string included).
CIFAR_RECIPE_BOUND = 48


# --- helpers --------------------------------------------------------------------------------


def _fixture(name: str) -> Path:
    return data_dir() / "fixtures" / name


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    """An 80x60 crop of the chelsea photo: real content, fast to code (no ICC profile)."""
    with Image.open(_fixture("skimage_chelsea_CC0.png")) as image:
        return Image.fromarray(np.asarray(image.convert("RGB"))[60:120, 160:240])


def _save(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _roundtrip(data: bytes) -> Split:
    """Split, and check that the recipe rebuilds the original bytes."""
    split = split_container(data)
    assert split.pixels.dtype == np.uint8 and split.pixels.ndim == 3
    assert split.pixels.flags.c_contiguous
    assert rebuild_container(split.pixels, split.recipe) == data
    return split


def _pillow_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image)
    return array[:, :, None] if array.ndim == 2 else array


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload))


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _assemble(chunks: list[tuple[bytes, bytes]], trailer: bytes = b"") -> bytes:
    return PNG_SIGNATURE + b"".join(_chunk(k, p) for k, p in chunks) + trailer


def _rechunk_idat(data: bytes, sizes: list[int] | int) -> bytes:
    """The same PNG with its IDAT data cut into chunks of the given sizes."""
    chunks = _chunks(data)
    idat = b"".join(p for k, p in chunks if k == b"IDAT")
    if isinstance(sizes, int):
        sizes = [sizes] * (len(idat) // sizes) + ([len(idat) % sizes] if len(idat) % sizes else [])
    pieces, pos = [], 0
    for size in sizes:
        pieces.append((b"IDAT", idat[pos : pos + size]))
        pos += size
    first = next(i for i, (k, _) in enumerate(chunks) if k == b"IDAT")
    rest = [c for c in chunks if c[0] != b"IDAT"]
    return _assemble(rest[:first] + pieces + rest[first:])


def _reference_filter(kind: int, row: bytes, above: bytes, bpp: int) -> bytes:
    """PNG filter of one row, byte by byte, as the specification writes it."""
    out = bytearray(len(row))
    for i, value in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = above[i]
        c = above[i - bpp] if i >= bpp else 0
        if kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        else:
            predictor = (0, a, b, (a + b) // 2)[kind]
        out[i] = (value - predictor) & 0xFF
    return bytes(out)


def _libpng_choice(raw: bytes, above: bytes, bpp: int) -> int:
    """libpng's pick: lowest sum of |byte| (as signed), filters tried 0..4, first minimum."""
    sums = [sum(min(v, 256 - v) for v in _reference_filter(kind, raw, above, bpp))
            for kind in range(5)]
    return sums.index(min(sums))


def _reference_png(pixels: np.ndarray, colour: int, depth: int = 8, interlace: bool = False,
                   palette: bytes = b"", libpng: bool = False) -> bytes:
    """A PNG written independently of the code under test: rows filtered 0,1,2,3,4,0,... in
    turn (or as libpng picks), Adam7 passes when interlaced, zlib level 6."""
    height, width, channels = pixels.shape
    bpp = max(1, channels * depth // 8)
    stream, count = bytearray(), 0
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        sub = pixels[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        row_bytes = (sub.shape[1] * channels * depth + 7) // 8
        above = bytes(row_bytes)
        for line in sub:
            if depth == 8:
                raw = line.tobytes()
            else:
                bits = "".join(format(int(v), f"0{depth}b") for v in line[:, 0])
                raw = int(bits.ljust(row_bytes * 8, "0"), 2).to_bytes(row_bytes, "big")
            kind = _libpng_choice(raw, above, bpp) if libpng else count % 5
            count += 1
            stream += bytes([kind]) + _reference_filter(kind, raw, above, bpp)
            above = raw
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlace))
    chunks = [(b"IHDR", header)] + ([(b"PLTE", palette)] if palette else [])
    return _assemble(chunks + [(b"IDAT", zlib.compress(bytes(stream), 6)), (b"IEND", b"")])


def _declines(data: bytes, reason: str) -> None:
    with pytest.raises(NotRebuildable, match=reason):
        split_container(data)


# --- PNG written by Pillow --------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"compress_level": 0}, {"compress_level": 1},
                                     {"compress_level": 6}, {"compress_level": 9},
                                     {"optimize": True}], ids=str)
def test_pillow_png_levels_rebuild_exactly(chelsea: Image.Image, options: dict) -> None:
    data = _save(chelsea, **options)
    split = _roundtrip(data)
    assert (split.format, split.mode) == ("PNG", "RGB")
    np.testing.assert_array_equal(split.pixels, _pillow_pixels(data))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_pillow_png_modes_rebuild_exactly(chelsea: Image.Image, mode: str) -> None:
    image = chelsea.convert(mode)
    if "A" in mode:  # a real alpha channel, not a constant
        alpha = np.tile(np.arange(0, 240, 3, dtype=np.uint8), (60, 1))
        image.putalpha(Image.fromarray(alpha))
    data = _save(image)
    split = _roundtrip(data)
    assert split.mode == mode and split.pixels.shape == (60, 80, len(mode))
    np.testing.assert_array_equal(split.pixels, _pillow_pixels(data))
    assert describe_recipe(split.recipe)["filters"] == "pillow"


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_palette_png_gives_indices_at_every_depth(chelsea: Image.Image, bits: int) -> None:
    data = _save(chelsea.quantize(2**bits), bits=bits)
    split = _roundtrip(data)
    assert split.mode == "P" and split.pixels.shape == (60, 80, 1)
    assert int(split.pixels.max()) < 2**bits
    np.testing.assert_array_equal(split.pixels, _pillow_pixels(data))


def test_one_bit_gray_png_gives_raw_values(chelsea: Image.Image) -> None:
    data = _save(chelsea.convert("1"))
    split = _roundtrip(data)
    assert split.mode == "L" and set(np.unique(split.pixels)) <= {0, 1}
    np.testing.assert_array_equal(split.pixels[:, :, 0], _pillow_pixels(data)[:, :, 0])


def test_cifar_recipe_is_small_and_shared_by_same_size_images() -> None:
    recipes = []
    for index in range(4):
        with Image.open(_fixture(f"cifar10_test_{index:02d}.png")) as image:
            recipes.append(_roundtrip(_save(image.convert("RGB"))).recipe)
    assert len(recipes[0]) <= CIFAR_RECIPE_BOUND
    assert len(set(recipes)) == 1  # one value in a dictionary-encoded index column
    info = describe_recipe(recipes[0])
    assert info["filters"] == "pillow" and info["chunks"] == ["IHDR", "IDAT", "IEND"]
    assert info["zlib_version"] == zlib.ZLIB_RUNTIME_VERSION


def test_cifar_fixture_files_rebuild_with_one_recipe() -> None:
    """The shipped fixtures (Pillow, optimize=True) rebuild as they are, one shared recipe."""
    splits = [_roundtrip(_fixture(f"cifar10_test_{i:02d}.png").read_bytes()) for i in range(4)]
    assert len({s.recipe for s in splits}) == 1
    assert describe_recipe(splits[0].recipe)["filters"] == "pillow-optimize"


def test_two_images_differ_only_in_pixels_not_recipe(chelsea: Image.Image) -> None:
    first = _roundtrip(_save(chelsea))
    second = _roundtrip(_save(chelsea.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    assert first.recipe == second.recipe
    assert not np.array_equal(first.pixels, second.pixels)


# --- PNG structure ----------------------------------------------------------------------------


def test_ancillary_chunks_and_trailing_bytes_survive(chelsea: Image.Image) -> None:
    chunks = _chunks(_save(chelsea))
    before = [(b"gAMA", struct.pack(">I", 45455)), (b"sRGB", b"\x00"),
              (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000,
                                    15000, 6000)),
              (b"sBIT", b"\x08\x08\x08"), (b"bKGD", struct.pack(">3H", 1, 2, 3)),
              (b"tIME", struct.pack(">HBBBBB", 2024, 5, 6, 7, 8, 9)),
              (b"iTXt", b"Comment\x00\x00\x00en\x00Kommentar\x00caf\xc3\xa9"),
              (b"prVt", b"private bytes")]
    after = [(b"tEXt", b"Author\x00someone")]
    data = _assemble([chunks[0]] + before + chunks[1:-1] + after + [chunks[-1]],
                     trailer=b"junk after IEND\x00")
    split = _roundtrip(data)
    assert describe_recipe(split.recipe)["chunks"] == [
        "IHDR", "gAMA", "sRGB", "cHRM", "sBIT", "bKGD", "tIME", "iTXt", "prVt", "IDAT",
        "tEXt", "IEND"]
    assert describe_recipe(split.recipe)["trailer_bytes"] == 16


@pytest.mark.parametrize("sizes", [100, [7, 300, 1]], ids=["fixed", "irregular"])
def test_idat_chunking_is_kept(chelsea: Image.Image, sizes: list[int] | int) -> None:
    data = _save(chelsea)
    if isinstance(sizes, list):  # the rest in one last chunk
        sizes = sizes + [sum(len(p) for k, p in _chunks(data) if k == b"IDAT") - sum(sizes)]
    data = _rechunk_idat(data, sizes)
    split = _roundtrip(data)
    if isinstance(sizes, int):
        assert len(split.recipe) < 60  # a rule, not a list of lengths


@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
@pytest.mark.parametrize("kind", ["RGB", "LA", "P2", "L2", "L4"])
def test_reference_encoder_with_every_filter(interlace: bool, kind: str) -> None:
    """Independent writer, all five filters, Adam7 with partial passes (odd size)."""
    rng = np.random.default_rng(7)
    base = np.asarray(Image.open(_fixture("cifar10_test_01.png")).convert("RGB"))[:13, :11]
    if kind == "RGB":
        pixels, colour, depth, palette = base, 2, 8, b""
    elif kind == "LA":
        pixels = np.dstack([base[:, :, 0], rng.integers(0, 256, base.shape[:2], np.uint8)])
        colour, depth, palette = 4, 8, b""
    elif kind == "P2":
        pixels, colour, depth = (base[:, :, :1] >> 6), 3, 2
        palette = bytes(range(12))
    else:
        depth = int(kind[1])
        pixels, colour, palette = base[:, :, 1:2] >> (8 - depth), 0, b""
    data = _reference_png(np.ascontiguousarray(pixels), colour, depth, interlace, palette)
    split = _roundtrip(data)
    np.testing.assert_array_equal(split.pixels, pixels)
    info = describe_recipe(split.recipe)
    assert info["filters"] == "explicit"
    # zlib level 6; on incompressible rows it wrote stored blocks, rebuilt as such
    assert info["deflate"].get("level") == 6 or info["deflate"].get("stored")


def test_heuristics_break_ties_like_their_encoders() -> None:
    """Rows where None loses and Up, Sub, Average and Paeth tie: Pillow keeps Up (it tries Up
    before Sub and needs a strictly smaller sum), libpng keeps Sub (first in type order)."""
    pixels = np.array([[0, 3], [3, 5]] * 4, np.uint8)[:, :, None]
    by_pillow = _save(Image.fromarray(pixels[:, :, 0]))
    by_libpng = _reference_png(pixels, 0, libpng=True)
    for data, rule, tie_winner in ((by_pillow, "pillow", 2), (by_libpng, "libpng", 1)):
        split = _roundtrip(data)
        assert describe_recipe(split.recipe)["filters"] == rule
        rows = zlib.decompress(b"".join(p for k, p in _chunks(data) if k == b"IDAT"))
        assert [rows[i] for i in range(3, len(rows), 6)] == [tie_winner] * 4


# --- PNG fixtures from external encoders -------------------------------------------------------

ZLIB_ENCODERS = ("magick-default", "magick-q95", "magick-interlace", "optipng-default",
                 "optipng-o5", "pngcrush-default", "pngcrush-brute")
KINDS = ("rgb", "gray", "pal", "rgba")


def test_encoder_fixtures_are_all_there() -> None:
    expected = {f"{e}_{k}.png" for e in (*ZLIB_ENCODERS, "zopflipng") for k in KINDS}
    assert {p.name for p in ENCODER_FIXTURES.glob("*.png")} == expected


@pytest.mark.parametrize("encoder", ZLIB_ENCODERS)
@pytest.mark.parametrize("kind", KINDS)
def test_zlib_based_encoders_rebuild_exactly(encoder: str, kind: str) -> None:
    data = (ENCODER_FIXTURES / f"{encoder}_{kind}.png").read_bytes()
    split = _roundtrip(data)
    np.testing.assert_array_equal(split.pixels, _pillow_pixels(data))
    if encoder == "magick-interlace":
        assert data[8 + 8 + 12] == 1  # IHDR interlace method: Adam7
    rule = describe_recipe(split.recipe)["filters"]
    if kind == "pal" and encoder.startswith(("magick", "optipng")):
        assert rule == "none"  # libpng's default for palette images
    elif encoder.startswith("magick") or encoder == "optipng-default":
        assert rule == "libpng"
    elif encoder == "pngcrush-default":
        assert rule == "libpng[sub,up]"


@pytest.mark.parametrize("kind", KINDS)
def test_zopfli_streams_are_declined(kind: str) -> None:
    _declines((ENCODER_FIXTURES / f"zopflipng_{kind}.png").read_bytes(),
              r"IDAT deflate stream not reproducible with zlib \(another deflate implementation\)")


# --- PNG declined ----------------------------------------------------------------------------


def test_png_declines(chelsea: Image.Image) -> None:
    _declines(_save(chelsea.convert("I;16")), "PNG with 16-bit samples")
    chunks = _chunks(_save(chelsea))
    _declines(_assemble([chunks[0], (b"acTL", bytes(8))] + chunks[1:]), "APNG")
    bad_crc = bytearray(_save(chelsea))
    bad_crc[8 + 8 + 13] ^= 1  # IHDR CRC
    _declines(bytes(bad_crc), "bad CRC")
    truncated = _save(chelsea)[:-20]
    _declines(truncated, "PNG")
    _declines(b"\xff\xd8\xff\xe0" + bytes(100), "JPEG")
    _declines(b"hello", "not a PNG, BMP")


# --- BMP -------------------------------------------------------------------------------------


def _bmp(rows: np.ndarray, bits: int, top_down: bool = False, palette: bytes = b"",
         compression: int = 0, masks: bytes = b"", pad: int = 0, tail: bytes = b"") -> bytes:
    """A BMP around already-packed (H, payload) rows, padded with byte `pad`."""
    height, payload = rows.shape
    width = payload * 8 // bits
    stride = (width * bits + 31) // 32 * 4
    raster = np.full((height, stride), pad, np.uint8)
    raster[:, :payload] = rows
    raster = raster if top_down else raster[::-1]
    offset = 14 + 40 + len(masks) + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bits,
                       compression, raster.size, 2835, 2835, len(palette) // 4, 0)
    header = struct.pack("<2sIHHI", b"BM", offset + raster.size + len(tail), 0, 0, offset)
    return header + info + masks + palette + raster.tobytes() + tail


@pytest.mark.parametrize("top_down", [False, True], ids=["bottom-up", "top-down"])
def test_bmp_32_bit_keeps_the_fourth_byte(top_down: bool) -> None:
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 256, (5, 7, 4), np.uint8)
    data = _bmp(bgra.reshape(5, 28), 32, top_down, tail=b"\x00tail")
    split = _roundtrip(data)
    assert (split.format, split.mode) == ("BMP", "RGBA")
    np.testing.assert_array_equal(split.pixels, bgra[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(split.pixels[:, :, :3], _pillow_pixels(data)[:, :, :3])


def test_bmp_bitfields_with_byte_masks() -> None:
    rng = np.random.default_rng(2)
    cells = rng.integers(0, 256, (4, 6, 4), np.uint8)  # bytes A, B, G, R in memory
    masks = struct.pack("<4I", 0xFF000000, 0x00FF0000, 0x0000FF00, 0x000000FF)
    info_v3 = _bmp(cells.reshape(4, 24), 32, compression=6, masks=masks)
    split = _roundtrip(info_v3)
    np.testing.assert_array_equal(split.pixels, cells[:, :, [3, 2, 1, 0]])


@pytest.mark.parametrize("top_down", [False, True], ids=["bottom-up", "top-down"])
def test_bmp_24_bit_with_row_padding(chelsea: Image.Image, top_down: bool) -> None:
    rgb = np.asarray(chelsea)[:9, :7]  # 21-byte rows, 3 bytes of padding each
    data = _bmp(np.ascontiguousarray(rgb[:, :, ::-1]).reshape(9, 21), 24, top_down)
    split = _roundtrip(data)
    np.testing.assert_array_equal(split.pixels, rgb)
    np.testing.assert_array_equal(split.pixels, _pillow_pixels(data))
    noisy = _bmp(np.ascontiguousarray(rgb[:, :, ::-1]).reshape(9, 21), 24, top_down, pad=0xAB)
    assert describe_recipe(_roundtrip(noisy).recipe)["padding_kept"]


def test_pillow_bmps_rebuild(chelsea: Image.Image) -> None:
    for image, mode in ((chelsea, "RGB"), (chelsea.quantize(256), "P"),
                        (chelsea.convert("1"), "P"), (chelsea.convert("RGBA"), "RGBA")):
        data = _save(image, "BMP")
        split = _roundtrip(data)
        assert split.mode == mode
        # Pillow reads a 32-bit BMP as RGB: the split keeps the 4th byte as a channel
        expected = _pillow_pixels(data).astype(np.uint8)
        np.testing.assert_array_equal(split.pixels[:, :, : expected.shape[2]], expected)


@pytest.mark.parametrize("bits", [1, 4])
def test_bmp_low_depth_palette(bits: int) -> None:
    rng = np.random.default_rng(bits)
    indices = rng.integers(0, 2**bits, (6, 8 * 4 // bits), np.uint8)  # whole bytes per row
    per_byte = 8 // bits
    packed = np.zeros((6, indices.shape[1] // per_byte), np.uint8)
    for j in range(per_byte):
        packed |= indices[:, j::per_byte] << (bits * (per_byte - 1 - j))
    palette = bytes(range(4 * 2**bits))
    split = _roundtrip(_bmp(packed, bits, palette=palette))
    assert split.mode == "P"
    np.testing.assert_array_equal(split.pixels[:, :, 0], indices)


def test_bmp_declines() -> None:
    rle = bytearray(_bmp(np.zeros((2, 4), np.uint8), 8, palette=bytes(1024)))
    rle[30] = 1  # compression = BI_RLE8
    _declines(bytes(rle), "RLE-compressed BMP")
    sixteen = bytearray(_bmp(np.zeros((2, 4), np.uint8), 16))
    _declines(bytes(sixteen), "16-bit")
    _declines(_bmp(np.zeros((2, 12), np.uint8), 24)[:-5], "past the end")


# --- PNM / PAM -------------------------------------------------------------------------------


def test_pnm_with_comments_and_trailing_bytes(chelsea: Image.Image) -> None:
    rgb = np.asarray(chelsea)
    gray = np.asarray(chelsea.convert("L"))
    p6 = b"P6\n# made by hand\n80 # width\n60\n255\n" + rgb.tobytes() + b"second image?"
    p5 = b"P5 80\t60\r\n#c\n255 " + gray.tobytes()
    for data, mode in ((p6, "RGB"), (p5, "L")):
        split = _roundtrip(data)
        assert (split.format, split.mode) == ("PPM", mode)
        np.testing.assert_array_equal(split.pixels[:, :, :], rgb if mode == "RGB"
                                      else gray[:, :, None])
    np.testing.assert_array_equal(_pillow_pixels(p6), rgb)


@pytest.mark.parametrize(("tuple_type", "channels"), [("GRAYSCALE", 1), ("GRAYSCALE_ALPHA", 2),
                                                      ("RGB", 3), ("RGB_ALPHA", 4)])
def test_pam(tuple_type: str, channels: int) -> None:
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, (5, 6, channels), np.uint8)
    header = (f"P7\n# a comment\nWIDTH 6\nHEIGHT 5\nDEPTH {channels}\nMAXVAL 255\n"
              f"TUPLTYPE {tuple_type}\nENDHDR\n").encode()
    split = _roundtrip(header + pixels.tobytes())
    assert split.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    np.testing.assert_array_equal(split.pixels, pixels)


def test_pnm_declines() -> None:
    _declines(b"P3\n2 1\n255\n1 2 3 4 5 6\n", "ASCII PNM")
    _declines(b"P4\n8 1\n\xff", "PBM")
    _declines(b"P5\n2 1\n65535\n" + bytes(4), "maxval 65535")
    _declines(b"P6\n4 4\n255\n" + bytes(10), "past the end")


# --- TIFF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P"])
def test_uncompressed_tiff_with_text_tags(chelsea: Image.Image, mode: str) -> None:
    image = chelsea.quantize(200) if mode == "P" else chelsea.convert(mode)
    data = _save(image, "TIFF", description="a cat", artist="someone", software="by hand",
                 tiffinfo={278: 7})  # RowsPerStrip 7: several strips
    split = _roundtrip(data)
    assert (split.format, split.mode) == ("TIFF", mode)
    assert describe_recipe(split.recipe)["strips"] > 1
    np.testing.assert_array_equal(split.pixels, _pillow_pixels(data))


def test_tiff_declines(chelsea: Image.Image) -> None:
    _declines(_save(chelsea, "TIFF", compression="tiff_lzw"), "TIFF with compression 5")
    _declines(_save(chelsea, "TIFF", save_all=True, append_images=[chelsea]), "multi-page TIFF")
    _declines(_save(chelsea.convert("I;16"), "TIFF"), "16-bit")


# --- recipes and pixels that do not belong together ----------------------------------------


def _samples(chelsea: Image.Image) -> list[bytes]:
    return [_save(chelsea), _save(chelsea.quantize(16), bits=4), _save(chelsea, "BMP"),
            _save(chelsea, "PPM"), _save(chelsea, "TIFF", description="x")]


def _informative(recipe: bytes) -> range:
    """Recipe bytes that do not shape the output: the zlib version a PNG recipe records."""
    if recipe[:1] == b"P" and recipe[2] == 0:  # PNG, body not zstd-compressed
        return range(4, 4 + recipe[3])
    return range(0)


def test_tampered_recipe_does_not_rebuild_the_original(chelsea: Image.Image) -> None:
    for data in _samples(chelsea):
        split = split_container(data)
        for position in range(len(split.recipe)):
            if position in _informative(split.recipe):
                continue
            tampered = bytearray(split.recipe)
            tampered[position] ^= 0x21
            try:
                rebuilt = rebuild_container(split.pixels, bytes(tampered))
            except (ValueError, NotRebuildable):
                continue
            assert rebuilt != data, f"recipe byte {position} of a {split.format} was ignored"


def test_tampered_pixels_do_not_rebuild_the_original(chelsea: Image.Image) -> None:
    for data in _samples(chelsea):
        split = split_container(data)
        pixels = split.pixels.copy()
        pixels[30, 40, 0] ^= 1
        assert rebuild_container(pixels, split.recipe) != data


def test_bad_inputs_to_rebuild(chelsea: Image.Image) -> None:
    split = split_container(_save(chelsea))
    with pytest.raises(ValueError, match="unknown format tag"):
        rebuild_container(split.pixels, b"Z\x01\x00")
    with pytest.raises(ValueError, match="pixels are"):
        rebuild_container(split.pixels[:, :-1], split.recipe)
    with pytest.raises(ValueError, match="pixels are"):
        rebuild_container(split.pixels.astype(np.uint16), split.recipe)
    with pytest.raises(ValueError, match="version"):
        rebuild_container(split.pixels, split.recipe[:1] + b"\x09" + split.recipe[2:])
    palette = split_container(_save(chelsea.quantize(4), bits=2))
    with pytest.raises(ValueError, match="do not fit in 2 bits"):
        rebuild_container(palette.pixels + 4, palette.recipe)


def test_damaged_files_are_declined_or_rebuilt_never_crash(chelsea: Image.Image) -> None:
    """Random byte flips, cuts and insertions: split either declines (NotRebuildable) or
    returns a recipe that rebuilds the damaged file exactly."""
    small = chelsea.crop((0, 0, 20, 16))
    pam = b"P7\nWIDTH 4\nHEIGHT 2\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + bytes(24)
    seeds = [_save(small), _save(small.quantize(8), bits=4), _save(small, "BMP"),
             _save(small.quantize(16), "BMP"), _save(small, "PPM"), pam,
             _save(small, "TIFF", tiffinfo={278: 5})]
    rng = np.random.default_rng(0)
    for seed in seeds:
        for _ in range(120):
            data = bytearray(seed)
            position = int(rng.integers(len(data)))
            action = rng.integers(3)
            if action == 0:
                data[position] = int(rng.integers(256))
            elif action == 1:
                del data[position : position + int(rng.integers(1, 9))]
            else:
                data[position:position] = rng.integers(0, 256, 3, np.uint8).tobytes()
            try:
                split = split_container(bytes(data))
            except NotRebuildable:
                continue
            assert rebuild_container(split.pixels, split.recipe) == bytes(data)
