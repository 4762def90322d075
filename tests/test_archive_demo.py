"""`make demo` (recarchive.demo): real photos, CIFAR-10 images and edge cases archived with the
default codec, restored identical, the unreadable object recorded as skipped, verify clean, and
the rasters set beside PNG, WebP and JPEG-XL files of the same pixels."""

from __future__ import annotations

from recarchive.demo import DANGLING, main, run_demo

CIFAR = 40


def test_demo_restores_every_object_and_records_the_skip(tmp_path):
    lines: list[str] = []
    summary = run_demo(str(tmp_path), say=lines.append, cifar=CIFAR)
    assert summary["identical"], summary["mismatched"]
    assert not summary["verify_problems"]
    assert summary["kinds"] == {"raster": 11 + CIFAR, "blob": 9, "skipped": 1}
    assert "FileNotFoundError" in summary["skipped"][DANGLING]
    assert summary["restored"] == 20 + CIFAR
    assert summary["codec"] == "auto" and summary["jpegs"] == 2
    # the model coded some thumbnails below their JPEG-XL streams and was kept in the store
    assert summary["auto_model"]["kept"] and summary["model_rasters"] > CIFAR // 2
    assert summary["model_bytes"] < summary["model_jpegxl_bytes"]
    assert summary["auto_model"]["copy_bytes"] == 0  # in the store, not in the archive
    assert summary["model_store_bytes"] == 4_204_760  # bitswap-cifar's file
    # every raster's pixels cost no more than as JPEG-XL, PNG or WebP files
    base = summary["rasters_as"]
    assert summary["codec_payload_bytes"] < base["jpegxl"] < base["webp"] < base["png"]
    text = lines[0]
    assert "every object pixel/byte-identical: yes" in text and "edge/photo.jpg" in text
    assert "below JPEG-XL lossless" in text and "recompressed losslessly" in text
    assert list(tmp_path.iterdir()) == []  # cleaned up


def test_demo_main_exit_code(tmp_path, capsys):
    assert main(["--workdir", str(tmp_path), "--codec", "jpegxl", "--cifar", "4"]) == 0
    out = capsys.readouterr().out
    assert "verify: ok" in out and "per dataset" in out  # the summary, then the report
