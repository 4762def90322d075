"""`recarchive bench codec`: real measurements on real images, keys a report can rely on."""

from __future__ import annotations

import json

import torch

from recarchive.cli import main
from recarchive.models import zoo
from recarchive.models.bitswap import BitSwapConfig, BitSwapModel

KEYS = {
    "bits_per_dim", "neg_elbo_bits_per_dim", "initial_bits_per_shard", "encode_mb_per_s",
    "decode_mb_per_s", "roundtrip_exact", "png_bits_per_dim", "webp_bits_per_dim",
    "jpegxl_bits_per_dim",
}


def run_json(capsys, *args: str) -> dict:
    assert main(["bench", "codec", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_bitswap_benchmark_reports_every_key(tmp_path, capsys):
    torch.manual_seed(0)
    model = BitSwapModel(BitSwapConfig(latent_layers=2, latent_channels=4, width=8, res_blocks=0))
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(model))
    result = run_json(capsys, "--model", str(path), "--dataset", "cifar10-validation",
                      "--limit", "6", "--shard-blocks", "4", "--chains", "2")
    assert result.keys() >= KEYS
    assert result["roundtrip_exact"] is True and result["shards"] == 2
    assert result["initial_bits_per_shard"] >= 0 and result["bits_per_dim"] > 0
    assert result["first_block"] == "raw"
    # An untrained model: its -ELBO is poor, above even the 8 bits/dim of the raw first blocks
    # (4 of the 6 images: two shards of two chains).
    assert result["neg_elbo_bits_per_dim"] > 8 and result["bits_per_dim"] > 5
    assert 3 < result["jpegxl_bits_per_dim"] < result["png_bits_per_dim"] < 8


def test_order0_benchmark(capsys):
    result = run_json(capsys, "--codec", "order0", "--dataset", "cifar10-test", "--limit", "40",
                      "--no-baselines")
    assert result["roundtrip_exact"] is True and result["neg_elbo_bits_per_dim"] is None
    assert 6 < result["bits_per_dim"] < 9


def test_workers_code_the_same_shards_in_other_processes(capsys):
    """Two processes give the same payloads as one (same bits), decoded exactly."""
    args = ("--codec", "order0", "--dataset", "cifar10-test", "--limit", "40",
            "--shard-blocks", "10", "--no-baselines")
    alone = run_json(capsys, *args)
    shared = run_json(capsys, *args, "--workers", "2")
    assert shared["workers"] == 2 and shared["shards"] == 4
    assert shared["roundtrip_exact"] is True
    assert shared["bits_per_dim"] == alone["bits_per_dim"]
    assert shared["encode_mb_per_s"] > 0 and shared["decode_mb_per_s"] > 0


def test_whole_photos_are_coded_as_an_archive_codes_them(tmp_path, capsys):
    """`photo-val-images`: a validation photo whole, cut into blocks as an archive cuts it;
    its payload is the archive's, and the baselines code the same whole image."""
    import shutil

    from PIL import Image

    from recarchive.archives import ArchiveSettings, archive
    from recarchive.datasets import data_dir, photo_files

    result = run_json(capsys, "--codec", "order0", "--dataset", "photo-val-images",
                      "--limit", "1", "--shard-blocks", "64")
    path = photo_files("validation")[0]
    with Image.open(path) as image:
        width, height = image.size
    rows, cols = -(-height // 32), -(-width // 32)
    assert result["images"] == 1 and result["blocks"] == rows * cols
    # shards of whole block rows: as many rows as fit in 64 blocks
    assert result["shards"] == -(-rows // (64 // cols)) > -(-rows * cols // 64)
    assert result["roundtrip_exact"] is True
    assert result["bits_per_dim"] == 8 * result["payload_bytes"] / (height * width * 3)
    assert result.keys() >= KEYS | {"jpegxl_blocks_bits_per_dim"}
    # cutting a photo into blocks costs JPEG-XL too
    assert result["jpegxl_blocks_bits_per_dim"] > result["jpegxl_bits_per_dim"]
    source = tmp_path / "photos" / path.relative_to(data_dir() / "photos")
    source.parent.mkdir(parents=True)
    shutil.copy(path, source)
    manifest = archive(str(tmp_path / "photos"), str(tmp_path / "archive"),
                       ArchiveSettings(codec="order0", shard_blocks=64))
    assert manifest["totals"]["pixel_payload_bytes"] == result["payload_bytes"]


def test_causal_benchmark_codes_with_and_without_adaptation(capsys):
    """`--adapt 0` and `--adapt 1` measure the causal codec as shards written before
    adaptation, and before the pictures' histograms, code: the float likelihood is the same,
    each later version's bytes (shared tables: 8 thumbnails) fewer."""
    from tests.test_causal_codec import PINNED_MODEL

    common = ("--codec", "causal", "--model", str(PINNED_MODEL), "--dataset",
              "cifar10-validation", "--limit", "8", "--no-baselines")
    adapted = run_json(capsys, *common)
    tables = run_json(capsys, *common, "--adapt", "1")
    alone = run_json(capsys, *common, "--adapt", "0")
    assert all(run["roundtrip_exact"] is True for run in (adapted, tables, alone))
    assert adapted["neg_elbo_bits_per_dim"] == alone["neg_elbo_bits_per_dim"]
    assert adapted["bits_per_dim"] < tables["bits_per_dim"] < alone["bits_per_dim"]
    assert main(["bench", "codec", "--adapt", "0", "--codec", "bitswap"]) != 0
