"""A hostile bucket: the objects a real dataset bucket (and an attacker) can hold, each of
which must come back byte for byte or be listed as skipped with a reason."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from recarchive.datasets import data_dir
from recarchive.demo import bomb_png, edge_cases, png_chunk

FIXTURES = data_dir() / "fixtures"
ENCODER_PNGS = Path(__file__).parent / "data" / "png_encoders"


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _splice_after_ihdr(png: bytes, *chunks: bytes) -> bytes:
    """A PNG with `chunks` put right after its IHDR (8 + 25 bytes in)."""
    return png[:33] + b"".join(chunks) + png[33:]


def _photo(height: int = 40, width: int = 56, seed: int = 1) -> np.ndarray:
    crop = np.asarray(Image.open(FIXTURES / "skimage_chelsea_CC0.png").convert("RGB"))
    rng = np.random.default_rng(seed)
    top, left = rng.integers(0, 200), rng.integers(0, 350)
    return np.ascontiguousarray(crop[top:top + height, left:left + width])


def _bmp32(pixels: np.ndarray, alpha: np.ndarray) -> bytes:
    """A 32-bit BI_RGB BMP whose fourth byte varies (Pillow reads it as RGB and drops it)."""
    height, width, _ = pixels.shape
    bgra = np.dstack([pixels[..., ::-1], alpha])[::-1].astype(np.uint8)
    body = bgra.tobytes()
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 32, 0, len(body), 2835, 2835, 0, 0)
    header = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(body), 0, 0, 14 + len(info))
    return header + info + body


def _ppm_with_comment(pixels: np.ndarray) -> bytes:
    height, width, _ = pixels.shape
    return (f"P6\n# made by a camera pipeline\n{width} {height}\n255\n".encode()
            + pixels.tobytes())


def _pam(pixels: np.ndarray) -> bytes:
    height, width, depth = pixels.shape
    header = (f"P7\nWIDTH {width}\nHEIGHT {height}\nDEPTH {depth}\nMAXVAL 255\n"
              f"TUPLTYPE RGB_ALPHA\nENDHDR\n").encode()
    return header + pixels.tobytes()


def _tiff_with_tags(pixels: np.ndarray) -> bytes:
    image = Image.fromarray(pixels, "RGB")
    tags = {270: "ImageDescription: a hostile bucket", 315: "Artist Name", 305: "Software X"}
    return _save(image, "TIFF", tiffinfo=tags)


def _multipage_tiff(pixels: np.ndarray) -> bytes:
    first, second = Image.fromarray(pixels, "RGB"), Image.fromarray(pixels[::-1], "RGB")
    return _save(first, "TIFF", save_all=True, append_images=[second])


def _animated(fmt: str, pixels: np.ndarray) -> bytes:
    frames = [Image.fromarray(np.roll(pixels, 7 * i, axis=1), "RGB") for i in range(3)]
    options: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": 50}
    if fmt == "WEBP":
        options["lossless"] = True
    return _save(frames[0], fmt, **options)


def _apng(pixels: np.ndarray) -> bytes:
    frames = [Image.fromarray(np.roll(pixels, 5 * i, axis=0), "RGB") for i in range(2)]
    return _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=40)


def _webp_with_xmp(pixels: np.ndarray) -> bytes:
    return _save(Image.fromarray(pixels, "RGB"), "WEBP", lossless=True,
                 xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>hostile</x:xmpmeta>")


def hostile_objects() -> dict[str, bytes]:
    """key -> bytes for keys a local folder can hold too."""
    photo = _photo()
    alpha = np.linspace(0, 255, photo.shape[1], dtype=np.uint8)[None, :].repeat(
        photo.shape[0], 0)
    base = _save(Image.fromarray(photo, "RGB"), "PNG")
    chunks = [png_chunk(b"gAMA", struct.pack(">I", 45455)), png_chunk(b"sRGB", b"\x00"),
              png_chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000,
                                             60000, 15000, 6000)),
              png_chunk(b"sBIT", b"\x08\x08\x08"), png_chunk(b"bKGD", b"\x00\x10\x00\x20\x00\x30"),
              png_chunk(b"tIME", struct.pack(">HBBBBB", 2026, 12, 2, 8, 0, 0)),
              png_chunk(b"prVt", b"private chunk data")]
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>hostile</x:xmpmeta>")
    cmyk = Image.frombytes("CMYK", (photo.shape[1], photo.shape[0]),
                           np.ascontiguousarray(np.dstack([photo, photo[..., :1]])).tobytes())
    objects = dict(edge_cases())
    objects.update({
        "png/pillow-default.png": base,
        "png/level0.png": _save(Image.fromarray(photo, "RGB"), "PNG", compress_level=0),
        "png/level9.png": _save(Image.fromarray(photo, "RGB"), "PNG", compress_level=9),
        "png/optimized.png": _save(Image.fromarray(photo, "RGB"), "PNG", optimize=True),
        "png/ancillary-chunks.png": _splice_after_ihdr(base, *chunks),
        "png/xmp.png": _save(Image.fromarray(photo, "RGB"), "PNG", pnginfo=xmp),
        "png/after-iend.png": base + b"trailing bytes after IEND",
        "png/interlaced.png": _interlaced(photo),
        "png/rgba.png": _save(Image.fromarray(np.dstack([photo, alpha]), "RGBA"), "PNG"),
        "png/16-bit.png": _save(Image.fromarray(photo[..., 0].astype(np.uint16) * 257), "PNG"),
        "png/apng.png": _apng(photo),
        "png/bomb.png": bomb_png(),
        "bmp/32-bit-alpha.bmp": _bmp32(photo, alpha),
        "bmp/24-bit.bmp": _save(Image.fromarray(photo, "RGB"), "BMP"),
        "bmp/8-bit-gray.bmp": _save(Image.fromarray(photo[..., 1], "L"), "BMP"),
        "pnm/comment.ppm": _ppm_with_comment(photo),
        "pnm/gray.pgm": _save(Image.fromarray(photo[..., 2], "L"), "PPM"),
        "pnm/rgba.pam": _pam(np.dstack([photo, alpha])),
        "tiff/tags.tiff": _tiff_with_tags(photo),
        "tiff/multi-page.tiff": _multipage_tiff(photo),
        "tiff/cmyk.tiff": _save(cmyk, "TIFF"),
        "webp/lossless-xmp.webp": _webp_with_xmp(photo),
        "webp/animated.webp": _animated("WEBP", photo),
        "gif/animated.gif": _animated("GIF", photo),
        "jpeg/baseline.jpg": _save(Image.fromarray(_photo(200, 300), "RGB"), "JPEG",
                                   quality=90),
        "jpeg/progressive.jpg": _save(Image.fromarray(_photo(200, 300, 2), "RGB"), "JPEG",
                                      quality=85, progressive=True),
        "jpeg/cmyk.jpg": _save(cmyk, "JPEG", quality=90),
        "jpeg/truncated.jpg": _save(Image.fromarray(photo, "RGB"), "JPEG")[:600],
        "unicode/café naïve 写真.png": _save(Image.fromarray(photo[:20, :20], "RGB"), "PNG"),
        "keys/a b %20 ?#[x].png": _save(Image.fromarray(photo[:8, :8], "RGB"), "PNG"),
    })
    for path in sorted(ENCODER_PNGS.glob("*.png")):
        objects[f"encoders/{path.name}"] = path.read_bytes()
    return objects


def _interlaced(photo: np.ndarray) -> bytes:
    """An Adam7-interlaced PNG (Pillow does not write them): IDAT from the seven passes."""
    height, width, _ = photo.shape
    passes = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2),
              (0, 1, 2, 2), (1, 0, 2, 1))
    raw = b""
    for top, left, down, across in passes:
        sub = photo[top::down, left::across]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(raw, 6)) + png_chunk(b"IEND", b""))


# Keys object storage holds and a local folder cannot (or not side by side).
OBJECT_STORE_ONLY_KEYS = ("coll/x.png", "coll/./x.png", "coll/sub/../x.png",
                          "photos/dbl//slash.png", "photos/trailing/", "x", "x/y")


def object_store_objects() -> dict[str, bytes]:
    """Distinct bytes under keys that path normalization would merge or drop."""
    photo = _photo(24, 24, 3)
    return {key: _save(Image.fromarray(np.roll(photo, 3 * i, axis=1), "RGB"), "PNG")
            for i, key in enumerate(OBJECT_STORE_ONLY_KEYS)}
