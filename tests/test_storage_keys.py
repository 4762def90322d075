"""Object keys kept verbatim: S3 (moto over HTTP via s3fs) lists, reads and writes `a//b`,
`a/./b`, `a/../b` and `dir/` as the objects they are; local folders say which keys they can't
hold, rename those injectively, and list symlinks without crashing."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from recarchive.archives.errors import UnsafeKeyError
from recarchive.archives.safety import restore_targets, safe_relative_path
from recarchive.storage import (
    LocalKeyAudit,
    LocalKeyError,
    Location,
    find_file_folder_conflicts,
    local_key_problem,
    open_location,
    plan_local_paths,
    rename_for_local,
)
from tests.test_archive_helpers import moto_s3

KEYS = ["coll/x.png", "coll/./x.png", "coll/sub/../x.png", "photos/dbl//slash.png",
        "photos/trailing/", "photos/trailing/inner.png", "photos/empty-marker/", "x", "x/y",
        "café/naïve.png", "a b/c%20d?.png", "#hash", "q/?versionId=1", "ctl/\x01\x7f"]
OBJECTS = {key: b"" if key == "photos/empty-marker/" else f"{n}:{key}|".encode() * (n + 1)
           for n, key in enumerate(KEYS)}


@pytest.fixture(scope="module")
def s3_options():
    with moto_s3() as options:
        yield options


@pytest.fixture
def bucket(s3_options) -> Location:
    """A fresh bucket holding OBJECTS under `src/` (and the zero-byte marker `src/` itself),
    put with plain `put_object` calls so nothing of ours shapes the keys."""
    name = f"keys-{uuid.uuid4().hex[:12]}"
    location = open_location(f"s3://{name}", s3_options)
    location.fs.call_s3("create_bucket", Bucket=name)
    for key, data in {"src/": b"", **{f"src/{k}": v for k, v in OBJECTS.items()}}.items():
        location.fs.call_s3("put_object", Bucket=name, Key=key, Body=data)
    return location


def raw_keys(location: Location, prefix: str) -> dict[str, int]:
    """The bucket's keys under `prefix` as S3 itself reports them, with sizes."""
    page = location.fs.call_s3("list_objects_v2", Bucket=location.root, Prefix=prefix)
    return {entry["Key"]: entry["Size"] for entry in page.get("Contents", [])}


# --- S3 -------------------------------------------------------------------------------------


def test_s3_lists_every_key_verbatim_in_key_order(bucket: Location) -> None:
    listed = list(bucket.child("src").list_files())
    assert [o.key for o in listed] == sorted(OBJECTS, key=lambda k: k.encode())
    assert {o.key: o.size for o in listed} == {k: len(v) for k, v in OBJECTS.items()}
    assert all(o.path == f"{bucket.root}/src/{o.key}" for o in listed)
    assert all(o.version.startswith("ETag=") for o in listed)


def test_s3_reads_each_object_by_exact_key(bucket: Location) -> None:
    source = bucket.child("src")
    source.read.reset()
    for item in source.list_files():
        assert source.read_object(item) == OBJECTS[item.key], item.key
    assert source.read.bytes == sum(len(v) for v in OBJECTS.values())


def test_s3_round_trip_keeps_every_key_and_byte(bucket: Location) -> None:
    source, copy = bucket.child("src"), bucket.child("copy")
    for item in source.list_files():
        copy.write_object(item.key, source.read_object(item))
    assert raw_keys(bucket, "copy/") == {f"copy/{k}": len(v) for k, v in OBJECTS.items()}
    relisted = list(copy.list_files())
    assert [o.key for o in relisted] == [o.key for o in source.list_files()]
    assert {o.key: copy.read_object(o) for o in relisted} == OBJECTS


def test_s3_write_overwrites_and_keeps_neighbours(bucket: Location) -> None:
    source = bucket.child("src")
    source.write_object("coll/./x.png", b"new")
    listed = {o.key: o for o in source.list_files()}
    assert source.read_object(listed["coll/./x.png"]) == b"new"
    assert source.read_object(listed["coll/x.png"]) == OBJECTS["coll/x.png"]
    assert source.read_object(listed["coll/sub/../x.png"]) == OBJECTS["coll/sub/../x.png"]


def test_s3_listing_pages_as_a_stream(bucket: Location, monkeypatch) -> None:
    """Small pages (MaxKeys=3) still give every key once, in order; the first object comes
    after one request, not after the whole listing."""
    fs, calls = bucket.fs, []
    original = fs.call_s3

    def small_pages(method, *args, **kwargs):
        if method == "list_objects_v2":
            calls.append(kwargs.get("ContinuationToken"))
            kwargs["MaxKeys"] = 3
        return original(method, *args, **kwargs)

    monkeypatch.setattr(fs, "call_s3", small_pages)
    stream = bucket.child("src").list_files()
    next(stream)
    assert len(calls) == 1
    rest = list(stream)
    assert len(rest) + 1 == len(OBJECTS)
    assert len(calls) == -(-(len(OBJECTS) + 1) // 3)  # + the `src/` marker, left out
    assert all(token for token in calls[1:])


def test_s3_bucket_root_and_single_object_roots(bucket: Location) -> None:
    everything = {o.key for o in bucket.list_files()}
    assert everything == {"src/"} | {f"src/{k}" for k in OBJECTS}  # root marker is an object
    single = list(bucket.child("src/#hash").list_files())
    assert [(o.key, o.size) for o in single] == [("#hash", len(OBJECTS["#hash"]))]
    assert bucket.read_object(single[0]) == OBJECTS["#hash"]
    # `x` is an object and a prefix: listing `x` lists below it, as a folder would
    assert [o.key for o in bucket.child("src/x").list_files()] == ["y"]


def test_s3_missing_prefix_is_empty_missing_bucket_raises(bucket: Location, s3_options) -> None:
    assert list(bucket.child("nothing-here").list_files()) == []
    with pytest.raises(FileNotFoundError):
        list(open_location("s3://no-such-bucket-here/x", s3_options).list_files())
    item = next(iter(bucket.child("src").list_files()))
    bucket.fs.call_s3("delete_object", Bucket=bucket.root, Key=item.path.split("/", 1)[1])
    with pytest.raises(FileNotFoundError):
        bucket.read_object(item)


# --- which keys a local folder can hold -------------------------------------------------------

PROBLEMS = {
    "coll/x.png": None,
    "coll/./x.png": "'.' path component",
    "coll/sub/../x.png": "'..' path component",
    "photos/dbl//slash.png": "empty path component",
    "photos/trailing/": "ends with '/'",
    "photos/trailing/inner.png": None,
    "x": None,
    "x/y": None,
    "café/naïve.png": None,
    "a b/c%20d?.png": None,
    "#hash": None,
    "..hidden/x..y": None,
    "": "empty key",
    "/etc/passwd": "absolute",
    "a\\..\\b": "backslash",
    "C:/x": "drive letter",
    "a/\0": "NUL",
    "n" * 256: "over 255 bytes",
    "é" * 128: "over 255 bytes",  # 256 bytes in UTF-8
    "n" * 255: None,
    "bad\ud800": "surrogate",
}


@pytest.mark.parametrize("key", PROBLEMS)
def test_local_key_problem_says_why(key: str) -> None:
    expected = PROBLEMS[key]
    problem = local_key_problem(key)
    if expected is None:
        assert problem is None
        assert safe_relative_path(key) == key
    else:
        assert problem is not None and expected in problem
        with pytest.raises(UnsafeKeyError, match=expected.replace("\\", "\\\\")):
            safe_relative_path(key)


def test_file_beside_folder_of_the_same_name_is_found() -> None:
    assert find_file_folder_conflicts(KEYS) == [("x", "x/y")]
    assert find_file_folder_conflicts(["a", "a.b", "a/b/c", "a/b"]) == [("a", "a/b"),
                                                                       ("a/b", "a/b/c")]
    assert find_file_folder_conflicts(["x/", "x/y", "xy"]) == []


def check_plan(keys: list[str]) -> dict[str, str]:
    """Every key mapped, no two on one path, no file where a folder is needed, every path
    safe and free of `..`, safe keys unchanged where they can be; the same for any order."""
    plan = plan_local_paths(keys)
    paths = plan.paths
    assert set(paths) == set(keys)
    assert len(set(paths.values())) == len(paths)
    folders = {p[:i] for p in paths.values() for i, c in enumerate(p) if c == "/"}
    assert not folders & set(paths.values())
    for key, path in paths.items():
        assert local_key_problem(path) is None, (key, path)
        assert ".." not in path.split("/")
    # a safe key keeps its name unless another key needs it as a folder or took it
    for key in keys:
        taken = key in folders or any(p == key for k, p in paths.items() if k != key)
        if local_key_problem(key) is None and not taken:
            assert paths[key] == key
    assert {r.key: r.path for r in plan.renamed} == {k: p for k, p in paths.items() if k != p}
    assert all(r.reason for r in plan.renamed)
    shuffled = list(keys)
    random.Random(7).shuffle(shuffled)
    assert plan_local_paths(shuffled).paths == paths
    return paths


def test_renaming_is_readable_injective_and_safe() -> None:
    keys = [*KEYS, *(k for k in PROBLEMS if k)]
    paths = check_plan(keys)
    assert paths["coll/x.png"] == "coll/x.png"
    assert paths["coll/./x.png"].startswith("coll/%2E/x~")
    assert paths["coll/./x.png"].endswith(".png")
    assert paths["coll/sub/../x.png"].startswith("coll/sub/%2E%2E/x~")
    assert paths["photos/dbl//slash.png"].startswith("photos/dbl/%2F/slash~")
    assert paths["photos/trailing/"].startswith("photos/trailing/%2F~")
    assert paths["x"].startswith("x~") and paths["x/y"] == "x/y"
    assert paths["/etc/passwd"].startswith("%2F/etc/passwd~")
    assert paths["C:/x"].startswith("C%3A/x~")
    assert paths["a/\0"].startswith("a/%00~")
    assert len(paths["n" * 256].encode()) == 255
    assert paths["coll/./x.png"] == rename_for_local("coll/./x.png")  # stable, per key


def test_renaming_survives_crafted_collisions() -> None:
    """Safe keys that look like renamed ones: the safe key keeps its name, the renamed one
    takes a longer digest; a safe file where a renamed key needs a folder is renamed."""
    taken = rename_for_local("coll/./x.png")
    paths = check_plan(["coll/./x.png", taken, "coll/%2E", "coll/x.png"])
    assert paths[taken] == taken
    assert paths["coll/./x.png"] != taken and paths["coll/./x.png"].startswith("coll/%2E/x~")
    assert paths["coll/%2E"].startswith("coll/%2E~")


def test_renaming_is_injective_over_random_key_sets() -> None:
    pieces = ["a", "b", ".", "..", "/", "//", "%2E", "%2F", "~", "\\", "\0", ".png", "C:"]
    rng = random.Random(2024)
    for _ in range(300):
        keys = {"".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
                for _ in range(rng.randint(1, 25))}
        check_plan(sorted(keys))


def test_local_key_audit_streams_a_sorted_listing() -> None:
    """Fed a listing in S3 order, the audit finds what the set checks find, with bounded
    memory for long listings."""
    audit = LocalKeyAudit(examples=100)
    for key in sorted(KEYS, key=lambda k: k.encode("utf-8", "surrogatepass")):
        audit.see(key)
    expected = {key for key in KEYS if local_key_problem(key)}
    expected |= {file_key for file_key, _ in find_file_folder_conflicts(KEYS)}
    assert {item["key"] for item in audit.examples} == expected
    assert audit.count == len(expected)
    long = LocalKeyAudit(examples=3)
    long.see("a")
    for n in range(20_000):  # sort between "a" and "a/": "a" must be remembered past them
        long.see(f"a!{n:06d}")
    assert len(long._open) <= 4097  # the rest are forgotten once no later key can nest
    long.see("a/x")
    assert long.count == 1 and long.examples[0]["key"] == "a"


def test_restore_targets_refuse_by_name_or_rename(tmp_path: Path) -> None:
    local = open_location(str(tmp_path / "out"))
    targets = restore_targets(local, KEYS)
    assert set(targets.refused) == {"coll/./x.png", "coll/sub/../x.png", "photos/dbl//slash.png",
                                    "photos/trailing/", "photos/empty-marker/", "x"}
    assert "'coll/./x.png'" in targets.refused["coll/./x.png"]
    assert "--rename-unsafe" in targets.refused["coll/./x.png"]
    assert "a file where key 'x/y' needs a folder" in targets.refused["x"]
    assert targets.paths["x/y"] == "x/y" and "x/y" not in targets.refused
    renamed = restore_targets(local, KEYS, rename_unsafe=True)
    assert renamed.paths == plan_local_paths(KEYS).paths and not renamed.refused
    memory = open_location("memory://targets")
    assert restore_targets(memory, KEYS).paths == {key: key for key in KEYS}


# --- local folders ----------------------------------------------------------------------------


def test_local_write_object_refuses_unsafe_keys(tmp_path: Path) -> None:
    location = open_location(str(tmp_path / "out"))
    for key in ("coll/./x.png", "../escape", "photos/trailing/", "a//b"):
        with pytest.raises(LocalKeyError, match=f"object key {key!r}".replace(".", r"\.")):
            location.write_object(key, b"no")
    assert not (tmp_path / "escape").exists()
    location.write_object("café/a b#%?.png", b"ok")
    assert (tmp_path / "out" / "café" / "a b#%?.png").read_bytes() == b"ok"


def test_s3_keys_restore_to_a_local_folder_under_planned_names(tmp_path: Path) -> None:
    """Every key lands on its own planned path and lists back with its bytes."""
    plan = plan_local_paths(OBJECTS)
    out = open_location(str(tmp_path / "out"))
    for key, data in OBJECTS.items():
        out.write_object(plan.paths[key], data, durable=False)
    listed = {o.key: out.read_object(o) for o in out.list_files()}
    assert listed == {plan.paths[key]: data for key, data in OBJECTS.items()}


def test_local_listing_survives_symlinks(tmp_path: Path) -> None:
    """A file link lists with its target's size and reads; dangling links, link loops,
    folder links and FIFOs list without crashing, never descend, and fail to read."""
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "real.png").write_bytes(b"12345")
    (root / "sub" / "inner").write_bytes(b"in")
    (root / "link.png").symlink_to(root / "real.png")
    (root / "dangling.png").symlink_to(root / "missing.png")
    (root / "loop.png").symlink_to(root / "loop.png")
    (root / "sub" / "up").symlink_to(root)  # a folder link back to an ancestor
    os.mkfifo(root / "fifo")
    location = open_location(str(root))
    listed = {o.key: o for o in location.list_files()}
    assert sorted(listed) == ["dangling.png", "fifo", "link.png", "loop.png", "real.png",
                              "sub/inner", "sub/up"]
    assert listed["link.png"].size == 5
    assert listed["link.png"].version == f"mtime={(root / 'real.png').stat().st_mtime}"
    assert location.read_object(listed["link.png"]) == b"12345"
    with pytest.raises(FileNotFoundError):
        location.read_object(listed["dangling.png"])
    for key in ("loop.png", "sub/up", "fifo"):
        with pytest.raises(OSError):
            location.read_object(listed[key])


def test_memory_objects_by_key() -> None:
    location = open_location(f"memory://keys-{uuid.uuid4().hex}")
    location.write_object("a/b c.png", b"abc")
    (item,) = location.list_files()
    assert (item.key, item.size) == ("a/b c.png", 3)
    location.read.reset()
    assert location.read_object(item) == b"abc"
    assert location.read.bytes == 3


def test_storage_never_imports_the_archive_layer() -> None:
    code = ("import sys, recarchive.storage; "
            "sys.exit(any(m.startswith('recarchive.archives') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
