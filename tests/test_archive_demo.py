"""`make demo` (recarchive.demo): real photos and edge cases archived, restored identical,
the unreadable object recorded as skipped, verify clean."""

from __future__ import annotations

from recarchive.demo import DANGLING, main, run_demo


def test_demo_restores_every_object_and_records_the_skip(tmp_path):
    lines: list[str] = []
    summary = run_demo(str(tmp_path), say=lines.append)
    assert summary["identical"], summary["mismatched"]
    assert not summary["verify_problems"]
    assert summary["kinds"] == {"raster": 15, "blob": 8, "skipped": 1}
    assert "FileNotFoundError" in summary["skipped"][DANGLING]
    assert summary["restored"] == 23
    assert 0 < summary["codec_bits_per_dim"] < 8.5
    text = lines[0]
    assert "every object pixel/byte-identical: yes" in text and "edge/photo.jpg" in text
    assert list(tmp_path.iterdir()) == []  # cleaned up


def test_demo_main_exit_code(tmp_path, capsys):
    # The model-free codec keeps this fast; `make demo` itself runs Bit-Swap with the shipped
    # photo model (its codec is tested in tests/test_bitswap_codec.py).
    assert main(["--workdir", str(tmp_path), "--codec", "order0"]) == 0
    out = capsys.readouterr().out
    assert "verify: ok" in out and "per dataset" in out  # the summary, then the report
