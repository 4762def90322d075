"""A machine or Ray node that lacks storage credentials or the package is told so in one
line (not a traceback, not retried in vain)."""

from __future__ import annotations

import json

import pytest
from moto.server import ThreadedMotoServer

from recarchive import cli
from recarchive.distributed.cluster import free_port
from recarchive.distributed.pool import worker_setup_problem
from recarchive.storage import credentials_problem, open_location


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
               "skip_instance_cache": True}
    finally:
        server.stop()


def test_missing_credentials_are_one_line_with_what_to_do(no_credentials, capsys):
    with pytest.raises(Exception) as caught:
        list(open_location("s3://bucket/x", no_credentials).list_files())
    problem = credentials_problem(caught.value)
    assert problem and "NoCredentialsError" in problem and "instance role" in problem
    assert worker_setup_problem(caught.value) == f"a Ray worker: {problem}"
    assert cli.main(["ls", "s3://bucket/archive", "--storage-options",
                     json.dumps({"client_kwargs": no_credentials["client_kwargs"]})]) == 1
    err = capsys.readouterr().err
    assert err.startswith("recarchive: error: no credentials for object storage")
    assert len(err.strip().splitlines()) == 1


def test_a_worker_without_the_package_is_named_and_not_retried():
    died = RuntimeError("The actor died because of an error raised in its creation task\n"
                        "ModuleNotFoundError: No module named 'recarchive'")
    problem = worker_setup_problem(died)
    assert problem and "cannot import 'recarchive'" in problem and "every node" in problem
    assert worker_setup_problem(RuntimeError("the node's disk is full")) is None
    assert credentials_problem(ValueError("x")) is None
