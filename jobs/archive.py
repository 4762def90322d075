"""Archive a bucket on the Ray cluster this job runs on:

    ray job submit --working-dir . -- python jobs/archive.py SRC DST [recarchive archive options]

The same code as `recarchive archive SRC DST --ray-address ...`; without --ray-address it
joins the job's cluster (RAY_ADDRESS, which Ray sets for job drivers). Rerunning with the same
--run-id (or the same SRC, DST and settings) resumes.
"""

from __future__ import annotations

import sys

from recarchive.cli import exit_with, main


def with_ray_address(argv: list[str]) -> list[str]:
    """argv, plus `--ray-address auto` unless it names an address already."""
    if any(arg == "--ray-address" or arg.startswith("--ray-address=") for arg in argv):
        return argv
    return [*argv, "--ray-address", "auto"]


if __name__ == "__main__":
    exit_with(main(["archive", *with_ray_address(sys.argv[1:])]))
