"""Byte-exact container rebuilding: a raster file = its pixels + a small recipe.

`split_container(data)` returns the samples the file stores and a recipe;
`rebuild_container(pixels, recipe)` gives the original bytes back. The archive codes the pixels
with its neural codec and keeps the recipe in its index, so restored files are the original
files, not re-encodings. Formats: PNG (the deflate stream is re-made with zlib), BMP, PNM/PAM
and uncompressed TIFF (the non-pixel bytes are kept verbatim). Anything else, or any feature a
format module cannot reproduce, raises NotRebuildable with a human reason: declining is always
safe, the archive then keeps the file's bytes.

This package knows nothing of codecs or archives; it depends on numpy, Pillow, zlib and zstd.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from recarchive.archives.containers import bmp, png, pnm, tiff
from recarchive.archives.containers._common import NotRebuildable, Split

__all__ = ["NotRebuildable", "Split", "describe_recipe", "rebuild_container", "split_container"]

# recipe tag (first byte) -> module
_BY_TAG: dict[bytes, ModuleType] = {png.TAG: png, bmp.TAG: bmp, pnm.TAG: pnm, tiff.TAG: tiff}
# magic bytes of formats declined by name (clearer reasons than "unknown format")
_OTHER_FORMATS = ((b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"RIFF", "RIFF/WebP"),
                  (b"\x00\x00\x00\x0cjXL", "JPEG XL"), (b"\xff\x0a", "JPEG XL"),
                  (b"II+\x00", "BigTIFF"), (b"MM\x00+", "BigTIFF"))


def _sniff(data: bytes) -> ModuleType:
    """The module for `data`'s format, from its magic bytes."""
    if data.startswith(png.SIGNATURE):
        return png
    if data.startswith(b"BM"):
        return bmp
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return tiff
    if pnm.looks_like(data):
        return pnm
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            raise NotRebuildable(f"{name} files are not rebuilt from pixels")
    raise NotRebuildable("not a PNG, BMP, PNM/PAM or TIFF file")


def split_container(data: bytes) -> Split:
    """The pixels and recipe of a raster file; NotRebuildable if it cannot be rebuilt exactly.

    The result is checked: rebuilding it gives `data` back byte for byte.
    """
    data = bytes(data)
    split = _sniff(data).split(data)
    try:
        same = rebuild_container(split.pixels, split.recipe) == data
    except ValueError as error:
        raise NotRebuildable(f"{split.format} recipe does not rebuild ({error})") from error
    if not same:
        raise NotRebuildable(f"{split.format} rebuilt from its recipe differs from the original")
    return split


def rebuild_container(pixels: np.ndarray, recipe: bytes) -> bytes:
    """The file a recipe describes, holding `pixels` (H, W, C) uint8.

    Raises ValueError for a damaged or foreign recipe, or pixels of the wrong shape.
    """
    module = _BY_TAG.get(bytes(recipe[:1]))
    if module is None:
        raise ValueError("not a container recipe (unknown format tag)")
    return module.rebuild(pixels, bytes(recipe))


def describe_recipe(recipe: bytes) -> dict[str, object]:
    """What a recipe says (format, and for PNG the filter rule, deflate settings and the zlib
    version that reproduced the stream): for reports and for restore-side diagnostics."""
    module = _BY_TAG.get(bytes(recipe[:1]))
    if module is None:
        raise ValueError("not a container recipe (unknown format tag)")
    return module.describe(bytes(recipe))
