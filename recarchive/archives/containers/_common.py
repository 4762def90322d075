"""Pieces every container module shares: the Split result, the decline exception, the recipe
framing and a tiny varint reader/writer.

A recipe is ``tag (1 byte) + version (1 byte) + flags (1 byte) + body``; the tags are b"P" PNG,
b"B" BMP, b"N" PNM/PAM and b"T" TIFF, the version is 1. The body is a compact
binary record written with `RecipeWriter`; when zstd makes it shorter it is stored compressed
(flag bit 0). Everything is deterministic, so equal inputs give byte-identical recipes, which a
dictionary-encoded index column then stores once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zstandard

RECIPE_VERSION = 1
FLAG_ZSTD = 1
ZSTD_LEVEL = 19
MAX_BODY = 1 << 30  # a recipe body never legitimately decompresses to more than this


class NotRebuildable(Exception):  # noqa: N818 - the name the archive API uses
    """The file cannot be split into pixels + recipe exactly; str(e) says why."""


@dataclass(frozen=True)
class Split:
    """A raster file as the samples it stores plus what else it takes to rebuild its bytes."""

    format: str  # "PNG", "BMP", "PPM" (all PNM/PAM), "TIFF"
    mode: str  # "L", "LA", "RGB", "RGBA" or "P" (palette indices)
    pixels: np.ndarray  # (H, W, C) uint8, C-contiguous
    recipe: bytes  # self-describing: tag + version + flags + body


MODE_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 1}
MAX_SAMPLES = 1 << 31  # a raster's samples, above which a header is refused as a bomb


class RecipeWriter:
    """Appends unsigned varints, bytes and strings: small numbers cost one byte."""

    def __init__(self) -> None:
        self._parts = bytearray()

    def uint(self, value: int) -> RecipeWriter:
        if value < 0:
            raise ValueError(f"recipe integers are unsigned, got {value}")
        while True:
            low, value = value & 0x7F, value >> 7
            self._parts.append(low | (0x80 if value else 0))
            if not value:
                return self

    def raw(self, data: bytes) -> RecipeWriter:
        self._parts += data
        return self

    def blob(self, data: bytes) -> RecipeWriter:
        return self.uint(len(data)).raw(data)

    def text(self, value: str) -> RecipeWriter:
        return self.blob(value.encode("ascii"))

    def uints(self, values: list[int]) -> RecipeWriter:
        self.uint(len(values))
        for value in values:
            self.uint(value)
        return self

    def getvalue(self) -> bytes:
        return bytes(self._parts)


class RecipeReader:
    """Reads what `RecipeWriter` wrote; any overrun or leftover is a ValueError (bad recipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def uint(self) -> int:
        value = shift = 0
        while True:
            if self._pos >= len(self._data) or shift > 63:
                raise ValueError("recipe ends inside a number")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def raw(self, size: int) -> bytes:
        if size < 0 or self._pos + size > len(self._data):
            raise ValueError("recipe ends inside a field")
        out = self._data[self._pos : self._pos + size]
        self._pos += size
        return out

    def blob(self) -> bytes:
        return self.raw(self.uint())

    def text(self) -> str:
        return self.blob().decode("ascii")

    def uints(self) -> list[int]:
        count = self.uint()
        if count > len(self._data):
            raise ValueError("recipe list longer than the recipe")
        return [self.uint() for _ in range(count)]

    def end(self) -> None:
        if self._pos != len(self._data):
            raise ValueError(f"recipe has {len(self._data) - self._pos} unread bytes")


def pack_recipe(tag: bytes, body: bytes) -> bytes:
    """Frame a body; zstd it only when that is shorter (tiny PNG recipes stay raw)."""
    packed = zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, write_checksum=False, write_content_size=True, write_dict_id=False
    ).compress(body)
    if len(packed) < len(body):
        return tag + bytes([RECIPE_VERSION, FLAG_ZSTD]) + packed
    return tag + bytes([RECIPE_VERSION, 0]) + body


def unpack_recipe(tag: bytes, recipe: bytes) -> bytes:
    """The body of a recipe written by `pack_recipe` for `tag`, or ValueError."""
    if len(recipe) < 3 or recipe[:1] != tag:
        raise ValueError(f"not a {tag!r} recipe")
    if recipe[1] != RECIPE_VERSION:
        raise ValueError(f"recipe version {recipe[1]} is not supported (reads {RECIPE_VERSION})")
    flags = recipe[2]
    if flags & ~FLAG_ZSTD:
        raise ValueError(f"unknown recipe flags {flags:#x}")
    body = recipe[3:]
    if flags & FLAG_ZSTD:
        try:
            body = zstandard.ZstdDecompressor().decompress(body, max_output_size=MAX_BODY)
        except zstandard.ZstdError as error:
            raise ValueError(f"recipe body does not decompress: {error}") from error
    return body


def check_pixels(pixels: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """The pixels as a C-contiguous (H, W, C) uint8 array, or ValueError naming the mismatch."""
    array = np.asarray(pixels)
    if array.ndim == 2 and channels == 1:
        array = array[:, :, None]
    if array.dtype != np.uint8 or array.shape != (height, width, channels):
        raise ValueError(
            f"pixels are {array.dtype} {array.shape}, the recipe needs uint8 "
            f"{(height, width, channels)}"
        )
    return np.ascontiguousarray(array)


def cut_ranges(data: bytes, ranges: list[tuple[int, int]]) -> bytes:
    """`data` without the (offset, length) ranges: what is left is kept verbatim in a recipe."""
    parts, pos = [], 0
    for offset, length in sorted(ranges):
        if offset < pos or offset + length > len(data):
            raise NotRebuildable("raster byte ranges overlap or run past the end of the file")
        parts.append(data[pos:offset])
        pos = offset + length
    parts.append(data[pos:])
    return b"".join(parts)


def splice_ranges(skeleton: bytes, pieces: list[tuple[int, bytes]]) -> bytes:
    """Put each (offset, piece) back where `cut_ranges` took it from (offsets in the original)."""
    out = bytearray()
    taken = 0  # bytes of the skeleton already copied
    for offset, piece in sorted(pieces, key=lambda item: item[0]):
        gap = offset - len(out)
        if gap < 0 or taken + gap > len(skeleton):
            raise ValueError("recipe raster ranges do not fit its skeleton")
        out += skeleton[taken : taken + gap]
        taken += gap
        out += piece
    out += skeleton[taken:]
    return bytes(out)
