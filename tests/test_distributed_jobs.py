"""Distributed archive and restore through `ray job submit` on a real local Ray cluster
(`ray start --head` on 127.0.0.1 with 2 CPUs and 2 logical GPUs, one cluster for the module):
GPU pinning, identical output to the in-process archive, an actor killed mid-job, a failed
job that leaves no manifest and resumes, restores of selected objects, and S3 (moto) on both
ends."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from recarchive.archives import ArchiveSettings, archive, restore, verify
from recarchive.archives.events import PartEvent, Planned
from recarchive.archives.format import MANIFEST
from recarchive.distributed.cluster import LocalCluster
from recarchive.storage import open_location
from tests.test_archive_helpers import assert_same_raster, demo_objects, make_bucket_on, moto_s3
from tests.test_auto_codec import write_bucket

REPO = Path(__file__).resolve().parents[1]
PART_OBJECTS, SHARD_BLOCKS = 3, 8
LAYOUT = ["--codec", "order0", "--part-objects", str(PART_OBJECTS), "--shard-blocks",
          str(SHARD_BLOCKS)]


@pytest.fixture(scope="module")
def s3() -> Any:
    with moto_s3() as options:
        yield options


@pytest.fixture(scope="module")
def cluster(s3: dict[str, Any]) -> Any:
    # moto accepts any credentials; on a real cluster they come from the nodes' environment
    # or instance roles, never from files or command lines
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    with LocalCluster(num_cpus=2, num_gpus=2, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    objects = demo_objects(with_photos=False)
    root = tmp_path_factory.mktemp("bucket") / "src"
    make_bucket_on(open_location(str(root)).fs, str(root), objects)
    return root, objects


@pytest.fixture(scope="module")
def reference(bucket: tuple[Path, dict[str, bytes]],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """data/index file -> sha256 of the in-process archive with the same source and settings."""
    destination = tmp_path_factory.mktemp("reference") / "archive"
    manifest = archive(str(bucket[0]), str(destination),
                       ArchiveSettings(codec="order0", part_objects=PART_OBJECTS,
                                    shard_blocks=SHARD_BLOCKS))
    return content_files(manifest)


def content_files(manifest: dict[str, Any]) -> dict[str, str]:
    """Data and index files by part (their names carry each writer's own id) -> sha256."""
    return {re.sub(r"-[0-9a-f]{8}(\.parquet)$", r"\1", f["path"]): f["sha256"]
            for f in manifest["files"] if f["role"] in ("data", "index")}


def submit(cluster: LocalCluster, script: str, *args: str, env: dict[str, str] | None = None,
           wait: bool = True) -> subprocess.CompletedProcess:
    runtime_env = {"env_vars": env} if env else None
    return cluster.job_submit(["python", f"jobs/{script}", *args], working_dir=str(REPO),
                              runtime_env=runtime_env, wait=wait)


def job_json(result: subprocess.CompletedProcess) -> dict[str, Any]:
    """The job's `--json` summary line among the job logs `ray job submit` streamed."""
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(lines[-1])


def manifest_of(path: Path) -> dict[str, Any]:
    return json.loads((path / MANIFEST).read_bytes())


def assert_restored(objects: dict[str, bytes], out: Path, keys: set[str]) -> None:
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == keys
    for key in keys:
        restored = (out / key).read_bytes()
        if restored[:8] == b"\x89PNG\r\n\x1a\n" and objects[key] != restored:
            assert_same_raster(objects[key], restored, key)
        else:
            assert restored == objects[key], key


def test_archive_job_pins_actors_to_gpus_and_writes_the_in_process_archive(
        cluster: LocalCluster, bucket: tuple[Path, dict[str, bytes]],
        reference: dict[str, str], tmp_path: Path) -> None:
    destination = tmp_path / "archive"
    result = submit(cluster, "archive.py", str(bucket[0]), str(destination), *LAYOUT,
                    "--actors", "2", "--gpus-per-actor", "1", "--json")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = job_json(result)
    actors = summary["ray"]["actors"]
    assert sorted(tuple(a["gpu_ids"]) for a in actors) == [("0",), ("1",)]
    assert {a["cuda_visible_devices"] for a in actors} == {"0", "1"}
    assert {a["device"] for a in actors} == {"cpu"}  # logical GPUs: no CUDA call
    assert len({a["pid"] for a in actors}) == 2
    parts = summary["parts"]
    assert parts == -(-len(bucket[1]) // PART_OBJECTS) and summary["ray"]["parts_built"] == parts
    progress = [line for line in result.stdout.splitlines() if " built by actor " in line]
    assert len(progress) == parts and all("objects/s" in line for line in progress)
    assert content_files(manifest_of(destination)) == reference
    assert not verify(str(destination)).problems


def _job_id(result: subprocess.CompletedProcess) -> str:
    for token in (result.stdout + result.stderr).replace("'", " ").split():
        if token.startswith("raysubmit_"):
            return token
    raise AssertionError(result.stdout + result.stderr)


def _wait_for_job(cluster: LocalCluster, job: str, timeout: float = 180) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = cluster.job_command("status", job).stdout
        found = re.search(rf"Job '{job}' (succeeded|failed|stopped)", status)
        if found:
            return found.group(1).upper()
        time.sleep(1)
    raise AssertionError(f"job {job} did not finish")


def test_actor_killed_mid_job_has_its_parts_redone(
        cluster: LocalCluster, bucket: tuple[Path, dict[str, bytes]],
        reference: dict[str, str], tmp_path: Path) -> None:
    from ray.util.state import list_actors

    destination = tmp_path / "archive"
    started = submit(cluster, "archive.py", str(bucket[0]), str(destination), *LAYOUT,
                     "--actors", "2", "--gpus-per-actor", "0",
                     env={"RECARCHIVE_FAULT": "delay=0.7"}, wait=False)
    assert started.returncode == 0, started.stderr
    job = _job_id(started)
    deadline = time.time() + 120
    while not list(destination.glob("runs/*/done/*.json")):  # the job is under way
        if time.time() > deadline:  # a guard against hanging, not a speed check
            raise AssertionError(cluster.job_command("logs", job).stdout)
        time.sleep(0.2)
    alive = list_actors(address=cluster.dashboard_url, detail=True,
                        filters=[("class_name", "=", "PartWorker"), ("state", "=", "ALIVE")])
    assert alive
    victim = alive[0].pid
    os.kill(victim, signal.SIGKILL)
    assert _wait_for_job(cluster, job) == "SUCCEEDED", cluster.job_command("logs", job).stdout
    logs = cluster.job_command("logs", job).stdout
    assert f"(pid {victim}) died" in logs and "retrying" in logs
    manifest = manifest_of(destination)
    assert content_files(manifest) == reference  # every part once, same bytes
    done = sorted({p.name[:11] for p in destination.glob("runs/*/done/*.json")})
    assert done == [f"part-{n:06d}" for n in range(len(manifest["parts"]))]
    named = sorted(f["path"].rsplit("/", 1)[1][:11] for f in manifest["files"]
                   if "/done/" in f["path"])
    assert named == done  # the manifest names one build of each part
    assert not list(destination.rglob(".tmp-*"))
    assert not verify(str(destination)).problems


def test_failed_job_leaves_no_manifest_and_a_resubmit_does_only_what_is_missing(
        cluster: LocalCluster, bucket: tuple[Path, dict[str, bytes]],
        reference: dict[str, str], tmp_path: Path) -> None:
    destination = tmp_path / "archive"
    args = [str(bucket[0]), str(destination), *LAYOUT, "--actors", "2",
            "--gpus-per-actor", "0", "--run-id", "nightly-1", "--json"]
    failed = submit(cluster, "archive.py", *args, env={"RECARCHIVE_FAULT": "crash=2"})
    assert failed.returncode != 0
    assert "part 2: its actor died on all 3 attempts" in failed.stdout
    assert not (destination / MANIFEST).exists()
    done = {p.name for p in destination.glob("runs/nightly-1/done/*.json")}
    assert not any(name.startswith("part-000002") for name in done)
    total = -(-len(bucket[1]) // PART_OBJECTS)
    resumed = submit(cluster, "archive.py", *args)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    ray_summary = job_json(resumed)["ray"]
    assert ray_summary["parts_reused"] == len(done)
    assert ray_summary["parts_built"] == total - len(done)
    manifest = manifest_of(destination)
    assert {path.split("/", 2)[2]: digest for path, digest in content_files(manifest).items()} \
        == {path.split("/", 2)[2]: digest for path, digest in reference.items()}
    assert not verify(str(destination)).problems


def test_restore_job_of_selected_objects_spreads_parts_over_actors(
        cluster: LocalCluster, bucket: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    source, objects = bucket
    destination = tmp_path / "archive"
    archive(str(source), str(destination),
            ArchiveSettings(codec="order0", part_objects=PART_OBJECTS,
                                    shard_blocks=SHARD_BLOCKS))
    out = tmp_path / "out"
    result = submit(cluster, "restore.py", str(destination), str(out), "--objects", "edge/*",
                    "--actors", "2", "--gpus-per-actor", "0.5", "--json")
    assert result.returncode == 0, result.stdout[-4000:]
    expected = restore(str(destination), str(tmp_path / "in-process"), objects="edge/*")
    summary = job_json(result)
    assert summary["objects"] == expected.objects and summary["kinds"] == dict(expected.kinds)
    written = {key for key in objects if key.startswith("edge/")} - {
        item["key"] for item in expected.skipped}
    assert_restored(objects, out, written)
    slots = {line.split(" restored by actor ")[1][0] for line in result.stdout.splitlines()
             if " restored by actor " in line}
    assert slots == {"0", "1"}  # parts spread over both actors


def test_archive_and_restore_jobs_on_s3(cluster: LocalCluster, s3: dict[str, Any],
                                        bucket: tuple[Path, dict[str, bytes]],
                                        tmp_path: Path) -> None:
    """Source, archive and restore destination all in S3 (moto over HTTP); the restore job
    selects shards."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3)
    fs.mkdir("data")
    fs.mkdir("archives")
    objects = {k: v for k, v in bucket[1].items() if k.startswith(("cifar10/", "edge/p"))}
    make_bucket_on(fs, "data/set", objects)
    options = json.dumps({"client_kwargs": s3["client_kwargs"]})
    result = submit(cluster, "archive.py", "s3://data/set", "s3://archives/set", *LAYOUT,
                    "--storage-options", options, "--gpus-per-actor", "0")
    assert result.returncode == 0, result.stdout[-4000:]
    assert fs.exists("archives/set/manifest.json")
    result = submit(cluster, "restore.py", "s3://archives/set", "s3://data/restored",
                    "--shards", "1,3", "--storage-options", options, "--gpus-per-actor", "0")
    assert result.returncode == 0, result.stdout[-4000:]
    expected = tmp_path / "in-process"
    restore("s3://archives/set", str(expected), shards={1, 3}, archive_options=s3)
    keys = {p.relative_to(expected).as_posix() for p in expected.rglob("*") if p.is_file()}
    assert keys and keys != set(objects)
    fs.invalidate_cache()
    assert {path.split("/", 2)[2] for path in fs.find("data/restored")} == keys
    for key in keys:
        restored = fs.cat_file(f"data/restored/{key}")
        assert restored == (expected / key).read_bytes() == objects[key]  # byte for byte
    assert not verify("s3://archives/set", s3).problems


def test_scale_bench_quick_reports_speedup_and_flat_driver_memory(
        cluster: LocalCluster) -> None:
    from recarchive.bench.scale_bench import run_scale_benchmark

    result = run_scale_benchmark(quick=True, address=cluster.address, repeats=1)
    # speed figures are printed, not asserted on: only that they are there
    assert isinstance(result["speedup_2_actors"], float) and set(result["mb_per_s"]) == {
        "12x1", "12x2", "24x1", "24x2"}
    assert 50 < result["actor_peak_rss_mb"] < 2048
    small, large = result["driver_peak_rss_mb"].values()
    assert abs(large - small) < 64 and result["driver_rss_growth_mb"] == round(large - small, 1)
    assert result["gpu_actor_mb_per_s"] is None  # logical GPUs only: no CUDA here
    assert len(result["loadavg_before"]) == 3
    assert len(result["machine_speedup_2_processes"]) == 2
    assert all(0.3 < v < 2.5 for v in result["machine_speedup_2_processes"])


def test_pool_pulls_tasks_only_as_actors_free_up(cluster: LocalCluster) -> None:
    """Backpressure: the driver never holds more than actors × depth tasks of the stream."""
    import ray

    from recarchive.distributed.pool import ActorPool, PoolSettings, Task

    pulled = 0

    def tasks():
        nonlocal pulled
        for key in range(24):
            pulled += 1
            yield Task(key, ())

    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        settings = PoolSettings(actors=2, gpus_per_actor=0, depth=2)
        done, most = [], 0
        with ActorPool(settings) as pool:
            for task, info in pool.map("info", tasks()):
                done.append(task.key)
                most = max(most, pulled - len(done) + 1)
                assert info["slot"] in (0, 1)
        assert sorted(done) == list(range(24))
        assert most <= settings.actors * settings.depth
    finally:
        ray.shutdown()


def test_actors_report_progress_to_the_driver_as_in_process(
        cluster: LocalCluster, bucket: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    """What actors finish reaches the driver's listener (batched per shard on a Ray queue)
    and adds up to what an in-process run reports."""
    import ray

    from recarchive.distributed import archive_on_ray, restore_on_ray
    from recarchive.distributed.pool import PoolSettings
    from tests.test_progress import Recorder

    source, objects = bucket
    settings = ArchiveSettings(codec="order0", part_objects=PART_OBJECTS,
                                    shard_blocks=SHARD_BLOCKS)
    local = Recorder()
    archive(str(source), str(tmp_path / "local"), settings, listener=local)
    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        pool = PoolSettings(actors=2, gpus_per_actor=0)
        heard = Recorder()
        result = archive_on_ray(str(source), str(tmp_path / "ray"), settings, listener=heard,
                                pool=pool, log=lambda line: None)
        assert heard.total() == local.total() and heard.total().objects == len(objects)
        assert sorted(p.part for p in heard.of(PartEvent)) == list(
            range(len(result.manifest["parts"])))
        restored = Recorder()
        report = restore_on_ray(str(tmp_path / "ray"), str(tmp_path / "out"),
                                listener=restored, pool=pool, log=lambda line: None)
        assert restored.of(Planned) == [Planned(len(objects),
                                                result.manifest["totals"]["source_bytes"])]
        assert restored.total().objects == report.objects == len(objects)
        assert restored.total().blocks == local.total().blocks
    finally:
        ray.shutdown()


def test_the_default_codec_on_actors_writes_the_in_process_archive(
        cluster: LocalCluster, bucket: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    """auto (the default) on actors: the same data and index files as in process, and every
    object back byte for byte. Forty thumbnails do not earn the model its copy, so the parts
    that used it are rebuilt without it, on the actors as in process."""
    import ray

    from recarchive.distributed import archive_on_ray
    from recarchive.distributed.pool import PoolSettings

    source = tmp_path / "src"
    objects = write_bucket(source)  # forty CIFAR-10 thumbnails and other rasters
    settings = ArchiveSettings(part_objects=24)
    assert settings.codec == "auto"
    local = archive(str(source), str(tmp_path / "local"), settings)
    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        result = archive_on_ray(str(source), str(tmp_path / "ray"), settings,
                                pool=PoolSettings(actors=2, gpus_per_actor=0),
                                log=lambda line: None)
    finally:
        ray.shutdown()
    assert result.manifest["totals"]["whole_rasters"] > 0
    assert result.manifest["auto_model"] == local["auto_model"]
    assert not local["auto_model"]["kept"] and local["auto_model"]["parts_rebuilt"] >= 1
    assert content_files(result.manifest) == content_files(local)
    report = restore(str(tmp_path / "ray"), str(tmp_path / "out"))
    assert not report.failed and report.byte_exact == len(objects) - len(report.skipped)
