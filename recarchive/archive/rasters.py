"""Restored rasters as PNG: the same mode, pixels (palette indices for P), palette,
transparency, ICC profile, EXIF, PNG text and dpi that ingest kept."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin


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
