"""How codec models travel with an archive, so it restores without the package's model zoo.

The convention (for codec authors):
- A codec that needs a model sets `model_sha256` to the sha256 (hex) of its model file and
  has a method `model_bytes() -> bytes` returning exactly that file. The archiver calls it
  (found with `getattr`), checks the hash, and stores the bytes at
  `runs/RUN/models/SHA256.bin`, named in the manifest with its checksum.
- On restore the codec is built with `get_codec(name, model_bytes=<the archive's copy>)`; the
  copy's sha256 and the built codec's `model_sha256` must both equal the shard's recorded
  hash, else restore stops with an error naming the shard and the two hashes.
- Model-free codecs (`model_sha256 is None`) are built with `get_codec(name)` and need neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recarchive.archives.errors import ArchiveError, IntegrityError
from recarchive.archives.format import sha256_hex
from recarchive.codecs import BlockCodec, get_codec


def model_bytes_of(codec: BlockCodec) -> bytes | None:
    """The model file a codec needs copied into the archive (None for model-free codecs)."""
    expected = codec.model_sha256
    if expected is None:
        return None
    handover = getattr(codec, "model_bytes", None)
    if handover is None:
        raise ArchiveError(
            f"codec {codec.name!r} needs model {expected} but has no model_bytes() method, so "
            "the archive could not restore without the model zoo; add model_bytes() to the codec")
    data = bytes(handover())
    if sha256_hex(data) != expected:
        raise IntegrityError(f"codec {codec.name!r}: model_bytes() hash {sha256_hex(data)} "
                             f"differs from its model_sha256 {expected}")
    return data


class CodecCache:
    """Codecs for restore, built once per (codec, model), models loaded from the archive."""

    def __init__(self, load_model: Callable[[str], bytes]) -> None:
        self._load_model = load_model
        self._codecs: dict[tuple[str, str | None], BlockCodec] = {}
        self._failed: dict[tuple[str, str | None], Exception] = {}

    def get(self, name: str, model_sha256: str | None, where: str) -> BlockCodec:
        """The codec, built (and its model loaded and checked) once; a codec that could not
        be built fails every later shard that needs it without loading again."""
        key = (name, model_sha256)
        if key in self._failed:
            raise self._failed[key]
        if key not in self._codecs:
            try:
                self._codecs[key] = self._build(name, model_sha256, where)
            except (ValueError, OSError) as error:
                self._failed[key] = error
                raise
        return self._codecs[key]

    def _build(self, name: str, model_sha256: str | None, where: str) -> BlockCodec:
        options: dict[str, Any] = {}
        if model_sha256:
            data = self._load_model(model_sha256)
            if sha256_hex(data) != model_sha256:
                raise IntegrityError(f"{where}: archived model copy hashes to "
                                     f"{sha256_hex(data)}, shard needs {model_sha256}")
            options["model_bytes"] = data
        codec = get_codec(name, **options)
        if codec.model_sha256 != (model_sha256 or None):
            raise IntegrityError(
                f"{where}: wrong model: codec {name!r} was built with model "
                f"{codec.model_sha256}, the shard was coded with {model_sha256}")
        return codec
