"""recarchive: exact neural lossless archival of image datasets.

The Python API is the functions the commands run, re-exported here:

    import recarchive
    manifest = recarchive.archive("file:///data/cifar", "s3://archives/cifar",
                                  recarchive.ArchiveSettings(codec="bitswap"))
    recarchive.restore("s3://archives/cifar", "/tmp/out", objects="cats/*")

They are loaded on first use (PEP 562), so `import recarchive.ans` stays the coding core
alone, without the archive stack (pyarrow, fsspec, torch) behind it.

Layers, with imports pointing one way (lower never imports higher):
  ans, exact, entropy   coding core (no models, no I/O)
  models, codecs        neural models and the codecs that drive the coder with them
  storage, archives     object storage, and the Parquet archive format on it
  report, bench         what archives measured, and the benchmarks
  distributed, cli      Ray jobs (the only package that imports Ray) and the commands
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "archive": "recarchive.api",
    "ArchiveSettings": "recarchive.archives.writer",
    "restore": "recarchive.archives.restore",
    "verify": "recarchive.archives.restore",
    "list_objects": "recarchive.archives.restore",
    "RestoreReport": "recarchive.archives.restore",
    "repair": "recarchive.archives.repair",
    "open_archive": "recarchive.archives.reader",
    "ArchiveReader": "recarchive.archives.reader",
    "ArchiveError": "recarchive.archives.errors",
    "ArchiveIncomplete": "recarchive.archives.errors",
    "IntegrityError": "recarchive.archives.errors",
    "UnsafeKeyError": "recarchive.archives.errors",
}

__all__ = [  # the names of _API, spelled out for linters and type checkers
    "__version__", "archive", "ArchiveSettings", "restore", "verify", "list_objects",
    "RestoreReport", "repair", "open_archive", "ArchiveReader", "ArchiveError",
    "ArchiveIncomplete", "IntegrityError", "UnsafeKeyError",
]

if TYPE_CHECKING:
    from recarchive.archives.errors import (
        ArchiveError,
        ArchiveIncomplete,
        IntegrityError,
        UnsafeKeyError,
    )
    from recarchive.archives.reader import ArchiveReader, open_archive
    from recarchive.archives.repair import repair
    from recarchive.archives.restore import RestoreReport, list_objects, restore, verify
    from recarchive.archives.writer import ArchiveSettings, archive


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'recarchive' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
