"""Connecting to Ray, and private single-node clusters for tests and benchmarks.

`LocalCluster` runs `ray start --head` with its own temp dir and its own free ports in a new
process session, and stops exactly those processes (never `ray stop`, which stops every Ray
on the machine, other people's included). It asks for 127.0.0.1; Ray itself advertises the
machine's own interface address instead (`resolve_ip_for_localhost`), still this machine only,
and clients reach it on 127.0.0.1 as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray


def connect(address: str | None = "auto", *, num_cpus: int | None = None,
            runtime_env: dict[str, Any] | None = None) -> dict[str, float]:
    """Connect this process to Ray (once); return the cluster's resources.

    `address`: "auto" (inside `ray job submit`, RAY_ADDRESS, set by Ray, is used), "local"
    (start a private instance in this process), "HOST:PORT" or "ray://HOST:PORT".
    """
    if not ray.is_initialized():
        options: dict[str, Any] = {"logging_level": "WARNING", "runtime_env": runtime_env}
        if address == "local":
            # a private instance bound to this machine: no token to hand around
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            options.update(address="local", num_cpus=num_cpus, include_dashboard=False)
        elif address in (None, "auto") and os.environ.get("RAY_ADDRESS"):
            options["address"] = None  # Ray reads RAY_ADDRESS (set for job drivers)
        else:
            options["address"] = address
        ray.init(**options)
    return {k: float(v) for k, v in ray.cluster_resources().items()}


WORKER_PORTS_FROM, WORKER_PORTS_SPREAD = 10000, 22000  # worker ports within 10000..32200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalCluster:
    """A one-node Ray cluster on 127.0.0.1 (GCS, raylet, dashboard for `ray job submit`).

    `num_gpus` may exceed the real GPUs: logical GPUs test scheduling and pinning on a CPU
    machine. `env` is added to the cluster's environment (job drivers and actors inherit it).
    """

    def __init__(self, num_cpus: int = 2, num_gpus: int = 0, *,
                 env: dict[str, str] | None = None, temp_root: str | None = None) -> None:
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        # short: Ray puts Unix sockets below it (path length limit ~107 bytes)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rca-", dir=temp_root or "/tmp"))
        self.port = free_port()
        self.dashboard_port = free_port()
        self.env = dict(os.environ, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"),
                        RAY_USAGE_STATS_ENABLED="0", **(env or {}))
        # job entrypoints run `python ...`: make it this interpreter
        bin_dir = str(Path(sys.executable).parent)
        self.env["PATH"] = bin_dir + os.pathsep + self.env.get("PATH", "")
        self._session: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def ray_command(self) -> str:
        return str(Path(sys.executable).parent / "ray")

    def start(self, timeout: float = 120.0) -> LocalCluster:
        low = free_port()
        command = [
            self.ray_command(), "start", "--head", "--node-ip-address", "127.0.0.1",
            "--port", str(self.port), "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(self.dashboard_port), "--include-dashboard", "true",
            "--temp-dir", str(self.temp_dir), "--num-cpus", str(self.num_cpus),
            "--num-gpus", str(self.num_gpus), "--disable-usage-stats",
            "--ray-client-server-port", str(free_port()),
            "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()),
            "--metrics-export-port", str(free_port()),
            # below the kernel's ephemeral range (32768 and up on Linux), where Ray picks the
            # ports it is not given (its GCS server's once landed in a range 20000-40200)
            "--min-worker-port", str(WORKER_PORTS_FROM + low % WORKER_PORTS_SPREAD),
            "--max-worker-port", str(WORKER_PORTS_FROM + low % WORKER_PORTS_SPREAD + 200),
            "--object-store-memory", str(512 * 1024**2),
        ]
        process = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        self._session = process.pid
        output, _ = process.communicate(timeout=timeout)
        if process.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({process.returncode}):\n{output[-4000:]}")
        self._wait_for_dashboard(timeout)
        return self

    def _wait_for_dashboard(self, timeout: float) -> None:
        import urllib.request

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=5) as r:
                    json.loads(r.read())
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"Ray dashboard at {self.dashboard_url} did not come up")

    def job_submit(self, args: list[str], *, working_dir: str | None = None,
                   runtime_env: dict[str, Any] | None = None, wait: bool = True,
                   timeout: float = 300.0) -> subprocess.CompletedProcess:
        """`ray job submit [--no-wait] -- ARGS`, as a user would type it."""
        command = [self.ray_command(), "job", "submit", "--address", self.dashboard_url]
        if working_dir:
            command += ["--working-dir", working_dir]
        if runtime_env:
            command += ["--runtime-env-json", json.dumps(runtime_env)]
        if not wait:
            command.append("--no-wait")
        command += ["--", *args]
        return subprocess.run(command, env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=working_dir)

    def job_command(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """`ray job status|logs|stop ...` against this cluster."""
        return subprocess.run([self.ray_command(), "job", *args, "--address",
                               self.dashboard_url], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def _processes(self) -> set[int]:
        """This cluster's processes: its session (ray start's children) and their
        descendants (workers start sessions of their own under the raylet)."""
        table: dict[int, tuple[int, int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry)] = (int(fields[1]), int(fields[3]))  # ppid, session id
        found = {pid for pid, (_, session) in table.items() if session == self._session}
        grew = True
        while grew:
            grew = False
            for pid, (parent, _) in table.items():
                if parent in found and pid not in found:
                    found.add(pid)
                    grew = True
        return found

    def stop(self) -> None:
        """Terminate this cluster's processes (SIGTERM, then SIGKILL) and its temp dir."""
        if self._session is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = self._processes()
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, sig)
                deadline = time.time() + (3 if sig == signal.SIGTERM else 10)
                while pids and time.time() < deadline:
                    pids = {p for p in pids if _alive(p)}
                    time.sleep(0.2)
            self._session = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
