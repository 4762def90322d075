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


def auto_line(auto: dict[str, Any] | None) -> str:
    """What `--codec auto` chose, in one line ("" for other codecs)."""
    if auto is None:
        return ""
    whole = auto["jpegxl_rasters"]
    if not auto["kept"]:
        rebuilt = (f"; {auto['parts_rebuilt']} part(s) rebuilt without it"
                   if auto["parts_rebuilt"] else "")
        if auto["saved_bytes"] > 0:
            why = (f"what it saved against JPEG-XL ({auto['saved_bytes']:,} bytes) did not "
                   f"outweigh its copy ({auto['copy_bytes']:,} bytes){rebuilt} (a shared "
                   "--model-store keeps it for many archives)")
        elif auto["candidates"] or auto["parts_rebuilt"]:
            why = f"it coded no raster smaller than JPEG-XL{rebuilt}"
        else:
            why = "no raster was one it takes (RGB, at most 64×64)"
        return (f"auto: {whole:,} raster{'' if whole == 1 else 's'} as JPEG-XL lossless; the "
                f"model was not kept: {why}")
    return (f"auto: {auto['model_rasters']:,} of {auto['candidates']:,} candidate rasters coded "
            f"by the model ({size(auto['model_bytes'])}, {num(auto['saved_pct'], 1)} % below "
            f"their JPEG-XL streams' {size(auto['model_jpegxl_bytes'])}; "
            f"{auto['above_jpegxl']:,} ended above their stream), {whole:,} as JPEG-XL lossless")
