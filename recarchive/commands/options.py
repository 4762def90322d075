"""Option values the commands share, parsed once, with errors that name the option."""

from __future__ import annotations

import json
from typing import Any

from recarchive.archives.errors import ArchiveError
from recarchive.archives.writer import ArchiveSettings


def parse_storage_options(text: str | None) -> dict[str, Any]:
    """`--storage-options` JSON (e.g. '{"client_kwargs": {"endpoint_url": "http://..."}}')."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ArchiveError(f"--storage-options is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise ArchiveError("--storage-options must be a JSON object")
    return value


def parse_shards(text: str | None) -> set[int] | None:
    """'0,3-5' -> {0, 3, 4, 5}."""
    if not text:
        return None
    shards: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        try:
            if "-" in item:
                low, high = (int(v) for v in item.split("-", 1))
                shards.update(range(low, high + 1))
            elif item:
                shards.add(int(item))
        except ValueError:
            raise ArchiveError(f"--shards: {item!r} is not N or N-M") from None
    return shards


def archive_settings(*, codec: str, model: str | None, shard_blocks: int, part_objects: int,
                     max_pixels: int | None, object_digest_bytes: int | None, fidelity: str,
                     verify_shards: bool) -> ArchiveSettings:
    """The one settings object an archive command hands to the writer, in process or on
    Ray; options left unset keep `ArchiveSettings`' defaults."""
    return ArchiveSettings(
        codec=codec, codec_options={"model": model} if model else {},
        shard_blocks=shard_blocks, part_objects=part_objects, fidelity=fidelity,
        verify_shards=verify_shards,
        **({"max_pixels": max_pixels} if max_pixels else {}),
        **({"object_digest_bytes": object_digest_bytes}
           if object_digest_bytes is not None else {}))
