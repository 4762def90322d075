"""Flattening a message to bytes and back.

Layout, format version 1, little-endian:
  b"RANS" | u16 version | u8 kind (0 plain, 1 clean) | u8 ndim | u64 word count
  | u64 × ndim lane shape | packed heads | i64 count base + packed zigzag count offsets
  (plain only)
  | u32 × words (stack, bottom first) | u32 CRC-32 of everything before it
"Packed" stores each value in as few bytes as it needs, with its byte count in a nibble, so a
lane's head and count cost what they hold rather than 16 fixed bytes. The CRC and the range
checks make a corrupted or truncated message fail loudly instead of decoding to wrong data; a
version this build does not know is refused by name.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from recarchive.ans.backend import NUMPY, Backend
from recarchive.ans.message import Message
from recarchive.ans.stack import WordStack

MAGIC = b"RANS"
FORMAT_VERSION = 1
KIND_PLAIN, KIND_CLEAN = 0, 1
_FIXED = struct.Struct("<4sHBBQ")
_BYTE_THRESHOLDS = np.array([1 << (8 * k) for k in range(8)], dtype=np.uint64)


class CorruptMessageError(ValueError):
    """The bytes are not a valid ANS message (truncated, corrupted or of another format)."""


def pack_uints(values: np.ndarray) -> bytes:
    """Non-negative integers below 2^64 in minimal little-endian bytes, lengths as nibbles."""
    values = np.ascontiguousarray(values.reshape(-1), dtype="<u8")
    lengths = (values[:, None] >= _BYTE_THRESHOLDS[None, :]).sum(axis=1).astype(np.uint8)
    padded = np.zeros(lengths.size + lengths.size % 2, dtype=np.uint8)
    padded[: lengths.size] = lengths
    nibbles = padded[0::2] | (padded[1::2] << 4)
    keep = np.arange(8)[None, :] < lengths[:, None]
    payload = values.view(np.uint8).reshape(-1, 8)[keep]
    return nibbles.tobytes() + payload.tobytes()


def unpack_uints(view: memoryview, offset: int, count: int) -> tuple[np.ndarray, int]:
    """Inverse of `pack_uints`: (values as uint64, offset after them)."""
    nibble_bytes = (count + 1) // 2
    _need(view, offset + nibble_bytes, "its packed lengths")
    nibbles = np.frombuffer(view, dtype=np.uint8, count=nibble_bytes, offset=offset)
    lengths = np.empty(2 * nibble_bytes, dtype=np.uint8)
    lengths[0::2], lengths[1::2] = nibbles & 0xF, nibbles >> 4
    lengths = lengths[:count]
    if count and lengths.max() > 8:
        raise CorruptMessageError("ANS message has an invalid packed length")
    offset += nibble_bytes
    total = int(lengths.sum(dtype=np.int64))
    _need(view, offset + total, "its packed values")
    matrix = np.zeros((count, 8), dtype=np.uint8)
    matrix[np.arange(8)[None, :] < lengths[:, None]] = np.frombuffer(
        view, dtype=np.uint8, count=total, offset=offset
    )
    return matrix.view("<u8").reshape(-1), offset + total


def pack_counts(counts: np.ndarray) -> bytes:
    """Lane word counts as zigzag offsets from their median: lanes fill at similar rates, so
    most offsets take one byte."""
    base = int(np.median(counts)) if counts.size else 0
    delta = counts.astype(np.int64) - base
    zigzag = (delta.astype(np.uint64) << np.uint64(1)) ^ (delta >> 63).astype(np.uint64)
    return struct.pack("<q", base) + pack_uints(zigzag)


def unpack_counts(view: memoryview, offset: int, count: int) -> tuple[np.ndarray, int]:
    _need(view, offset + 8, "its count base")
    (base,) = struct.unpack_from("<q", view, offset)
    zigzag, offset = unpack_uints(view, offset + 8, count)
    delta = (zigzag >> np.uint64(1)).astype(np.int64) ^ -(zigzag & np.uint64(1)).astype(np.int64)
    return delta + base, offset


def _need(view: memoryview, end: int, what: str) -> None:
    if len(view) < end:
        raise CorruptMessageError(f"ANS message truncated inside {what}")


def message_to_bytes(message: Message) -> bytes:
    backend = message.backend
    shape = message.lane_shape
    words = backend.to_numpy(message.stack.words()).astype("<u4")
    parts = [
        _FIXED.pack(MAGIC, FORMAT_VERSION, KIND_CLEAN if message.is_clean else KIND_PLAIN,
                    len(shape), words.size),
        struct.pack(f"<{len(shape)}Q", *shape),
        pack_uints(backend.to_numpy(message.head).astype(np.uint64)),
    ]
    if not message.is_clean:
        parts.append(pack_counts(backend.to_numpy(message.counts).reshape(-1)))
    parts.append(words.tobytes())
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def message_from_bytes(data: bytes, backend: Backend = NUMPY) -> Message:
    """Parse `data` into a message on `backend`; corrupt or truncated bytes raise."""
    view = memoryview(data)
    if len(view) < _FIXED.size + 4:
        raise CorruptMessageError(f"ANS message truncated: {len(view)} bytes is below the header")
    (crc,) = struct.unpack_from("<I", view, len(view) - 4)
    magic, version, kind, ndim, num_words = _FIXED.unpack_from(view, 0)
    if magic != MAGIC:
        raise CorruptMessageError("not an ANS message: bad magic bytes")
    if version != FORMAT_VERSION:
        raise CorruptMessageError(
            f"ANS message format version {version} is not supported; this build reads version "
            f"{FORMAT_VERSION}: upgrade recarchive to read it"
        )
    if zlib.crc32(view[:-4]) != crc:
        raise CorruptMessageError("ANS message checksum mismatch: the bytes are corrupted or cut")
    if kind not in (KIND_PLAIN, KIND_CLEAN):
        raise CorruptMessageError(f"ANS message of unknown kind {kind}")
    body = view[:-4]
    offset = _FIXED.size
    _need(body, offset + 8 * ndim, "its lane shape")
    shape = struct.unpack_from(f"<{ndim}Q", body, offset)
    offset += 8 * ndim
    lanes = int(np.prod(shape, dtype=np.int64))
    heads, offset = unpack_uints(body, offset, lanes)
    counts = None
    if kind == KIND_PLAIN:
        counts, offset = unpack_counts(body, offset, lanes)
    if len(body) != offset + 4 * num_words:
        raise CorruptMessageError(
            f"ANS message has {len(body) - offset} bytes of words where its header promises "
            f"{4 * num_words}: it was truncated or extended"
        )
    if lanes and heads.max() >= 1 << 63:
        raise CorruptMessageError("ANS message has a lane head outside its valid range")
    if counts is not None and (counts.min(initial=0) < 0 or int(counts.sum()) != num_words):
        raise CorruptMessageError("ANS message lane word counts disagree with its word count")
    words = np.frombuffer(body, dtype="<u4", count=num_words, offset=offset).astype(np.int64)
    stack = WordStack(backend)
    stack.load(backend.asarray(words))
    head = backend.asarray(heads.astype(np.int64).reshape(shape))
    if counts is not None:
        counts = backend.asarray(counts.astype(np.int64).reshape(shape))
    return Message(head, stack, counts)


def message_num_bits(message: Message) -> int:
    """Exact size of the flattened message in bits, header and checksum included."""
    return 8 * len(message_to_bytes(message))
