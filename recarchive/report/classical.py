"""Classical lossless codecs on one image, through `recarchive.bench.baselines`.

Each image is coded as its own file at the strongest settings (PNG zlib 9 with filter search,
WebP lossless method 6, JPEG-XL lossless effort 9, zstd -19 of the raw pixels). Layouts a
format cannot hold are given to it the way a user would have to: gray as a 2-D array for PNG,
gray (+alpha) expanded to RGB(A) for WebP. A codec whose library is missing is `None` for every
image (reported as unavailable); an image a present codec refuses raises `BaselineError`, and
callers leave that image out of the sample so all figures cover the same images.
"""

from __future__ import annotations

import numpy as np

from recarchive.bench import baselines

NAMES = baselines.BASELINES  # ("png", "webp", "jpegxl", "zstd")


class BaselineError(ValueError):
    """A classical codec that is installed refused this image."""


def _for_png(image: np.ndarray) -> np.ndarray:
    return image[:, :, 0] if image.shape[2] == 1 else image


def _for_webp(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 2:
        return np.concatenate([np.repeat(image[:, :, :1], 3, axis=2), image[:, :, 1:]], axis=2)
    return image


_ENCODE = {
    "png": lambda image: baselines.png_bytes(_for_png(image)),
    "webp": lambda image: baselines.webp_bytes(np.ascontiguousarray(_for_webp(image))),
    "jpegxl": baselines.jpegxl_bytes,
    "zstd": baselines.zstd_bytes,
}


def available() -> dict[str, bool]:
    """Which classical codecs can run here (imagecodecs is an optional dependency)."""
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        return {name: name in ("png", "zstd") for name in NAMES}
    return dict.fromkeys(NAMES, True)


def coded_bytes(image: np.ndarray) -> dict[str, int | None]:
    """Bytes of `image` (H, W, C) uint8 as its own file per classical codec; None where the
    codec's library is not installed."""
    image = np.ascontiguousarray(image)
    can = available()
    sizes: dict[str, int | None] = {}
    for name in NAMES:
        if not can[name]:
            sizes[name] = None
            continue
        try:
            sizes[name] = int(_ENCODE[name](image))
        except Exception as error:  # noqa: BLE001 - any codec failure leaves the image out
            raise BaselineError(f"{name}: {type(error).__name__}: {error}") from error
    return sizes
