"""`recarchive bench archive`: a quick run on real CIFAR-10 test images gives figures that hold
together (they are measured, so only their relations are checked)."""

from __future__ import annotations

import json
from pathlib import Path

from recarchive import cli


def test_bench_archive_json(capsys):
    assert cli.main(["bench", "archive", "--json", "--limit", "120", "--shard-blocks", "16",
                     "--jpeg-images", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["codec"] == "order0" and result["images"] == 120
    assert result["raw_pixel_bytes"] == 120 * 32 * 32 * 3
    assert result["roundtrip_identical"] is True and result["verify_identical"] is True
    # Pillow's PNGs come back byte for byte through the pixel path, none as bytes
    assert result["roundtrip_byte_exact"] is True and result["objects_byte_exact_pct"] == 100.0
    assert result["pixel_path_pct"] == 100.0 and result["bytes_path_pct"] == 0.0
    # the JPEG dataset: every file back byte for byte, smaller than zstd made it
    assert result["jpeg_roundtrip_byte_exact"] is True
    assert result["jpeg_recompressed_objects"] == 3
    assert result["jpeg_saving_pct"] > result["jpeg_zstd_saving_pct"] + 5
    # order0 needs no model: nothing is copied in, and the overhead is everything else
    assert result["model_copy_bytes"] == 0 and result["model_copy_pct"] == 0.0
    overhead = result["archive_bytes"] - result["payload_bytes"] - result["model_copy_bytes"]
    assert abs(result["index_overhead_pct"] - 100 * overhead / result["payload_bytes"]) < 1e-9
    parts = (result["overhead_index_bytes"] + result["overhead_data_file_bytes"]
             + result["overhead_manifest_bytes"] + result["overhead_report_bytes"]
             + result["overhead_bookkeeping_bytes"])
    assert parts == overhead
    # 8-byte sha256 prefixes stored back to back: about 8 bytes an object, part of the index
    assert result["object_digest_bytes"] == 8
    assert 120 * 8 <= result["overhead_object_digest_bytes"] < 120 * 8 + 200
    assert result["overhead_object_digest_bytes"] < result["overhead_index_bytes"]
    assert 0 < result["restore_one_bytes_read"] < result["archive_bytes"] / 3
    assert result["restore_one_shards_decoded"] == 1 and result["shards"] == 8
    # throughput is printed, never asserted on: only that the figures are there
    assert all(isinstance(result[k], float) for k in ("archive_mb_per_s", "restore_mb_per_s"))
    assert 6.0 < result["payload_bits_per_dim"] < 8.5


def test_bench_archive_counts_model_copies_apart(tmp_path):
    """A codec with a model: its copy in `models/` is reported as model_copy_* and kept out of
    index_overhead_pct; a longer digest shows in the digest column."""
    from recarchive.bench.archive_bench import run_archive_benchmark
    from recarchive.codecs import register_codec
    from tests.test_archive_bad_input import PermutedOrder0

    class BenchPermuted(PermutedOrder0):
        name = "bench-permuted"  # the name shards record, so restore builds this one

    register_codec("bench-permuted",
                   lambda model=None, **kw: BenchPermuted(model=model or "seed7", **kw))
    result = run_archive_benchmark(limit=40, shard_blocks=16, codec="bench-permuted",
                                   workdir=str(tmp_path), object_digest_bytes=32,
                                   jpeg_images=0)
    assert result["roundtrip_identical"] is True and result["verify_identical"] is True
    assert result["model_copy_bytes"] == 256
    assert result["model_copy_pct"] == 100 * 256 / result["payload_bytes"]
    overhead = result["archive_bytes"] - result["payload_bytes"] - 256
    assert abs(result["index_overhead_pct"] - 100 * overhead / result["payload_bytes"]) < 1e-9
    assert 40 * 32 <= result["overhead_object_digest_bytes"] < 40 * 32 + 200


def test_bench_archive_takes_the_default_codec(capsys):
    """jpegxl (the archive default) codes no blocks and copies no model; its payload is
    JPEG-XL's, well under order0's 7.9 bits/dim on CIFAR-10."""
    assert cli.main(["bench", "archive", "--json", "--limit", "40", "--shard-blocks", "16",
                     "--codec", "jpegxl", "--jpeg-images", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["codec"] == "jpegxl" and result["roundtrip_byte_exact"] is True
    assert result["verify_identical"] is True and result["model_copy_bytes"] == 0
    assert result["pixel_path_pct"] == 100.0 and 3.0 < result["payload_bits_per_dim"] < 5.5
    assert result["restore_one_shards_decoded"] == 1 and result["shards"] == 3


def test_bench_archive_reports_what_auto_chose(capsys):
    """auto with a shared store: the model keeps the thumbnails it codes below their JPEG-XL
    streams, the figures say how many and what they saved, and no model copy is counted."""
    assert cli.main(["bench", "archive", "--json", "--limit", "40", "--codec", "auto",
                     "--model-store", "--jpeg-images", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["codec"] == "auto" and result["model_store"] is True
    assert result["roundtrip_byte_exact"] is True and result["verify_identical"] is True
    assert result["auto_model_kept"] is True and result["model_copy_bytes"] == 0
    assert result["auto_candidates"] == 40
    assert result["auto_model_rasters"] + result["auto_jpegxl_rasters"] == 40
    assert result["auto_model_bytes"] < result["auto_model_jpegxl_bytes"]
    assert result["auto_model_saved_bytes"] == (result["auto_model_jpegxl_bytes"]
                                                - result["auto_model_bytes"])
    assert 0 < result["auto_model_saved_pct"] < 20


def test_bench_archive_reports_one_object_restore_beside_bitswap(capsys):
    """REC (a tiny model) restores one object from its unit, Bit-Swap (a tiny model, the same
    images) from its whole shard: both one-object restores are reported, side by side."""
    data = Path(__file__).parent / "data"
    assert cli.main(["bench", "archive", "--json", "--limit", "6", "--codec", "rec",
                     "--model", str(data / "rec-tiny.safetensors"),
                     "--compare-codec", "bitswap",
                     "--compare-model", str(data / "bitswap-tiny.safetensors"),
                     "--jpeg-images", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["codec"] == "rec" and result["roundtrip_byte_exact"] is True
    assert result["shards"] == 1 and result["verify_identical"] is True
    assert result["restore_one_units_decoded"] == 1
    assert result["restore_one_shards_decoded"] == 0
    # all bytes fetched: the model copy (read once to build the codec) and the rest
    assert result["restore_one_bytes_read"] == (result["restore_one_bytes_read_beyond_model"]
                                                + result["model_copy_bytes"])
    # one unit of six, with the manifest, index, footer and the shard's small columns
    assert result["restore_one_bytes_read_beyond_model"] < result["payload_bytes"] / 2
    assert result["compare_codec"] == "bitswap"
    assert result["compare_restore_one_units_decoded"] == 0
    assert result["compare_restore_one_shards_decoded"] == 1
    assert (result["compare_restore_one_bytes_read_beyond_model"]
            > result["compare_payload_bytes"])  # the whole shard
    bitswap_model = (data / "bitswap-tiny.safetensors").stat().st_size
    assert result["compare_restore_one_bytes_read"] == (
        result["compare_restore_one_bytes_read_beyond_model"] + bitswap_model)
    assert all(isinstance(result[k], float) and result[k] > 0
               for k in ("restore_one_seconds", "compare_restore_one_seconds"))
