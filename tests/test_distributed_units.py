"""Pieces of the distributed package that need no cluster: pool sizing, device choice, the
per-actor codec cache, fault specs, restore planning, temp-file cleanup, job and CLI
arguments."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from recarchive import cli
from recarchive.archives import ArchiveSettings, archive
from recarchive.archives.reader import ArchiveReader
from recarchive.codecs import get_codec, registry
from recarchive.distributed.actors import (
    _CachedFactory,
    choose_device,
    install_codec_cache,
    parse_faults,
)
from recarchive.distributed.archive import remove_orphan_temporaries
from recarchive.distributed.pool import PoolSettings
from recarchive.distributed.restore import plan_restore
from recarchive.storage import open_location
from tests.test_archive_helpers import demo_objects, make_bucket_on

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("settings", "resources", "expected"), [
    (PoolSettings(), {"CPU": 2.0}, (2, 1.0, 0.0)),                  # CPU cluster: CPU actors
    (PoolSettings(), {"CPU": 16.0, "GPU": 4.0}, (4, 1.0, 1.0)),     # one actor per GPU
    (PoolSettings(gpus_per_actor=0.5), {"CPU": 16.0, "GPU": 2.0}, (4, 1.0, 0.5)),
    (PoolSettings(gpus_per_actor=0.5), {"CPU": 3.0, "GPU": 2.0}, (3, 1.0, 0.5)),
    (PoolSettings(gpus_per_actor=0), {"CPU": 2.0, "GPU": 2.0}, (2, 1.0, 0.0)),
    (PoolSettings(actors=5, cpus_per_actor=2), {"CPU": 2.0}, (5, 2.0, 0.0)),
    (PoolSettings(), {"CPU": 0.0, "GPU": 1.0}, (1, 1.0, 1.0)),       # at least one actor
])
def test_pool_settings_resolve(settings: PoolSettings, resources: dict[str, float],
                               expected: tuple[int, float, float]) -> None:
    assert settings.resolve(resources) == expected


def test_pool_settings_refuse_nonsense() -> None:
    for bad in (PoolSettings(depth=0), PoolSettings(max_attempts=0),
                PoolSettings(gpus_per_actor=-1), PoolSettings(actors=0)):
        with pytest.raises(ValueError):
            bad.resolve({"CPU": 2.0})


def test_device_is_cpu_without_gpu_ids_or_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    calls = []

    def available() -> bool:
        calls.append(1)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", available)
    assert choose_device([]) == "cpu" and not calls  # no GPU id: CUDA is not even asked
    assert choose_device(["1"]) == "cpu" and calls   # a logical GPU on a CPU machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device(["0"]) == "cuda"


def test_codec_cache_builds_once_per_options_on_the_actor_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry.available_codecs()
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    built: list[dict] = []

    def with_device(model_bytes: bytes = b"", device: str = "cpu") -> object:
        built.append({"model_bytes": model_bytes, "device": device})
        return object()

    def without_device(**options: object) -> object:
        if "device" in options:
            raise TypeError("unexpected keyword argument 'device'")
        built.append(dict(options))
        return object()

    registry.register_codec("probe", with_device)
    registry.register_codec("plain", without_device)
    install_codec_cache("cuda")
    first = get_codec("probe", model_bytes=b"weights")
    assert get_codec("probe", model_bytes=b"weights") is first
    assert get_codec("probe", model_bytes=b"other") is not first
    assert built[:2] == [{"model_bytes": b"weights", "device": "cuda"},
                         {"model_bytes": b"other", "device": "cuda"}]
    plain = get_codec("plain")
    assert get_codec("plain") is plain and built[2:] == [{}]
    install_codec_cache("cuda")  # installing twice does not wrap twice
    assert all(isinstance(f, _CachedFactory) and not isinstance(f.factory, _CachedFactory)
               for f in registry._FACTORIES.values())
    order0 = get_codec("order0")
    assert order0.name == "order0" and get_codec("order0") is order0


def test_fault_specs() -> None:
    assert parse_faults("") == {}
    assert parse_faults("delay=0.5, crash=3") == {"delay": 0.5, "crash": 3.0}
    for bad in ("sleep=1", "crash", "delay="):
        with pytest.raises(ValueError, match="RECARCHIVE_FAULT"):
            parse_faults(bad)


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("units")
    make_bucket_on(open_location(str(root)).fs, str(root / "src"),
                   demo_objects(with_photos=False))
    archive(str(root / "src"), str(root / "archive"),
            ArchiveSettings(part_objects=3, shard_blocks=8))
    return str(root / "archive")


def test_restore_plan_selects_parts_by_shards_and_key_range(small_archive: str) -> None:
    reader = ArchiveReader(small_archive)
    parts = reader.parts
    every = plan_restore(reader, None, None)
    assert [p for p, _ in every] == [p.part for p in parts]
    assert sum(len(shards) for _, shards in every) == sum(p.shards for p in parts)
    last = int(reader.shard_offsets[-1]) - 1
    assert plan_restore(reader, {0, last}, None) == [(0, [0]), (len(parts) - 1, [last])]
    assert plan_restore(reader, {10_000}, None) == []
    edge = plan_restore(reader, None, "edge/*")
    assert edge and all(parts[p].max_key >= "edge/" for p, _ in edge)
    assert len(edge) < len(parts)  # cifar10/ parts are not read


def test_orphan_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    location = open_location(str(tmp_path))
    for name in ("data/.tmp-abc.part", "data/part-000000.parquet", "done/.tmp-x.part",
                 "done/part-000000.json", "index/keep.tmp"):
        path = tmp_path / "runs" / "r1" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    remove_orphan_temporaries(location, "r1")
    assert sorted(p.relative_to(tmp_path / "runs" / "r1").as_posix()
                  for p in (tmp_path / "runs").rglob("*") if p.is_file()) == [
        "data/part-000000.parquet", "done/part-000000.json", "index/keep.tmp"]
    remove_orphan_temporaries(location, "no-such-run")


def test_job_scripts_add_the_ray_address_only_when_missing() -> None:
    spec = importlib.util.spec_from_file_location("jobs_archive", REPO / "jobs" / "archive.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.with_ray_address(["a", "b"]) == ["a", "b", "--ray-address", "auto"]
    assert module.with_ray_address(["a", "--ray-address", "x:1"]) == ["a", "--ray-address", "x:1"]
    assert module.with_ray_address(["--ray-address=x:1"]) == ["--ray-address=x:1"]
    for name in ("archive", "restore", "report"):
        source = (REPO / "jobs" / f"{name}.py").read_text()
        assert "import ray" not in source  # the jobs reach Ray through recarchive.distributed


def test_cli_ray_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(["archive", "s", "d", "--ray-address", "auto",
                                          "--actors", "3", "--gpus-per-actor", "0.5"])
    assert (args.ray_address, args.actors, args.gpus_per_actor) == ("auto", 3, 0.5)
    args = cli.build_parser().parse_args(["restore", "a", "d", "--ray-address", "h:1",
                                          "--gpus-per-actor", "0", "--cpus-per-actor", "2"])
    assert (args.gpus_per_actor, args.cpus_per_actor) == (0.0, 2.0)
    assert cli.main(["archive", "s", "d", "--gpus-per-actor", "-1"]) == 2
    assert "expected a number >= 0" in capsys.readouterr().err


def test_only_distributed_and_jobs_import_ray() -> None:
    offenders = []
    for path in (REPO / "recarchive").rglob("*.py"):
        if "distributed" in path.parts:
            continue
        text = path.read_text()
        if "import ray" in text or "from ray" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_job_summary_is_the_archive_report(small_archive: str) -> None:
    from recarchive.commands.ray import report_summary

    text = report_summary(small_archive)
    assert "recarchive report" in text and small_archive in text.replace("\n", "")


def test_memory_filesystems_are_refused_for_actors(small_archive: str) -> None:
    from recarchive.archives import ArchiveError
    from recarchive.distributed import archive_on_ray, restore_on_ray

    with pytest.raises(ArchiveError, match="private to each process"):
        archive_on_ray("memory://bucket/src", "/tmp/unused-archive")
    with pytest.raises(ArchiveError, match="private to each process"):
        restore_on_ray(small_archive, "memory://restored")


def test_report_job_prints_the_report_and_verifies(small_archive: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("jobs_report", REPO / "jobs" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([small_archive]) == 0
    out = capsys.readouterr().out
    assert "recarchive report" in out and "verified " in out and "problem" not in out
    assert module.main([small_archive, "--no-verify"]) == 0
    assert "verified " not in capsys.readouterr().out
