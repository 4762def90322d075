"""Object keys as destination paths, refusing any that would land outside the destination.

The rules for what a local folder can hold live in the storage layer
(`recarchive.storage.localkeys`); here they become restore decisions: refuse (UnsafeKeyError,
naming the key) or, with `--rename-unsafe`, write such keys under safe, reported names. Object
store destinations take every key verbatim and need neither.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from fsspec.implementations.local import LocalFileSystem

from recarchive.archives.errors import UnsafeKeyError
from recarchive.storage import (
    LocalRename,
    Location,
    find_file_folder_conflicts,
    local_key_problem,
    plan_local_paths,
)


def safe_relative_path(key: str) -> str:
    """`key` as a relative POSIX path inside a local destination, or UnsafeKeyError naming it.

    Refused (see `local_key_problem`): empty keys, absolute paths, drive letters, backslashes,
    NUL, any empty, `.` or `..` component (a key like `../../etc/passwd` would otherwise write
    outside DST), a trailing `/`, and components over 255 bytes.
    """
    problem = local_key_problem(key)
    if problem:
        raise UnsafeKeyError(f"object key {key!r} can't be restored as a local file "
                             f"({problem}): it would escape the restore destination or land "
                             "on another key; refused (--rename-unsafe writes it under a safe "
                             "name)")
    return key


@dataclass
class RestoreTargets:
    """Where each key to restore goes: `paths` (key -> path relative to the destination),
    `refused` (key -> why it cannot be written there) and `renamed` (keys written under
    another name, with why)."""

    paths: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    renamed: list[LocalRename] = field(default_factory=list)


def restore_targets(destination: Location, keys: Iterable[str],
                    rename_unsafe: bool = False) -> RestoreTargets:
    """Paths for every key to restore, checked as a set.

    Object stores take every key verbatim. A local folder refuses, each by name, the keys it
    cannot hold (unsafe on their own, or a file `x` beside `x/...`: the file is refused, the
    keys below it are restored); with `rename_unsafe` every key gets a path instead, the
    changed ones listed in `renamed`. Plan over all keys restored at once: `x` and `x/y` in
    different parts still collide.
    """
    keys = list(keys)
    if not isinstance(destination.fs, LocalFileSystem):
        return RestoreTargets({key: key for key in keys})
    if rename_unsafe:
        plan = plan_local_paths(keys)
        return RestoreTargets(dict(plan.paths), {}, list(plan.renamed))
    refused = {key: problem for key in keys if (problem := local_key_problem(key))}
    for file_key, inner in find_file_folder_conflicts(keys):
        refused.setdefault(file_key, f"a file where key {inner!r} needs a folder")
    targets = RestoreTargets({key: key for key in keys if key not in refused})
    targets.refused = {
        key: f"object key {key!r} can't be restored as a local file under "
             f"{destination.root} ({problem}); refused (restore to an object store, or pass "
             "--rename-unsafe to write it under a safe, reported name)"
        for key, problem in refused.items()}
    return targets


def check_inside(destination: Location, key: str, relative: str) -> None:
    """On local destinations, refuse a path that resolves outside the destination through a
    symlink already there (e.g. DST/a -> /etc and key a/passwd)."""
    if not isinstance(destination.fs, LocalFileSystem):
        return
    root = os.path.realpath(destination.root)
    target = os.path.realpath(os.path.join(root, relative))
    if target != root and not target.startswith(root.rstrip(os.sep) + os.sep):
        raise UnsafeKeyError(f"object key {key!r} would be written to {target}, outside the "
                             f"restore destination {root} (through a symlink); refused")
