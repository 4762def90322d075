"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, installed here if
missing) renders the page `report --html` draws from an archive's stored report, and a
comparison page, to a non-blank
screenshot, and its DOM holds the key figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recarchive import cli
from recarchive.api import archive
from recarchive.archives import ArchiveSettings
from recarchive.report.embed import report_files
from recarchive.report.fmt import num
from tests.test_report import write_bucket

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (skipped only without apt)."""
    found = shutil.which("chromium")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("chromium is not installed and apt-get is unavailable")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [*prefix, apt, "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=1800).returncode != 0:
        subprocess.run([*prefix, apt, "update", "-q"], env=env, check=True, capture_output=True,
                       timeout=600)
        subprocess.run(install, env=env, check=True, capture_output=True, timeout=1800)
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


def browse(chromium: str, page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *extra,
                           page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=180, check=True)


def screenshot(chromium: str, page: Path, tmp: Path) -> np.ndarray:
    shot = tmp / f"{page.stem}.png"
    browse(chromium, page, tmp, f"--screenshot={shot}", "--window-size=1280,2000")
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1280, 2000)
        return np.asarray(image.convert("RGB"))


def assert_not_blank(pixels: np.ndarray) -> None:
    ink = (pixels.min(axis=2) < 200).mean()  # share of non-white pixels
    colored = (np.ptp(pixels.astype(int), axis=2) > 60).mean()  # bars of the plots
    assert 0.01 < ink < 0.6 and colored > 0.002, (ink, colored)


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("html")
    write_bucket(root / "bucket")
    archive(str(root / "bucket"), str(root / "a"), ArchiveSettings(codec="jpegxl", shard_blocks=16))
    archive(str(root / "bucket"), str(root / "b"), ArchiveSettings(codec="jpegxl", shard_blocks=64))
    return {"root": root, "a": root / "a", "b": root / "b"}


def test_archived_report_page_renders_with_its_figures(chromium, archives, tmp_path, capsys):
    manifest = json.loads((archives["a"] / "manifest.json").read_text())
    report = json.loads((archives["a"] / report_files(manifest["files"])["json"]).read_text())
    page = tmp_path / "report.html"
    assert cli.main(["report", str(archives["a"]), "--html", str(page)]) == 0
    capsys.readouterr()
    assert_not_blank(screenshot(chromium, page, tmp_path))
    dom = browse(chromium, page, tmp_path, "--dump-dom").stdout
    totals = report["totals"]
    for needle in ("recarchive compression report", "cifar10", "edge", "bucket", "JPEG-XL",
                   "WebP", "zstd -19", "bits/dim per image", num(totals["codec"]["bits_per_dim"]),
                   num(totals["ratio"]), num(totals["objects"])):
        assert needle in dom, needle
    assert dom.count("<svg") >= 5 and dom.count("<rect") > 20


def test_comparison_page_renders(chromium, archives, tmp_path, capsys):
    page = tmp_path / "compare.html"
    assert cli.main(["report", str(archives["a"]), str(archives["b"]), "--html",
                     str(page)]) == 0
    capsys.readouterr()
    assert_not_blank(screenshot(chromium, page, tmp_path))
    dom = browse(chromium, page, tmp_path, "--dump-dom").stdout
    for needle in ("two archives side by side", "codec bits/dim", "B vs A", "cifar10"):
        assert needle in dom, needle
