"""Server-drawn SVG charts (no JavaScript, no external library): the 7- or 30-day capacity history of a unit, the
dashboard's 7-day trend."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 10, 30
MIN_LABEL_GAP = 40  # px between two date labels of the x axis ("dd/mm" in 11 px type is ~30 px wide)


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: list[tuple[datetime, int]]  # step function: value from each time on
    dashed: bool = False


def _x(t: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    return LEFT + (W - LEFT - RIGHT) * max(0.0, min(1.0, (t - start).total_seconds() / span))


def _y(v: float, top: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1 - v / top if top else 1)


def label_every(start: datetime, end: datetime) -> int:
    """Label one day in n so that the dates of the x axis do not overlap (1 for 7 days, 3 for 30 days)."""
    days = max(1.0, (end - start).total_seconds() / 86400)
    return max(1, math.ceil(days * MIN_LABEL_GAP / (W - LEFT - RIGHT)))


def step_chart(series: list[Series], start: datetime, end: datetime, title: str) -> str:
    """An accessible SVG step chart (role img, title); values are steps that hold until the next point."""
    top = max([v for s in series for _, v in s.points] + [1])
    top = top + max(1, round(top * 0.1))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title" '
        f'width="{W}" height="{H}"><title id="chart-title">{escape(title)}</title>',
        f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="#fff" '
        'stroke="#ccc"/>',
    ]
    for i in range(5):  # horizontal grid + y labels
        v = top * i / 4
        y = _y(v, top)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 5}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{round(v)}</text>')
    every = label_every(start, end)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    k = 0
    while day < end:  # one grid line per day, a date every `every` days
        x = _x(day, start, end)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#eee"/>')
        if k % every == 0:
            parts.append(f'<text x="{x:.1f}" y="{H - 10}" font-size="11" text-anchor="middle">{day:%d/%m}</text>')
        day += timedelta(days=1)
        k += 1
    for s in series:
        if not s.points:
            continue
        coords: list[str] = []
        pts = sorted(s.points)
        for i, (t, v) in enumerate(pts):
            x, y = _x(max(t, start), start, end), _y(v, top)
            if i:
                coords.append(f"{x:.1f},{_y(pts[i - 1][1], top):.1f}")
            coords.append(f"{x:.1f},{y:.1f}")
        coords.append(f"{_x(end, start, end):.1f},{_y(pts[-1][1], top):.1f}")
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<polyline fill="none" stroke="{s.color}" stroke-width="2.5"{dash} points="{" ".join(coords)}">'
            f"<title>{escape(s.label)}</title></polyline>"
        )
    parts.append("</svg>")
    return "".join(parts)
