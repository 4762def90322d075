"""The report (or a comparison of two) as one self-contained HTML page: inline CSS and inline
SVG plots, no script, no external asset, so it opens anywhere, offline, and can be archived
with the data it describes."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from recarchive.report import svg
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

SHARD_TABLE_ROWS = 100
SHARD_PLOT = 300
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:1200px;color:#1f2328;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#d0d7de;padding-bottom:4px}.sub{color:#57606a;margin:0 0 14px}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #d0d7de;border-radius:6px;
padding:8px 14px;min-width:120px}.card b{display:block;font-size:20px}
.card span{color:#57606a;font-size:12px}.note{color:#57606a;font-size:12px}
.better{color:#1a7f37}.worse{color:#cf222e}svg{display:block;margin:6px 0}
"""


def _table(headers: list[str], rows: list[list[str]], css_id: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    ident = f' id="{css_id}"' if css_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
        for label, value in items) + "</div>"


def _dataset_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for d in [*report["datasets"], report["totals"]]:
        rows.append([escape(d["name"]), num(d["objects"]), split(d), size(d["raw_bytes"]),
                     size(d["archived_bytes"]), num(d["ratio"]),
                     num(d["codec"]["bits_per_dim"]), num(d["bits_per_dim"]),
                     num(d["fallback"]["ratio"]), num(d["seconds"], 2),
                     num(d["throughput_mb_s"], 2)])
    return rows


DATASET_HEADERS = ["dataset", "objects", "codec / fallback / skipped", "raw", "archived",
                   "ratio", "codec bits/dim", "archive bits/dim", "fallback ratio", "seconds",
                   "MB/s"]


def _baseline_section(report: dict[str, Any], heading: str = "Against classical codecs"
                      ) -> list[str]:
    groups = [d for d in [*report["datasets"], report["totals"]] if baseline_of(d)]
    if not groups:
        return [f"<h2>{escape(heading)}</h2><p class=\"note\">No raster was sampled "
                "(images over the archive-time size limit, or none at all): run "
                "<code>recarchive report ARCHIVE --baselines N</code>.</p>"]
    rows = []
    for d in groups:
        b = baseline_of(d)
        rows.append([escape(d["name"]), f"{b['images']} ({escape(b['source'])})",
                     f"<b>{num(b['ours_bits_per_dim'])}</b>",
                     *[num(b["bits_per_dim"][n]) for n in NAMES],
                     pct(b["saving_vs_best_pct"] and -b["saving_vs_best_pct"])
                     + (f" vs {BASELINE_LABELS[b['best']]}" if b["best"] else "")])
    chart_groups = [d for d in groups if d is not report["totals"]] or groups
    series = [(report["archive"]["label"] + " (ours)", svg.COLORS[0],
               [baseline_of(d)["ours_bits_per_dim"] for d in chart_groups])]
    series += [(BASELINE_LABELS[n], svg.COLORS[i + 1],
                [baseline_of(d)["bits_per_dim"][n] for d in chart_groups])
               for i, n in enumerate(NAMES)]
    return [f"<h2>{escape(heading)}</h2>",
            svg.bars([d["name"] for d in chart_groups], series,
                     title="bits/dim on the same sampled images (lower is better)",
                     y_label="bits/dim"),
            _table(["dataset", "sample images", "ours", *[BASELINE_LABELS[n] for n in NAMES],
                    "ours vs best"], rows, "baselines"),
            "<p class=\"note\">bits/dim of each sampled image coded as its own file; "
            "<i>archive</i>: sampled while archiving, <i>restored</i>: by "
            "<code>report --baselines N</code>. The last column is ours against the best "
            "classical codec (negative: ours is smaller).</p>"]


def _histograms(report: dict[str, Any]) -> list[str]:
    parts = ["<h2>Bits/dim per image</h2>"]
    shown = report["datasets"] if len(report["datasets"]) > 1 else []
    for i, d in enumerate([report["totals"], *shown]):
        h = d["image_bits_per_dim"]
        if not h["images"]:
            continue
        title = (f"{d['name']}: {h['images']:,} images, mean {num(h['mean'])}, "
                 f"min {num(h['min'])}, max {num(h['max'])} bits/dim")
        parts.append(svg.histogram([(d["name"], svg.COLORS[i % len(svg.COLORS)],
                                     h["counts"], h["overflow"])], h["bin_width"], title=title))
    return parts


def _codec_section(report: dict[str, Any]) -> list[str]:
    rows = [[escape(c["codec"]), escape((c["model_sha256"] or "–")[:16]), escape(c["kind"]),
             num(c["shards"]), num(c["objects"]), size(c["dims"]), size(c["payload_bytes"]),
             num(c["bits_per_dim"]), num(c["ratio"]), num(c["seconds"], 2),
             num(c["throughput_mb_s"], 2)] for c in report["codecs"]]
    return ["<h2>Codecs and models</h2>",
            _table(["codec", "model", "kind", "shards", "objects", "raw", "payload", "bits/dim",
                    "ratio", "coding s", "MB/s"], rows, "codecs")]


def _shard_section(report: dict[str, Any]) -> list[str]:
    listed = report["shards"]["listed"]
    parts = [f"<h2>Shards ({report['shards']['total']:,})</h2>"]
    pixel = [s for s in listed if s["kind"] == "pixels"][:SHARD_PLOT]
    if pixel:
        parts.append(svg.bars([str(s["shard"]) if len(pixel) <= 24 else "" for s in pixel],
                              [("bits/dim (padded blocks)", svg.COLORS[0],
                                [s["bits_per_dim"] for s in pixel])],
                              title="codec bits/dim per pixel shard", y_label="bits/dim",
                              fmt="{:.2f}" if len(pixel) <= 24 else ""))
    rows = [[num(s["shard"]), num(s["part"]), escape(s["kind"]), escape(s["codec"]),
             num(s["blocks"]), num(s["objects"]), size(s["raw_bytes"]),
             size(s["payload_bytes"]), num(s["bits_per_dim"]), num(s["seconds"], 3),
             num(s["throughput_mb_s"], 2)] for s in listed[:SHARD_TABLE_ROWS]]
    parts.append(_table(["shard", "part", "kind", "codec", "blocks", "objects", "raw", "payload",
                         "bits/dim", "seconds", "MB/s"], rows, "shards"))
    if report["shards"]["total"] > len(rows):
        parts.append(f"<p class=\"note\">{len(rows)} of {report['shards']['total']:,} shards "
                     "shown; the JSON lists more, the codec table covers all.</p>")
    return parts


def _overhead(report: dict[str, Any]) -> list[str]:
    a = report["archive"]
    rows = [[escape(label), size(value), num(100 * value / a["payload_bytes"], 2)
             if a["payload_bytes"] else "–"]
            for label, value in (("codec + fallback payloads", a["payload_bytes"]),
                                 ("index", a["overhead"]["index_bytes"]),
                                 ("data file structure, checksums",
                                  a["overhead"]["data_file_bytes"]),
                                 ("models", a["overhead"]["model_bytes"]),
                                 ("bookkeeping", a["overhead"]["bookkeeping_bytes"]))]
    return ["<h2>Archive files</h2>", _table(["", "bytes", "% of payloads"], rows, "files")]


def _methods(report: dict[str, Any]) -> list[str]:
    items = "".join(f"<li><b>{escape(k.replace('_', ' '))}</b>: {escape(v)}</li>"
                    for k, v in report["methods"].items())
    return [f"<h2>How these figures are made</h2><ul class=\"note\">{items}</ul>"]


def _header(report: dict[str, Any]) -> list[str]:
    a, t = report["archive"], report["totals"]
    return [
        "<h1>recarchive compression report</h1>",
        f"<p class=\"sub\">{escape(a['url'])} · codec <b>{escape(a['label'])}</b> · run "
        f"{escape(a['run_id'])} · created {when(a['created_unix'])} · source "
        f"{escape(a['source'])}</p>",
        *([f"<p class=\"sub\">{escape(auto_line(a['auto']))}</p>"] if a.get("auto") else []),
        _cards([("objects", num(t["objects"])), ("raw", size(t["raw_bytes"])),
                ("archived", size(t["archived_bytes"])), ("ratio raw/archived", num(t["ratio"])),
                ("codec bits/dim", num(t["codec"]["bits_per_dim"])),
                ("source/archived", num(t["source_ratio"])),
                ("archive wall time", f"{num(a['archive_seconds'], 2)} s")]),
    ]


def render_report(report: dict[str, Any]) -> str:
    body = [*_header(report), "<h2>Datasets</h2>",
            _table(DATASET_HEADERS, _dataset_rows(report), "datasets"),
            *_baseline_section(report), *_histograms(report), *_codec_section(report),
            *_shard_section(report), *_overhead(report), *_methods(report)]
    return _page(f"recarchive report: {report['archive']['url']}", body)


def render_comparison(comparison: dict[str, Any]) -> str:
    a, b = comparison["a"], comparison["b"]
    la, lb = f"A: {a['archive']['label']}", f"B: {b['archive']['label']}"
    if la[3:] == lb[3:]:
        la, lb = f"A: {a['archive']['url']}", f"B: {b['archive']['url']}"
    rows = []
    for d in comparison["datasets"]:
        for m in d["metrics"]:
            lower_is_better = m["metric"] not in ("ratio", "throughput MB/s")
            change = m["change_pct"]
            good = change is not None and change != 0 and (change < 0) == lower_is_better
            css = "" if change in (None, 0) else ("better" if good else "worse")
            rows.append([escape(d["name"]), escape(m["metric"]), num(m["a"]), num(m["b"]),
                         f'<span class="{css}">{pct(change)}</span>'])
    paired = [d for d in comparison["datasets"] if d["name"] != "all"]

    def metric(d: dict[str, Any], name: str, side: str) -> float | None:
        return next(m[side] for m in d["metrics"] if m["metric"] == name)

    body = [
        "<h1>recarchive report: two archives side by side</h1>",
        f"<p class=\"sub\"><b>{escape(la)}</b>{_where(la, a)} · <b>{escape(lb)}</b>"
        f"{_where(lb, b)}</p>",
        _differ(comparison["settings_differ"]),
        svg.bars([d["name"] for d in paired],
                 [(la, svg.COLORS[0], [metric(d, "codec bits/dim", "a") for d in paired]),
                  (lb, svg.COLORS[1], [metric(d, "codec bits/dim", "b") for d in paired])],
                 title="codec bits/dim per dataset (lower is better)", y_label="bits/dim"),
        svg.histogram([(la, svg.COLORS[0], a["totals"]["image_bits_per_dim"]["counts"],
                        a["totals"]["image_bits_per_dim"]["overflow"]),
                       (lb, svg.COLORS[1], b["totals"]["image_bits_per_dim"]["counts"],
                        b["totals"]["image_bits_per_dim"]["overflow"])],
                      a["totals"]["image_bits_per_dim"]["bin_width"],
                      title="bits/dim per image, all datasets"),
        _table(["dataset", "metric", "A", "B", "B vs A"], rows, "comparison"),
        f"<h2>{escape(la)}</h2>", _table(DATASET_HEADERS, _dataset_rows(a)),
        f"<h2>{escape(lb)}</h2>", _table(DATASET_HEADERS, _dataset_rows(b)),
        *_baseline_section(a, f"Against classical codecs ({la})"),
        *_baseline_section(b, f"Against classical codecs ({lb})"), *_methods(a),
    ]
    return _page("recarchive report: comparison", body)


def _where(label: str, report: dict[str, Any]) -> str:
    url = report["archive"]["url"]
    return "" if label.endswith(url) else f" ({escape(url)})"


def _differ(settings: dict[str, list[Any]]) -> str:
    if not settings:
        return '<p class="note">Same archive settings.</p>'
    items = ", ".join(f"{escape(name)}: {escape(json.dumps(a))} → {escape(json.dumps(b))}"
                      for name, (a, b) in settings.items())
    return f'<p class="note">Settings that differ (A → B): {items}</p>'


def render(report: dict[str, Any]) -> str:
    """A report or a comparison, whichever it is."""
    return render_comparison(report) if "a" in report else render_report(report)
