"""Codec names to factories, so archives can name the codec that made each shard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recarchive.codecs.base import BlockCodec, CodecError

_FACTORIES: dict[str, Callable[..., BlockCodec]] = {}


def register_codec(name: str, factory: Callable[..., BlockCodec]) -> None:
    _FACTORIES[name] = factory


def available_codecs() -> list[str]:
    _load_builtin()
    return sorted(_FACTORIES)


def get_codec(name: str, **options: Any) -> BlockCodec:
    """A codec by name; options are codec-specific (for example `model=`)."""
    _load_builtin()
    if name not in _FACTORIES:
        raise CodecError(f"unknown codec {name!r}; available: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name](**options)


def _bitswap(model: str = "bitswap-cifar", model_bytes: bytes | None = None,
             model_sha256: str | None = None, **options: Any) -> BlockCodec:
    """Bit-Swap with a shipped model, a model file, or model bytes (from an archive); RGB by
    the model, other layouts split (see `codecs.channels`)."""
    from recarchive.codecs.bitswap import BitSwapCodec
    from recarchive.codecs.channels import ChannelSplitCodec
    from recarchive.models import zoo

    if model_bytes is not None:
        loaded = zoo.load_bitswap_bytes(model_bytes, model_sha256, "archive model copy")
    else:
        loaded = zoo.load_bitswap(model, model_sha256)
    rgb = BitSwapCodec(loaded.exact, loaded.sha256, model_bytes=loaded.data, **options)
    return ChannelSplitCodec(rgb)


def _rec(model: str = "rec-cifar", model_bytes: bytes | None = None,
         model_sha256: str | None = None, **options: Any) -> BlockCodec:
    """REC with a shipped model, a model file, or model bytes (from an archive)."""
    from recarchive.codecs.rec import RecCodec
    from recarchive.models import vae

    if "chains" in options:  # the shared --chains option: REC's ANS lanes
        options["lanes"] = options.pop("chains")
    if model_bytes is not None:
        loaded = vae.load_vae_bytes(model_bytes, model_sha256, "archive model copy")
    else:
        loaded = vae.load_vae(model, model_sha256)
    return RecCodec(loaded, **options)


def _load_builtin() -> None:
    if "order0" not in _FACTORIES:
        from recarchive.codecs.order0 import Order0Codec

        register_codec("order0", Order0Codec)
        register_codec("bitswap", _bitswap)
        register_codec("rec", _rec)
