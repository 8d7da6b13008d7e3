"""k-anonymity for every metric answer that leaves the engine (docs/privacy.md).

A row that counts fewer than ``min_cell_installs`` distinct installs keeps its
dimension columns, gets ``suppressed = true``, and every count and rate in it
becomes null. Then complementary suppression: a breakdown's cells add up to the
answer without that breakdown, so in every group of cells that differ only in one
breakdown column, a suppressed cell is never alone and the suppressed cells together
count at least ``min_cell_installs`` installs; otherwise the smallest visible cells
are suppressed too. A filtered answer (``where``) is also checked against the same
answer unfiltered: a row whose complement (unfiltered minus filtered) is a small
non-zero count is suppressed, since subtracting the two would reveal it.

Each install has exactly one value per segment, so population counts add up across
a breakdown's values; that is what makes the sums above meaningful.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

# The count of distinct installs a row describes, per metric.
POPULATION: dict[str, str] = {
    "dau": "users", "wau": "users", "mau": "users", "stickiness": "dau",
    "sessions": "users", "feature_adoption": "users", "feature_breadth": "active_users",
    "activation": "new_installs", "retention": "cohort_users", "crash_rate": "users",
    "performance": "installs", "jobs": "users", "nps": "respondents",
    "deployments": "installs", "funnel": "users",
    "lifecycle": "users", "active_days": "users", "paths": "users",
    "experiment": "exposed_users", "experiments": "exposed_users", "builds": "users",
}
# Columns that name a row rather than count something: kept when it is suppressed.
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "dau": ("day", "app"), "wau": ("day", "app"), "mau": ("day", "app"),
    "stickiness": ("day", "app"), "sessions": ("day", "app"),
    "feature_adoption": ("feature", "app"), "feature_breadth": ("app",),
    "activation": ("day", "app"), "retention": ("cohort", "period"),
    "crash_rate": ("day", "app"), "performance": ("operation", "measure", "unit", "app_version"),
    "jobs": ("job",), "nps": ("period",), "deployments": ("month", "app"),
    "funnel": ("position", "step"),
    "lifecycle": ("period_start", "app"), "active_days": ("period_start", "app", "days_active"),
    "paths": ("kind", "path", "length"), "experiment": ("variant",),
    "experiments": ("experiment", "app"), "builds": ("day", "app"),
}
ALL_COHORTS = "all"
# Counts of the pipeline's events (what was dropped, refused, stored), no install in
# them: nothing to suppress.
EVENT_COUNTS = ("delivery",)


def suppress(
    metric: str,
    columns: list[str],
    rows: list[list[Any]],
    k: int,
    segments: Sequence[str] = (),
    unfiltered: list[list[Any]] | None = None,
) -> tuple[list[str], list[list[Any]]]:
    """``rows`` with the ``suppressed`` column; ``segments``: the breakdown columns;
    ``unfiltered``: the same answer without ``where`` (same columns), if filtered."""
    if k <= 0 or metric in EVENT_COUNTS:
        return columns, rows
    pop = columns.index(POPULATION[metric])
    dims = [columns.index(c) for c in (*DIMENSIONS[metric], *segments) if c in columns]
    size = [_int(r[pop]) for r in rows]
    hidden = {i for i, n in enumerate(size) if n < k}
    if unfiltered is not None:
        whole = {_key(r, dims): _int(r[pop]) for r in unfiltered}
        for i, r in enumerate(rows):
            rest = whole.get(_key(r, dims), size[i]) - size[i]
            if 0 < rest < k:
                hidden.add(i)
    margins = [columns.index(c) for c in segments]
    if metric == "retention" and segments:
        margins.append(columns.index("cohort"))
    _complement(rows, size, hidden, dims, margins, k, columns)
    keep = set(dims)
    out = []
    for i, r in enumerate(rows):
        if i in hidden:
            out.append([v if j in keep else None for j, v in enumerate(r)] + [True])
        else:
            out.append([*r, False])
    return [*columns, "suppressed"], out


def _complement(
    rows: list[list[Any]], size: list[int], hidden: set[int], dims: list[int],
    margins: list[int], k: int, columns: list[str],
) -> None:
    cohort = columns.index("cohort") if "cohort" in columns else -1
    changed = True
    while changed:
        changed = False
        for m in margins:
            groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
            for i, r in enumerate(rows):
                if m == cohort and r[m] == ALL_COHORTS:
                    continue  # the pooled row is this group's total, not a cell of it
                groups[_key(r, [d for d in dims if d != m])].append(i)
            for cells in groups.values():
                if not hidden.intersection(cells):
                    continue
                visible = sorted((i for i in cells if i not in hidden), key=lambda i: size[i])
                while visible:
                    shut = [i for i in cells if i in hidden]
                    if len(shut) >= 2 and sum(size[i] for i in shut) >= k:
                        break
                    hidden.add(visible.pop(0))
                    changed = True


def _key(row: Sequence[Any], idx: Sequence[int]) -> tuple[Any, ...]:
    return tuple(row[i] for i in idx)


def _int(v: Any) -> int:
    return int(v) if isinstance(v, int | float) else 0
