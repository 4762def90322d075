"""Storage: locations on local folders, memory:// and S3 (moto over HTTP via s3fs); sorted
streaming listing; atomic and exclusive writes; counted range reads."""

from __future__ import annotations

import itertools
import os
import threading
import uuid

import pytest

from recarchive.storage import Location, create_exclusive, iter_objects, open_location
from recarchive.storage.listing import StoredObject
from tests.test_archive_helpers import moto_s3

FILES = {"b.txt": b"bee", "a/z.bin": b"zz", "a/c/d.png": b"dddd", "a.txt": b"", "e/f/g/h": b"h"}


@pytest.fixture(scope="module")
def s3_options():
    with moto_s3() as options:
        yield options


@pytest.fixture(params=["local", "memory", "s3"])
def location(request, tmp_path) -> Location:
    """An empty folder on each kind of storage."""
    if request.param == "local":
        return open_location(str(tmp_path / "store"))
    if request.param == "memory":
        return open_location(f"memory://store-{uuid.uuid4().hex}")
    options = request.getfixturevalue("s3_options")
    bucket = f"bkt-{uuid.uuid4().hex[:12]}"
    location = open_location(f"s3://{bucket}/prefix", options)
    location.fs.mkdir(bucket)
    return location


def fill(location: Location) -> None:
    for key, data in FILES.items():
        location.write_atomic(key, data)


def listing_order(location: Location) -> list[str]:
    """S3 lists in key order (UTF-8 bytes: `a.txt` before `a/...`); folders walk depth-first."""
    if "s3" in location.fs.protocol:
        return sorted(FILES, key=lambda k: k.encode())
    return sorted(FILES, key=lambda k: k.split("/"))


def test_listing_is_sorted_complete_and_relative(location: Location) -> None:
    fill(location)
    listed = list(location.list_files())
    assert [o.key for o in listed] == listing_order(location)
    assert {o.key: o.size for o in listed} == {k: len(v) for k, v in FILES.items()}
    for item in listed:
        assert location.fs.cat_file(item.path) == FILES[item.key]


def test_listing_streams(location: Location) -> None:
    fill(location)
    stream = location.list_files()
    assert not isinstance(stream, list | tuple)
    first = next(stream)
    assert first.key == listing_order(location)[0]


def test_listing_a_missing_folder_is_empty(location: Location) -> None:
    assert list(location.list_files("nothing-here")) == []


def test_listing_a_single_file(tmp_path) -> None:
    (tmp_path / "one.png").write_bytes(b"x")
    fs = open_location(str(tmp_path)).fs
    assert list(iter_objects(fs, str(tmp_path / "one.png"))) == [
        StoredObject("one.png", str(tmp_path / "one.png"), 1,
                     f"mtime={(tmp_path / 'one.png').stat().st_mtime}")]


def test_listing_does_not_keep_directory_cache(s3_options) -> None:
    """s3fs caches every listing it makes; the walk drops each folder's entry after use."""
    location = open_location(f"s3://cache-{uuid.uuid4().hex[:12]}/root", s3_options)
    location.fs.mkdir(location.root.split("/")[0])
    fill(location)
    location.fs.ls(location.root + "/a")  # an ordinary listing is cached ...
    assert any(k.startswith(location.root) for k in location.fs.dircache)
    location.fs.invalidate_cache()
    assert len(list(location.list_files())) == len(FILES)
    assert not any(k.startswith(location.root) for k in location.fs.dircache)  # ... ours not


def test_atomic_write_replaces_whole_file(location: Location) -> None:
    location.write_atomic("x/file", b"old")
    location.write_atomic("x/file", b"new contents")
    assert location.read_bytes("x/file") == b"new contents"


def test_local_atomic_write_leaves_no_temporary_files(tmp_path) -> None:
    location = open_location(str(tmp_path))
    for n in range(5):
        location.write_atomic("f", bytes([n]) * 100)
    assert os.listdir(tmp_path) == ["f"]


def test_exclusive_create_refuses_existing(location: Location) -> None:
    location.create_exclusive("manifest.json", b"first")
    with pytest.raises(FileExistsError):
        location.create_exclusive("manifest.json", b"second")
    assert location.read_bytes("manifest.json") == b"first"


def test_exclusive_create_on_s3_is_a_conditional_put(s3_options) -> None:
    """The server refuses the second PUT even when the client skips its own exists() check."""
    location = open_location("s3://race/archive", s3_options)
    location.fs.mkdir("race")
    location.create_exclusive("m", b"1")
    with pytest.raises(FileExistsError):
        location.fs.pipe_file(location.path("m"), b"2", mode="create")
    assert location.read_bytes("m") == b"1"


def test_exclusive_create_has_one_winner_locally(tmp_path) -> None:
    fs = open_location(str(tmp_path)).fs
    wins, barrier = [], threading.Barrier(8)

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            create_exclusive(fs, str(tmp_path / "m"), str(n).encode())
            wins.append(n)
        except FileExistsError:
            pass

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert (tmp_path / "m").read_bytes() == str(wins[0]).encode()
    assert os.listdir(tmp_path) == ["m"]


def test_ranges_and_counted_reads(location: Location) -> None:
    data = bytes(range(256)) * 64
    location.write_atomic("blob", data)
    location.read.reset()
    assert location.read_range("blob", 100, 228) == data[100:228]
    assert location.read.bytes == 128
    with location.open_read("blob") as handle:
        assert handle.size() == len(data)
        handle.seek(1000)
        assert handle.read(10) == data[1000:1010]
    assert location.read.bytes == 138
    child = location.child("sub")
    child.write_atomic("f", b"12345")
    assert child.read_bytes("f") == b"12345"
    assert location.read.bytes == 143  # children share the counter


def test_s3_endpoint_comes_from_storage_options(s3_options) -> None:
    location = open_location("s3://opts/x", s3_options)
    assert location.fs.client_kwargs["endpoint_url"].startswith("http://127.0.0.1:")
    location.fs.mkdir("opts")
    location.write_atomic("k", b"v")
    assert [o.key for o in location.list_files()] == ["k"]


def test_empty_url_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        open_location("")


def test_listing_memory_is_bounded_by_one_folder(tmp_path) -> None:
    """Many files listed lazily: taking a few does not walk the rest of the tree."""
    for folder, name in itertools.product(range(30), range(5)):
        path = tmp_path / f"d{folder:02d}" / f"f{name}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    location = open_location(str(tmp_path))
    calls = []
    original = location.fs.ls

    def counting_ls(path, *args, **kwargs):
        calls.append(path)
        return original(path, *args, **kwargs)

    location.fs.ls = counting_ls  # type: ignore[method-assign]
    try:
        first = list(itertools.islice(location.list_files(), 6))
    finally:
        del location.fs.ls
    assert [o.key for o in first][-1] == "d01/f0"
    assert len(calls) == 3  # root, d00, d01: not all 31 folders


def test_exclusive_create_without_hard_links(tmp_path, monkeypatch) -> None:
    def no_links(*args, **kwargs):
        raise PermissionError("hard links not supported here")

    monkeypatch.setattr(os, "link", no_links)
    fs = open_location(str(tmp_path)).fs
    create_exclusive(fs, str(tmp_path / "m"), b"one")
    with pytest.raises(FileExistsError):
        create_exclusive(fs, str(tmp_path / "m"), b"two")
    assert (tmp_path / "m").read_bytes() == b"one"
    assert os.listdir(tmp_path) == ["m"]


def test_local_writes_get_the_umask_permissions_not_0600(tmp_path) -> None:
    """Restored files are ordinary files: 0644 under the usual umask 022, 0640 under 027."""
    import stat

    location = open_location(str(tmp_path / "out"))
    saved = os.umask(0o027)
    try:
        location.write_atomic("a/strict.txt", b"x")
    finally:
        os.umask(saved)
    os.umask(0o022)
    try:
        location.write_object("b/usual.txt", b"y")
    finally:
        os.umask(saved)
    assert stat.S_IMODE((tmp_path / "out" / "a" / "strict.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "out" / "b" / "usual.txt").stat().st_mode) == 0o644
