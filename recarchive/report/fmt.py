"""Number formatting shared by the terminal and HTML renderings, so both show the same
figures (and tests can look for one string in either)."""

from __future__ import annotations

import datetime
from typing import Any

BASELINE_LABELS = {"png": "PNG", "webp": "WebP", "jpegxl": "JPEG-XL", "zstd": "zstd -19"}


def num(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def size(value: float | int | None) -> str:
    """Bytes in decimal units (B, kB, MB, GB, TB)."""
    if value is None:
        return "–"
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(amount) < 1000:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.2f} {unit}"
        amount /= 1000
    return f"{amount:.2f} TB"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}%"


def when(unix: float | None) -> str:
    if unix is None:
        return "–"
    moment = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def baseline_of(dataset: dict[str, Any]) -> dict[str, Any] | None:
    """The baselines to show: measured on restored rasters if asked for, else at archive time."""
    found = dataset["baselines"]
    return found.get("restored") or found.get("archive")


def split(dataset: dict[str, Any]) -> str:
    """'codec / fallback / skipped' object counts."""
    return (f"{dataset['codec']['objects']:,} / {dataset['fallback']['objects']:,} / "
            f"{dataset['skipped']:,}")
