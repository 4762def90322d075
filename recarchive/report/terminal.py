"""The report (or a comparison) as terminal tables, with rich. Histograms become one line of
block characters per dataset, so the shape of the per-image distribution shows in a terminal
too."""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from recarchive.report.classical import NAMES
from recarchive.report.fmt import (
    BASELINE_LABELS,
    auto_line,
    baseline_of,
    num,
    pct,
    size,
    split,
    when,
)

SHARD_ROWS = 12
SPARK = " ▁▂▃▄▅▆▇█"


def sparkline(counts: list[int], bin_width: float, width: int = 48) -> str:
    """The occupied range of a histogram as block characters, with its bounds."""
    occupied = [i for i, n in enumerate(counts) if n]
    if not occupied:
        return "–"
    first, last = min(occupied), max(occupied) + 1
    merge = max(1, -(-(last - first) // width))
    cells = [sum(counts[i:i + merge]) for i in range(first, last, merge)]
    top = max(cells)
    line = "".join(SPARK[0 if n == 0 else max(1, round(8 * n / top))] for n in cells)
    return f"{first * bin_width:.2f} {line} {(first + len(cells) * merge) * bin_width:.2f}"


def _datasets(report: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for header in ("dataset", "objects", "codec/fallback/skipped", "raw", "archived", "ratio",
                   "codec bits/dim", "archive bits/dim", "seconds", "MB/s"):
        table.add_column(header, justify="left" if header == "dataset" else "right")
    for d in [*report["datasets"], report["totals"]]:
        table.add_row(d["name"], num(d["objects"]), split(d), size(d["raw_bytes"]),
                      size(d["archived_bytes"]), num(d["ratio"]),
                      num(d["codec"]["bits_per_dim"]), num(d["bits_per_dim"]),
                      num(d["seconds"], 2), num(d["throughput_mb_s"], 2),
                      style="bold" if d is report["totals"] else None)
    return table


def _baselines(report: dict[str, Any]) -> Table | None:
    groups = [d for d in [*report["datasets"], report["totals"]] if baseline_of(d)]
    if not groups:
        return None
    table = Table(title="bits/dim on the same sampled images: ours beside classical codecs",
                  title_justify="left")
    for header in ("dataset", "sample", "ours", *[BASELINE_LABELS[n] for n in NAMES],
                   "ours vs best"):
        table.add_column(header, justify="left" if header == "dataset" else "right")
    for d in groups:
        b = baseline_of(d)
        best = f" vs {BASELINE_LABELS[b['best']]}" if b["best"] else ""
        table.add_row(d["name"], f"{b['images']} {b['source']}", num(b["ours_bits_per_dim"]),
                      *[num(b["bits_per_dim"][n]) for n in NAMES],
                      pct(None if b["saving_vs_best_pct"] is None
                          else -b["saving_vs_best_pct"]) + best)
    return table


def _codecs(report: dict[str, Any]) -> Table:
    table = Table(title="per codec and model", title_justify="left")
    for header in ("codec", "model", "kind", "shards", "objects", "raw", "payload", "bits/dim",
                   "ratio", "coding s", "MB/s"):
        table.add_column(header, justify="left" if header in ("codec", "model", "kind")
                         else "right")
    for c in report["codecs"]:
        table.add_row(c["codec"], (c["model_sha256"] or "–")[:12], c["kind"], num(c["shards"]),
                      num(c["objects"]), size(c["dims"]), size(c["payload_bytes"]),
                      num(c["bits_per_dim"]), num(c["ratio"]), num(c["seconds"], 2),
                      num(c["throughput_mb_s"], 2))
    return table


def _shards(report: dict[str, Any], rows: int) -> Table:
    listed = report["shards"]["listed"]
    more = report["shards"]["total"] - min(rows, len(listed))
    table = Table(title=f"shards ({report['shards']['total']:,})", title_justify="left",
                  caption=f"… {more:,} more (JSON/HTML)" if more > 0 else None)
    for header in ("shard", "part", "kind", "codec", "blocks", "objects", "raw", "payload",
                   "bits/dim", "seconds", "MB/s"):
        table.add_column(header, justify="left" if header in ("kind", "codec") else "right")
    for s in listed[:rows]:
        table.add_row(num(s["shard"]), num(s["part"]), s["kind"], s["codec"], num(s["blocks"]),
                      num(s["objects"]), size(s["raw_bytes"]), size(s["payload_bytes"]),
                      num(s["bits_per_dim"]), num(s["seconds"], 3),
                      num(s["throughput_mb_s"], 2))
    return table


def _histograms(report: dict[str, Any]) -> Table:
    table = Table(title="codec bits/dim per image", title_justify="left")
    for header in ("dataset", "images", "mean", "min", "max", "histogram (bits/dim)"):
        table.add_column(header, justify="left" if header in ("dataset", "histogram (bits/dim)")
                         else "right")
    shown = report["datasets"] if len(report["datasets"]) > 1 else []
    for d in [*shown, report["totals"]]:
        h = d["image_bits_per_dim"]
        over = (f"  +{h['overflow']:,} ≥ {h['bin_width'] * len(h['counts']):g}"
                if h["overflow"] else "")
        table.add_row(d["name"], num(h["images"]), num(h["mean"]), num(h["min"]),
                      num(h["max"]), sparkline(h["counts"], h["bin_width"]) + over)
    return table


def print_report(report: dict[str, Any], out: TextIO, width: int | None = None,
                 shard_rows: int = SHARD_ROWS) -> None:
    console = _console(out, width)
    a = report["archive"]
    console.print(f"[bold]recarchive report[/bold] {a['url']}  codec [bold]{a['label']}[/bold]"
                  f"  run {a['run_id']}  created {when(a['created_unix'])}"
                  f"  wall {num(a['archive_seconds'], 2)} s")
    console.print(f"source {a['source']}: {num(a['objects'])} objects, "
                  f"{size(a['source_bytes'])} -> archive {size(a['archive_bytes'])} "
                  f"(payloads {size(a['payload_bytes'])}, overhead {size(a['overhead_bytes'])}; "
                  f"manifest and report files not counted)")
    fidelity = _fidelity_line(a.get("fidelity"))
    if fidelity:
        console.print(fidelity)
    if a.get("auto"):
        console.print(auto_line(a["auto"]))
    console.print(_datasets(report, "per dataset"))
    baselines = _baselines(report)
    if baselines is not None:
        console.print(baselines)
    console.print(_histograms(report))
    console.print(_codecs(report))
    console.print(_shards(report, shard_rows))
    console.print(f"per-image bits: {report['methods']['per_image_bits']}", style="dim")


def _fidelity_line(fidelity: dict[str, Any] | None) -> str:
    """How the objects come back, in one line."""
    if not fidelity:
        return ""
    if fidelity["mode"] == "exact":
        text = (f"fidelity exact: {num(fidelity['byte_exact_rasters'])} of "
                f"{num(fidelity['rasters'])} rasters rebuilt byte for byte from their pixels")
    else:
        text = (f"fidelity {fidelity['mode']}: {num(fidelity['rasters'])} rasters restore as "
                "identical pixels in a re-encoded file")
    text += f"; {num(fidelity['bytes_path_objects'])} objects kept as bytes (`recarchive ls` " \
            "says why)"
    if fidelity["jpegs"]:
        raw, packed = fidelity["jpeg_raw_bytes"], fidelity["jpeg_payload_bytes"]
        text += (f"; {num(fidelity['jpegs'])} JPEGs recompressed losslessly: {size(raw)} -> "
                 f"{size(packed)} ({pct(100.0 * (packed - raw) / raw)})")
    if fidelity["shards_recoded"]:
        text += (f"; {num(fidelity['shards_recoded'])} pixel shards failed their decode check "
                 "and were coded with order0")
    return text


def print_comparison(comparison: dict[str, Any], out: TextIO, width: int | None = None) -> None:
    console = _console(out, width)
    a, b = comparison["a"]["archive"], comparison["b"]["archive"]
    console.print(f"[bold]A[/bold] {a['url']} ({a['label']})\n[bold]B[/bold] {b['url']} "
                  f"({b['label']})")
    for name, (value_a, value_b) in comparison["settings_differ"].items():
        console.print(f"setting {name}: A {value_a!r}, B {value_b!r}")
    table = Table(title="A against B, per dataset", title_justify="left")
    for header in ("dataset", "metric", "A", "B", "B vs A"):
        table.add_column(header, justify="left" if header in ("dataset", "metric") else "right")
    for d in comparison["datasets"]:
        for i, m in enumerate(d["metrics"]):
            table.add_row(d["name"] if i == 0 else "", m["metric"], num(m["a"]), num(m["b"]),
                          pct(m["change_pct"]), end_section=i == len(d["metrics"]) - 1)
    console.print(table)
    console.print(_datasets(comparison["a"], "A per dataset"))
    console.print(_datasets(comparison["b"], "B per dataset"))


def _console(out: TextIO, width: int | None) -> Console:
    tty = bool(getattr(out, "isatty", lambda: False)())
    return Console(file=out, width=width or (None if tty else 160), highlight=False,
                   color_system="auto" if tty else None, soft_wrap=False)
