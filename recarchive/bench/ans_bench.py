"""Throughput and rate of the interleaved rANS core, against constriction as a reference.

The workload mimics what a codec asks of the coder: many lanes, each symbol under its own
256-symbol distribution picked from a bank of quantized tables. The benchmark also proves what
it times: every measured run must decode back exactly, and the torch backends must write the
very bytes the numpy backend writes, since archives promise to decode on any of them.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recarchive.ans import (
    NUMPY,
    Backend,
    CdfBank,
    empty_message,
    message_from_bytes,
    message_to_bytes,
    pop_symbols,
    push_symbols,
    torch_backend,
)
from recarchive.ans.cdf import inverse_table
from recarchive.entropy.quantize import pmf_to_cdf

PRECISION = 16
TABLE_ROWS = 256  # T: distributions in the bank
ALPHABET = 256
DIRICHLET_ALPHA = 0.5  # peaked pmfs, like a model's predictions (entropy well under 8 bits)
REPEATS = 3  # best of: the fastest run is the least disturbed by the machine
TORCH_CPU_REPEATS = 1  # torch CPU is only checked for bytes and order of speed
WIDE_LANES = 1 << 16
GPU_LANES = 1 << 20
GPU_STEPS = 16
CONSTRICTION_CHUNK = 1 << 16  # symbols per constriction call: bounds the (m, 256) float array
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Workload:
    """Symbols to code, step by step: lane i of step s codes symbols[s, i] under rows[s, i]."""

    cdf: np.ndarray  # (T, A+1) int64
    rows: np.ndarray  # (steps, lanes) int64
    symbols: np.ndarray  # (steps, lanes) int64

    @property
    def steps(self) -> int:
        return int(self.rows.shape[0])

    @property
    def lanes(self) -> int:
        return int(self.rows.shape[1])

    @property
    def count(self) -> int:
        return int(self.rows.size)


@dataclass(frozen=True)
class CoderRun:
    """Best encode and decode times of one backend on one workload, and what it wrote."""

    encode_s: float
    decode_s: float
    data: bytes
    roundtrip_exact: bool


def make_bank(rng: np.random.Generator) -> np.ndarray:
    """T random distributions quantized exactly as codecs quantize theirs."""
    pmf = rng.dirichlet(np.full(ALPHABET, DIRICHLET_ALPHA), size=TABLE_ROWS)
    return pmf_to_cdf(pmf, precision=PRECISION)


def make_workload(cdf: np.ndarray, steps: int, lanes: int, rng: np.random.Generator) -> Workload:
    """Random rows, and symbols drawn from each row's quantized distribution (so the measured
    rate is against the very distribution the symbols follow)."""
    rows = rng.integers(0, cdf.shape[0], size=(steps, lanes), dtype=np.int64)
    cf = rng.integers(0, 1 << PRECISION, size=(steps, lanes), dtype=np.int64)
    inverse = inverse_table(cdf, PRECISION)
    symbols = inverse[(rows << PRECISION) + cf].astype(np.int64)
    return Workload(cdf, rows, symbols)


def information_bits(workload: Workload) -> float:
    """Sum of -log2(freq / 2^p): the size an ideal coder would reach under these tables."""
    freqs = np.diff(workload.cdf, axis=-1)[workload.rows, workload.symbols]
    return float(np.sum(PRECISION - np.log2(freqs.astype(np.float64))))


def _synchronizer(backend: Backend) -> Callable[[], None]:
    """Waits for queued device work, so a timer stops when the work is done, not queued."""
    if backend.is_torch and backend.device.type == "cuda":
        device = backend.device
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_rans(workload: Workload, backend: Backend, repeats: int) -> CoderRun:
    """Best-of-`repeats` encode and decode through `backend`, with an exact round-trip check.

    Per-step arrays go to the backend before timing: a codec hands the coder arrays already
    on its device, so copying them in is not the coder's cost.
    """
    bank = CdfBank(workload.cdf, PRECISION, backend)
    rows = [backend.asarray(r) for r in workload.rows]
    symbols = [backend.asarray(s) for s in workload.symbols]
    sync = _synchronizer(backend)
    best_encode = best_decode = math.inf
    data = b""
    exact = True
    for _ in range(repeats):
        message = empty_message(workload.lanes, backend)
        sync()
        start = time.perf_counter()
        for step_rows, step_symbols in zip(rows, symbols, strict=True):
            push_symbols(message, bank, step_rows, step_symbols)
        sync()
        best_encode = min(best_encode, time.perf_counter() - start)

        data = message_to_bytes(message)
        message = message_from_bytes(data, backend)
        sync()
        start = time.perf_counter()
        decoded = [pop_symbols(message, bank, step_rows) for step_rows in reversed(rows)]
        sync()
        best_decode = min(best_decode, time.perf_counter() - start)

        got = np.stack([backend.to_numpy(d) for d in reversed(decoded)])
        exact = exact and bool(np.array_equal(got, workload.symbols))
        exact = exact and len(message.stack) == 0
    return CoderRun(best_encode, best_decode, data, exact)


def _chunks(total: int, size: int) -> list[slice]:
    return [slice(a, min(a + size, total)) for a in range(0, total, size)]


def time_constriction(workload: Workload, repeats: int) -> dict[str, Any]:
    """The same symbols under the same quantized tables through constriction's AnsCoder.

    Symbols go in chunks, so the per-symbol (m, 256) probability array stays small; only the
    coder calls are timed. Chunks are encoded last first (each reversed by `encode_reverse`),
    so decoding reads them back first to last.
    """
    try:
        import constriction
    except ImportError:
        return {
            "constriction_encode_ns_per_symbol": None,
            "constriction_decode_ns_per_symbol": None,
            "constriction_coded_bits": None,
            "constriction_roundtrip_exact": None,
            "constriction": "not installed",
        }
    table = np.diff(workload.cdf, axis=-1).astype(np.float64) / (1 << PRECISION)
    rows = workload.rows.reshape(-1)
    symbols = workload.symbols.reshape(-1).astype(np.int32)
    chunks = _chunks(symbols.size, CONSTRICTION_CHUNK)
    family = constriction.stream.model.Categorical(perfect=False)
    best_encode = best_decode = math.inf
    compressed = np.zeros(0, dtype=np.uint32)
    exact = True
    for _ in range(repeats):
        coder = constriction.stream.stack.AnsCoder()
        elapsed = 0.0
        for chunk in reversed(chunks):
            probs = table[rows[chunk]]
            start = time.perf_counter()
            coder.encode_reverse(symbols[chunk], family, probs)
            elapsed += time.perf_counter() - start
        best_encode = min(best_encode, elapsed)
        compressed = coder.get_compressed()

        decoder = constriction.stream.stack.AnsCoder(compressed)
        elapsed = 0.0
        decoded = []
        for chunk in chunks:
            probs = table[rows[chunk]]
            start = time.perf_counter()
            decoded.append(decoder.decode(family, probs))
            elapsed += time.perf_counter() - start
        best_decode = min(best_decode, elapsed)
        exact = exact and bool(np.array_equal(np.concatenate(decoded), symbols))
        exact = exact and decoder.is_empty()
    return {
        "constriction_encode_ns_per_symbol": _ns(best_encode, symbols.size),
        "constriction_decode_ns_per_symbol": _ns(best_decode, symbols.size),
        "constriction_coded_bits": 32 * int(compressed.size),
        "constriction_roundtrip_exact": exact,
        "constriction": _constriction_version(),
    }


def _constriction_version() -> str:
    try:
        return importlib.metadata.version("constriction")
    except importlib.metadata.PackageNotFoundError:
        return "installed"


def measure_device(
    cdf: np.ndarray,
    rng: np.random.Generator,
    device: str,
    lanes: int = GPU_LANES,
    steps: int = GPU_STEPS,
) -> dict[str, Any]:
    """Torch on `device` with many lanes: the throughput a codec gets when a GPU codes a whole
    batch at once. Its bytes must equal numpy's on the same symbols."""
    workload = make_workload(cdf, steps, lanes, rng)
    run = time_rans(workload, torch_backend(device), REPEATS)
    reference = time_rans(workload, NUMPY, 1)
    return {
        "gpu_symbols_per_s": round(workload.count / (run.encode_s + run.decode_s), 1),
        "gpu_roundtrip_exact": run.roundtrip_exact,
        "gpu_bitstream_identical": run.data == reference.data,
        "gpu_lanes": lanes,
        "gpu_symbols": workload.count,
        "gpu": _device_name(device),
    }


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"torch {device}"


def _no_gpu() -> dict[str, Any]:
    return {
        "gpu_symbols_per_s": None,
        "gpu_roundtrip_exact": None,
        "gpu_bitstream_identical": None,
        "gpu_lanes": None,
        "gpu_symbols": None,
        "gpu": "no CUDA device",
    }


def _ns(seconds: float, count: int) -> float:
    return round(1e9 * seconds / count, 2)


def _check_arguments(symbols: int, lanes: int, device: str) -> None:
    """Refuse what cannot run, before spending minutes on what can."""
    if symbols < 1 or lanes < 1:
        raise ValueError(f"symbols and lanes must be >= 1, got {symbols} and {lanes}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")


def run_ans_benchmark(
    symbols: int = 10**6,
    lanes: int = 192,
    seed: int = 0,
    device: str = "cpu",
    with_constriction: bool = True,
) -> dict[str, Any]:
    """Time the coder on `symbols` (rounded up to whole steps of `lanes`) and check it.

    The GPU part runs whenever CUDA is present; `device="cuda"` makes it mandatory.
    """
    _check_arguments(symbols, lanes, device)
    bank_rng, main_rng, wide_rng, gpu_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    cdf = make_bank(bank_rng)
    workload = make_workload(cdf, math.ceil(symbols / lanes), lanes, main_rng)
    count = workload.count

    numpy_run = time_rans(workload, NUMPY, REPEATS)
    torch_run = time_rans(workload, torch_backend("cpu"), TORCH_CPU_REPEATS)
    wide = make_workload(cdf, math.ceil(count / WIDE_LANES), WIDE_LANES, wide_rng)
    wide_run = time_rans(wide, NUMPY, REPEATS)
    information = information_bits(workload)
    coded = 8 * len(numpy_run.data)

    result: dict[str, Any] = {
        "symbols": count,
        "lanes": lanes,
        "steps": workload.steps,
        "precision": PRECISION,
        "table_rows": TABLE_ROWS,
        "seed": seed,
        "encode_ns_per_symbol": _ns(numpy_run.encode_s, count),
        "decode_ns_per_symbol": _ns(numpy_run.decode_s, count),
        "information_bits": round(information, 3),
        "coded_bits": coded,
        "overhead_pct": round(100.0 * (coded - information) / information, 4),
        "roundtrip_exact": numpy_run.roundtrip_exact,
        "torch_cpu_encode_ns_per_symbol": _ns(torch_run.encode_s, count),
        "torch_cpu_decode_ns_per_symbol": _ns(torch_run.decode_s, count),
        "torch_roundtrip_exact": torch_run.roundtrip_exact,
        "torch_bitstream_identical": torch_run.data == numpy_run.data,
        "wide_lanes": WIDE_LANES,
        "wide_lanes_symbols": wide.count,
        "wide_lanes_encode_ns_per_symbol": _ns(wide_run.encode_s, wide.count),
        "wide_lanes_decode_ns_per_symbol": _ns(wide_run.decode_s, wide.count),
        "wide_lanes_roundtrip_exact": wide_run.roundtrip_exact,
    }
    if with_constriction:
        result.update(time_constriction(workload, REPEATS))
    else:
        result.update(
            {
                "constriction_encode_ns_per_symbol": None,
                "constriction_decode_ns_per_symbol": None,
                "constriction_coded_bits": None,
                "constriction_roundtrip_exact": None,
                "constriction": "skipped",
            }
        )
    if torch.cuda.is_available():
        result.update(measure_device(cdf, gpu_rng, "cuda"))
    else:
        result.update(_no_gpu())
    result.update(environment())
    return result


def environment() -> dict[str, Any]:
    """What the numbers were measured on: timings mean little without it."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "platform": sys.platform,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(result: dict[str, Any]) -> str:
    """The result as a short human-readable table (the --json form carries every key)."""
    r = result
    rows: list[tuple[str, str, str, str]] = [
        ("coder", "encode ns/sym", "decode ns/sym", "check"),
        (
            f"numpy, {r['lanes']} lanes",
            _fmt(r["encode_ns_per_symbol"]),
            _fmt(r["decode_ns_per_symbol"]),
            f"round trip {_fmt(r['roundtrip_exact'])}",
        ),
        (
            f"torch cpu, {r['lanes']} lanes",
            _fmt(r["torch_cpu_encode_ns_per_symbol"]),
            _fmt(r["torch_cpu_decode_ns_per_symbol"]),
            f"same bytes {_fmt(r['torch_bitstream_identical'])}",
        ),
        (
            f"numpy, {r['wide_lanes']} lanes",
            _fmt(r["wide_lanes_encode_ns_per_symbol"]),
            _fmt(r["wide_lanes_decode_ns_per_symbol"]),
            f"round trip {_fmt(r['wide_lanes_roundtrip_exact'])}",
        ),
        (
            "constriction AnsCoder",
            _fmt(r["constriction_encode_ns_per_symbol"]),
            _fmt(r["constriction_decode_ns_per_symbol"]),
            f"round trip {_fmt(r['constriction_roundtrip_exact'])} ({r['constriction']})",
        ),
    ]
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}"
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    info = r["information_bits"]
    lines += [
        "",
        f"symbols       {_fmt(r['symbols'])} ({r['steps']:,} steps x {r['lanes']} lanes, "
        f"{r['table_rows']} tables, {r['precision']}-bit)",
        f"information   {_fmt(info)} bits ({info / r['symbols']:.3f} bits/symbol)",
        f"rANS coded    {_fmt(r['coded_bits'])} bits, overhead {r['overhead_pct']:.4f}%",
    ]
    if r["constriction_coded_bits"] is not None:
        overhead = 100.0 * (r["constriction_coded_bits"] - info) / info
        lines.append(
            f"constriction  {_fmt(r['constriction_coded_bits'])} bits, overhead {overhead:.4f}%"
        )
    if r["gpu_symbols_per_s"] is None:
        lines.append(f"gpu           {r['gpu']}")
    else:
        lines.append(
            f"gpu           {_fmt(r['gpu_symbols_per_s'])} symbols/s encode+decode on "
            f"{r['gpu']} ({r['gpu_lanes']:,} lanes), same bytes "
            f"{_fmt(r['gpu_bitstream_identical'])}, round trip {_fmt(r['gpu_roundtrip_exact'])}"
        )
    lines.append(
        f"machine       {r['machine']}; python {r['python']}, numpy {r['numpy']}, "
        f"torch {r['torch']}"
    )
    return "\n".join(lines)
