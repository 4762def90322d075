"""Codecs: what turns a shard of pixel blocks into one ANS message and back.

Every codec speaks `BlockCodec`; the archive and the jobs know codecs only through it and the
registry, so Bit-Swap, partitioned REC and the model-free baseline are interchangeable there.
"""

from recarchive.codecs.base import BlockCodec, CodecError, EncodedShard
from recarchive.codecs.registry import available_codecs, get_codec, register_codec

__all__ = [
    "BlockCodec",
    "CodecError",
    "EncodedShard",
    "available_codecs",
    "get_codec",
    "register_codec",
]
