"""BMP: uncompressed rasters cut out of the file; headers, palette, gaps and tail kept verbatim.

A BMP's raster is one block of rows (bottom-up unless the height is negative), each padded to a
multiple of 4 bytes. The recipe is the file without that block (the header at its start says
how to read it back) plus the padding bytes when they are not all zero. Supported: BI_RGB 24-
and 32-bit (the 4th byte is kept as a 4th channel, mode "RGBA"), BI_BITFIELDS/ALPHABITFIELDS
32-bit with one-byte masks, and 1/4/8-bit palette images as mode "P" (indices).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from recarchive.archives.containers._common import (
    MAX_SAMPLES,
    NotRebuildable,
    RecipeReader,
    RecipeWriter,
    Split,
    check_pixels,
    cut_ranges,
    pack_recipe,
    splice_ranges,
    unpack_recipe,
)

TAG = b"B"
BI_RGB, BI_RLE8, BI_RLE4, BI_BITFIELDS, BI_JPEG, BI_PNG, BI_ALPHABITFIELDS = range(7)
BYTE_MASKS = {0xFF << (8 * index): index for index in range(4)}


@dataclass(frozen=True)
class Layout:
    """Where the raster sits and how its bytes map to pixels."""

    offset: int
    width: int
    height: int
    bits: int  # bits per pixel: 1, 4, 8, 24 or 32
    top_down: bool
    order: tuple[int, ...]  # for 24/32 bits: the byte of each pixel channel (R, G, B[, A])

    @property
    def mode(self) -> str:
        return "P" if self.bits <= 8 else ("RGB" if self.bits == 24 else "RGBA")

    @property
    def channels(self) -> int:
        return len(self.order) if self.order else 1

    @property
    def payload(self) -> int:
        return (self.width * self.bits + 7) // 8

    @property
    def stride(self) -> int:
        return (self.width * self.bits + 31) // 32 * 4

    @property
    def size(self) -> int:
        return self.stride * self.height


def split(data: bytes) -> Split:
    """Pixels + recipe of an uncompressed BMP."""
    layout = _layout(data)
    if layout.offset + layout.size > len(data):
        raise NotRebuildable("BMP raster runs past the end of the file")
    rows = np.frombuffer(data, np.uint8, layout.size, layout.offset).reshape(
        layout.height, layout.stride)
    padding = rows[:, layout.payload :]
    pixels = _to_pixels(rows[:, : layout.payload], layout)
    if not np.array_equal(_from_pixels(pixels, layout), rows[:, : layout.payload]):
        raise NotRebuildable("BMP rows have nonzero bits after their last pixel")
    body = RecipeWriter().blob(cut_ranges(data, [(layout.offset, layout.size)]))
    if padding.any():
        body.uint(1).blob(padding.tobytes())
    else:
        body.uint(0)
    return Split("BMP", layout.mode, pixels, pack_recipe(TAG, body.getvalue()))


def rebuild(pixels: np.ndarray, recipe: bytes) -> bytes:
    """The BMP the recipe describes, holding `pixels`."""
    reader = RecipeReader(unpack_recipe(TAG, recipe))
    skeleton = reader.blob()
    try:
        layout = _layout(skeleton)
    except NotRebuildable as error:
        raise ValueError(f"BMP recipe header is unusable ({error})") from error
    pad_bytes = layout.stride - layout.payload
    kept = reader.uint()
    if kept > 1:
        raise ValueError(f"BMP recipe has an unknown padding flag {kept}")
    if kept:
        padding = np.frombuffer(reader.blob(), np.uint8)
        if padding.size != layout.height * pad_bytes:
            raise ValueError("BMP recipe padding does not fit the raster")
        padding = padding.reshape(layout.height, pad_bytes)
    else:
        padding = np.zeros((layout.height, pad_bytes), np.uint8)
    reader.end()
    pixels = check_pixels(pixels, layout.height, layout.width, layout.channels)
    raster = np.concatenate([_from_pixels(pixels, layout), padding], axis=1)
    return splice_ranges(skeleton, [(layout.offset, raster.tobytes())])


def describe(recipe: bytes) -> dict[str, object]:
    """What a BMP recipe says."""
    reader = RecipeReader(unpack_recipe(TAG, recipe))
    layout = _layout(reader.blob())
    return {"format": "BMP", "mode": layout.mode, "bits": layout.bits,
            "top_down": layout.top_down, "padding_kept": bool(reader.uint())}


def _layout(data: bytes) -> Layout:
    """Read the headers (only the bytes before the raster are needed)."""
    if len(data) < 26 or not data.startswith(b"BM"):
        raise NotRebuildable("BMP header is truncated")
    offset, dib = struct.unpack_from("<II", data, 10)
    if dib == 12:
        width, height, _planes, bits = struct.unpack_from("<HHHH", data, 18)
        compression = BI_RGB
    elif dib >= 40 and len(data) >= 54:
        width, height, _planes, bits, compression = struct.unpack_from("<iiHHI", data, 18)
    else:
        raise NotRebuildable(f"BMP with a {dib}-byte info header")
    top_down = height < 0
    height = abs(height)
    if width <= 0 or height == 0 or width * height * 4 > MAX_SAMPLES:
        raise NotRebuildable("BMP with a zero, negative or huge size")
    if compression in (BI_RLE8, BI_RLE4):
        raise NotRebuildable("RLE-compressed BMP")
    if compression in (BI_JPEG, BI_PNG):
        raise NotRebuildable("BMP holding a JPEG or PNG")
    if bits == 16:
        raise NotRebuildable("BMP with 16-bit pixels")
    if bits not in (1, 4, 8, 24, 32):
        raise NotRebuildable(f"BMP with {bits} bits per pixel")
    if offset < 14 + dib:
        raise NotRebuildable("BMP raster overlaps its header")
    if compression == BI_RGB:
        order: tuple[int, ...] = () if bits <= 8 else ((2, 1, 0) if bits == 24 else (2, 1, 0, 3))
    elif compression in (BI_BITFIELDS, BI_ALPHABITFIELDS) and bits == 32:
        order = _mask_order(data, dib, compression)
    else:
        raise NotRebuildable(f"BMP with compression {compression} at {bits} bits")
    return Layout(offset, width, height, bits, top_down, order)


def _mask_order(data: bytes, dib: int, compression: int) -> tuple[int, int, int, int]:
    """Byte of R, G, B and alpha (or the unused byte) for one-byte bit field masks."""
    with_alpha = dib >= 56 or compression == BI_ALPHABITFIELDS
    if len(data) < 54 + (16 if with_alpha else 12):
        raise NotRebuildable("BMP bit field masks are truncated")
    masks = struct.unpack_from("<IIII" if with_alpha else "<III", data, 54)
    if with_alpha and masks[3] == 0:
        masks = masks[:3]
    if any(mask not in BYTE_MASKS for mask in masks) or len(set(masks)) != len(masks):
        raise NotRebuildable("BMP bit field masks are not whole, distinct bytes")
    order = [BYTE_MASKS[mask] for mask in masks]
    order += [index for index in range(4) if index not in order]
    return order[0], order[1], order[2], order[3]


def _to_pixels(rows: np.ndarray, layout: Layout) -> np.ndarray:
    """(H, payload) file rows -> (H, W, C) pixels, top row first."""
    if not layout.top_down:
        rows = rows[::-1]
    if layout.bits > 8:
        cells = rows.reshape(layout.height, layout.width, layout.bits // 8)
        return np.ascontiguousarray(cells[:, :, list(layout.order)])
    if layout.bits == 8:
        return np.ascontiguousarray(rows[:, :, None])
    bits = np.unpackbits(rows, axis=1).reshape(layout.height, -1, layout.bits)
    weights = (1 << np.arange(layout.bits - 1, -1, -1)).astype(np.uint8)
    indices = (bits * weights).sum(axis=2, dtype=np.uint8)[:, : layout.width]
    return np.ascontiguousarray(indices[:, :, None])


def _from_pixels(pixels: np.ndarray, layout: Layout) -> np.ndarray:
    """(H, W, C) pixels -> (H, payload) file rows in file order."""
    if layout.bits > 8:
        cells = np.empty((layout.height, layout.width, layout.bits // 8), np.uint8)
        cells[:, :, list(layout.order)] = pixels
        rows = cells.reshape(layout.height, layout.payload)
    else:
        indices = pixels[:, :, 0]
        if int(indices.max(initial=0)) >> layout.bits:
            raise ValueError(f"palette indices do not fit in {layout.bits} bits")
        per_byte = 8 // layout.bits
        padded = np.zeros((layout.height, layout.payload * per_byte), np.uint8)
        padded[:, : layout.width] = indices
        shifts = (layout.bits * np.arange(per_byte - 1, -1, -1)).astype(np.uint8)
        rows = np.bitwise_or.reduce(padded.reshape(layout.height, -1, per_byte) << shifts, axis=2)
    return rows if layout.top_down else rows[::-1]
