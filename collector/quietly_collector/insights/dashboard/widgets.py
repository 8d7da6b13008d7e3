"""Pieces the pages share: KPI cards, per-day series summed over apps."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from quietly_collector.insights.report import fmt
from quietly_collector.insights.report.fetch import Fetch, Rows
from quietly_collector.insights.report.kpis import KPI_BY_KEY, Change
from quietly_collector.insights.report.periods import Window


@dataclass(frozen=True)
class View:
    """What a page shows: the window, the one before it, and the app filter."""

    window: Window
    app: str
    fetch: Fetch

    @property
    def previous(self) -> Window:
        return self.window.before()


def cards(current: dict[str, float | None], previous: dict[str, float | None],
          keys: tuple[str, ...]) -> str:
    out = []
    for key in keys:
        c = Change(KPI_BY_KEY[key], current.get(key), previous.get(key))
        out.append(
            f'<div class="card"><div class="label">{escape(c.kpi.label)}</div>'
            f'<div class="value">{fmt.value(c.kpi.kind, c.current)}</div>'
            f'<div class="delta {c.verdict}">{fmt.arrow(c)} {escape(fmt.change(c))}'
            ' <span class="same">vs previous</span></div></div>')
    return f'<div class="cards">{"".join(out)}</div>'


def by_day(rs: Rows, *cols: str, key: str = "day") -> dict[str, list[float]]:
    """Sum of each column per day over every app (an install belongs to one app)."""
    out: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(cols))
    # A day with a suppressed row is left out (a gap): its sum over the visible rows
    # would be wrong, and would give the withheld row away.
    hidden = {str(r[key]) for r in rs if r.get("suppressed")}
    for r in rs:
        if str(r[key]) in hidden:
            continue
        acc = out[str(r[key])]
        for i, c in enumerate(cols):
            acc[i] += float(r.get(c) or 0)
    return dict(sorted(out.items()))


# Shown where a panel's rows are suppressed (docs/privacy.md, small cells).
SUPPRESSED = ('<p class="empty">Too few installs to show (fewer than min_cell_installs:'
              " small cells are withheld).</p>")


def points(sums: dict[str, list[float]],
           f: Callable[[list[float]], float | None]) -> list[tuple[str, float | None]]:
    return [(day[:10], f(v)) for day, v in sums.items()]


def ratio(i: int, j: int, scale: float = 1.0) -> Callable[[list[float]], float | None]:
    return lambda v: scale * v[i] / v[j] if v[j] else None


def column(i: int) -> Callable[[list[float]], float | None]:
    return lambda v: v[i]


def month(value: Any) -> str:
    return str(value)[:7]
