"""`--model-store`: many archives share one content-addressed copy of their codec's model.
The manifest names it (format 3) and every reader checks it by sha256; a damaged or missing
store copy is replaced by the shipped model of the same hash, and verify says so."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import s3fs

from recarchive import cli
from recarchive.api import archive
from recarchive.archives import ArchiveSettings, restore, verify
from recarchive.archives.format import MANIFEST
from recarchive.archives.repair import repair
from recarchive.datasets import data_dir
from recarchive.models.shipped import shipped_bytes
from tests.test_archive_helpers import moto_s3

SETTINGS = ArchiveSettings(codec="bitswap", codec_options={"model": "bitswap-cifar"})


def write_bucket(folder: Path, count: int = 2) -> dict[str, bytes]:
    objects = {}
    for number in range(count):
        data = (data_dir() / "fixtures" / f"cifar10_test_0{number}.png").read_bytes()
        (folder / "imgs").mkdir(parents=True, exist_ok=True)
        (folder / "imgs" / f"{number}.png").write_bytes(data)
        objects[f"imgs/{number}.png"] = data
    return objects


def restored_exactly(archive_dir: Path, out: Path, objects: dict[str, bytes]) -> list[str]:
    report = restore(str(archive_dir), str(out))
    assert not report.failed and report.byte_exact == len(objects)
    for key, data in objects.items():
        assert (out / key).read_bytes() == data
    return report.notes


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("store")
    objects = write_bucket(root / "bucket")
    store = root / "models"
    first = archive(str(root / "bucket"), str(root / "a"), SETTINGS, model_store=str(store))
    second = archive(str(root / "bucket"), str(root / "b"), SETTINGS, model_store=str(store))
    alone = archive(str(root / "bucket"), str(root / "alone"), SETTINGS)
    return {"root": root, "objects": objects, "store": store, "manifests": (first, second),
            "alone": alone}


def test_archives_share_one_checked_copy(shared, tmp_path):
    store, (first, second) = shared["store"], shared["manifests"]
    sha = first["models"][0]["sha256"]
    assert sorted(p.name for p in store.iterdir()) == [f"{sha}.bin"]
    assert hashlib.sha256((store / f"{sha}.bin").read_bytes()).hexdigest() == sha
    for manifest, name in ((first, "a"), (second, "b")):
        assert manifest["format_version"] == 3
        assert manifest["models"] == [{"codec": "bitswap", "sha256": sha, "store": str(store),
                                       "path": f"{sha}.bin"}]
        assert not list((shared["root"] / name).glob("runs/*/models/*"))
        assert not any(f["role"] == "model" for f in manifest["files"])
        assert not verify(str(shared["root"] / name)).problems
        assert restored_exactly(shared["root"] / name, tmp_path / name, shared["objects"]) == []
    # what the store saves: the model copy each archive would otherwise carry
    alone = shared["alone"]
    size = sum(f["size"] for f in alone["files"]) - sum(f["size"] for f in first["files"])
    assert abs(size - (store / f"{sha}.bin").stat().st_size) < 2000  # report, bookkeeping
    assert alone["format_version"] == 2  # without a store, the format stays 2


def test_a_damaged_store_copy_is_named_and_replaced_by_the_shipped_model(tmp_path):
    objects = write_bucket(tmp_path / "bucket")
    store = tmp_path / "models"
    manifest = archive(str(tmp_path / "bucket"), str(tmp_path / "a"), SETTINGS,
                       model_store=str(store))
    sha = manifest["models"][0]["sha256"]
    assert shipped_bytes(sha) is not None
    copy = store / f"{sha}.bin"
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    problems = verify(str(tmp_path / "a")).problems
    assert len(problems) == 1 and f"{store}/{sha}.bin" in problems[0] and "damaged" in problems[0]
    notes = restored_exactly(tmp_path / "a", tmp_path / "out", objects)
    assert any("shipped model" in note for note in notes)
    copy.unlink()
    notes = restored_exactly(tmp_path / "a", tmp_path / "out2", objects)
    assert any("shipped model" in note for note in notes)
    # a new archive with the same store puts the model back
    archive(str(tmp_path / "bucket"), str(tmp_path / "b"), SETTINGS, model_store=str(store))
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == sha
    assert not verify(str(tmp_path / "a")).problems


def test_repair_rebuilds_a_manifest_that_names_the_store(tmp_path):
    write_bucket(tmp_path / "bucket")
    store = tmp_path / "models"
    manifest = archive(str(tmp_path / "bucket"), str(tmp_path / "a"), SETTINGS,
                       model_store=str(store))
    (tmp_path / "a" / MANIFEST).unlink()
    for copy in (tmp_path / "a").glob("runs/*/commits/*.json"):
        copy.unlink()
    result = repair(str(tmp_path / "a"))
    assert result.action == "rebuilt-from-records"
    rebuilt = json.loads((tmp_path / "a" / MANIFEST).read_text())
    assert rebuilt["models"] == manifest["models"] and rebuilt["format_version"] == 3
    assert not verify(str(tmp_path / "a")).problems


def test_resume_must_use_the_same_store(tmp_path):
    write_bucket(tmp_path / "bucket")
    run = tmp_path / "a" / "runs"
    archive(str(tmp_path / "bucket"), str(tmp_path / "a"), SETTINGS,
            model_store=str(tmp_path / "m1"), run_id="r")
    (tmp_path / "a" / MANIFEST).unlink()  # as if the run had stopped before its commit
    with pytest.raises(ValueError, match="model store"):
        archive(str(tmp_path / "bucket"), str(tmp_path / "a"), SETTINGS,
                model_store=str(tmp_path / "m2"), run_id="r")
    assert run.exists()


def test_cli_and_s3_store(tmp_path, capsys):
    objects = write_bucket(tmp_path / "bucket")
    with moto_s3() as options:
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("models")
        fs.mkdir("archives")
        storage = json.dumps({"client_kwargs": options["client_kwargs"]})
        for name in ("one", "two"):
            assert cli.main(["archive", str(tmp_path / "bucket"), f"s3://archives/{name}",
                             "--codec", "bitswap", "--model", "bitswap-cifar", "--model-store",
                             "s3://models/shared", "--storage-options", storage, "--json"]) == 0
        capsys.readouterr()
        fs.invalidate_cache()
        assert [p.rsplit("/", 1)[1] for p in fs.find("models/shared")] == [
            f"{json.loads(fs.cat_file('archives/one/manifest.json'))['models'][0]['sha256']}.bin"]
        assert not any("/models/" in p for p in fs.find("archives"))
        report = restore("s3://archives/two", str(tmp_path / "out"), archive_options=options)
        assert report.byte_exact == len(objects) and not report.notes
        assert not verify("s3://archives/one", options).problems


def test_a_model_exported_twice_is_the_same_file():
    """safetensors orders a file's metadata by a per-process hash; the model file's header is
    rewritten canonically, so its sha256 names the model, not the export."""
    script = ("import hashlib, torch; from recarchive.models import zoo; "
              "from recarchive.models.bitswap import BitSwapConfig, BitSwapModel; "
              "torch.manual_seed(0); m = BitSwapModel(BitSwapConfig(latent_layers=1, "
              "latent_channels=2, width=8, res_blocks=0)); "
              "print(hashlib.sha256(zoo.bitswap_model_bytes(m, {'a': 1, 'b': 2})).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=True).stdout for _ in range(4)}
    assert len(digests) == 1
