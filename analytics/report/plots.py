"""Plots as inline SVG, written by hand: a forest plot and a trend, on a log hazard-ratio axis.

No plotting library and nothing fetched: each plot is a self-contained ``<svg role="img">`` with a
``<title>`` and ``<desc>`` for screen readers, printable as it is. Text is escaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH = 680
LABEL = 200  # left column for row labels
RIGHT = 20
ROW = 18
COLORS = {"local": "#1f5fa8", "prior": "#8a8a8a", "posterior": "#b8410e"}
NAMES = {"local": "this site", "prior": "published", "posterior": "combined"}


@dataclass(frozen=True)
class Interval:
    """A hazard ratio and its 95% interval, of one kind (local, prior or posterior)."""

    kind: str
    hr: float
    low: float
    high: float


class LogAxis:
    """Maps hazard ratios to x positions on a log scale with round ticks."""

    def __init__(self, values: list[float], left: float, right: float):
        finite = [v for v in values if v and math.isfinite(v) and v > 0] or [1.0]
        low, high = min([*finite, 0.8]), max([*finite, 1.25])
        self.low, self.high = max(low / 1.1, 0.05), min(high * 1.1, 200.0)
        self.left, self.right = left, right

    def x(self, hr: float) -> float:
        hr = min(max(hr, self.low), self.high)
        span = math.log(self.high) - math.log(self.low)
        return self.left + (math.log(hr) - math.log(self.low)) / span * (self.right - self.left)

    def ticks(self, spacing: float = 32) -> list[float]:
        """Round hazard ratios inside the axis, at least ``spacing`` pixels apart, 1 always among them."""
        candidates = [0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 100, 200]
        inside = [t for t in candidates if self.low <= t <= self.high]
        chosen = [1.0] if self.low <= 1 <= self.high else []
        for tick in sorted(inside, key=lambda t: abs(math.log(t))):  # nearest to 1 first
            if all(abs(self.x(tick) - self.x(c)) >= spacing for c in chosen):
                chosen.append(tick)
        return sorted(chosen)


def _svg(width: int, height: int, title: str, description: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}" class="plot">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>{''.join(body)}</svg>"
    )


def _axis(axis: LogAxis, top: float, bottom: float) -> list[str]:
    parts = [f'<line x1="{axis.x(1):.1f}" y1="{top}" x2="{axis.x(1):.1f}" y2="{bottom}" stroke="#444" '
             'stroke-dasharray="3 3"/>',
             f'<line x1="{axis.left}" y1="{bottom}" x2="{axis.right}" y2="{bottom}" stroke="#444"/>']  # fmt: skip
    for tick in axis.ticks():
        x = axis.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#444"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" font-size="11">{tick:g}</text>')
    parts.append(
        f'<text x="{(axis.left + axis.right) / 2:.1f}" y="{bottom + 30}" text-anchor="middle" font-size="11">'
        "hazard ratio (log scale; left of 1: lower risk)</text>"
    )
    return parts


def _mark(kind: str, x: float, y: float) -> str:
    color = COLORS[kind]
    if kind == "prior":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="white" stroke="{color}" stroke-width="2"/>'
    if kind == "posterior":
        diamond = f"M{x - 5:.1f},{y:.1f} L{x:.1f},{y - 5:.1f} L{x + 5:.1f},{y:.1f} L{x:.1f},{y + 5:.1f} Z"
        return f'<path d="{diamond}" fill="{color}"/>'
    return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{color}"/>'


def _interval(axis: LogAxis, item: Interval, y: float) -> str:
    color = COLORS[item.kind]
    line = (
        f'<line x1="{axis.x(item.low):.1f}" y1="{y:.1f}" x2="{axis.x(item.high):.1f}" y2="{y:.1f}" '
        f'stroke="{color}" stroke-width="2"/>'
    )
    label = f"{NAMES[item.kind]}: HR {item.hr:.2f} (95% {item.low:.2f} to {item.high:.2f})"
    return f'<g class="mark-{item.kind}"><title>{escape(label)}</title>{line}{_mark(item.kind, axis.x(item.hr), y)}</g>'


def _legend(y: float) -> list[str]:
    parts, x = [], LABEL
    for kind in ("local", "prior", "posterior"):
        parts.append(_mark(kind, x + 5, y))
        parts.append(f'<text x="{x + 14}" y="{y + 4}" font-size="11">{NAMES[kind]}</text>')
        x += 110
    return parts


def forest(title: str, rows: list[tuple[str, list[Interval]]]) -> str:
    """One block per group: this site's estimate, the published prior and the combined posterior."""
    values = [v for _, items in rows for i in items for v in (i.low, i.high, i.hr)]
    axis = LogAxis(values, LABEL, WIDTH - RIGHT)
    top = 28
    height_rows = sum(max(len(items), 1) * ROW + 8 for _, items in rows)
    bottom = top + height_rows
    body = _legend(12)
    y = top
    lines = []
    for label, items in rows:
        body.append(f'<text x="4" y="{y + ROW - 5}" font-size="12" font-weight="bold">{escape(label)}</text>')
        if not items:
            body.append(f'<text x="{LABEL}" y="{y + ROW - 5}" font-size="11">no estimate yet</text>')
        for item in items:
            body.append(_interval(axis, item, y + ROW / 2))
            lines.append(f"{label}, {NAMES[item.kind]}: HR {item.hr:.2f} ({item.low:.2f} to {item.high:.2f})")
            y += ROW
        y += 8 if items else ROW + 8
    body += _axis(axis, top - 4, bottom)
    return _svg(WIDTH, int(bottom + 38), title, "; ".join(lines) or "no estimates", body)


def trend(title: str, labels: list[str], series: dict[str, list[Interval | None]]) -> str:
    """Each group's estimate across cycles (oldest left), local with its CI and the combined estimate."""
    values = [v for points in series.values() for p in points if p for v in (p.low, p.high, p.hr)]
    height, top, bottom, left, right = 220, 20, 180, 60, WIDTH - RIGHT
    axis = LogAxis(values, top, bottom)  # used vertically: small HRs at the top, flipped below

    def y(hr: float) -> float:
        return top + bottom - axis.x(hr)

    count = max(len(labels), 1)
    step = (right - left) / count

    def x(index: int) -> float:
        return left + step * (index + 0.5)

    body = [f'<line x1="{left}" y1="{y(1):.1f}" x2="{right}" y2="{y(1):.1f}" stroke="#444" stroke-dasharray="3 3"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/>']  # fmt: skip
    for tick in axis.ticks():
        body.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">{tick:g}</text>')
    every = max(1, count // 8)
    for index, label in enumerate(labels):
        if index % every == 0:
            body.append(f'<text x="{x(index):.1f}" y="{bottom + 16}" text-anchor="middle" font-size="10">'
                        f"{escape(label)}</text>")  # fmt: skip
    shades = ["#1f5fa8", "#b8410e", "#2e7d32", "#6a1b9a"]
    lines = []
    for number, (name, points) in enumerate(series.items()):
        color = shades[number % len(shades)]
        offset = (number - (len(series) - 1) / 2) * min(6, step / 4)
        path = []
        for index, point in enumerate(points):
            if point is None:
                continue
            px = x(index) + offset
            body.append(
                f"<g><title>{escape(name)} {escape(labels[index])}: {NAMES[point.kind]} HR {point.hr:.2f} "
                f"({point.low:.2f} to {point.high:.2f})</title>"
                f'<line x1="{px:.1f}" y1="{y(point.low):.1f}" x2="{px:.1f}" y2="{y(point.high):.1f}" '
                f'stroke="{color}" stroke-width="1.5"/><circle cx="{px:.1f}" cy="{y(point.hr):.1f}" r="3" '
                f'fill="{color}"/></g>'
            )
            path.append(f"{px:.1f},{y(point.hr):.1f}")
        if len(path) > 1:
            body.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1"/>')
        body.append(f'<text x="{left + 10 + 170 * number}" y="{height - 6}" font-size="11" fill="{color}">'
                    f"● {escape(name)}</text>")  # fmt: skip
        lines.append(f"{name}: " + ", ".join(f"{p.hr:.2f}" for p in points if p))
    body.append(f'<text x="12" y="{(top + bottom) / 2}" font-size="11" transform="rotate(-90 12 {(top + bottom) / 2})" '
                'text-anchor="middle">hazard ratio</text>')  # fmt: skip
    return _svg(WIDTH, height, title, "; ".join(lines) or "no cycles yet", body)
