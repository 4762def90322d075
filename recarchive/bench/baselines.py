"""Classical lossless codecs on the same images, at their strongest settings.

Each image is coded as its own file, as a dataset would keep it: PNG (zlib level 9 with the
best filter search Pillow offers), WebP lossless (method 6, quality 100), JPEG-XL lossless
(effort 9), and zstd -19 of the raw pixels. Sizes are in bits per dimension.
"""

from __future__ import annotations

import io

import numpy as np

BASELINES = ("png", "webp", "jpegxl", "zstd")


def png_bytes(image: np.ndarray) -> int:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG", optimize=True, compress_level=9)
    return out.tell()


def webp_bytes(image: np.ndarray) -> int:
    import imagecodecs

    return len(imagecodecs.webp_encode(image, lossless=True, level=100, method=6))


def jpegxl_bytes(image: np.ndarray) -> int:
    import imagecodecs

    return len(imagecodecs.jpegxl_encode(image, lossless=True, effort=9))


def zstd_bytes(image: np.ndarray) -> int:
    import zstandard

    return len(zstandard.ZstdCompressor(level=19).compress(np.ascontiguousarray(image).tobytes()))


_ENCODERS = {"png": png_bytes, "webp": webp_bytes, "jpegxl": jpegxl_bytes, "zstd": zstd_bytes}


def baseline_bits_per_dim(images: np.ndarray, which: tuple[str, ...] = BASELINES) -> dict:
    """{name}_bits_per_dim for uint8 images (N, H, W, C), every image its own file."""
    dims = images.size
    results = {}
    for name in which:
        encode = _ENCODERS[name]
        results[f"{name}_bits_per_dim"] = 8 * sum(encode(image) for image in images) / dims
    return results
