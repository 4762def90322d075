"""PNM/PAM: binary P5 (gray), P6 (RGB) and P7 (PAM) with maxval 255.

The raster follows a short text header and is exactly W*H*C bytes, so the recipe is the file
without the raster: the header text verbatim (comments and odd spacing included) and any bytes
after the raster (a second image, junk). Rebuilding re-reads the header from the recipe.
ASCII variants (P1-P3), bitmaps (P4) and maxval other than 255 are declined.
"""

from __future__ import annotations

import numpy as np

from recarchive.archives.containers._common import (
    MAX_SAMPLES,
    MODE_CHANNELS,
    NotRebuildable,
    Split,
    check_pixels,
    cut_ranges,
    pack_recipe,
    splice_ranges,
    unpack_recipe,
)

TAG = b"N"
WHITESPACE = b" \t\n\r\x0b\x0c"
PAM_TUPLES = {"GRAYSCALE": "L", "GRAYSCALE_ALPHA": "LA", "RGB": "RGB", "RGB_ALPHA": "RGBA"}
PAM_BY_DEPTH = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
MAX_DIGITS = 10


def looks_like(data: bytes) -> bool:
    """Whether `data` starts like a Netpbm file (P1..P7 then whitespace)."""
    return len(data) > 2 and data[0:1] == b"P" and data[1] in b"1234567" and data[2] in WHITESPACE


def split(data: bytes) -> Split:
    """Pixels + recipe of a binary PNM/PAM file."""
    mode, width, height, start = _header(data)
    size = width * height * MODE_CHANNELS[mode]
    if start + size > len(data):
        raise NotRebuildable("PNM raster runs past the end of the file")
    pixels = np.frombuffer(data, np.uint8, size, start).reshape(height, width, MODE_CHANNELS[mode])
    skeleton = cut_ranges(data, [(start, size)])
    return Split("PPM", mode, np.ascontiguousarray(pixels), pack_recipe(TAG, skeleton))


def rebuild(pixels: np.ndarray, recipe: bytes) -> bytes:
    """The PNM/PAM file the recipe describes, holding `pixels`."""
    skeleton = unpack_recipe(TAG, recipe)
    try:
        mode, width, height, start = _header(skeleton)
    except NotRebuildable as error:
        raise ValueError(f"PNM recipe header is unusable ({error})") from error
    pixels = check_pixels(pixels, height, width, MODE_CHANNELS[mode])
    return splice_ranges(skeleton, [(start, pixels.tobytes())])


def describe(recipe: bytes) -> dict[str, object]:
    """What a PNM recipe says."""
    skeleton = unpack_recipe(TAG, recipe)
    mode, width, height, start = _header(skeleton)
    return {"format": "PPM", "magic": skeleton[:2].decode("ascii"), "mode": mode,
            "header_bytes": start, "trailer_bytes": len(skeleton) - start}


def _header(data: bytes) -> tuple[str, int, int, int]:
    """(mode, width, height, offset of the raster) from the header text."""
    magic = data[:2]
    if magic in (b"P1", b"P4"):
        raise NotRebuildable("PBM bitmap (P1/P4)")
    if magic in (b"P2", b"P3"):
        raise NotRebuildable("ASCII PNM (P2/P3)")
    if magic == b"P7":
        return _pam_header(data)
    if magic not in (b"P5", b"P6"):
        raise NotRebuildable("not a PNM file")
    values, pos = [], 2
    while len(values) < 3:
        pos = _skip_blanks(data, pos)
        end = pos
        while end < len(data) and data[end : end + 1].isdigit() and end - pos <= MAX_DIGITS:
            end += 1
        if end == pos or end - pos > MAX_DIGITS:
            raise NotRebuildable("malformed PNM header")
        values.append(int(data[pos:end]))
        pos = end
    if pos >= len(data) or data[pos] not in WHITESPACE:
        raise NotRebuildable("malformed PNM header (no whitespace after maxval)")
    width, height, maxval = values
    return _checked("L" if magic == b"P5" else "RGB", width, height, maxval, pos + 1)


def _skip_blanks(data: bytes, pos: int) -> int:
    """Past whitespace and '#' comments (a comment runs to the end of its line)."""
    while pos < len(data):
        if data[pos] in WHITESPACE:
            pos += 1
        elif data[pos : pos + 1] == b"#":
            while pos < len(data) and data[pos] not in b"\r\n":
                pos += 1
        else:
            break
    return pos


def _pam_header(data: bytes) -> tuple[str, int, int, int]:
    """PAM: "KEY value" lines up to ENDHDR."""
    fields: dict[str, int] = {}
    tuples: list[str] = []
    pos = 3
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise NotRebuildable("PAM header has no ENDHDR line")
        words = data[pos:end].decode("latin-1").split()
        pos = end + 1
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "ENDHDR":
            break
        if words[0] == "TUPLTYPE":
            tuples.append(" ".join(words[1:]))
        elif words[0] in ("WIDTH", "HEIGHT", "DEPTH", "MAXVAL") and len(words) == 2 and (
                words[1].isascii() and words[1].isdigit() and len(words[1]) <= MAX_DIGITS):
            fields[words[0]] = int(words[1])
        else:
            raise NotRebuildable(f"PAM header line {words[0]!r} is not understood")
    if set(fields) != {"WIDTH", "HEIGHT", "DEPTH", "MAXVAL"}:
        raise NotRebuildable("PAM header lacks WIDTH, HEIGHT, DEPTH or MAXVAL")
    tuple_type = " ".join(tuples)
    mode = PAM_TUPLES.get(tuple_type) if tuples else PAM_BY_DEPTH.get(fields["DEPTH"])
    if mode is None or MODE_CHANNELS[mode] != fields["DEPTH"]:
        raise NotRebuildable(f"PAM with TUPLTYPE {tuple_type!r} and depth {fields['DEPTH']}")
    return _checked(mode, fields["WIDTH"], fields["HEIGHT"], fields["MAXVAL"], pos)


def _checked(mode: str, width: int, height: int, maxval: int,
             start: int) -> tuple[str, int, int, int]:
    if maxval != 255:
        raise NotRebuildable(f"PNM with maxval {maxval}")
    if width <= 0 or height <= 0 or width * height * MODE_CHANNELS[mode] > MAX_SAMPLES:
        raise NotRebuildable("PNM with a zero or huge size")
    return mode, width, height, start
