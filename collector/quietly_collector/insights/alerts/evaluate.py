"""Evaluate a rule: read its metric view, reduce the rows, compare with the threshold.

Everything is read through ``metrics.run`` (the parameterized views), so an alert says
exactly what ``quietly query`` shows. Blocking: callers run it in a thread.
"""

from __future__ import annotations

import operator
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from quietly_collector.insights import segments
from quietly_collector.insights.metrics import Query, as_objects, run, scope_settings
from quietly_collector.settings import AlertRule
from quietly_collector.storage.store import Store

Row = dict[str, Any]
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Observation:
    rule: str
    scope: str  # "app=demo-ide" or "app=demo-ide operation=startup measure=duration_ms"
    app: str
    value: float | None  # what the threshold is compared with (the change, when relative)
    current: float | None
    baseline: float | None
    samples: int
    enough: bool  # the minimum sample size was met
    breached: bool
    window: str  # "2026-11-17..2026-11-23", plus " vs ..." when relative
    query: str  # the command that shows the data
    link: str  # the same as a URL path of the collector (admin token)


@dataclass(frozen=True)
class _Window:
    since: date
    until: date

    def text(self) -> str:
        return self.since.isoformat() if self.since == self.until else \
            f"{self.since.isoformat()}..{self.until.isoformat()}"


def windows(rule: AlertRule, today: date) -> tuple[_Window, _Window]:
    """The current window and the one before it, of the same length."""
    until = today - timedelta(days=1) if rule.complete_days else today
    days = rule.window_days
    cur = _Window(until - timedelta(days=days - 1), until)
    prev = _Window(cur.since - timedelta(days=days), cur.since - timedelta(days=1))
    return cur, prev


def projects_seen(store: Store, since: date) -> list[str]:
    _, rows = store.query(
        "SELECT DISTINCT project FROM agg_active_days_v2 WHERE last_day >= {s:Date}"
        " ORDER BY project", {"s": since})
    return [str(r[0]) for r in rows]


def apps_seen(store: Store, since: date, until: date, project: str) -> list[str]:
    # Through the view, not its table: the aggregate tables change between migrations.
    _, rows = store.query(
        "SELECT DISTINCT app FROM metric_dau(since = {s:Date}, until = {u:Date}, app = '')"
        " ORDER BY app", {"s": since, "u": until}, scope_settings(store, project))
    return [str(r[0]) for r in rows]


def evaluate(store: Store, rule: AlertRule, today: date) -> list[Observation]:
    """One observation per project, app and group: each project's alerts are its own
    rows only, so no project's events can fire, or hide, another's alert (app names
    are whatever a client sends)."""
    cur, prev = windows(rule, today)
    out: list[Observation] = []
    for project in projects_seen(store, prev.since):
        for app in rule.apps or apps_seen(store, prev.since, cur.until, project):
            now_rows = _rows(store, rule, cur, app, project)
            before_rows = (_rows(store, rule, prev, app, project)
                           if rule.compare == "previous" else [])
            groups = sorted({_key(rule, r) for r in now_rows + before_rows})
            for key in groups:
                current = [r for r in now_rows if _key(rule, r) == key]
                before = [r for r in before_rows if _key(rule, r) == key]
                out.append(_observe(rule, project, app, key, current, before, cur, prev))
    return out


def _rows(store: Store, rule: AlertRule, w: _Window, app: str, project: str) -> list[Row]:
    # A `where` on a segment (plan = "paid") filters installs in the engine; any other
    # key is a column of the metric's rows (operation = "startup").
    names = set(segments.known(store.settings.schema_dirs))
    seg_where = tuple((k, v) for k, v in sorted(rule.where.items()) if k in names)
    cols = {k: v for k, v in rule.where.items() if k not in names}
    q = Query(rule.metric, w.since, w.until, app, where=seg_where)
    rows = as_objects(*run(store, q, project))
    return [r for r in rows if all(str(r.get(k)) == v for k, v in cols.items())]


def _key(rule: AlertRule, row: Row) -> tuple[str, ...]:
    return tuple(str(row.get(c)) for c in rule.group_by)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def reduce(rule: AlertRule, rows: list[Row]) -> tuple[float | None, int]:
    """The rows' value and sample size, as the rule's ``aggregate`` says."""
    def samples(r: Row) -> float:
        return (_num(r.get(rule.samples)) or 0.0) if rule.samples else 1.0

    vals = [(v, samples(r)) for r in rows if (v := _num(r.get(rule.column))) is not None]
    total = int(sum(s for _, s in vals))
    if rule.aggregate in ("max", "min"):
        # The worst single row that has enough samples of its own (a version seen by
        # three installs cannot fire).
        ok = [(v, s) for v, s in vals if s >= rule.min_samples]
        if not ok:
            return None, max((int(s) for _, s in vals), default=0)
        pick = max(ok) if rule.aggregate == "max" else min(ok)
        return pick[0], int(pick[1])
    if not vals:
        return None, 0
    if rule.aggregate == "sum":
        return sum(v for v, _ in vals), total
    if rule.aggregate == "per_day":
        return sum(v for v, _ in vals) / rule.window_days, total
    if rule.aggregate == "avg":
        return sum(v for v, _ in vals) / len(vals), total
    if rule.aggregate == "wavg":
        return (sum(v * s for v, s in vals) / total if total else None), total
    denominator = sum(_num(r.get(rule.per)) or 0.0 for r in rows)  # ratio
    return (sum(v for v, _ in vals) / denominator if denominator else None), total


_VERSION_PART = re.compile(r"\d+|[^\d.]+")


def _version_key(v: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _VERSION_PART.findall(v))


def _by_version(rule: AlertRule, rows: list[Row]) -> tuple[tuple[float | None, int], ...]:
    """(latest, previous) app versions' values, among versions with enough samples."""
    per: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        per[str(r.get("app_version", ""))].append(r)
    ok = [(v, reduce(rule, rs)) for v, rs in per.items()]
    ok = [(v, got) for v, got in ok if got[0] is not None and got[1] >= rule.min_samples]
    ok.sort(key=lambda item: _version_key(item[0]))
    if len(ok) < 2:
        latest = ok[-1][1] if ok else (None, 0)
        return latest, (None, 0)
    return ok[-1][1], ok[-2][1]


def _observe(rule: AlertRule, project: str, app: str, key: tuple[str, ...],
             current: list[Row], before: list[Row], cur: _Window, prev: _Window
             ) -> Observation:
    scope = " ".join([f"project={project}", f"app={app}"] + [
        f"{c}={v}" for c, v in zip(rule.group_by, key, strict=True)])
    if rule.compare == "previous_version":
        (now_v, now_n), (base_v, base_n) = _by_version(rule, current)
    else:
        now_v, now_n = reduce(rule, current)
        base_v, base_n = reduce(rule, before) if rule.compare else (None, 0)
    window = cur.text()
    if rule.compare == "previous":
        window += f" vs {prev.text()}"
        # A volume metric is its own sample: a collapse to zero must still alert.
        enough = base_n >= rule.min_samples and (
            rule.samples == rule.column or now_n >= rule.min_samples)
    elif rule.compare == "previous_version":
        window += " (latest app version vs the one before)"
        enough = base_v is not None  # both versions passed the minimum in _by_version
    else:
        enough = now_n >= rule.min_samples
    value = now_v
    if rule.compare:
        value = _change(rule, now_v or 0.0 if rule.samples == rule.column else now_v, base_v)
    breached = enough and value is not None and _OPS[rule.op](value, rule.threshold)
    params = {"since": cur.since.isoformat(), "until": cur.until.isoformat(), "app": app,
              "project": project}
    query = (f"quietly query {rule.metric} --project {project} --app {app}"
             f" --since {params['since']} --until {params['until']}")
    return Observation(
        rule=rule.name, scope=scope, app=app, value=_round(value), current=_round(now_v),
        baseline=_round(base_v), samples=now_n, enough=enough, breached=bool(breached),
        window=window, query=query, link=f"/v1/metrics/{rule.metric}?{urlencode(params)}",
    )


def _change(rule: AlertRule, now: float | None, base: float | None) -> float | None:
    if now is None or base is None:
        return None
    if rule.change == "points":
        return now - base
    return 100.0 * (now - base) / base if base else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)
