"""`recarchive bench scale`: how the distributed archive scales with actors, and what memory
the driver and the actors need.

- `speedup_2_actors`: codec-bound archive throughput (raw pixel bytes per second of the part
  phase, actors already started) with 2 CPU actors over 1, on the larger dataset.
- `driver_peak_rss_mb` per dataset size: each run's driver is a fresh process, so its peak
  RSS is that run's own; it must not grow with the dataset (the pool bounds the listing held).
- `actor_peak_rss_mb`: the largest actor peak RSS over the runs (the codec loaded once per
  actor); with `--model`, also a Bit-Swap actor with that model.
- `machine_speedup_2_processes`: two plain CPU-bound processes over one, without Ray, before
  and after the runs: on a shared machine, what the other work leaves; the 2-actor speedup is
  also given relative to it.
- `gpu_actor_mb_per_s`: a GPU actor's throughput with Bit-Swap where CUDA is present, else null.

The machine's load average is reported beside the figures: on a shared machine another job's
CPU use takes directly from the 2-actor run.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SIZES = (96, 384)
QUICK_SIZES = (12, 24)
# above the report's archive-time baseline sample limit (256x256 pixels), so parts are
# codec-bound, not spent on WebP/JPEG-XL baselines
SIDE = 288


def make_dataset(folder: Path, count: int, side: int, seed: int = 0) -> int:
    """`count` RGB PNGs (smooth gradients plus noise: order0 codes every pixel), written one
    at a time; returns the raw pixel bytes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.add.outer(np.arange(side), np.arange(side)).astype(np.int64)
    for number in range(count):
        noise = rng.integers(0, 48, (side, side, 3))
        pixels = ((ramp[..., None] * (number % 7 + 1) + noise) % 256).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(out, "PNG", compress_level=1)
        (folder / f"img-{number:06d}.png").write_bytes(out.getvalue())
    return count * side * side * 3


def drive(address: str, source: str, destination: str, actors: int, gpus: float,
          part_objects: int, codec: str, model: str | None) -> dict[str, Any]:
    """One archive run as its own driver process would do it (called in the subprocess)."""
    from recarchive.archives.writer import ArchiveSettings
    from recarchive.distributed import PoolSettings, archive_on_ray, connect

    connect(address)
    settings = ArchiveSettings(codec=codec, codec_options={"model": model} if model else {},
                               part_objects=part_objects, shard_blocks=256)
    result = archive_on_ray(source, destination, settings,
                            pool=PoolSettings(actors=actors, gpus_per_actor=gpus),
                            log=lambda line: None)
    totals = result.manifest["totals"]
    return {"objects": totals["objects"], "raw_pixel_bytes": totals["raw_pixel_bytes"],
            "parts": len(result.manifest["parts"]), "parts_seconds": result.parts_seconds,
            "mb_per_s": totals["raw_pixel_bytes"] / result.parts_seconds / 1e6,
            "actor_peak_rss_mb": max(a["peak_rss_mb"] for a in result.actors),
            "devices": sorted({a["device"] for a in result.actors}),
            "driver_peak_rss_mb": result.driver_peak_rss_mb}


def _run_driver(address: str, source: Path, destination: Path, actors: int, *, gpus: float = 0,
                part_objects: int, codec: str = "order0",
                model: str | None = None) -> dict[str, Any]:
    args = [sys.executable, "-m", "recarchive.bench.scale_bench", address, str(source),
            str(destination), str(actors), str(gpus), str(part_objects), codec, model or ""]
    env = dict(os.environ, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"))
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"bench driver failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_scale_benchmark(*, quick: bool = False, address: str | None = None,
                        model: str | None = None, repeats: int = 2) -> dict[str, Any]:
    """Archive two dataset sizes with 1 and 2 CPU actors (best of `repeats` each), on the
    cluster at `address` or on a private local one (2 CPUs, the machine's real GPUs)."""
    from recarchive.distributed.cluster import LocalCluster

    sizes = QUICK_SIZES if quick else SIZES
    side = SIDE
    load_before = os.getloadavg()
    machine = [machine_speedup_2_processes(400 if quick else 1500)]
    cuda = _cuda_devices()
    with tempfile.TemporaryDirectory(prefix="rca-scale-") as temp:
        root = Path(temp)
        for size in sizes:
            make_dataset(root / f"src-{size}", size, side)
        cluster = None
        if address is None:
            cluster = LocalCluster(num_cpus=2, num_gpus=cuda).start()
            address = cluster.address
        try:
            runs: dict[str, dict[str, Any]] = {}
            for size in sizes:
                part_objects = max(2, size // 16)
                for actors in (1, 2):
                    best = None
                    for attempt in range(repeats):
                        run = _run_driver(address, root / f"src-{size}",
                                          root / f"out-{size}-{actors}-{attempt}", actors,
                                          part_objects=part_objects)
                        if best is None or run["mb_per_s"] > best["mb_per_s"]:
                            best = run
                    runs[f"{size}x{actors}"] = best
            model_rss = None
            if model:
                run = _run_driver(address, root / f"src-{sizes[0]}", root / "out-model", 1,
                                  part_objects=sizes[0], codec="bitswap", model=model)
                model_rss = run["actor_peak_rss_mb"]
            gpu, gpu_note = None, "no CUDA device here"
            if cuda:
                try:
                    run = _run_driver(address, root / f"src-{sizes[0]}", root / "out-gpu", 1,
                                      gpus=1, part_objects=max(2, sizes[0] // 4),
                                      codec="bitswap", model=model)
                    gpu, gpu_note = round(run["mb_per_s"], 3), f"Bit-Swap on {run['devices']}"
                except RuntimeError as error:  # e.g. no Bit-Swap model shipped yet
                    gpu_note = f"GPU run failed: {str(error).strip().splitlines()[-1]}"
        finally:
            if cluster is not None:
                cluster.stop()
    machine.append(machine_speedup_2_processes(400 if quick else 1500))
    large = sizes[-1]
    speedup = runs[f"{large}x2"]["mb_per_s"] / runs[f"{large}x1"]["mb_per_s"]
    drivers = {str(size): runs[f"{size}x2"]["driver_peak_rss_mb"] for size in sizes}
    return {
        "speedup_2_actors": round(speedup, 3),
        "speedup_2_actors_small": round(runs[f"{sizes[0]}x2"]["mb_per_s"]
                                        / runs[f"{sizes[0]}x1"]["mb_per_s"], 3),
        "machine_speedup_2_processes": [round(v, 3) for v in machine],
        "speedup_2_actors_vs_machine": round(speedup / (sum(machine) / len(machine)), 3),
        "mb_per_s": {name: round(run["mb_per_s"], 3) for name, run in runs.items()},
        "actor_peak_rss_mb": max(run["actor_peak_rss_mb"] for run in runs.values()),
        "actor_peak_rss_mb_bitswap": model_rss,
        "driver_peak_rss_mb": drivers,
        "driver_rss_growth_mb": round(drivers[str(large)] - drivers[str(sizes[0])], 1),
        "dataset_objects": list(sizes), "image_side": side, "codec": "order0",
        "gpu_actor_mb_per_s": gpu, "gpu_note": gpu_note,
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "note": "throughput = raw pixel MB per second of the part phase (actors started); "
                "machine_speedup_2_processes = two plain CPU-bound processes over one, without "
                "Ray, before and after: the ceiling other work on the machine leaves",
    }


CALIBRATION = """
import hashlib, sys, time
data = bytes(range(256)) * 4096
start = time.perf_counter()
for _ in range(int(sys.argv[1])):
    hashlib.sha256(data).digest()
print(time.perf_counter() - start)
"""


def machine_speedup_2_processes(rounds: int = 1500) -> float:
    """What this machine gives two plain CPU-bound processes over one, right now (no Ray):
    the ceiling `speedup_2_actors` is measured against when other work shares the CPUs."""
    def together(count: int) -> float:
        processes = [subprocess.Popen([sys.executable, "-c", CALIBRATION, str(rounds)],
                                      stdout=subprocess.PIPE, text=True)
                     for _ in range(count)]
        return max(float(p.communicate()[0]) for p in processes)

    one = together(1)
    two = together(2)
    return 2 * one / two


def _cuda_devices() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def format_table(result: dict[str, Any]) -> str:
    lines = [f"speedup with 2 actors: {result['speedup_2_actors']} (large set), "
             f"{result['speedup_2_actors_small']} (small set); two plain processes get "
             f"{result['machine_speedup_2_processes']} here now"]
    for name, rate in result["mb_per_s"].items():
        objects, actors = name.split("x")
        lines.append(f"  {objects:>6} objects, {actors} actor(s): {rate:8.3f} MB/s")
    lines.append(f"actor peak RSS: {result['actor_peak_rss_mb']} MB (order0); Bit-Swap: "
                 f"{result['actor_peak_rss_mb_bitswap']}")
    lines.append(f"driver peak RSS by dataset size: {result['driver_peak_rss_mb']} (growth "
                 f"{result['driver_rss_growth_mb']} MB)")
    lines.append(f"GPU actor: {result['gpu_actor_mb_per_s']} MB/s")
    lines.append(f"load average before/after: {result['loadavg_before']} / "
                 f"{result['loadavg_after']} on {result['cpu_count']} CPUs")
    return "\n".join(lines)


if __name__ == "__main__":  # one driver run: see `_run_driver`
    _, address, source, destination, actors, gpus, part_objects, codec, model = sys.argv
    print(json.dumps(drive(address, source, destination, int(actors), float(gpus),
                           int(part_objects), codec, model or None)))
