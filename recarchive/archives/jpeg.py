"""JPEGs recompressed losslessly: the same file back, byte for byte, in fewer bytes.

Most image datasets are JPEG, and zstd saves almost nothing on them. Two kept libraries
rebuild a JPEG file exactly from a smaller form: Lepton (`lepton-jpeg-python`, Dropbox's
format) and JPEG-XL's JPEG transcoding (`imagecodecs`). On 12 photo-validation images saved
at quality 90 Lepton saved 17.5 % and JPEG-XL 14.8 % at about the same speed, so Lepton is
tried first and JPEG-XL where Lepton declines (some progressive or unusual files).

Lepton's rule is the contract: a recompressed form is only used after it was decoded and
compared with the original; anything else keeps its bytes (zstd).
"""

from __future__ import annotations

from collections.abc import Callable

import imagecodecs
import lepton_jpeg_python

LEPTON = "lepton"
JPEGXL = "jpegxl"


def _lepton_encode(data: bytes) -> bytes:
    return bytes(lepton_jpeg_python.compress_bytes(data))


def _lepton_decode(data: bytes) -> bytes:
    return bytes(lepton_jpeg_python.decompress_bytes(data))


def _jpegxl_encode(data: bytes) -> bytes:
    return bytes(imagecodecs.jpegxl_encode_jpeg(data))


def _jpegxl_decode(data: bytes) -> bytes:
    return bytes(imagecodecs.jpegxl_decode_jpeg(data))


# method -> (encode, decode), in the order they are tried
METHODS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    LEPTON: (_lepton_encode, _lepton_decode),
    JPEGXL: (_jpegxl_encode, _jpegxl_decode),
}


class JpegError(ValueError):
    """A recompressed JPEG stream cannot be turned back into its file."""


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def recompress(data: bytes) -> tuple[str, bytes] | str:
    """(method, smaller bytes) that were decoded back to exactly `data`, or the reason why
    no method could (the caller keeps the bytes)."""
    reasons = []
    for method, (encode, decode) in METHODS.items():
        try:
            packed = encode(data)
            back = decode(packed)
        except Exception as error:  # noqa: BLE001 - any library failure: try the next one
            reasons.append(f"{method}: {type(error).__name__}: {error}"[:200])
            continue
        if back != data:
            reasons.append(f"{method}: decoded to other bytes")
        elif len(packed) >= len(data):
            reasons.append(f"{method}: not smaller")
        else:
            return method, packed
    return "JPEG not recompressed losslessly (" + "; ".join(reasons) + "); bytes kept"


def expand(method: str, packed: bytes) -> bytes:
    """The original JPEG from its recompressed form."""
    if method not in METHODS:
        raise JpegError(f"unknown JPEG recompression method {method!r}; this recarchive knows "
                        f"{', '.join(METHODS)}")
    try:
        return METHODS[method][1](packed)
    except Exception as error:  # noqa: BLE001 - damaged stream: the caller names the object
        raise JpegError(f"{method} cannot decode the stream: {type(error).__name__}: "
                        f"{error}") from error
