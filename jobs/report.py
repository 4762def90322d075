"""Print an archive's report (and, unless --no-verify, check every object):

    ray job submit --working-dir . -- python jobs/report.py ARCHIVE [--storage-options JSON]

Prints `recarchive report`'s table;
verification is `recarchive verify` (decodes everything, in this job's driver).
"""

from __future__ import annotations

import argparse
import sys

from recarchive.cli import exit_with
from recarchive.commands.archive import verify_command
from recarchive.commands.options import parse_storage_options
from recarchive.commands.ray import report_summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jobs/report.py", description=__doc__.splitlines()[0])
    parser.add_argument("archive")
    parser.add_argument("--storage-options", metavar="JSON", default=None)
    parser.add_argument("--no-verify", dest="verify", action="store_false")
    args = parser.parse_args(argv)
    print(report_summary(args.archive, parse_storage_options(args.storage_options)), flush=True)
    if not args.verify:
        return 0
    return verify_command(args.archive, storage_options=args.storage_options)


if __name__ == "__main__":
    exit_with(main(sys.argv[1:]))
