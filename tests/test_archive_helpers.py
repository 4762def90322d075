"""Helpers for the storage and archive tests: a moto S3 server reached over HTTP, buckets of
real and generated objects, and pixel comparisons. (Named test_archive_* so it belongs with the
archive tests; its own tests check the helpers themselves.)"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from recarchive.archives.events import Event, Listener, PartEvent
from recarchive.datasets import data_dir
from recarchive.demo import FIXTURE_FILES, edge_cases

# the test buckets' images: the demo's two photos and four CIFAR-10 test PNGs (fixtures)
TEST_FIXTURES = {**FIXTURE_FILES, **{f"cifar10/cifar10_test_0{n}.png": f"cifar10_test_0{n}.png"
                                     for n in range(4)}}

FIXTURES = data_dir() / "fixtures"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moto_s3() -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 (real HTTP); yields fsspec storage options for s3fs."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    saved = {k: os.environ.get(k) for k in
             ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto keeps its buckets in process-wide state, shared by every server a test session
    # starts: reset it so each module's server begins empty.
    urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")
    ).close()
    try:
        yield {"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
               "skip_instance_cache": True}
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_bucket_on(fs: Any, root: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        path = f"{root.rstrip('/')}/{key}"
        parent = path.rsplit("/", 1)[0]
        with contextlib.suppress(OSError, NotImplementedError):
            fs.makedirs(parent, exist_ok=True)
        fs.pipe_file(path, data)


def demo_objects(with_photos: bool = True) -> dict[str, bytes]:
    """A test bucket: the fixtures (photos optional, they are the slow part) plus the demo's
    generated edge cases."""
    objects = {key: (FIXTURES / name).read_bytes() for key, name in TEST_FIXTURES.items()
               if with_photos or "cifar" in key}
    objects.update(edge_cases())
    return objects


def decode(data: bytes) -> tuple[str, np.ndarray, list[int] | None, dict[str, Any]]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        palette = image.getpalette() if image.mode == "P" else None
        return image.mode, np.asarray(image), palette, dict(image.info)


def assert_same_raster(original: bytes, restored: bytes, key: str) -> None:
    """Mode, pixels (indices for P), palette, transparency, ICC, EXIF and PNG text equal."""
    mode_a, pixels_a, palette_a, info_a = decode(original)
    mode_b, pixels_b, palette_b, info_b = decode(restored)
    assert restored[:8] == b"\x89PNG\r\n\x1a\n", key
    assert mode_a == mode_b, key
    np.testing.assert_array_equal(pixels_a, pixels_b, err_msg=key)
    if palette_a is not None:
        assert palette_b[: len(palette_a)] == palette_a, key
    for name in ("transparency", "icc_profile", "exif"):
        assert info_a.get(name) == info_b.get(name), (key, name)
    with Image.open(io.BytesIO(original)) as a, Image.open(io.BytesIO(restored)) as b:
        assert getattr(a, "text", {}) == getattr(b, "text", {}), key


def test_moto_server_answers_http_and_enforces_if_none_match() -> None:
    import s3fs

    with moto_s3() as options:
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("probe")
        fs.pipe_file("probe/x", b"1")
        with pytest.raises(FileExistsError):
            fs.pipe_file("probe/x", b"2", mode="create")
        assert fs.cat_file("probe/x") == b"1"


def test_edge_cases_are_what_they_claim() -> None:
    objects = edge_cases()
    assert objects["edge/empty.bin"] == b""
    assert decode(objects["edge/odd_45x33.png"])[1].shape == (33, 45, 3)
    assert decode(objects["edge/palette.png"])[0] == "P"
    assert decode(objects["edge/nested/deeper/gray_alpha.png"])[0] == "LA"
    assert objects["edge/photo.jpg"][:3] == b"\xff\xd8\xff"
    with pytest.raises(OSError):
        decode(objects["edge/corrupt.png"])


def parts_into(events: list[PartEvent]) -> Listener:
    """A listener that keeps the parts an archive run reports (and ignores the rest)."""

    def listen(event: Event) -> None:
        if isinstance(event, PartEvent):
            events.append(event)

    return listen
