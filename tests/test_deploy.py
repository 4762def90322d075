"""deploy/ checked without a Docker engine or a Kubernetes cluster: every YAML parses, the
manifests run job scripts that exist with arguments the CLI accepts, the images' entrypoint
is the `recarchive` command, GPU workers ask for GPUs, and no credentials are written down."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from recarchive.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
YAMLS = sorted(DEPLOY.rglob("*.yaml"))


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def test_every_yaml_parses() -> None:
    assert {p.relative_to(DEPLOY).as_posix() for p in YAMLS} >= {
        "kuberay/raycluster.yaml", "kuberay/rayjob-archive.yaml", "kuberay/rayjob-restore.yaml",
        "aws/cluster.yaml", "runtime_env.yaml"}
    for path in YAMLS:
        assert load_all(path), path


def job_command(entrypoint: str) -> tuple[str, list[str]]:
    """('archive' | 'restore', its CLI arguments) from `python .../jobs/NAME.py ARGS`."""
    words = shlex.split(entrypoint)
    assert words[0] == "python", entrypoint
    script = Path(words[1])
    assert script.parent.name == "jobs" and (REPO / "jobs" / script.name).is_file(), script
    return script.stem, words[2:]


@pytest.mark.parametrize(("manifest", "command"), [("rayjob-archive.yaml", "archive"),
                                                   ("rayjob-restore.yaml", "restore")])
def test_rayjobs_run_the_job_scripts_with_arguments_the_cli_accepts(manifest: str,
                                                                    command: str) -> None:
    [job] = load_all(DEPLOY / "kuberay" / manifest)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    name, args = job_command(job["spec"]["entrypoint"])
    assert name == command
    # the script is where the image puts it: WORKDIR + COPY jobs ./jobs
    instructions = dockerfile_instructions()
    [workdir] = [arg for op, arg in instructions if op == "WORKDIR"]
    assert ("COPY", "jobs ./jobs") in instructions
    assert shlex.split(job["spec"]["entrypoint"])[1] == f"{workdir}/jobs/{name}.py"
    parsed = build_parser().parse_args([name, *args])
    assert parsed.src if name == "archive" else parsed.archive
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    cluster = job["spec"]["rayClusterSpec"]
    images = [c["image"] for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
              for c in group["template"]["spec"]["containers"]]
    assert all(image.startswith("ghcr.io/recarchive/recarchive:") for image in images)
    if parsed.gpus_per_actor:
        gpus = [c["resources"]["limits"].get("nvidia.com/gpu", 0)
                for group in cluster["workerGroupSpecs"]
                for c in group["template"]["spec"]["containers"]]
        assert max(gpus) >= parsed.gpus_per_actor


def test_raycluster_has_gpu_workers_and_a_role_bound_service_account() -> None:
    docs = {doc["kind"]: doc for doc in load_all(DEPLOY / "kuberay" / "raycluster.yaml")}
    groups = docs["RayCluster"]["spec"]["workerGroupSpecs"]
    limits = [group["template"]["spec"]["containers"][0]["resources"]["limits"]
              for group in groups]
    assert any(limit.get("nvidia.com/gpu") == 1 for limit in limits)
    account = docs["ServiceAccount"]
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    for group in [docs["RayCluster"]["spec"]["headGroupSpec"], *groups]:
        assert group["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_cluster_launcher_has_gpu_workers_with_an_instance_role() -> None:
    [config] = load_all(DEPLOY / "aws" / "cluster.yaml")
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in gpu)
    assert all("IamInstanceProfile" in t["node_config"] for t in types.values())
    assert config["docker"]["image"].endswith(":cuda")


def test_runtime_env_is_valid_for_ray() -> None:
    from ray.runtime_env import RuntimeEnv

    [env] = load_all(DEPLOY / "runtime_env.yaml")
    RuntimeEnv(**env)  # raises on unknown or malformed fields
    assert env["working_dir"] == "."


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_dockerfile_entrypoint_is_the_cli_and_both_bases_exist(
        capsys: pytest.CaptureFixture[str]) -> None:
    instructions = dockerfile_instructions()
    entry = [json.loads(arg) for op, arg in instructions if op == "ENTRYPOINT"]
    assert entry == [["recarchive"]]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["recarchive"] == "recarchive.cli:entry"  # main(), then exit_with
    [cmd] = [json.loads(arg) for op, arg in instructions if op == "CMD"]
    assert main(cmd) == 0 and "usage: recarchive" in capsys.readouterr().out
    bases = [arg for op, arg in instructions if op == "FROM"]
    assert any(re.search(r"-cpu AS base-cpu$", b) for b in bases)
    assert any(re.search(r"-cu\d+ AS base-cuda$", b) for b in bases)
    assert "base-${FLAVOR}" in bases
    for op, arg in instructions:
        if op == "COPY":
            for source in arg.split()[:-1]:
                assert (REPO / source).exists(), source


def test_no_credentials_in_deploy_files() -> None:
    pattern = re.compile(r"AKIA[0-9A-Z]{16}|aws_secret_access_key\s*[:=]|"
                         r"AWS_SECRET_ACCESS_KEY\s*[:=]\s*\S", re.IGNORECASE)
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            assert not pattern.search(path.read_text()), path
