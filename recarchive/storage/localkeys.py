"""Which object keys a local file system can hold, and safe local names for the others.

Object keys are arbitrary strings; a local path is not. A key can't be a local file when it is
empty, absolute, has an empty (`a//b`), `.` or `..` component, ends with `/` (a folder marker),
holds NUL or a backslash (a separator on Windows), starts with a drive letter (`C:`), has a
component over 255 bytes, or can't be encoded as a file name. A key `x` beside `x/y` is fine
on its own, but the set can't be: `x` would be both a file and a folder.

`plan_local_paths` maps a whole set of keys to local paths (`--rename-unsafe`): safe keys keep
their own path; an unsafe key has its offending components percent-encoded (`""` -> `%2F`, the
doubled slash; `.` -> `%2E`; `..` -> `%2E%2E`; NUL -> `%00`; `\\` -> `%5C`; a drive colon ->
`%3A`; unencodable characters as their bytes) and `~` plus the first 8 hex digits of the
SHA-256 of the whole key added to the file name, before a short extension (`coll/./x.png` ->
`coll/%2E/x~1a2b3c4d.png`); a key that is also another key's folder (`x` beside `x/y`) gets
only the suffix. Components too long are cut to fit with the same kind of suffix. The mapping
is deterministic (it depends on the set, never on its order), injective, never yields `.`,
`..` or a file that is another path's folder, and every result passes `local_key_problem`;
should two results still meet (a crafted key), the digests involved grow until they differ.
Case-insensitive file systems (macOS, Windows) are not considered: `A.png` and `a.png` are
two keys there too.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_NAME_BYTES = 255  # NAME_MAX of ext4, xfs, btrfs, APFS (bytes of one path component)
_DRIVE = re.compile(r"[A-Za-z]:")
_EXTENSION = re.compile(r"(?s)(.*[^.])(\.[A-Za-z0-9]{1,10})")
_DIGEST_LENGTHS = (8, 16, 32, 64)


class LocalKeyError(ValueError):
    """A key that a local folder can't hold was to be written there as it is."""


@dataclass(frozen=True)
class LocalRename:
    """One key written under another local path, and why."""

    key: str
    path: str
    reason: str


@dataclass
class LocalPlan:
    """Local paths for a set of keys: `paths[key]` for every key, and the renamed ones (sorted
    by key) for the report."""

    paths: dict[str, str] = field(default_factory=dict)
    renamed: list[LocalRename] = field(default_factory=list)


def _encoded(name: str) -> bytes | None:
    try:
        return os.fsencode(name)
    except UnicodeError:
        return None


def local_key_problem(key: str) -> str | None:
    """Why a local file system can't hold `key` as a relative path, or None when it can."""
    if not key:
        return "empty key"
    if "\0" in key:
        return "contains NUL"
    if _encoded(key) is None:
        return "can't be encoded as a file name (a lone surrogate character)"
    if "\\" in key:
        return "contains a backslash (a path separator on Windows)"
    if key.startswith("/"):
        return "absolute path (starts with '/')"
    if key.endswith("/"):
        return "ends with '/' (a folder marker object: a file can't have that name)"
    if _DRIVE.match(key):
        return "starts with a drive letter"
    for part in key.split("/"):
        problem = _component_problem(part)
        if problem:
            return problem
    return None


def _component_problem(part: str) -> str | None:
    if part == "":
        return "empty path component ('//')"
    if part in (".", ".."):
        return f"'{part}' path component"
    if len(_encoded(part) or b"") > MAX_NAME_BYTES:
        return f"path component over {MAX_NAME_BYTES} bytes"
    return None


def find_file_folder_conflicts(keys: Iterable[str]) -> list[tuple[str, str]]:
    """(`x`, `x/...`) for every key `x` that is also the folder of another key, sorted: a
    local folder can't hold both the file `x` and the folder `x`."""
    present = set(keys)
    found: dict[str, str] = {}
    for key in sorted(present, key=_order):
        for cut in _slashes(key):
            folder = key[:cut]
            if folder in present and folder not in found:
                found[folder] = key
    return sorted(found.items(), key=lambda pair: _order(pair[0]))


class LocalKeyAudit:
    """The keys of a listing, seen one at a time, that a local folder could not hold as they
    are: unsafe on their own, or a file `x` beside keys `x/...`. Counts them and keeps the
    first `examples` with reasons, so an archive can say so when it is made.

    Conflicts are found among keys seen in sorted order (S3's byte order, or the local walk's
    depth-first order, where a folder cannot hold both anyway); memory holds only the keys
    that can still be the folder of a later key.
    """

    def __init__(self, examples: int = 20) -> None:
        self.count = 0
        self.examples: list[dict[str, str]] = []
        self._limit = examples
        self._open: dict[str, None] = {}  # earlier keys, oldest first, that a later key may nest in

    def see(self, key: str) -> None:
        problem = local_key_problem(key)
        if problem:
            self._note(key, problem)
        for cut in _slashes(key):
            folder = key[:cut]
            if folder in self._open:
                del self._open[folder]
                self._note(folder, f"a file where key {key!r} needs a folder")
        self._open[key] = None
        if len(self._open) > 4096:
            here = _order(key)
            self._open = {k: None for k in self._open
                          if key.startswith(k) or _order(k + "/") > here}

    def _note(self, key: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < self._limit:
            self.examples.append({"key": key, "reason": reason})

    def summary(self) -> dict[str, object]:
        return {"count": self.count, "examples": list(self.examples)}


def _slashes(key: str) -> Iterable[int]:
    return (i for i, char in enumerate(key) if char == "/" and i > 0)


def _order(key: str) -> bytes:
    """S3's order (UTF-8 bytes), also for keys with lone surrogates."""
    return key.encode("utf-8", "surrogatepass")


def rename_for_local(key: str, digits: int = 8) -> str:
    """The `--rename-unsafe` local path of `key`: offending components percent-encoded, and
    `~` + `digits` hex digits of the key's SHA-256 added to the file name."""
    parts = key.split("/")
    out = []
    for index, part in enumerate(parts):
        encoded = _encode_component(part, first=index == 0)
        if index == len(parts) - 1:
            encoded = _with_suffix(encoded, _digest(key, digits))
        elif len(_encoded(encoded) or b"") > MAX_NAME_BYTES:
            encoded = _with_suffix(encoded, _digest("/".join(parts[: index + 1]), digits))
        out.append(encoded)
    return "/".join(out)


def _encode_component(part: str, first: bool) -> str:
    if part == "":
        return "%2F"
    if part == ".":
        return "%2E"
    if part == "..":
        return "%2E%2E"
    text = "".join(_encode_char(char) for char in part)
    if first and _DRIVE.match(text):
        text = text[0] + "%3A" + text[2:]
    return text


def _encode_char(char: str) -> str:
    if char == "\0":
        return "%00"
    if char == "\\":
        return "%5C"
    if _encoded(char) is None:
        return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return char


def _digest(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:digits]


def _with_suffix(name: str, digest: str) -> str:
    """`stem~digest.ext` (or `name~digest`), the stem cut so the whole fits in one name."""
    match = _EXTENSION.fullmatch(name)
    stem, extension = (match.group(1), match.group(2)) if match else (name, "")
    tail = f"~{digest}{extension}"
    room = MAX_NAME_BYTES - len(tail.encode())
    while len(_encoded(stem) or b"") > room:
        stem = stem[:-1]
    return stem + tail


def plan_local_paths(keys: Iterable[str]) -> LocalPlan:
    """A local path for every key of the set (see the module doc): safe keys unchanged, the
    others renamed, no two keys on one path and no file where another path needs a folder."""
    ordered = sorted(set(keys), key=_order)
    reasons = {key: problem for key in ordered if (problem := local_key_problem(key))}
    for file_key, inner in find_file_folder_conflicts(ordered):
        reasons.setdefault(file_key, f"a file where key {inner!r} needs a folder")
    paths = {key: rename_for_local(key) if key in reasons else key for key in ordered}
    for digits in _DIGEST_LENGTHS[1:]:
        clashing = _clashing(paths)
        if not clashing:
            break
        for key in clashing:
            reasons.setdefault(key, f"its name is taken by another key's path {paths[key]!r}")
            paths[key] = rename_for_local(key, digits)
    _check_plan(paths)
    renamed = [LocalRename(key, paths[key], reasons[key]) for key in ordered if key in reasons]
    return LocalPlan(paths, renamed)


def _clashing(paths: dict[str, str]) -> list[str]:
    """Keys to rename again: those sharing a path (all but a key that kept its own name) and
    files whose path another path needs as a folder."""
    owners: dict[str, list[str]] = defaultdict(list)
    folders: set[str] = set()
    for key, path in paths.items():
        owners[path].append(key)
        folders.update(path[:cut] for cut in _slashes(path))
    clashing = []
    for path, keys in owners.items():
        if path in folders:
            clashing.extend(keys)
        elif len(keys) > 1:
            clashing.extend(key for key in keys if key != path)
    return sorted(clashing, key=_order)


def _check_plan(paths: dict[str, str]) -> None:
    if _clashing(paths):
        raise LocalKeyError(f"keys {_clashing(paths)[:5]!r} still share a local path after "
                            "renaming; restore them to an object store instead")
    for key, path in paths.items():
        problem = local_key_problem(path)
        if problem:  # would be a bug in rename_for_local: never write such a path
            raise LocalKeyError(f"object key {key!r}: local name {path!r} is unsafe ({problem})")
