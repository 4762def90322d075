"""Small inline-SVG charts for the HTML report: no plotting library and no external asset, so
the page is self-contained, a few kilobytes, and its numbers are text a test can find."""

from __future__ import annotations

import math
from html import escape

COLORS = ("#1f6feb", "#8250df", "#2da44e", "#bf8700", "#cf222e", "#57606a", "#0a7d8c")
Series = tuple[str, str, list[float | None]]  # label, colour, one value per category


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>'
            f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="13" '
            f'font-weight="600">{escape(title)}</text>' + "".join(body) + "</svg>")


def _ticks(top: float, whole: bool = False) -> list[float]:
    """About five round tick values from 0 to at least `top` (whole numbers only if asked)."""
    if top <= 0:
        return [0.0, 1.0]
    magnitude = 10 ** math.floor(math.log10(top / 5))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if top / (m * magnitude) <= 6)
    if whole:
        step = max(1, round(step))
    return [round(step * i, 10) for i in range(math.ceil(top / step - 1e-9) + 1)]


def _axis(ticks: list[float], x0: int, x1: int, y_of, label: str) -> list[str]:
    parts = []
    for value in ticks:
        y = y_of(value)
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de" '
                     'stroke-width="1"/>')
        parts.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">'
                     f'{value:g}</text>')
    parts.append(f'<text x="12" y="{y_of(ticks[-1] / 2):.0f}" font-size="11" '
                 f'transform="rotate(-90 12 {y_of(ticks[-1] / 2):.0f})" text-anchor="middle">'
                 f'{escape(label)}</text>')
    return parts


def bars(categories: list[str], series: list[Series], *, title: str, y_label: str,
         width: int = 760, height: int = 300, fmt: str = "{:.3f}") -> str:
    """Grouped bars, one group per category, one bar per series, each labelled with its value
    (None: no bar, 'n/a')."""
    left, right, top, bottom = 52, 12, 28, 62
    values = [v for _, _, vs in series for v in vs if v is not None]
    ticks = _ticks(max(values, default=1.0) * 1.1)
    span = ticks[-1] or 1.0
    plot_h = height - top - bottom

    def y_of(value: float) -> float:
        return top + plot_h * (1 - value / span)

    body = _axis(ticks, left, width - right, y_of, y_label)
    group_w = (width - left - right) / max(1, len(categories))
    bar_w = min(38.0, group_w * 0.8 / max(1, len(series)))
    for c, category in enumerate(categories):
        x0 = left + c * group_w + (group_w - bar_w * len(series)) / 2
        for s, (_, color, vs) in enumerate(series):
            value = vs[c] if c < len(vs) else None
            x = x0 + s * bar_w
            if value is None:
                body.append(f'<text x="{x + bar_w / 2:.1f}" y="{y_of(0) - 3:.1f}" font-size="9" '
                            'text-anchor="middle" fill="#57606a">n/a</text>')
                continue
            y = y_of(value)
            body.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                        f'height="{y_of(0) - y:.1f}" fill="{color}"/>')
            body.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" font-size="9" '
                        f'text-anchor="middle">{fmt.format(value)}</text>')
        body.append(f'<text x="{left + (c + 0.5) * group_w:.1f}" y="{height - bottom + 16}" '
                    f'font-size="11" text-anchor="middle">{escape(category[:40])}</text>')
    body += _legend([(label, color) for label, color, _ in series], left, height - 22)
    return _frame(width, height, title, body)


def _legend(items: list[tuple[str, str]], x: float, y: float) -> list[str]:
    parts = []
    for label, color in items:
        parts.append(f'<rect x="{x:.0f}" y="{y - 9:.0f}" width="10" height="10" '
                     f'fill="{color}"/><text x="{x + 14:.0f}" y="{y:.0f}" font-size="11">'
                     f'{escape(label)}</text>')
        x += 24 + 7 * len(label)
    return parts


def histogram(series: list[tuple[str, str, list[int], int]], bin_width: float, *,
              title: str, width: int = 760, height: int = 260, max_bars: int = 60,
              min_bins: int = 20) -> str:
    """Histograms over shared fixed bins (overlaid, translucent, when several), zoomed to the
    occupied range (at least `min_bins` wide) and merged into at most `max_bars` bars; a
    series' overflow (values past the last bin) is one more bar at the right, labelled."""
    left, right, top, bottom = 52, 12, 28, 58
    bins = len(series[0][2])
    occupied = [i for _, _, counts, _ in series for i, n in enumerate(counts) if n]
    overflow = any(over for *_, over in series)
    if not occupied and not overflow:
        return _frame(width, 60, title, ['<text x="20" y="40" font-size="12">no images'
                                         '</text>'])
    first, last = (min(occupied), max(occupied) + 1) if occupied else (bins - min_bins, bins)
    if last - first < min_bins:
        first = max(0, min(first - (min_bins - (last - first)) // 2, bins - min_bins))
        last = min(bins, first + min_bins)
    merge = max(1, -(-(last - first) // max_bars))
    first -= first % merge
    groups = -(-(last - first) // merge)
    merged = [[sum(counts[first + g * merge:first + (g + 1) * merge]) for g in range(groups)]
              + ([over] if overflow else []) for _, _, counts, over in series]
    ticks = _ticks(max(max(m) for m in merged) * 1.05, whole=True)
    plot_h, plot_w = height - top - bottom, width - left - right

    def y_of(value: float) -> float:
        return top + plot_h * (1 - value / (ticks[-1] or 1))

    body = _axis(ticks, left, width - right, y_of, "images")
    bar_w = plot_w / (groups + (1.5 if overflow else 0))
    for (_, color, _, _), counts in zip(series, merged, strict=True):
        opacity = "0.55" if len(series) > 1 else "0.9"
        for g, count in enumerate(counts):
            if count:
                y = y_of(count)
                x = left + (g + 0.5 * (g == groups)) * bar_w
                body.append(f'<rect x="{x:.1f}" y="{y:.1f}" '
                            f'width="{max(1.0, bar_w - 1):.1f}" height="{y_of(0) - y:.1f}" '
                            f'fill="{color}" fill-opacity="{opacity}"/>')
    step = max(1, groups // 8)
    for g in range(0, groups + 1, step):
        x = left + g * bar_w
        body.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" font-size="10" '
                    f'text-anchor="middle">{(first + g * merge) * bin_width:.2f}</text>')
    if overflow:
        body.append(f'<text x="{left + (groups + 1) * bar_w:.1f}" y="{height - bottom + 14}" '
                    f'font-size="10" text-anchor="middle">≥{bins * bin_width:g}</text>')
    body.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - bottom + 30}" font-size="11" '
                'text-anchor="middle">bits/dim per image</text>')
    if len(series) > 1:
        body += _legend([(label, color) for label, color, _, _ in series], left, height - 8)
    return _frame(width, height, title, body)
