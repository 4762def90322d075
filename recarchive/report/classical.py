"""Classical lossless codecs, the baselines every figure of ours stands beside.

Each image is coded as its own file, as a dataset would keep it, at the strongest settings:
PNG (zlib level 9 with the best filter search Pillow offers), WebP lossless (method 6, quality
100), JPEG-XL lossless (effort 9), and zstd -19 of the raw pixels. Layouts a format cannot hold
are given to it the way a user would have to: gray as a 2-D array for PNG, gray (+alpha)
expanded to RGB(A) for WebP. An image a codec refuses raises `BaselineError`, and callers
leave that image out of the sample so all figures cover the same images. The report measures
them at archive time and on restored rasters; `recarchive bench codec` on its datasets.
"""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import zstandard
from PIL import Image

NAMES = ("png", "webp", "jpegxl", "zstd")


class BaselineError(ValueError):
    """A classical codec refused this image."""


def png_bytes(image: np.ndarray) -> int:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG", optimize=True, compress_level=9)
    return out.tell()


def webp_bytes(image: np.ndarray) -> int:
    return len(imagecodecs.webp_encode(image, lossless=True, level=100, method=6))


def jpegxl_bytes(image: np.ndarray) -> int:
    return len(imagecodecs.jpegxl_encode(image, lossless=True, effort=9))


def zstd_bytes(image: np.ndarray) -> int:
    return len(zstandard.ZstdCompressor(level=19).compress(np.ascontiguousarray(image).tobytes()))


def _for_png(image: np.ndarray) -> np.ndarray:
    return image[:, :, 0] if image.shape[2] == 1 else image


def _for_webp(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 2:
        return np.concatenate([np.repeat(image[:, :, :1], 3, axis=2), image[:, :, 1:]], axis=2)
    return image


_ENCODE = {
    "png": lambda image: png_bytes(_for_png(image)),
    "webp": lambda image: webp_bytes(np.ascontiguousarray(_for_webp(image))),
    "jpegxl": jpegxl_bytes,
    "zstd": zstd_bytes,
}


def coded_bytes(image: np.ndarray, which: tuple[str, ...] = NAMES) -> dict[str, int]:
    """Bytes of `image` (H, W, C) uint8 as its own file per classical codec (of `which`)."""
    image = np.ascontiguousarray(image)
    sizes: dict[str, int] = {}
    for name in which:
        try:
            sizes[name] = int(_ENCODE[name](image))
        except Exception as error:  # noqa: BLE001 - any codec failure leaves the image out
            raise BaselineError(f"{name}: {type(error).__name__}: {error}") from error
    return sizes


_PLAIN = {"png": png_bytes, "webp": webp_bytes, "jpegxl": jpegxl_bytes, "zstd": zstd_bytes}


def baseline_bits_per_dim(images: np.ndarray, which: tuple[str, ...] = NAMES) -> dict:
    """{name}_bits_per_dim for uint8 images (N, H, W, C) or gray (N, H, W), every image its
    own file, each given to the codec as it is."""
    dims = images.size
    return {f"{name}_bits_per_dim": 8 * sum(_PLAIN[name](image) for image in images) / dims
            for name in which}
