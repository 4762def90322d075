"""Whole rasters as JPEG-XL lossless streams (`--codec jpegxl`).

A classical codec, for the rasters no neural model of ours codes better (whole photos today:
JPEG-XL lossless takes 3.15 bits/dim on the photo-validation images, `bitswap-photo` 3.81), and
the target of `--codec auto`'s per-object choice. The pixels are coded whole, not as 32×32
blocks (JPEG-XL on blocks alone takes 3.45 there). The container is rebuilt from the decoded
pixels and the recipe as for every raster.

Lepton's rule holds: a stream is kept only after it decoded back to exactly the pixels; a
raster JPEG-XL cannot hold exactly goes to the archive's block codec instead.
"""

from __future__ import annotations

import imagecodecs
import numpy as np

EFFORT = 7  # cjxl's default: 3.15 bits/dim on the photo-validation images at about 1 MB/s


class JpegXLError(ValueError):
    """A stored JPEG-XL stream does not decode to the pixels its shard says it holds."""


def compress(pixels: np.ndarray) -> bytes | str:
    """The lossless stream of (H, W, C) uint8 `pixels`, checked by decoding it, or the reason
    it could not be used."""
    image = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    try:
        stream = bytes(imagecodecs.jpegxl_encode(np.ascontiguousarray(image), lossless=True,
                                                  effort=EFFORT))
        back = imagecodecs.jpegxl_decode(stream)
    except Exception as error:  # noqa: BLE001 - any failure sends the raster to blocks
        return f"JPEG-XL cannot code it: {type(error).__name__}: {error}"
    if back.shape != image.shape or not np.array_equal(back, image):
        return "JPEG-XL did not give its pixels back exactly"
    return stream


def expand(stream: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """The (H, W, C) pixels of a stored stream, which must have that shape."""
    try:
        pixels = np.asarray(imagecodecs.jpegxl_decode(stream))
    except Exception as error:  # noqa: BLE001 - the library's errors vary by version
        raise JpegXLError(f"JPEG-XL cannot decode a stored stream: {error}") from error
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape != tuple(shape) or pixels.dtype != np.uint8:
        raise JpegXLError(f"a stored JPEG-XL stream decodes to {pixels.shape} {pixels.dtype}, "
                          f"its shard says {tuple(shape)} uint8")
    return pixels
