"""Classify one object: exact 8-bit pixels (plus what rebuilds its file) or bytes kept as
they are.

With fidelity "exact" (the default) a raster is its fully decoded pixels plus a container
recipe (`archive.containers`) that rebuilds the original file byte for byte: PNG, BMP, PNM/PAM
and uncompressed TIFF whose layout the recipes cover. A file whose container cannot be rebuilt
exactly (lossless WebP, zopfli-compressed PNG, 16-bit samples, ...) is kept as its bytes, with
the reason. JPEGs are marked for lossless recompression (`archive.jpeg`).

With fidelity "pixels" rasters are PNG, BMP, TIFF, PPM/PGM and lossless WebP whose samples are
verifiably 8-bit, in modes L, LA, RGB, RGBA or P, kept as pixels plus side data (ICC, EXIF, PNG
text, dpi, transparency) and written back in a new container. Where a recipe parser decodes
more than Pillow does (the fourth byte of a 32-bit BMP), its pixels are kept, never Pillow's.
Palette (P) images keep their palette indices as one channel and the palette as side data, so
the indices, the palette and its transparency come back exactly (expanding to RGB would lose
which index a pixel used, and code 3x the symbols).

Everything else is a blob kept byte-exact (zstd in the archive), with the reason recorded: lossy
or other formats (GIF, ...), 16-bit or sub-8-bit samples Pillow would rescale, multi-frame
files, corrupt or truncated images, zero-byte objects, non-images, and decompression bombs
(more than `max_pixels` pixels; their bytes are kept but never decoded).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from recarchive.archives.containers import NotRebuildable, Split, split_container
from recarchive.archives.format import FIDELITY_EXACT, FIDELITY_PIXELS
from recarchive.archives.jpeg import is_jpeg

RASTER_FORMATS = ("PNG", "BMP", "TIFF", "PPM", "WEBP")
RASTER_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 1}
DEFAULT_MAX_PIXELS = 128 * 1024 * 1024


@dataclass
class Ingested:
    """What the archive keeps of one object."""

    kind: str                                   # "raster" or "blob"
    format: str = ""
    mode: str = ""
    pixels: np.ndarray | None = None            # (H, W, C) uint8 for rasters
    reason: str = ""                            # why a blob
    recipe: bytes | None = None                 # rebuilds the file from the pixels (exact)
    jpeg: bool = False                          # a blob to recompress losslessly
    icc: bytes | None = None
    exif: bytes | None = None
    palette: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def blob(reason: str, fmt: str = "") -> Ingested:
    return Ingested(kind="blob", format=fmt, reason=reason)


def ingest(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
           fidelity: str = FIDELITY_EXACT) -> Ingested:
    """Decide how `data` is kept; never raises for bad content (it becomes a blob)."""
    if not data:
        return blob("zero-byte object")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        return blob(f"decompression bomb refused by Pillow: {error}")
    except UnidentifiedImageError:
        # raw containers Pillow does not read (PAM): their pixels are their bytes, so the
        # recipe parser's memory is bounded by the object's size
        split = _split(data) if fidelity != FIDELITY_PIXELS else "pixels fidelity"
        if isinstance(split, Split):
            return Ingested(kind="raster", format=split.format, mode=split.mode,
                            pixels=split.pixels, recipe=split.recipe)
        return blob("not an image Pillow recognises")
    except Exception as error:  # noqa: BLE001 - any decoder failure means: keep the bytes
        return blob(f"unreadable image header: {type(error).__name__}: {error}")
    with image:
        fmt = image.format or ""
        width, height = image.size
        if width * height > max_pixels:
            return blob(f"decompression-bomb guard: {width}x{height} = {width * height} pixels "
                        f"> max_pixels {max_pixels}; bytes kept, never decoded", fmt)
        if fmt == "JPEG" and is_jpeg(data):
            return Ingested(kind="blob", format=fmt, jpeg=True,
                            reason="JPEG: recompressed losslessly")
        if fmt not in RASTER_FORMATS:
            return blob(f"{fmt} is not a lossless 8-bit raster format; bytes kept", fmt)
        split = _split(data)
        if fidelity != FIDELITY_PIXELS:
            if isinstance(split, str):
                return blob(_depth_problem(fmt, data, image) or (
                    f"{fmt} container cannot be rebuilt byte for byte ({split}); bytes kept"),
                    fmt)
            return Ingested(kind="raster", format=fmt, mode=split.mode, pixels=split.pixels,
                            recipe=split.recipe)
        if getattr(image, "n_frames", 1) != 1:
            return blob(f"{fmt} has {image.n_frames} frames; bytes kept", fmt)
        if image.mode not in RASTER_MODES:
            return blob(f"{fmt} mode {image.mode} is not 8-bit L/LA/RGB/RGBA/P; bytes kept", fmt)
        problem = _depth_problem(fmt, data, image)
        if problem:
            return blob(problem, fmt)
        try:
            image.load()
            pixels = np.asarray(image)
        except Exception as error:  # noqa: BLE001 - truncated/corrupt data: keep the bytes
            return blob(f"corrupt {fmt}: {type(error).__name__}: {error}", fmt)
        kept = _raster(image, fmt, pixels)
        if isinstance(split, Split) and split.mode != kept.mode:
            # the container holds more than Pillow decoded (a 32-bit BMP's fourth byte)
            kept.mode, kept.pixels = split.mode, split.pixels
        elif fmt == "BMP" and _bmp_bits(data) == 32 and kept.mode != "RGBA":
            return blob("BMP with 32 bits per pixel that could not be decoded fully; "
                        "bytes kept", fmt)
        return kept


def _split(data: bytes) -> Split | str:
    """The container's pixels and recipe, or why it cannot be rebuilt exactly."""
    try:
        return split_container(data)
    except NotRebuildable as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - a parser bug must never lose an object
        return f"container parser failed: {type(error).__name__}: {error}"


def _bmp_bits(data: bytes) -> int:
    header = struct.unpack_from("<I", data, 14)[0] if len(data) >= 18 else 0
    offset = 24 if header == 12 else 28
    return struct.unpack_from("<H", data, offset)[0] if len(data) >= offset + 2 else 0


def _raster(image: Image.Image, fmt: str, pixels: np.ndarray) -> Ingested:
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    info = image.info
    meta: dict[str, Any] = {}
    text = getattr(image, "text", None) if fmt == "PNG" else None
    if text:
        meta["text"] = {str(k): str(v) for k, v in text.items()}
    if "dpi" in info:
        meta["dpi"] = [float(v) for v in info["dpi"]]
    if "transparency" in info:
        value = info["transparency"]
        meta["transparency"] = (
            {"bytes": value.hex()} if isinstance(value, bytes)
            else {"value": list(value) if isinstance(value, tuple) else int(value)}
        )
    palette = None
    if image.mode == "P":
        palette_mode = image.palette.mode if image.palette else "RGB"
        palette = bytes(image.getpalette(rawmode=palette_mode) or b"")
        meta["palette_mode"] = palette_mode
    exif = info.get("exif")
    return Ingested(
        kind="raster", format=fmt, mode=image.mode, pixels=pixels,
        icc=info.get("icc_profile") or None,
        exif=bytes(exif) if exif else None,
        palette=palette, meta=meta,
    )


def _depth_problem(fmt: str, data: bytes, image: Image.Image) -> str:
    """Why the stored samples are not exactly the 8-bit values Pillow returns ("" if they are)."""
    if fmt == "PNG":
        if len(data) >= 26 and data[12:16] == b"IHDR":
            depth, colour = data[24], data[25]
            if colour != 3 and depth != 8:
                return f"PNG with {depth}-bit samples; bytes kept"
        return ""
    if fmt == "BMP":
        bits = _bmp_bits(data)
        if bits not in (1, 4, 8, 24, 32):
            return f"BMP with {bits} bits per pixel; bytes kept"
        return ""
    if fmt == "TIFF":
        tags = getattr(image, "tag_v2", {})
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        if image.mode != "P" and any(b != 8 for b in bits):
            return f"TIFF with {bits}-bit samples; bytes kept"
        if tags.get(259, 1) in (6, 7, 34892):
            return "TIFF with lossy (JPEG) compression; bytes kept"
        return ""
    if fmt == "PPM":
        maxval = _pnm_maxval(data)
        if maxval != 255:
            return f"PNM with maxval {maxval}; bytes kept"
        return ""
    if fmt == "WEBP":
        return "" if _webp_lossless(data) else "lossy WebP; bytes kept"
    return f"{fmt} not handled; bytes kept"


def _pnm_maxval(data: bytes) -> int | None:
    tokens: list[bytes] = []
    position = 2
    while len(tokens) < 3 and position < min(len(data), 4096):
        byte = data[position:position + 1]
        if byte == b"#":
            end = data.find(b"\n", position)
            position = len(data) if end < 0 else end + 1
        elif byte.isspace():
            position += 1
        else:
            end = position
            while end < len(data) and not data[end:end + 1].isspace() and data[end:end + 1] != b"#":
                end += 1
            tokens.append(data[position:end])
            position = end
    try:
        return int(tokens[2]) if len(tokens) == 3 else None
    except ValueError:
        return None


def _webp_lossless(data: bytes) -> bool:
    """True if the WebP's image data is a single VP8L (lossless) bitstream."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    position, chunks = 12, set()
    while position + 8 <= len(data):
        name = data[position:position + 4]
        size = struct.unpack_from("<I", data, position + 4)[0]
        chunks.add(name)
        position += 8 + size + (size & 1)
    return b"VP8L" in chunks and b"VP8 " not in chunks and b"ANIM" not in chunks
