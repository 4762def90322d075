"""The one interface between codecs and everything that stores or schedules shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

BLOCK_SIZE = 32


class CodecError(ValueError):
    """A shard cannot be coded or decoded as asked (wrong layout, model, or damaged payload)."""


@dataclass(frozen=True)
class EncodedShard:
    """A coded shard: the ANS message bytes plus the JSON-safe parameters decoding needs."""

    payload: bytes
    num_blocks: int
    channels: int
    params: dict[str, Any] = field(default_factory=dict)
    # What each block cost, in bits, as the codec measured it while coding (in memory only,
    # never stored; None where a codec does not measure; NaN for a block coded raw as a
    # chain's start). Reports share the payload among objects by it.
    block_bits: np.ndarray | None = field(default=None, compare=False, repr=False)


@runtime_checkable
class BlockCodec(Protocol):
    """Codes uint8 blocks of shape (N, 32, 32, C), C in `channel_layouts`, exactly.

    `decode(encode(blocks))` must equal `blocks` bit for bit on any machine, batch size and
    thread count: that is the contract every codec is tested against.
    """

    name: str

    @property
    def model_sha256(self) -> str | None:
        """sha256 of the model file the codec needs (None for model-free codecs)."""
        ...

    @property
    def channel_layouts(self) -> tuple[int, ...]:
        """Channel counts it accepts (1 = L, 2 = LA, 3 = RGB, 4 = RGBA)."""
        ...

    def encode(self, blocks: np.ndarray) -> EncodedShard: ...

    def decode(self, shard: EncodedShard) -> np.ndarray: ...


def check_blocks(blocks: np.ndarray, codec: BlockCodec) -> np.ndarray:
    """Refuse blocks the codec cannot take, naming what is wrong."""
    if blocks.dtype != np.uint8 or blocks.ndim != 4 or blocks.shape[1:3] != (32, 32):
        raise CodecError(
            f"codec {codec.name!r} takes uint8 blocks of shape (N, 32, 32, C), got "
            f"{blocks.dtype} {blocks.shape}"
        )
    if blocks.shape[3] not in codec.channel_layouts:
        raise CodecError(
            f"codec {codec.name!r} does not code {blocks.shape[3]}-channel blocks "
            f"(it takes {codec.channel_layouts})"
        )
    return np.ascontiguousarray(blocks)
