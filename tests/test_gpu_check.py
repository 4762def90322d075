"""`bench gpu-check` on this (CPU) machine: the same comparisons with torch on the CPU as
the device, so the script a GPU machine runs is itself tested; a mismatch must fail it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recarchive import cli
from recarchive.bench import gpu_check
from recarchive.codecs import EncodedShard


def test_torch_path_on_the_cpu_writes_numpys_bytes(tmp_path, capsys):
    blocks = tmp_path / "blocks.npy"
    assert gpu_check.main(["--save-blocks", str(blocks), "--blocks", "12"]) == 0
    assert np.load(blocks).shape == (12, 32, 32, 3)
    assert cli.main(["bench", "gpu-check", "--json", "--device", "cpu", "--blocks", "12",
                     "--chains", "4", "--blocks-file", str(blocks)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["same_bytes_as_cpu"] and result["cross_decode_exact"]
    assert result["gpu_bitstream_identical"] and result["gpu_roundtrip_exact"]
    assert result["gpu_encode_mb_per_s"] > 0 and result["gpu_symbols_per_s"] > 0
    assert 3.0 < result["bits_per_dim"] < 8.0


def test_a_device_that_codes_other_bytes_fails_the_check(monkeypatch):
    real = gpu_check.get_codec

    def wrong_on_the_device(name, **options):
        codec = real(name, **options)
        if options.get("coder") == "torch":
            encode = codec.encode
            codec.encode = lambda blocks: EncodedShard(
                encode(blocks).payload + b"\0", len(blocks), 3, encode(blocks).params)
        return codec

    monkeypatch.setattr(gpu_check, "get_codec", wrong_on_the_device)
    with pytest.raises(AssertionError, match="payload differs from the CPU's"):
        gpu_check.run_gpu_check("cpu", 4, 2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: make gpu-check")
def test_cuda_is_refused_with_what_to_do_where_there_is_none():
    with pytest.raises(RuntimeError, match="--device cpu"):
        gpu_check.run_gpu_check("cuda", 4, 2)
