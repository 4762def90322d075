"""PNG: the decoded samples plus a recipe that re-filters and re-deflates them into the file.

A PNG is chunks around one deflate stream of filtered rows. Everything but the pixels is small
and regular, so the recipe keeps:

* every chunk except IDAT verbatim (in order, with the position of the IDAT run) and any bytes
  after IEND; CRCs are recomputed, so a file with a bad CRC is declined;
* the row filter types, as a rule recomputed from the pixels when one fits (one type for all
  rows, or the adaptive heuristics of Pillow and libpng), else as an explicit list;
* the deflate parameters: the zlib level/memLevel/strategy/window that reproduce the stream
  (found by a prefix-aborting search), or the block lengths of an all-stored stream; the zlib
  header bytes are kept verbatim (libpng rewrites the window field for small images);
* the IDAT chunk lengths, as a rule (one chunk, or chunks of S bytes and a shorter last one)
  when one fits.

Nothing in a rule depends on the file's content, so files written by one encoder at one size
and mode get byte-identical recipes. Pixels are decoded with Pillow (fast) and proven exact by
re-filtering them into the decompressed stream.

Recipe body, version 1 (varints, see `_common`): the zlib version that reproduced the stream
(text, empty for stored blocks); the chunk count and each chunk as a type code (index + 1 in
KNOWN_CHUNKS, or 0 + 4 type bytes) and, except for the IDAT-run marker, its payload; the bytes
after IEND; the filter rule (+ the type bytes when explicit); the 2 zlib header bytes, the
deflate method and its numbers; the IDAT chunking rule (+ its size or lengths).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from recarchive.archives.containers._common import (
    MAX_SAMPLES,
    MODE_CHANNELS,
    NotRebuildable,
    RecipeReader,
    RecipeWriter,
    Split,
    check_pixels,
    pack_recipe,
    unpack_recipe,
)

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TAG = b"P"
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))  # (x0, y0, dx, dy) of the seven interlace passes
COLOUR_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Chunk types coded as one byte in the recipe (index + 1; 0 = the 4-byte type follows).
KNOWN_CHUNKS = (b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP",
                b"sBIT", b"bKGD", b"pHYs", b"tIME", b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"hIST",
                b"sPLT")

# Filter rules: 0..4 = every row that type; then adaptive heuristics, each an order of filters
# scored by "minimum sum of absolute values" (per row, sum of |filtered byte| as a signed byte),
# the lowest sum winning and ties going to the earlier filter in the order.
RULE_PILLOW, RULE_PILLOW_OPTIMIZE, RULE_LIBPNG = 5, 6, 7
RULE_LIBPNG_SUBSET = 8  # + a 5-bit mask of the filter types libpng was allowed (pngcrush: Sub|Up)
RULE_EXPLICIT = 255
FILTER_NAMES = ("none", "sub", "up", "average", "paeth")


def heuristic_order(rule: int) -> tuple[int, ...] | None:
    """The filter order of a heuristic rule, None if `rule` is not one.

    Pillow (ZipEncode.c) tries None, Up, Sub, [Average with optimize=True,] Paeth and keeps a
    later one only if strictly smaller; libpng (png_write_find_filter, used by ImageMagick,
    optipng, pngcrush) tries the allowed filters in type order, also keeping the first minimum.
    """
    if rule == RULE_PILLOW:
        return (0, 2, 1, 4)
    if rule == RULE_PILLOW_OPTIMIZE:
        return (0, 2, 1, 3, 4)
    if rule == RULE_LIBPNG:
        return (0, 1, 2, 3, 4)
    mask = rule - RULE_LIBPNG_SUBSET
    if 0 <= mask < 32 and mask.bit_count() >= 2:
        return tuple(kind for kind in range(5) if mask >> kind & 1)
    return None


def rule_name(rule: int) -> str:
    if rule < 5:
        return FILTER_NAMES[rule]
    names = {RULE_PILLOW: "pillow", RULE_PILLOW_OPTIMIZE: "pillow-optimize",
             RULE_LIBPNG: "libpng", RULE_EXPLICIT: "explicit"}
    if rule in names:
        return names[rule]
    order = heuristic_order(rule)
    return "libpng[" + ",".join(FILTER_NAMES[k] for k in order) + "]" if order else str(rule)


# Deflate methods in the recipe.
DEFLATE_ZLIB, DEFLATE_STORED_RULE, DEFLATE_STORED_LIST = 0, 1, 2
# zlib levels by the header's FLEVEL field, most likely first (Pillow/libpng/ImageMagick/optipng
# defaults: 6 and 9 with memLevel 8 or 9, 7 for ImageMagick's quality 75).
LEVELS_BY_FLAG = {0: (1,), 1: (2, 3, 4, 5), 2: (6,), 3: (9, 7, 8)}
MEM_LEVELS = (9, 8, 7, 6, 5, 4, 3, 2, 1)
SEARCH_CHUNK = 1 << 16
FULL_SEARCH_BYTES = 1 << 18  # up to this much filtered data, try rare zlib settings too
# IDAT chunking rules.
IDAT_ONE, IDAT_FIXED, IDAT_LIST = 0, 1, 2
ROW_BLOCK_BYTES = 1 << 22  # filter this many bytes of rows at a time (bounds memory)


@dataclass(frozen=True)
class Header:
    """The IHDR fields that shape the raster."""

    width: int
    height: int
    depth: int
    colour: int
    interlace: int

    @classmethod
    def parse(cls, payload: bytes) -> Header:
        if len(payload) != 13:
            raise NotRebuildable("PNG IHDR chunk is not 13 bytes")
        width, height, depth, colour, method, filters, interlace = struct.unpack(
            ">IIBBBBB", payload)
        if colour not in DEPTHS or depth not in DEPTHS[colour]:
            raise NotRebuildable(f"PNG with colour type {colour} and bit depth {depth}")
        if depth == 16:
            raise NotRebuildable("PNG with 16-bit samples")
        if method or filters or interlace > 1:
            raise NotRebuildable("PNG with an unknown compression, filter or interlace method")
        header = cls(width, height, depth, colour, interlace)
        if not 0 < width < 1 << 31 or not 0 < height < 1 << 31:
            raise NotRebuildable("PNG with a zero or huge width or height")
        if width * height * header.channels > MAX_SAMPLES:
            raise NotRebuildable("PNG too large to rebuild in memory")
        return header

    @property
    def mode(self) -> str:
        return COLOUR_MODES[self.colour]

    @property
    def channels(self) -> int:
        return MODE_CHANNELS[self.mode]

    @property
    def bpp(self) -> int:
        """Bytes per complete pixel, at least 1: the distance filters look to the left."""
        return max(1, self.channels * self.depth // 8)

    def passes(self) -> list[tuple[int, int, int, int]]:
        """(x0, y0, dx, dy) of each non-empty pass; one pass for a plain image."""
        if not self.interlace:
            return [(0, 0, 1, 1)]
        return [(x0, y0, dx, dy) for x0, y0, dx, dy in ADAM7
                if self.width > x0 and self.height > y0]

    def pass_shapes(self) -> list[tuple[int, int]]:
        """(rows, row bytes) of each non-empty pass, as laid out in the filtered stream."""
        shapes = []
        for x0, y0, dx, dy in self.passes():
            rows, cols = -(-(self.height - y0) // dy), -(-(self.width - x0) // dx)
            shapes.append((rows, (cols * self.channels * self.depth + 7) // 8))
        return shapes


@dataclass(frozen=True)
class Parsed:
    """A PNG cut into what the recipe keeps and the IDAT data."""

    chunks: list[tuple[bytes, bytes]]  # (type, payload); the IDAT run is one (b"IDAT", b"")
    idat: bytes
    idat_lengths: list[int]
    trailer: bytes


def split(data: bytes) -> Split:
    """Pixels + recipe of a PNG, or NotRebuildable saying what it uses that is not supported."""
    parsed = _parse(data)
    header = Header.parse(parsed.chunks[0][1])
    filtered = _inflate(parsed.idat, header)
    types = _read_filter_types(filtered, header)
    pixels = _decode_pixels(data, header)
    rows = _pass_rows(pixels, header)
    varied = not (types == types[0]).all()  # only then are heuristics worth scoring
    passes = [_filter_pass(pass_rows, header.bpp, pass_types, scores=varied)
              for pass_rows, pass_types in zip(rows, _split_types(types, rows), strict=True)]
    if b"".join(out.tobytes() for out, _, _ in passes) != filtered:
        raise NotRebuildable("PNG pixels do not re-filter to its IDAT data (nonzero padding bits?)")
    body = RecipeWriter()
    deflate = _find_deflate(filtered, parsed.idat, header)
    body.text(zlib.ZLIB_RUNTIME_VERSION if deflate[0] == DEFLATE_ZLIB else "")
    _write_chunks(body, parsed.chunks, parsed.trailer)
    rule = _filter_rule([t for _, t, _ in passes], [table for _, _, table in passes],
                        _heuristic_order(parsed.idat, parsed.idat_lengths, deflate))
    body.uint(rule)
    if rule == RULE_EXPLICIT:
        body.blob(types.tobytes())
    _write_deflate(body, parsed.idat[:2], deflate)
    _write_idat_rule(body, parsed.idat_lengths, len(parsed.idat))
    return Split("PNG", header.mode, pixels, pack_recipe(TAG, body.getvalue()))


def rebuild(pixels: np.ndarray, recipe: bytes) -> bytes:
    """The PNG file the recipe describes, holding `pixels`."""
    reader = RecipeReader(unpack_recipe(TAG, recipe))
    reader.text()  # the zlib that made the stream: informative (see describe)
    chunks, trailer = _read_chunks(reader)
    if not chunks or chunks[0][0] != b"IHDR":
        raise ValueError("PNG recipe does not start with IHDR")
    header = Header.parse(chunks[0][1])
    pixels = check_pixels(pixels, header.height, header.width, header.channels)
    if header.depth < 8 and int(pixels.max(initial=0)) >> header.depth:
        raise ValueError(f"pixel values do not fit in {header.depth} bits")
    idat = _deflate(_filter_by_rule(reader, _pass_rows(pixels, header), header.bpp), reader)
    lengths = _read_idat_rule(reader, len(idat))
    reader.end()
    out = [SIGNATURE]
    for kind, payload in chunks:
        if kind != b"IDAT":
            out.append(_chunk(kind, payload))
            continue
        pos = 0
        for length in lengths:
            out.append(_chunk(b"IDAT", idat[pos : pos + length]))
            pos += length
    out.append(trailer)
    return b"".join(out)


def describe(recipe: bytes) -> dict[str, object]:
    """What a PNG recipe says, for reports and for recording the deflate library."""
    reader = RecipeReader(unpack_recipe(TAG, recipe))
    zlib_version = reader.text()
    chunks, trailer = _read_chunks(reader)
    rule = reader.uint()
    info: dict[str, object] = {
        "format": "PNG", "zlib_version": zlib_version or None,
        "chunks": [kind.decode("latin-1") for kind, _ in chunks],
        "trailer_bytes": len(trailer), "filters": rule_name(rule),
    }
    if rule == RULE_EXPLICIT:
        reader.blob()
    header = reader.raw(2)
    method = reader.uint()
    if method == DEFLATE_ZLIB:
        level, mem_level, strategy, wbits = (reader.uint() for _ in range(4))
        info["deflate"] = {"level": level, "mem_level": mem_level, "strategy": strategy,
                           "wbits": wbits, "header": header.hex()}
    else:
        info["deflate"] = {"stored": True, "header": header.hex()}
    return info


# --- chunks ---------------------------------------------------------------------------------


def _parse(data: bytes) -> Parsed:
    """Walk the chunks; decline what the recipe cannot express or what is damaged."""
    if not data.startswith(SIGNATURE):
        raise NotRebuildable("not a PNG file")
    chunks: list[tuple[bytes, bytes]] = []
    idat, lengths = [], []
    pos, run_closed = len(SIGNATURE), False
    while True:
        if pos + 12 > len(data):
            raise NotRebuildable("PNG ends without an IEND chunk")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise NotRebuildable(f"PNG {kind!r} chunk runs past the end of the file")
        payload = data[pos + 8 : end - 4]
        if zlib.crc32(data[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            raise NotRebuildable(f"PNG {kind.decode('latin-1')} chunk has a bad CRC")
        pos = end
        if not chunks and kind != b"IHDR":
            raise NotRebuildable("PNG does not start with IHDR")
        if kind == b"acTL":
            raise NotRebuildable("APNG (animated PNG)")
        if kind == b"IDAT":
            if run_closed:
                raise NotRebuildable("PNG IDAT chunks are not consecutive")
            if not lengths:
                chunks.append((b"IDAT", b""))
            idat.append(payload)
            lengths.append(length)
            continue
        run_closed = bool(lengths)
        chunks.append((kind, payload))
        if kind == b"IEND":
            break
    if not lengths:
        raise NotRebuildable("PNG without IDAT data")
    return Parsed(chunks, b"".join(idat), lengths, data[pos:])


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload))


def _write_chunks(body: RecipeWriter, chunks: list[tuple[bytes, bytes]], trailer: bytes) -> None:
    body.uint(len(chunks))
    for kind, payload in chunks:
        if kind in KNOWN_CHUNKS:
            body.uint(KNOWN_CHUNKS.index(kind) + 1)
        else:
            body.uint(0).raw(kind)
        if kind != b"IDAT":
            body.blob(payload)
    body.blob(trailer)


def _read_chunks(reader: RecipeReader) -> tuple[list[tuple[bytes, bytes]], bytes]:
    chunks = []
    for _ in range(reader.uint()):
        code = reader.uint()
        if code > len(KNOWN_CHUNKS):
            raise ValueError(f"PNG recipe has an unknown chunk code {code}")
        kind = KNOWN_CHUNKS[code - 1] if code else reader.raw(4)
        chunks.append((kind, b"" if kind == b"IDAT" else reader.blob()))
    if [kind for kind, _ in chunks].count(b"IDAT") != 1:
        raise ValueError("PNG recipe must mark exactly one IDAT run")
    return chunks, reader.blob()


# --- pixels and rows ------------------------------------------------------------------------


def _inflate(idat: bytes, header: Header) -> bytes:
    """The filtered rows; declines streams that are not exactly the rows IHDR describes."""
    expected = sum(rows * (1 + size) for rows, size in header.pass_shapes())
    if len(idat) < 2 or idat[0] & 0x0F != 8 or idat[0] >> 4 > 7 or (idat[0] << 8 | idat[1]) % 31:
        raise NotRebuildable("PNG IDAT data is not a zlib stream")
    if idat[1] & 0x20:
        raise NotRebuildable("PNG IDAT zlib stream uses a preset dictionary")
    inflater = zlib.decompressobj()
    try:
        filtered = inflater.decompress(idat, expected + 1)
    except zlib.error as error:
        raise NotRebuildable(f"PNG IDAT data does not inflate ({error})") from error
    if len(filtered) != expected or not inflater.eof:
        raise NotRebuildable("PNG IDAT data is not exactly the rows its IHDR describes")
    if inflater.unused_data:
        raise NotRebuildable("PNG IDAT data continues after the end of its zlib stream")
    return filtered


def _read_filter_types(filtered: bytes, header: Header) -> np.ndarray:
    """The filter type byte of every row, passes in order."""
    stream = np.frombuffer(filtered, dtype=np.uint8)
    types, pos = [], 0
    for rows, size in header.pass_shapes():
        types.append(stream[pos : pos + rows * (size + 1)].reshape(rows, size + 1)[:, 0])
        pos += rows * (size + 1)
    out = np.concatenate(types)
    if out.max(initial=0) > 4:
        raise NotRebuildable("PNG row with an invalid filter type")
    return out


def _decode_pixels(data: bytes, header: Header) -> np.ndarray:
    """The stored samples (H, W, C), decoded by Pillow; low-depth gray as raw values."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                mode, array = image.mode, np.asarray(image)
    except Exception as error:  # noqa: BLE001 - any decoder failure is a reason to decline
        raise NotRebuildable(f"Pillow cannot decode this PNG ({error})") from error
    if header.colour == 0 and header.depth < 8:
        expected_mode = "1" if header.depth == 1 else "L"
        array = array.astype(np.uint8) // {1: 1, 2: 85, 4: 17}[header.depth]
    else:
        expected_mode = header.mode
    if mode != expected_mode:
        raise NotRebuildable(f"Pillow decoded this {header.mode} PNG as {mode}")
    return check_pixels(array.astype(np.uint8, copy=False), header.height, header.width,
                        header.channels)


def _pack_rows(image: np.ndarray, depth: int) -> np.ndarray:
    """(h, w, C) samples as (h, row bytes) of scanline bytes (sub-byte samples MSB first)."""
    rows, cols, channels = image.shape
    if depth == 8:
        return np.ascontiguousarray(image).reshape(rows, cols * channels)
    per_byte = 8 // depth
    padded = np.zeros((rows, -(-cols // per_byte) * per_byte), dtype=np.uint8)
    padded[:, :cols] = image[:, :, 0]
    groups = padded.reshape(rows, -1, per_byte)
    shifts = (depth * np.arange(per_byte - 1, -1, -1)).astype(np.uint8)
    return np.bitwise_or.reduce(groups << shifts, axis=2).astype(np.uint8)


def _pass_rows(pixels: np.ndarray, header: Header) -> list[np.ndarray]:
    """Scanline bytes of each non-empty pass."""
    return [_pack_rows(pixels[y0::dy, x0::dx], header.depth)
            for x0, y0, dx, dy in header.passes()]


# --- filters --------------------------------------------------------------------------------


def _row_blocks(rows: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, rows, rows above) in blocks, the row above the first being zeros (as in PNG)."""
    step = max(1, ROW_BLOCK_BYTES // max(1, rows.shape[1]))
    for start in range(0, rows.shape[0], step):
        block = rows[start : start + step]
        above = np.empty_like(block)
        above[1:] = block[:-1]
        above[0] = rows[start - 1] if start else 0
        yield start, block, above


def _shift_right(rows: np.ndarray, bpp: int) -> np.ndarray:
    out = np.zeros_like(rows)
    out[:, bpp:] = rows[:, :-bpp]
    return out


def _filter(rows: np.ndarray, above: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """Forward PNG filter `kind` of whole rows at once: filtering reads raw bytes only."""
    if kind == 0:
        return rows
    if kind == 2:
        return rows - above
    left = _shift_right(rows, bpp)
    if kind == 1:
        return rows - left
    if kind == 3:
        return rows - ((left.astype(np.uint16) + above) >> 1).astype(np.uint8)
    a, b = left.astype(np.int16), above.astype(np.int16)
    c = _shift_right(above, bpp).astype(np.int16)
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    predictor = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return rows - predictor.astype(np.uint8)


def _filter_pass(rows: np.ndarray, bpp: int, types: np.ndarray | None = None,
                 order: tuple[int, ...] = (), scores: bool = False,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Filtered scanlines (type byte + filtered row) of one pass, as deflate sees them.

    The types are given, or chosen per row by the heuristic `order` (filters tried in that
    order, the lowest sum of |filtered byte| wins, ties to the earlier). Returns the scanlines,
    the types and, when all five filters were computed, their (5, rows) scores.
    """
    height, width = rows.shape
    out = np.empty((height, width + 1), dtype=np.uint8)
    if types is not None and not scores and (types == types[0]).all():
        out[:, 0] = types[0]
        for start, block, above in _row_blocks(rows):
            out[start : start + block.shape[0], 1:] = _filter(block, above, bpp, int(types[0]))
        return out, types, None
    chosen = np.empty(height, np.uint8) if types is None else types
    table = np.empty((5, height), dtype=np.int64)
    preference = np.asarray(order, dtype=np.uint8)
    for start, block, above in _row_blocks(rows):
        stop = start + block.shape[0]
        filtered = [_filter(block, above, bpp, kind) for kind in range(5)]
        for kind, candidate in enumerate(filtered):  # |v| of a signed byte; |-128| stays 128
            table[kind, start:stop] = np.abs(candidate.view(np.int8)).view(np.uint8).sum(axis=1)
        if types is None:
            chosen[start:stop] = preference[np.argmin(table[preference, start:stop], axis=0)]
        view, picks = out[start:stop], chosen[start:stop]
        view[:, 0] = picks
        for kind in np.unique(picks):
            mask = picks == kind
            view[mask, 1:] = filtered[kind][mask]
    return out, chosen, table


def _heuristic_fits(table: np.ndarray, types: np.ndarray, rule: int) -> bool:
    preference = np.asarray(heuristic_order(rule), dtype=np.uint8)
    return bool(np.array_equal(preference[np.argmin(table[preference], axis=0)], types))


def _heuristic_order(idat: bytes, lengths: list[int], deflate: tuple[int, ...]) -> tuple[int, ...]:
    """The order to try the heuristics in. They pick the same filter on most rows, so a file
    often fits several; trying first the one of the encoder the file's traits point to gives
    one encoder's files one recipe. Pillow: memLevel 9, a 32K window however small the image,
    IDAT chunks of 64 KiB, level 9 with optimize=True, never Huffman-only or RLE; libpng-based
    writers: memLevel 8, or a window shrunk to the image, 8 KiB IDAT chunks, level 7
    (ImageMagick's default), Huffman-only or RLE (optipng, pngcrush)."""
    if deflate[0] != DEFLATE_ZLIB:
        return (RULE_PILLOW, RULE_PILLOW_OPTIMIZE, RULE_LIBPNG)
    level, mem_level, strategy = deflate[1], deflate[2], deflate[3]
    pillow_chunks = len(lengths) == 1 or lengths[0] >= 1 << 16
    if (mem_level, idat[0] >> 4) == (9, 7) and level != 7 and strategy < 2 and pillow_chunks:
        if level == 9:
            return (RULE_PILLOW_OPTIMIZE, RULE_PILLOW, RULE_LIBPNG)
        return (RULE_PILLOW, RULE_PILLOW_OPTIMIZE, RULE_LIBPNG)
    return (RULE_LIBPNG, RULE_PILLOW_OPTIMIZE, RULE_PILLOW)


def _filter_rule(types: list[np.ndarray], tables: list[np.ndarray | None],
                 order: tuple[int, ...]) -> int:
    """The cheapest rule that recomputes the filter types exactly (RULE_EXPLICIT if none).

    After the encoders' defaults come libpng with a restricted filter set: first exactly the
    types used, then larger sets (a filter that never won leaves no trace).
    """
    every = np.concatenate(types)
    if (every == every[0]).all():
        return int(every[0])
    used = sum(1 << int(kind) for kind in np.unique(every))
    subsets = [used] + [mask for mask in range(32) if mask & used == used and mask != used]
    for rule in order + tuple(RULE_LIBPNG_SUBSET + mask for mask in subsets if mask != 31):
        if all(table is not None and _heuristic_fits(table, pass_types, rule)
               for table, pass_types in zip(tables, types, strict=True)):
            return rule
    return RULE_EXPLICIT


def _split_types(types: np.ndarray, rows: list[np.ndarray]) -> list[np.ndarray]:
    bounds = np.cumsum([pass_rows.shape[0] for pass_rows in rows])[:-1]
    return np.split(types, bounds)


def _filter_by_rule(reader: RecipeReader, rows: list[np.ndarray], bpp: int) -> bytes:
    """The filtered stream of all passes, filter types as the recipe's rule says."""
    rule = reader.uint()
    count = sum(pass_rows.shape[0] for pass_rows in rows)
    if rule <= 4:
        types = np.full(count, rule, dtype=np.uint8)
    elif rule == RULE_EXPLICIT:
        types = np.frombuffer(reader.blob(), dtype=np.uint8)
        if types.shape[0] != count or types.max(initial=0) > 4:
            raise ValueError("PNG recipe filter list does not fit the image")
    elif (order := heuristic_order(rule)) is not None:
        return b"".join(_filter_pass(pass_rows, bpp, order=order)[0].tobytes()
                        for pass_rows in rows)
    else:
        raise ValueError(f"PNG recipe has an unknown filter rule {rule}")
    return b"".join(_filter_pass(pass_rows, bpp, pass_types)[0].tobytes()
                    for pass_rows, pass_types in zip(rows, _split_types(types, rows),
                                                     strict=True))


# --- deflate --------------------------------------------------------------------------------


def _find_deflate(filtered: bytes, idat: bytes, header: Header) -> tuple[int, ...]:
    """(DEFLATE_ZLIB, level, memLevel, strategy, wbits) or a stored-block description."""
    stored = _stored_lengths(idat)
    if stored is not None:
        return _stored_rule(stored, len(filtered))
    flag, window = idat[1] >> 6, max(9, (idat[0] >> 4) + 8)
    filters_used = header.colour != 3 and header.depth == 8
    small = len(filtered) <= FULL_SEARCH_BYTES
    for level, mem_level, strategy in _candidates(flag, filters_used, small):
        for wbits in dict.fromkeys((window, 15)):
            if _reproduces(filtered, idat, level, mem_level, strategy, wbits):
                return DEFLATE_ZLIB, level, mem_level, strategy, wbits
    raise NotRebuildable(
        "IDAT deflate stream not reproducible with zlib (another deflate implementation)")


def _candidates(flag: int, filters_used: bool, small: bool) -> list[tuple[int, int, int]]:
    """zlib (level, memLevel, strategy) consistent with the header's FLEVEL, most likely first.

    Common: memLevel 9 or 8 (Pillow, libpng, ImageMagick, optipng, pngcrush), Z_FILTERED or
    the default strategy, Huffman-only and RLE at FLEVEL 0 (optipng, pngcrush). Z_FILTERED only
    changes levels 4-9; Huffman-only and RLE ignore the level. Only for small streams, where a
    try costs little, also memLevel 1-7 and Z_FIXED: a stream zlib did not make is tried
    against every candidate, and each try runs until its first deflate block.
    """
    levels = LEVELS_BY_FLAG[flag]
    filtered_first = (1, 0) if filters_used else (0, 1)
    common = filtered_first if flag else (0, 2, 3)
    preferred = [(level, mem, s) for s in common for mem in MEM_LEVELS[:2] for level in levels]
    if not small:
        return preferred
    every = [(level, mem, s) for s in (*common, 4) for mem in MEM_LEVELS for level in levels]
    return list(dict.fromkeys(preferred + every))


def _reproduces(filtered: bytes, stream: bytes, level: int, mem_level: int, strategy: int,
                wbits: int) -> bool:
    """Whether these settings give `stream` (ignoring its 2 header bytes), aborting as soon as
    the output stops being a prefix: zlib's output does not depend on how input is fed."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level, strategy)
    done = 0

    def agrees(out: bytes) -> bool:
        nonlocal done
        end = done + len(out)
        skip = max(0, 2 - done)
        same = end <= len(stream) and out[skip:] == stream[done + skip : end]
        done = end
        return same

    view = memoryview(filtered)
    for start in range(0, len(filtered), SEARCH_CHUNK):
        if not agrees(compressor.compress(view[start : start + SEARCH_CHUNK])):
            return False
    return agrees(compressor.flush()) and done == len(stream)


def _stored_lengths(stream: bytes) -> list[int] | None:
    """Block lengths if the zlib stream is only stored blocks with zero padding bits."""
    pos, lengths = 2, []
    while True:
        if pos + 5 > len(stream) or stream[pos] > 1:
            return None
        length, inverse = struct.unpack_from("<HH", stream, pos + 1)
        if length ^ 0xFFFF != inverse:
            return None
        lengths.append(length)
        final = stream[pos]
        pos += 5 + length
        if final:
            return lengths if pos + 4 == len(stream) else None


def _stored_layout(total: int, size: int, empty_final: bool) -> list[int]:
    lengths = [size] * (total // size) + ([total % size] if total % size else [])
    return lengths + [0] if empty_final or not lengths else lengths


def _stored_rule(lengths: list[int], total: int) -> tuple[int, ...]:
    size = lengths[0]
    for empty_final in (0, 1):
        if size and _stored_layout(total, size, bool(empty_final)) == lengths:
            return DEFLATE_STORED_RULE, size, empty_final
    return DEFLATE_STORED_LIST, *lengths


def _write_deflate(body: RecipeWriter, header: bytes, deflate: tuple[int, ...]) -> None:
    body.raw(header).uint(deflate[0])
    if deflate[0] == DEFLATE_STORED_LIST:
        body.uints(list(deflate[1:]))
    else:
        for value in deflate[1:]:
            body.uint(value)


def _deflate(filtered: bytes, reader: RecipeReader) -> bytes:
    """The IDAT zlib stream the recipe describes, its header bytes as the original had them."""
    header, method = reader.raw(2), reader.uint()
    if method == DEFLATE_ZLIB:
        level, mem_level, strategy, wbits = (reader.uint() for _ in range(4))
        try:
            compressor = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level, strategy)
        except (ValueError, zlib.error) as error:
            raise ValueError(f"PNG recipe has bad zlib settings ({error})") from error
        return header + (compressor.compress(filtered) + compressor.flush())[2:]
    if method == DEFLATE_STORED_RULE:
        size, empty_final = reader.uint(), reader.uint()
        if not 0 < size < 1 << 16:
            raise ValueError("PNG recipe has a bad stored block size")
        lengths = _stored_layout(len(filtered), size, bool(empty_final))
    elif method == DEFLATE_STORED_LIST:
        lengths = reader.uints()
    else:
        raise ValueError(f"PNG recipe has an unknown deflate method {method}")
    if sum(lengths) != len(filtered) or max(lengths) >= 1 << 16:
        raise ValueError("PNG recipe stored blocks do not fit the image data")
    out, pos = [header], 0
    for index, length in enumerate(lengths):
        out.append(struct.pack("<BHH", index == len(lengths) - 1, length, length ^ 0xFFFF))
        out.append(filtered[pos : pos + length])
        pos += length
    out.append(struct.pack(">I", zlib.adler32(filtered)))
    return b"".join(out)


# --- IDAT chunking --------------------------------------------------------------------------


def _fixed_lengths(total: int, size: int) -> list[int]:
    return [size] * (total // size) + ([total % size] if total % size else [])


def _write_idat_rule(body: RecipeWriter, lengths: list[int], total: int) -> None:
    if len(lengths) == 1:
        body.uint(IDAT_ONE)
    elif lengths[0] and _fixed_lengths(total, lengths[0]) == lengths:
        body.uint(IDAT_FIXED).uint(lengths[0])
    else:
        body.uint(IDAT_LIST).uints(lengths)


def _read_idat_rule(reader: RecipeReader, total: int) -> list[int]:
    rule = reader.uint()
    if rule == IDAT_ONE:
        return [total]
    if rule == IDAT_FIXED:
        size = reader.uint()
        if not size:
            raise ValueError("PNG recipe has IDAT chunks of 0 bytes")
        return _fixed_lengths(total, size)
    if rule == IDAT_LIST:
        lengths = reader.uints()
        if sum(lengths) != total:
            raise ValueError("PNG recipe IDAT lengths do not add up to the zlib stream")
        return lengths
    raise ValueError(f"PNG recipe has an unknown IDAT rule {rule}")
