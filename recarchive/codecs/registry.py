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


def _load_builtin() -> None:
    if "order0" not in _FACTORIES:
        from recarchive.codecs.order0 import Order0Codec

        register_codec("order0", Order0Codec)
