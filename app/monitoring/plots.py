"""Inline SVG plots for the monitoring report (and the web console): plain strings, no
external assets, every text escaped. Each function returns one <svg> element."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

WIDTH = 640
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
FONT = 'font-family="sans-serif" font-size="11"'


def _svg(height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>'
            f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" {FONT} font-weight="bold">'
            f'{escape(title)}</text>{"".join(body)}</svg>')


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} {extra}>'
            f'{escape(text)}</text>')


def bars(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]],
         *, y_label: str = "share") -> str:
    """Grouped vertical bars: one group per label, one bar per series (e.g. reference vs
    scored shares of a histogram)."""
    height, left, bottom, top = 260, 50, 200, 40
    peak = max([v for values in series.values() for v in values] + [1e-9])
    n, k = max(len(labels), 1), max(len(series), 1)
    group = (WIDTH - left - 20) / n
    bar = group * 0.8 / k
    body = [f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="#444"/>',
            _text(12, top + 4, f"{y_label} (max {peak:.3g})")]
    for j, (name, values) in enumerate(series.items()):
        colour = COLOURS[j % len(COLOURS)]
        body.append(f'<rect x="{left + 10 + 110 * j}" y="{height - 22}" width="10" '
                    f'height="10" fill="{colour}"/>')
        body.append(_text(left + 24 + 110 * j, height - 13, name))
        for i, v in enumerate(values):
            h = (bottom - top) * (v / peak)
            x = left + i * group + group * 0.1 + j * bar
            body.append(f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{bar:.1f}" '
                        f'height="{h:.1f}" fill="{colour}"><title>{escape(name)} '
                        f'{escape(labels[i] if i < len(labels) else "")}: {v:.4g}</title>'
                        '</rect>')
    for i, label in enumerate(labels):
        x = left + i * group + group / 2
        body.append(_text(x, bottom + 12, label[:14], "middle",
                          f'transform="rotate(30 {x:.1f} {bottom + 12})"'))
    return _svg(height, body, title)


def hbars(title: str, values: Sequence[tuple[str, float]], *, threshold: float | None = None
          ) -> str:
    """Horizontal bars, one per label (e.g. PSI per feature), with a threshold line."""
    row, left, top = 16, 190, 30
    height = top + row * max(len(values), 1) + 30
    peak = max([v for _, v in values] + [threshold or 0.0, 1e-9])
    scale = (WIDTH - left - 60) / peak
    body = []
    for i, (label, v) in enumerate(values):
        y = top + i * row
        over = threshold is not None and v > threshold
        body.append(_text(left - 6, y + 11, label[:30], "end"))
        body.append(f'<rect x="{left}" y="{y + 2}" width="{max(v, 0) * scale:.1f}" '
                    f'height="{row - 4}" fill="{"#d62728" if over else "#1f77b4"}"/>')
        body.append(_text(left + max(v, 0) * scale + 4, y + 11, f"{v:.3f}"))
    if threshold is not None:
        x = left + threshold * scale
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
                    f'y2="{height - 24}" stroke="#d62728" stroke-dasharray="4 3"/>')
        body.append(_text(x, height - 10, f"alert {threshold:g}", "middle"))
    return _svg(height, body, title)


def calibration_curve(title: str, points: Sequence[tuple[float, float, float, float, int]]
                      ) -> str:
    """Observed vs predicted per band, (predicted, observed, low, high, n), with the
    diagonal of perfect calibration and each band's 95% interval."""
    size, left, top = 300, 50, 30
    height = size + top + 40

    def px(v: float) -> float:
        return left + v * size

    def py(v: float) -> float:
        return top + (1 - v) * size

    body = [f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" '
            'stroke="#444"/>',
            f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#999" '
            'stroke-dasharray="4 3"/>',
            _text(left + size / 2, top + size + 28, "predicted", "middle"),
            _text(12, top + size / 2, "observed", "middle",
                  f'transform="rotate(-90 12 {top + size / 2})"')]
    for t in (0.0, 0.5, 1.0):
        body.append(_text(px(t), top + size + 12, f"{t:g}", "middle"))
        body.append(_text(left - 4, py(t) + 4, f"{t:g}", "end"))
    for p, o, lo, hi, n in points:
        body.append(f'<line x1="{px(p):.1f}" y1="{py(lo):.1f}" x2="{px(p):.1f}" '
                    f'y2="{py(hi):.1f}" stroke="#1f77b4"/>')
        body.append(f'<circle cx="{px(p):.1f}" cy="{py(o):.1f}" r="3.5" fill="#1f77b4">'
                    f'<title>predicted {p:.3f}, observed {o:.3f} [{lo:.3f}, {hi:.3f}], '
                    f'n={n}</title></circle>')
    return _svg(height, body, title)


def intervals(title: str, rows: Sequence[tuple[str, float, float, float]]) -> str:
    """A point and its 95% interval per row, (label, value, low, high), on one 0..max axis
    (e.g. acceptance by version)."""
    row, left, top = 22, 190, 30
    height = top + row * max(len(rows), 1) + 30
    peak = max([hi for *_, hi in rows] + [1e-9]) * 1.1
    scale = (WIDTH - left - 80) / peak
    body = [f'<line x1="{left}" y1="{height - 24}" x2="{left + peak * scale:.1f}" '
            f'y2="{height - 24}" stroke="#444"/>',
            _text(left, height - 10, "0", "middle"),
            _text(left + peak * scale, height - 10, f"{peak:.3g}", "middle")]
    for i, (label, v, lo, hi) in enumerate(rows):
        y = top + i * row + row / 2
        body.append(_text(left - 6, y + 4, label[:30], "end"))
        body.append(f'<line x1="{left + lo * scale:.1f}" y1="{y:.1f}" '
                    f'x2="{left + hi * scale:.1f}" y2="{y:.1f}" stroke="#1f77b4" '
                    'stroke-width="2"/>')
        body.append(f'<circle cx="{left + v * scale:.1f}" cy="{y:.1f}" r="4" fill="#1f77b4"/>')
        body.append(_text(left + hi * scale + 6, y + 4, f"{v:.3f} [{lo:.3f}, {hi:.3f}]"))
    return _svg(height, body, title)
