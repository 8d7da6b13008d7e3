"""Charts as inline SVG, rendered on the server: no front-end build, no script.

Every value is also in a <title> (a tooltip, and text for screen readers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2")
W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 28

Series = tuple[str, Sequence[tuple[str, float | None]]]
Format = Callable[[float], str]


def number(v: float) -> str:
    if abs(v) >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def percent(v: float) -> str:
    return f"{100 * v:.1f}%"


def _nice_max(v: float) -> float:
    """The smallest 4 x (a round step) reaching v: four grid steps of round numbers."""
    if v <= 0:
        return 1.0
    raw = v / 4
    mag = 10.0 ** math.floor(math.log10(raw))
    return 4 * next(m * mag for m in (1, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * mag >= raw)


def _frame(lo: float, hi: float, f: Format) -> list[str]:
    parts = []
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = TOP + (H - TOP - BOTTOM) * (1 - i / 4)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"'
                     ' class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="ylab">{escape(f(v))}</text>')
    return parts


def line(series: Sequence[Series], fmt: Format = number, label: str = "",
         lo: float | None = 0.0) -> str:
    """Lines over shared x labels (days or months), y from ``lo`` (None: the data's min)."""
    xs = list(dict.fromkeys(x for _, pts in series for x, _ in pts))
    values = [v for _, pts in series for _, v in pts if v is not None]
    if not xs or not values:
        return '<p class="empty">No data in this period.</p>'
    xs.sort()
    low = min(values) if lo is None else lo
    high = max(values)
    high = _nice_max(high) if lo == 0 else (high if high > low else low + 1)
    span_x = max(1, len(xs) - 1)

    def px(i: int) -> float:
        return LEFT + (W - LEFT - RIGHT) * (i / span_x if len(xs) > 1 else 0.5)

    def py(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - (v - low) / (high - low))

    parts = _frame(low, high, fmt)
    for i in sorted({0, len(xs) // 2, len(xs) - 1}):
        anchor = "start" if i == 0 and len(xs) > 1 else "end" if i == len(xs) - 1 else "middle"
        parts.append(f'<text x="{px(i):.1f}" y="{H - 8}" class="xlab" text-anchor="{anchor}">'
                     f"{escape(xs[i])}</text>")
    index = {x: i for i, x in enumerate(xs)}
    legend = []
    for n, (name, pts) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        known = [(index[x], v) for x, v in pts if v is not None]
        path = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in known)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}"'
                     ' stroke-width="2" stroke-linejoin="round"/>')
        for i, v in known:
            parts.append(f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="{3 if len(xs) < 40 else 2}"'
                         f' fill="{color}"><title>{escape(name)} {escape(xs[i])}:'
                         f" {escape(fmt(v))}</title></circle>")
        legend.append(f'<span class="key"><i style="background:{color}"></i>'
                      f"{escape(name)}</span>")
    return _svg(parts, label) + (f'<div class="legend">{"".join(legend)}</div>'
                                 if len(series) > 1 else "")


def bars(points: Sequence[tuple[str, float | None]], fmt: Format = number,
         label: str = "", color: str = PALETTE[0]) -> str:
    """Vertical bars (monthly figures); negative values hang below the zero line."""
    known = [(x, v) for x, v in points if v is not None]
    if not known:
        return '<p class="empty">No data in this period.</p>'
    high = _nice_max(max(0.0, *(v for _, v in known)))
    low = -_nice_max(-min(0.0, *(v for _, v in known))) if min(v for _, v in known) < 0 else 0.0
    parts = _frame(low, high, fmt)
    slot = (W - LEFT - RIGHT) / len(known)

    def py(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - (v - low) / (high - low))

    for i, (x, v) in enumerate(known):
        left = LEFT + slot * i + slot * 0.2
        top, bottom = sorted((py(v), py(0)))
        parts.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{slot * 0.6:.1f}"'
                     f' height="{max(1.0, bottom - top):.1f}" rx="3" fill="{color}">'
                     f"<title>{escape(x)}: {escape(fmt(v))}</title></rect>")
        parts.append(f'<text x="{left + slot * 0.3:.1f}" y="{H - 8}" class="xlab"'
                     f' text-anchor="middle">{escape(x)}</text>')
        parts.append(f'<text x="{left + slot * 0.3:.1f}" y="{top - 4:.1f}" class="val"'
                     f' text-anchor="middle">{escape(fmt(v))}</text>')
    return _svg(parts, label)


def spark(values: Sequence[float | None], label: str = "") -> str:
    """A small trend line: the shape only, the figures are printed beside it."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(pts) < 2:
        return ""
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span = hi - lo or 1
    step = 90 / max(1, len(values) - 1)
    path = " ".join(f"{2 + i * step:.1f},{20 - 16 * (v - lo) / span:.1f}" for i, v in pts)
    return (f'<svg class="spark" viewBox="0 0 94 24" role="img" aria-label="{escape(label)}">'
            f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>'
            "</svg>")


def hbar(fraction: float | None, color: str = PALETTE[0]) -> str:
    """A horizontal bar for tables (adoption, funnels): plain HTML, scales with the text."""
    width = 0.0 if fraction is None else max(0.0, min(1.0, fraction)) * 100
    return (f'<span class="hbar"><span style="width:{width:.1f}%;background:{color}">'
            "</span></span>")


def _svg(parts: list[str], label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {W} {H}" role="img"'
            f' aria-label="{escape(label)}">{"".join(parts)}</svg>')
