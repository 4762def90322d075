"""TIFF: single-page, uncompressed, 8-bit chunky strips; every non-pixel byte kept verbatim.

The recipe is the file with the strip bytes cut out (so the IFD, tags such as ImageDescription,
Artist or Software, and any unused bytes survive as they are) plus the strip layout: the raster
shape, rows per strip and where each strip sat (one offset when the strips are back to back).
Pixels are the samples as stored: Photometric 0/1 gray ("L", WhiteIsZero not inverted), 2 RGB,
with one extra sample as alpha ("LA"/"RGBA"), and 3 palette ("P", 8-bit indices).
Compressed, tiled, planar, multi-page and non-8-bit files are declined.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from recarchive.archives.containers._common import (
    MAX_SAMPLES,
    MODE_CHANNELS,
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

TAG = b"T"
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
              16: 8, 17: 8, 18: 8}
INT_FORMATS = {1: "B", 3: "H", 4: "I", 13: "I"}
WIDTH, LENGTH, BITS, COMPRESSION, PHOTOMETRIC = 256, 257, 258, 259, 262
STRIP_OFFSETS, SAMPLES, ROWS_PER_STRIP, STRIP_COUNTS, PLANAR = 273, 277, 278, 279, 284
PREDICTOR, TILE_WIDTH, SAMPLE_FORMAT = 317, 322, 339
MODES = ("L", "LA", "RGB", "RGBA", "P")
STRIPS_CONTIGUOUS, STRIPS_LISTED = 0, 1


@dataclass(frozen=True)
class Raster:
    """Shape and strip layout of the one image in the file."""

    mode: str
    width: int
    height: int
    rows_per_strip: int

    @property
    def channels(self) -> int:
        return MODE_CHANNELS[self.mode]

    def strip_sizes(self) -> list[int]:
        """Bytes of pixels in each strip (the last may hold fewer rows)."""
        row = self.width * self.channels
        return [min(self.rows_per_strip, self.height - top) * row
                for top in range(0, self.height, self.rows_per_strip)]


def split(data: bytes) -> Split:
    """Pixels + recipe of an uncompressed single-page TIFF."""
    raster, offsets = _read(data)
    sizes = raster.strip_sizes()
    ranges = list(zip(offsets, sizes, strict=True))
    pixels = np.frombuffer(b"".join(data[o : o + n] for o, n in ranges), np.uint8).reshape(
        raster.height, raster.width, raster.channels)
    body = RecipeWriter().blob(cut_ranges(data, ranges))
    body.uint(MODES.index(raster.mode)).uint(raster.width).uint(raster.height)
    body.uint(raster.rows_per_strip)
    if all(offsets[i + 1] == offsets[i] + sizes[i] for i in range(len(offsets) - 1)):
        body.uint(STRIPS_CONTIGUOUS).uint(offsets[0])
    else:
        body.uint(STRIPS_LISTED).uints(offsets)
    return Split("TIFF", raster.mode, np.ascontiguousarray(pixels),
                 pack_recipe(TAG, body.getvalue()))


def rebuild(pixels: np.ndarray, recipe: bytes) -> bytes:
    """The TIFF the recipe describes, holding `pixels`."""
    reader = RecipeReader(unpack_recipe(TAG, recipe))
    skeleton, raster, offsets = _read_recipe(reader)
    pixels = check_pixels(pixels, raster.height, raster.width, raster.channels)
    flat, pieces, pos = pixels.tobytes(), [], 0
    for offset, size in zip(offsets, raster.strip_sizes(), strict=True):
        pieces.append((offset, flat[pos : pos + size]))
        pos += size
    return splice_ranges(skeleton, pieces)


def describe(recipe: bytes) -> dict[str, object]:
    """What a TIFF recipe says."""
    skeleton, raster, offsets = _read_recipe(RecipeReader(unpack_recipe(TAG, recipe)))
    return {"format": "TIFF", "mode": raster.mode, "rows_per_strip": raster.rows_per_strip,
            "strips": len(offsets), "skeleton_bytes": len(skeleton)}


def _read_recipe(reader: RecipeReader) -> tuple[bytes, Raster, list[int]]:
    skeleton = reader.blob()
    mode_index, width, height, rows_per_strip = (reader.uint() for _ in range(4))
    if mode_index >= len(MODES) or not width or not height or not rows_per_strip:
        raise ValueError("TIFF recipe has a bad raster description")
    raster = Raster(MODES[mode_index], width, height, min(rows_per_strip, height))
    sizes = raster.strip_sizes()
    layout = reader.uint()
    if layout == STRIPS_CONTIGUOUS:
        offsets = [reader.uint()]
        for size in sizes[:-1]:
            offsets.append(offsets[-1] + size)
    elif layout == STRIPS_LISTED:
        offsets = reader.uints()
    else:
        raise ValueError(f"TIFF recipe has an unknown strip layout {layout}")
    reader.end()
    if len(offsets) != len(sizes):
        raise ValueError("TIFF recipe strip count does not fit the raster")
    return skeleton, raster, offsets


def _read(data: bytes) -> tuple[Raster, list[int]]:
    """The raster and strip offsets of the file's only IFD, declining what is unsupported."""
    tags, next_ifd = _ifd(data)
    if next_ifd:
        raise NotRebuildable("multi-page TIFF")
    if TILE_WIDTH in tags:
        raise NotRebuildable("tiled TIFF")
    compression = _one(tags, COMPRESSION, 1)
    if compression != 1:
        raise NotRebuildable(f"TIFF with compression {compression}")
    samples = _one(tags, SAMPLES, 1)
    bits = tags.get(BITS, [1])
    if len(bits) != samples or any(b != 8 for b in bits):
        raise NotRebuildable(f"TIFF with {'/'.join(map(str, bits))}-bit samples")
    if samples > 1 and _one(tags, PLANAR, 1) != 1:
        raise NotRebuildable("planar TIFF (separate sample planes)")
    if any(f != 1 for f in tags.get(SAMPLE_FORMAT, [1])) or _one(tags, PREDICTOR, 1) != 1:
        raise NotRebuildable("TIFF with a sample format or predictor other than plain unsigned")
    mode = _mode(_one(tags, PHOTOMETRIC, -1), samples)
    width, height = _one(tags, WIDTH, 0), _one(tags, LENGTH, 0)
    if width <= 0 or height <= 0 or width * height * samples > MAX_SAMPLES:
        raise NotRebuildable("TIFF with a zero or huge size")
    raster = Raster(mode, width, height, min(_one(tags, ROWS_PER_STRIP, height) or height, height))
    offsets, counts = tags.get(STRIP_OFFSETS, []), tags.get(STRIP_COUNTS, [])
    sizes = raster.strip_sizes()
    if len(offsets) != len(sizes) or len(counts) != len(sizes):
        raise NotRebuildable("TIFF strip offsets/byte counts do not match its rows per strip")
    for offset, count, size in zip(offsets, counts, sizes, strict=True):
        if count < size or offset + size > len(data):
            raise NotRebuildable("TIFF strip is shorter than its rows or runs past the file")
    return raster, offsets


def _mode(photometric: int, samples: int) -> str:
    """Pixel mode from Photometric and SamplesPerPixel: one sample more than the colour needs
    is kept as a 4th (or 2nd) channel, whatever ExtraSamples calls it."""
    base = {0: "L", 1: "L", 2: "RGB", 3: "P"}.get(photometric)
    if base is None:
        raise NotRebuildable(f"TIFF with photometric interpretation {photometric}")
    mode = {("L", 1): "L", ("L", 2): "LA", ("RGB", 3): "RGB", ("RGB", 4): "RGBA",
            ("P", 1): "P"}.get((base, samples))
    if mode is None:
        raise NotRebuildable(f"TIFF with photometric {photometric} and {samples} samples")
    return mode


def _ifd(data: bytes) -> tuple[dict[int, list[int]], int]:
    """Integer-valued tags of the first IFD (others as []) and the next IFD's offset."""
    if len(data) < 8:
        raise NotRebuildable("TIFF header is truncated")
    endian = "<" if data[:2] == b"II" else ">"
    (first,) = struct.unpack_from(endian + "I", data, 4)
    if first + 2 > len(data):
        raise NotRebuildable("TIFF IFD offset runs past the end of the file")
    (count,) = struct.unpack_from(endian + "H", data, first)
    if first + 2 + 12 * count + 4 > len(data):
        raise NotRebuildable("TIFF IFD runs past the end of the file")
    tags: dict[int, list[int]] = {}
    for index in range(count):
        entry = first + 2 + 12 * index
        tag, kind, number = struct.unpack_from(endian + "HHI", data, entry)
        tags[tag] = _values(data, endian, kind, number, entry + 8) if kind in INT_FORMATS else []
    (next_ifd,) = struct.unpack_from(endian + "I", data, first + 2 + 12 * count)
    return tags, next_ifd


def _values(data: bytes, endian: str, kind: int, number: int, field: int) -> list[int]:
    size = TYPE_SIZES[kind] * number
    if size > 4:
        (field,) = struct.unpack_from(endian + "I", data, field)
    if field + size > len(data):
        raise NotRebuildable("TIFF tag values run past the end of the file")
    return list(struct.unpack_from(f"{endian}{number}{INT_FORMATS[kind]}", data, field))


def _one(tags: dict[int, list[int]], tag: int, default: int) -> int:
    values = tags.get(tag)
    if values is None:
        return default
    if len(values) != 1:
        raise NotRebuildable(f"TIFF tag {tag} has {len(values)} values, expected one")
    return values[0]
