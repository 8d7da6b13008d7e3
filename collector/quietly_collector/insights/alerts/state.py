"""The state of each rule and scope, ok → pending → firing → resolved, in ClickHouse.

``firing(store)`` is the read side for reports and the dashboard: the alerts firing
now, each with its rule, scope and app, severity, value, threshold and since when.
``step`` is the machine itself (pure; the scheduler applies it and stores the rows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from quietly_collector.insights.alerts.evaluate import Observation
from quietly_collector.settings import AlertRule
from quietly_collector.storage.store import Store

OK, PENDING, FIRING, RESOLVED = "ok", "pending", "firing", "resolved"
STATE_COLUMNS = ("rule", "scope", "app", "state", "severity", "value", "threshold", "samples",
                 "window", "query", "since", "last_notified", "updated_at")
HISTORY_COLUMNS = ("at", "rule", "scope", "app", "from_state", "to_state", "severity",
                   "value", "threshold", "samples", "window")


@dataclass(frozen=True)
class AlertState:
    rule: str
    scope: str
    app: str
    state: str
    severity: str
    value: float | None
    threshold: float
    samples: int
    window: str
    query: str
    since: datetime  # when this state began
    last_notified: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class FiringAlert:
    rule: str
    scope: str
    app: str
    severity: str
    value: float | None
    threshold: float
    since: datetime
    window: str
    query: str


def step(prev: AlertState | None, obs: Observation | None, rule: AlertRule | None,
         severity: str, now: datetime, reminder_s: int) -> tuple[AlertState, str | None]:
    """The next state, and the notification it calls for: firing, resolved, reminder."""
    old = prev.state if prev else OK
    breached = obs is not None and obs.breached
    for_s = rule.for_s if rule else 0
    if breached:
        held = old == PENDING and prev is not None and (
            now - prev.since).total_seconds() >= for_s
        new = FIRING if old == FIRING or held or for_s == 0 else PENDING
    else:
        new = RESOLVED if old == FIRING else OK
    since = prev.since if prev is not None and new == old else now
    last = prev.last_notified if prev else None
    kind: str | None = None
    if new != old and new in (FIRING, RESOLVED):
        kind = new
    elif new == FIRING and last is not None and (now - last).total_seconds() >= reminder_s > 0:
        kind = "reminder"
    if kind is not None:
        last = now
    base = obs or _unseen(prev)
    return AlertState(
        rule=base.rule, scope=base.scope, app=base.app, state=new, severity=severity,
        value=base.value, threshold=rule.threshold if rule else (prev.threshold if prev else 0),
        samples=base.samples, window=base.window, query=base.query, since=since,
        last_notified=last, updated_at=now,
    ), kind


def _unseen(prev: AlertState | None) -> Observation:
    """A scope not evaluated any more (its rule was removed, its app went quiet)."""
    assert prev is not None
    return Observation(rule=prev.rule, scope=prev.scope, app=prev.app, value=None, current=None,
                       baseline=None, samples=0, enough=False, breached=False,
                       window=prev.window, query=prev.query, link="")


def load(store: Store) -> dict[tuple[str, str], AlertState]:
    cols, rows = store.query(f"SELECT {', '.join(STATE_COLUMNS)} FROM alert_state FINAL")
    out = {}
    for r in rows:
        d = dict(zip(cols, r, strict=True))
        for k in ("since", "last_notified", "updated_at"):
            if isinstance(d[k], datetime) and d[k].tzinfo is None:
                d[k] = d[k].replace(tzinfo=UTC)
        s = AlertState(**d)
        s = replace(s, samples=int(s.samples), value=None if s.value is None else float(s.value))
        out[(s.rule, s.scope)] = s
    return out


def firing(store: Store) -> list[FiringAlert]:
    """Alerts firing now, critical first, then the longest firing."""
    states = [s for s in load(store).values() if s.state == FIRING]
    states.sort(key=lambda s: (s.severity != "critical", s.since, s.rule, s.scope))
    return [FiringAlert(rule=s.rule, scope=s.scope, app=s.app, severity=s.severity,
                        value=s.value, threshold=s.threshold, since=s.since, window=s.window,
                        query=s.query) for s in states]


def _ts(v: datetime | None) -> str | None:
    return None if v is None else v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _encode(rows: list[list[Any]]) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in rows)


def save(store: Store, states: list[AlertState], changes: list[tuple[str, AlertState]]) -> None:
    """Current rows (every evaluation, so values stay fresh) and one history row per
    change (``changes``: the state left, and the new state)."""
    if states:
        store.append("alert_state", STATE_COLUMNS, _encode([
            [s.rule, s.scope, s.app, s.state, s.severity, s.value, s.threshold, s.samples,
             s.window, s.query, _ts(s.since), _ts(s.last_notified), _ts(s.updated_at)]
            for s in states]))
    if changes:
        store.append("alert_history", HISTORY_COLUMNS, _encode([
            [_ts(s.updated_at), s.rule, s.scope, s.app, old, s.state, s.severity, s.value,
             s.threshold, s.samples, s.window] for old, s in changes]))
