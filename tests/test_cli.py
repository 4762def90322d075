"""`recarchive` CLI and `bench ans`: one clean JSON object, checks that hold, clear failures."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from recarchive import cli
from recarchive.bench import ans_bench

REQUIRED_KEYS = {
    "encode_ns_per_symbol",
    "decode_ns_per_symbol",
    "overhead_pct",
    "information_bits",
    "coded_bits",
    "symbols",
    "lanes",
    "precision",
    "roundtrip_exact",
    "torch_cpu_encode_ns_per_symbol",
    "torch_cpu_decode_ns_per_symbol",
    "torch_bitstream_identical",
    "constriction_encode_ns_per_symbol",
    "constriction_decode_ns_per_symbol",
    "constriction_coded_bits",
    "gpu_symbols_per_s",
    "wide_lanes_encode_ns_per_symbol",
    "wide_lanes_decode_ns_per_symbol",
    "python",
    "numpy",
    "torch",
    "machine",
}


def _one_json_object(stdout: str) -> dict:
    """stdout must hold exactly one JSON object and nothing else (it is piped into tools)."""
    assert stdout.endswith("\n") and stdout.count("\n") == 1, stdout
    result = json.loads(stdout)
    assert isinstance(result, dict)
    return result


def test_bench_ans_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "ans", "--json", "--symbols", "20000", "--lanes", "64"]
    assert cli.main(argv) == 0
    out, _ = capsys.readouterr()
    result = _one_json_object(out)

    assert not REQUIRED_KEYS - result.keys()
    assert result["lanes"] == 64 and result["precision"] == 16
    assert result["symbols"] == 64 * math.ceil(20000 / 64)  # rounded up to whole steps
    assert result["roundtrip_exact"] is True
    assert result["torch_bitstream_identical"] is True
    assert result["torch_roundtrip_exact"] is True
    assert result["wide_lanes_roundtrip_exact"] is True
    assert result["constriction_roundtrip_exact"] is True
    assert result["constriction_coded_bits"] > 0
    assert math.isfinite(result["overhead_pct"]) and 0 <= result["overhead_pct"] < 5
    assert result["coded_bits"] > result["information_bits"] > 0
    for key, value in result.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert value >= 0, key
    if not torch.cuda.is_available():
        assert result["gpu_symbols_per_s"] is None and result["gpu"] == "no CUDA device"
    assert "round trip yes" in ans_bench.format_table(result)


def test_console_module_runs_as_script() -> None:
    argv = ["bench", "ans", "--json", "--symbols", "2000", "--lanes", "16", "--no-constriction"]
    proc = subprocess.run(
        [sys.executable, "-m", "recarchive.cli", *argv],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = _one_json_object(proc.stdout)
    assert result["roundtrip_exact"] is True and result["symbols"] == 2000
    assert result["constriction_encode_ns_per_symbol"] is None
    assert result["constriction"] == "skipped"


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "ans", "--symbols", "1000", "--lanes", "8", "--no-constriction"]
    assert cli.main(argv) == 0
    out, _ = capsys.readouterr()
    assert "encode ns/sym" in out and "overhead" in out


def test_unknown_bench_target_fails_with_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "no-such-target"]) != 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "no-such-target" in err and "ans" in err  # names the bad target and the good ones


def test_missing_command_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) != 0
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_for_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "ans", "--device", "cuda", "--symbols", "100"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "CUDA" in err


def test_failed_check_fails_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = cli.BenchTarget(
        help="always wrong",
        add_arguments=lambda parser: None,
        run=lambda args: {"roundtrip_exact": False, "torch_bitstream_identical": True},
        table=str,
    )
    monkeypatch.setitem(cli.BENCH_TARGETS, "broken", broken)
    assert cli.main(["bench", "broken", "--json"]) == 1
    out, err = capsys.readouterr()
    assert _one_json_object(out)["roundtrip_exact"] is False
    assert "roundtrip_exact" in err and "torch_bitstream_identical" not in err


def test_device_measurement_logic_on_cpu() -> None:
    """The GPU path (many lanes, bytes compared with numpy), run on the CPU so it is tested
    on machines without CUDA."""
    cdf = ans_bench.make_bank(np.random.default_rng(1))
    result = ans_bench.measure_device(cdf, np.random.default_rng(2), "cpu", lanes=1024, steps=3)
    assert result["gpu_bitstream_identical"] is True
    assert result["gpu_roundtrip_exact"] is True
    assert result["gpu_symbols"] == 3 * 1024 and result["gpu_symbols_per_s"] > 0


def test_ls_into_a_closed_pipe_ends_quietly_and_out_of_range_shards_are_refused(tmp_path):
    """`recarchive ls ARCHIVE | head -1` ends with no traceback and no error line; a restore
    of a shard the archive does not have is an error, not an empty restore."""
    main = cli.main
    source = tmp_path / "src"
    source.mkdir()
    for n in range(300):
        (source / f"note-{n:03d}.txt").write_bytes(b"n" * n)
    assert main(["archive", str(source), str(tmp_path / "a")]) == 0
    piped = subprocess.run(
        f"{sys.executable} -m recarchive.cli ls {tmp_path / 'a'} | head -1", shell=True,
        capture_output=True, text=True, timeout=120)
    assert piped.stdout.count("\n") == 1 and "note-000.txt" in piped.stdout
    assert piped.stderr == ""
    assert main(["restore", str(tmp_path / "a"), str(tmp_path / "o"), "--shards", "7"]) == 1
    assert not (tmp_path / "o").exists()
