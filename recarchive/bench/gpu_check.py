"""`recarchive bench gpu-check` (`make gpu-check`): the device path of Bit-Swap, proven.

Codes CIFAR-10 test blocks with `bitswap-cifar` on the device and on the CPU (the numpy coder
an archive uses there), with the same shard layout, and checks that:
- the device writes the CPU's bytes, exactly;
- the CPU decodes the device's payload, and the device the CPU's, back to the blocks.
It prints the device's encode and decode throughput in MB/s of raw pixels and the rANS coder's
symbols per second on the device (`bench ans`'s workload), as JSON.

Without CUDA, `--device cpu` runs the same comparisons with torch on the CPU as the device:
the very code a GPU runs (torch arithmetic and the torch coder backend) held to the numpy path,
so the check itself is tested on every machine; its speeds then say nothing about a GPU.

The blocks come from `../shared/data` or, on a machine without it (the device machine gets
the checkout alone), from a `.npy` of (N, 32, 32, 3) uint8 images: `--save-blocks FILE` writes
one here, to carry there.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recarchive.bench import ans_bench
from recarchive.codecs import get_codec
from recarchive.datasets import load_cifar10

DEFAULT_MODEL = "bitswap-cifar"


def cifar_blocks(count: int, blocks_file: str | None = None) -> np.ndarray:
    """The first `count` CIFAR-10 test images as (N, 32, 32, 3) uint8 blocks."""
    images = np.load(blocks_file) if blocks_file else load_cifar10("test")
    if len(images) < count or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise ValueError(f"{blocks_file or 'CIFAR-10 test'}: need {count} uint8 32x32x3 blocks, "
                         f"found {images.shape} {images.dtype}")
    return np.ascontiguousarray(images[:count])


def _timed(work) -> tuple[Any, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = work()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def run_gpu_check(device: str = "cuda", count: int = 1024, chains: int = 64,
                  model: str = DEFAULT_MODEL, blocks_file: str | None = None) -> dict[str, Any]:
    """The comparisons and figures above; raises AssertionError naming the first mismatch."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device here: run with --device cpu to check the torch path "
                           "on the CPU")
    blocks = cifar_blocks(count, blocks_file)
    cpu = get_codec("bitswap", model=model, chains=chains)
    other = get_codec("bitswap", model=model, chains=chains, device=device, coder="torch")
    reference, cpu_encode_s = _timed(lambda: cpu.encode(blocks))
    encoded, encode_s = _timed(lambda: other.encode(blocks))
    if encoded.payload != reference.payload or encoded.params != reference.params:
        raise AssertionError(f"{device} payload differs from the CPU's "
                             f"({len(encoded.payload)} against {len(reference.payload)} bytes)")
    decoded, decode_s = _timed(lambda: other.decode(reference))
    if not np.array_equal(decoded, blocks):
        raise AssertionError(f"{device} does not decode the CPU's payload to its blocks")
    if not np.array_equal(cpu.decode(encoded), blocks):
        raise AssertionError(f"the CPU does not decode the {device} payload to its blocks")
    megabytes = blocks.size / 1e6
    result = {
        "device": device, "device_name": (torch.cuda.get_device_name() if device.startswith("cuda")
                                          else platform.processor() or platform.machine()),
        "model": model, "blocks": count, "chains": chains,
        "bits_per_dim": 8 * len(reference.payload) / blocks.size,
        "same_bytes_as_cpu": True, "cross_decode_exact": True,
        "gpu_encode_mb_per_s": megabytes / encode_s, "gpu_decode_mb_per_s": megabytes / decode_s,
        "cpu_encode_mb_per_s": megabytes / cpu_encode_s,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    # `bench ans`'s device measurement: rANS symbols per second, bytes held to numpy's
    rng = np.random.default_rng(0)
    coder = ans_bench.measure_device(ans_bench.make_bank(rng), rng, device)
    if not (coder["gpu_bitstream_identical"] and coder["gpu_roundtrip_exact"]):
        raise AssertionError(f"the rANS coder on {device} does not write numpy's bytes")
    result.update(coder)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recarchive.bench.gpu_check",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--blocks", type=int, default=1024)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--blocks-file", default=None)
    parser.add_argument("--save-blocks", metavar="FILE", default=None,
                        help="write the blocks as .npy (to carry to the device machine) and stop")
    args = parser.parse_args(argv)
    if args.save_blocks:
        Path(args.save_blocks).parent.mkdir(parents=True, exist_ok=True)
        np.save(args.save_blocks, cifar_blocks(args.blocks))
        return 0
    print(json.dumps(run_gpu_check(args.device, args.blocks, args.chains, args.model,
                                   args.blocks_file)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
