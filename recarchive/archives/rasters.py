"""A raster object's bytes from its decoded pixels and what the index kept of it.

- With a container recipe (fidelity "exact"): the original file, rebuilt byte for byte.
- Without one (fidelity "pixels"): the same mode, pixels (palette indices for P), palette,
  transparency, ICC profile, EXIF, PNG text and dpi, in a new container of the original format
  where Pillow writes that format and mode (PNG, BMP, TIFF, PPM/PGM, lossless WebP), else PNG.
- Format 1 archives restored every raster as PNG, and still do.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from recarchive.archives.containers import rebuild_container
from recarchive.archives.records import IndexRow

# format -> modes Pillow writes losslessly in it (the rest are written as PNG)
WRITABLE: dict[str, tuple[str, ...]] = {
    "BMP": ("L", "P", "RGB", "RGBA"),
    "TIFF": ("L", "LA", "P", "RGB", "RGBA"),
    "PPM": ("L", "RGB"),
    "WEBP": ("RGB", "RGBA"),
}


def pixels_sha256(pixels: np.ndarray) -> bytes:
    """sha256 of (H, W, C) uint8 pixels in C order (to compare images; the index keeps no
    per-object pixel digest, each shard's raw sha256 covers its pixels)."""
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).digest()


def encode_png(pixels: np.ndarray, mode: str, *, palette: bytes | None, icc: bytes | None,
               exif: bytes | None, meta_json: str | None) -> bytes:
    """PNG bytes for `pixels` (H, W, C) in `mode`, with the side data put back."""
    meta: dict[str, Any] = json.loads(meta_json) if meta_json else {}
    array = pixels[:, :, 0] if mode in ("L", "P") else pixels
    image = Image.fromarray(np.ascontiguousarray(array), mode)
    options: dict[str, Any] = {"optimize": False, "compress_level": 6}
    if mode == "P":
        image.putpalette(palette or b"", rawmode=meta.get("palette_mode", "RGB"))
    if "transparency" in meta:
        value = meta["transparency"]
        options["transparency"] = (
            bytes.fromhex(value["bytes"]) if "bytes" in value
            else tuple(value["value"]) if isinstance(value["value"], list) else value["value"]
        )
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    if "dpi" in meta:
        options["dpi"] = tuple(meta["dpi"])
    if meta.get("text"):
        info = PngImagePlugin.PngInfo()
        for key, value in meta["text"].items():
            try:
                value.encode("latin-1")
                key.encode("latin-1")
                info.add_text(key, value)
            except UnicodeEncodeError:
                info.add_itxt(key, value)
        options["pnginfo"] = info
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def object_bytes(row: IndexRow, pixels: np.ndarray, fidelity: str) -> bytes:
    """The bytes a raster restores to (see the module docstring); `fidelity` is the
    archive's ("png" for format 1 archives)."""
    if row.recipe is not None:
        return rebuild_container(pixels, row.recipe)
    side = {"palette": row.palette, "icc": row.icc, "exif": row.exif,
            "meta_json": row.meta}
    if fidelity != "png" and row.mode in WRITABLE.get(row.format, ()):
        return encode_other(pixels, row.mode, row.format, **side)
    return encode_png(pixels, row.mode, **side)


def encode_other(pixels: np.ndarray, mode: str, fmt: str, *, palette: bytes | None,
                 icc: bytes | None, exif: bytes | None, meta_json: str | None) -> bytes:
    """`pixels` as a new file of format `fmt` (a mode listed in `WRITABLE`), with the ICC
    profile, EXIF and dpi where the format holds them."""
    meta: dict[str, Any] = json.loads(meta_json) if meta_json else {}
    array = pixels[:, :, 0] if mode in ("L", "P") else pixels
    image = Image.fromarray(np.ascontiguousarray(array), mode)
    if mode == "P":
        image.putpalette(palette or b"", rawmode=meta.get("palette_mode", "RGB"))
    options: dict[str, Any] = {}
    if fmt == "WEBP":
        options.update(lossless=True, quality=100, exact=True)
    if icc and fmt in ("TIFF", "WEBP"):
        options["icc_profile"] = icc
    if exif and fmt in ("TIFF", "WEBP"):
        options["exif"] = exif
    if "dpi" in meta and fmt in ("BMP", "TIFF"):
        options["dpi"] = tuple(meta["dpi"])
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()
