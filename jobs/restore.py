"""Restore objects of an archive on the Ray cluster this job runs on:

    ray job submit --working-dir . -- python jobs/restore.py ARCHIVE DST [--objects GLOB]
        [--shards 0,3-5] [--storage-options JSON] [--actors N] [--gpus-per-actor G]

The same code as `recarchive restore ARCHIVE DST --ray-address ...`: parts holding selected
objects are spread over actors, which write to DST (any fsspec URL the workers can reach).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from archive import with_ray_address  # noqa: E402 - jobs/ is not a package

from recarchive.cli import exit_with, main  # noqa: E402

if __name__ == "__main__":
    exit_with(main(["restore", *with_ray_address(sys.argv[1:])]))
