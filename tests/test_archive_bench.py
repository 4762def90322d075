"""`recarchive bench archive`: a quick run on real CIFAR-10 test images gives figures that hold
together (they are measured, so only their relations are checked)."""

from __future__ import annotations

import json

from recarchive import cli


def test_bench_archive_json(capsys):
    assert cli.main(["bench", "archive", "--json", "--limit", "120", "--shard-blocks", "16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["codec"] == "order0" and result["images"] == 120
    assert result["raw_pixel_bytes"] == 120 * 32 * 32 * 3
    assert result["roundtrip_identical"] is True and result["verify_identical"] is True
    overhead = result["archive_bytes"] - result["payload_bytes"]
    assert abs(result["index_overhead_pct"] - 100 * overhead / result["payload_bytes"]) < 1e-9
    parts = (result["overhead_index_bytes"] + result["overhead_data_file_bytes"]
             + result["overhead_manifest_bytes"] + result["overhead_bookkeeping_bytes"])
    assert parts == overhead
    assert result["overhead_object_hash_bytes"] >= 120 * 64
    assert 0 < result["restore_one_bytes_read"] < result["archive_bytes"] / 3
    assert result["restore_one_shards_decoded"] == 1 and result["shards"] == 8
    assert result["archive_mb_per_s"] > 0 and result["restore_mb_per_s"] > 0
    assert 6.0 < result["payload_bits_per_dim"] < 8.5
