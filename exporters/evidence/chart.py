"""Scores over time as inline SVG: no script, no web font, no network, so the report renders offline
and prints as vector graphics."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Optional

from sentinel.evidence.model import ScorePoint

W, H = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 46, 16, 16, 34
MAX_OBJECT_LINES = 10  # beyond this, per-object lines are noise; the table has them all
GRADES = ((90, "优/excellent"), (80, "良/good"), (70, "中/fair"))


def _x(t: datetime, t0: datetime, span: float) -> float:
    if span <= 0:
        return LEFT + (W - LEFT - RIGHT) / 2
    return LEFT + (t - t0).total_seconds() / span * (W - LEFT - RIGHT)


def _y(score: float) -> float:
    return TOP + (100 - score) / 100 * (H - TOP - BOTTOM)


def _line(points: Sequence[tuple[float, float]], cls: str) -> str:
    if len(points) == 1:
        x, y = points[0]
        return f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="3"/>'
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline class="{cls}" points="{coords}"/>'


def score_chart(history: Sequence[ScorePoint], title: str, empty_text: str) -> str:
    # (at, object, score) of the points that have a score, so the score is known to be a float below
    scored = [(p.at, p.object, p.score) for p in history if p.score is not None]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
             '<style>.axis{stroke:#888;stroke-width:1}.grid{stroke:#ccc;stroke-dasharray:3 3}'
             '.sys{fill:none;stroke:#1f5fa8;stroke-width:2.5}circle.sys{fill:#1f5fa8}'
             '.obj{fill:none;stroke:#b8c4d4;stroke-width:1}circle.obj{fill:#b8c4d4}'
             'text{font-size:11px;fill:#444;font-family:sans-serif}</style>',
             f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>',
             f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>']
    for v in (0, 50, 100):
        parts.append(f'<text x="{LEFT - 6}" y="{_y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for v, name in GRADES:
        y = _y(v)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v}</text>')
        parts.append(f'<text x="{W - RIGHT - 2}" y="{y - 3:.1f}" text-anchor="end">{escape(name)}</text>')
    if not scored:
        parts.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">{escape(empty_text)}</text></svg>')
        return "".join(parts)
    t0, t1 = min(at for at, _, _ in scored), max(at for at, _, _ in scored)
    span = (t1 - t0).total_seconds()
    series: dict[Optional[str], list[tuple[float, float]]] = {}  # None: the system
    for at, obj, score in sorted(scored, key=lambda s: s[0]):
        series.setdefault(obj, []).append((_x(at, t0, span), _y(score)))
    objects = [k for k in series if k is not None]
    if len(objects) <= MAX_OBJECT_LINES:
        for name in sorted(objects):
            parts.append(_line(series[name], "obj"))
    if None in series:
        parts.append(_line(series[None], "sys"))
    labels: list[tuple[float, str]] = [(LEFT, t0.strftime("%Y-%m-%d %H:%M"))]
    if span > 0:
        labels.append((W - RIGHT, t1.strftime("%Y-%m-%d %H:%M")))
    for i, (x, text) in enumerate(labels):
        anchor = "start" if i == 0 else "end"
        parts.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="{anchor}">{escape(text)} UTC</text>')
    parts.append("</svg>")
    return "".join(parts)
