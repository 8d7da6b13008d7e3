"""Numbers as people read them, shared by the Markdown and HTML renderings."""

from __future__ import annotations

from quietly_collector.insights.report.kpis import Change


def value(kind: str, v: float | None) -> str:
    if v is None:
        return "\u2013"
    if kind == "rate":
        return f"{100 * v:.1f}%"
    if kind == "count":
        return f"{v:,.0f}"
    if kind == "score":
        return f"{v:+.1f}" if v else "0.0"
    return f"{v:,.2f}"


def change(c: Change) -> str:
    """+1.2 pp for rates, +3.0 pts for scores, +12 (+4.0%) otherwise; a dash without data."""
    d = c.delta
    if d is None:
        return "\u2013"
    kind = c.kpi.kind
    if kind == "rate":
        return f"{100 * d:+.1f} pp"
    if kind == "score":
        return f"{d:+.1f} pts"
    text = f"{d:+,.0f}" if kind == "count" else f"{d:+,.2f}"
    rel = c.relative
    return text if rel is None else f"{text} ({100 * rel:+.1f}%)"


def arrow(c: Change) -> str:
    d = c.delta
    if d is None or c.verdict == "same":
        return "→"
    return "↑" if d > 0 else "↓"


def ms(v: float | None, unit: str = "ms") -> str:
    if v is None:
        return "\u2013"
    return f"{v:,.0f} {unit}" if v >= 10 else f"{v:,.1f} {unit}"


def pct_change(now: float | None, before: float | None) -> str:
    if now is None or before is None or not before:
        return "\u2013"
    return f"{100 * (now - before) / before:+.1f}%"


def rate(v: float | None) -> str:
    return value("rate", v)


def score(v: float | None) -> str:
    return "\u2013" if v is None else f"{v:.1f}"
