"""Channel handling for RGB model codecs: every layout an archive meets, through one codec.

A model trained on RGB blocks codes RGB. Rather than a model per layout, the other layouts
are split: RGBA codes its RGB planes with the model and its alpha plane with the order-0
coder (alpha is mostly flat, so it costs next to nothing), and L and LA, for which no model
ships, go to the order-0 coder whole. The shard's `params` say which split was made, so the
decoder needs nothing else; RGB shards are exactly the model codec's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recarchive.codecs.base import (
    BlockCodec,
    BlockGeometry,
    CodecError,
    EncodedShard,
    check_blocks,
    decode_shards,
    encode_shard,
    encode_shards,
)
from recarchive.codecs.order0 import Order0Codec

RGB = 3
SPLIT_KEY = "channel_split"  # params of non-RGB shards: "rgb+order0" or "order0"


class ChannelSplitCodec:
    """An RGB codec extended to L, LA and RGBA blocks; everything else is the RGB codec's."""

    channel_layouts = (1, 2, 3, 4)

    def __init__(self, rgb: BlockCodec, rest: BlockCodec | None = None) -> None:
        if RGB not in rgb.channel_layouts:
            raise CodecError(f"codec {rgb.name!r} does not code RGB blocks; nothing to split")
        self.rgb = rgb
        self.rest = rest or Order0Codec()
        self.name = rgb.name

    @property
    def model_sha256(self) -> str | None:
        return self.rgb.model_sha256

    def __getattr__(self, attribute: str) -> Any:
        # Model-codec extras (model_bytes, uses_block_context, chains, ...) pass
        # through; only layouts and coding are this class's own.
        return getattr(self.__dict__["rgb"], attribute)

    def encode(self, blocks: np.ndarray,
               geometry: BlockGeometry | None = None) -> EncodedShard:
        blocks = check_blocks(blocks, self)
        channels = blocks.shape[3]
        if channels == RGB:
            return encode_shard(self.rgb, blocks, geometry)
        if channels < RGB:
            plain = self.rest.encode(blocks)
            return EncodedShard(plain.payload, plain.num_blocks, channels,
                                {SPLIT_KEY: "order0", "rest": plain.params})
        color = encode_shard(self.rgb, np.ascontiguousarray(blocks[..., :RGB]), geometry)
        alpha = self.rest.encode(np.ascontiguousarray(blocks[..., RGB:]))
        params = {SPLIT_KEY: "rgb+order0", "rgb": color.params, "rest": alpha.params,
                  "rgb_bytes": len(color.payload)}
        return EncodedShard(color.payload + alpha.payload, len(blocks), channels, params)

    def encode_many(self, shards: Sequence[tuple[np.ndarray, BlockGeometry | None]],
                    ) -> list[EncodedShard]:
        """RGB shards coded together by the RGB codec (`encode_shards`), the others alone."""
        rgb = [i for i, (blocks, _) in enumerate(shards) if blocks.shape[-1] == RGB]
        coded = dict(zip(rgb, encode_shards(self.rgb, [
            (check_blocks(shards[i][0], self), shards[i][1]) for i in rgb]), strict=True))
        return [coded[i] if i in coded else self.encode(*shard)
                for i, shard in enumerate(shards)]

    def decode_many(self, shards: Sequence[EncodedShard]) -> list[np.ndarray]:
        """RGB shards decoded together by the RGB codec, the others alone."""
        rgb = [i for i, shard in enumerate(shards) if shard.channels == RGB]
        decoded = dict(zip(rgb, decode_shards(self.rgb, [shards[i] for i in rgb]),
                           strict=True))
        return [decoded[i] if i in decoded else self.decode(shard)
                for i, shard in enumerate(shards)]

    def decode(self, shard: EncodedShard) -> np.ndarray:
        channels, params = shard.channels, shard.params
        if channels == RGB:
            return self.rgb.decode(shard)
        split = params.get(SPLIT_KEY)
        if channels < RGB and channels >= 1 and split == "order0":
            return self.rest.decode(EncodedShard(shard.payload, shard.num_blocks, channels,
                                                 params.get("rest", {})))
        if channels == RGB + 1 and split == "rgb+order0":
            cut = params.get("rgb_bytes")
            if not isinstance(cut, int) or not 0 <= cut <= len(shard.payload):
                raise CodecError(f"{self.name} RGBA shard: its RGB part length {cut!r} does not "
                                 f"fit its {len(shard.payload)}-byte payload")
            color = self.rgb.decode(EncodedShard(shard.payload[:cut], shard.num_blocks, RGB,
                                                 params.get("rgb", {})))
            alpha = self.rest.decode(EncodedShard(shard.payload[cut:], shard.num_blocks, 1,
                                                  params.get("rest", {})))
            return np.ascontiguousarray(np.concatenate([color, alpha], axis=3))
        raise CodecError(f"{self.name} shard with {channels} channels has an unknown channel "
                         f"split {split!r}: it was not made by this codec")
