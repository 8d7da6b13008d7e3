"""One evaluation of every rule (``check``), and the collector's task that runs it
every ``alert_interval_s``.

``check`` reads the metrics, moves each rule and scope through the state machine,
stores the states and sends a notification for each change (and reminders).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from quietly_collector.insights.alerts import notify, state
from quietly_collector.insights.alerts.evaluate import Observation, evaluate
from quietly_collector.insights.alerts.rules import effective_rules
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.settings import AlertRule, Settings
from quietly_collector.storage.store import Store

log = logging.getLogger("quietly.alerts")
# The scheduler and an admin-triggered check must not both notify one change.
ALERT_LEASE_MARGIN_S = 1.0
_LOCKS: weakref.WeakKeyDictionary[Store, asyncio.Lock] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Result:
    state: state.AlertState
    previous: str
    observation: Observation | None
    notified: str | None
    deliveries: list[notify.Delivery] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        s, o = self.state, self.observation
        return {
            "rule": s.rule, "scope": s.scope, "app": s.app, "severity": s.severity,
            "state": s.state, "previous_state": self.previous, "value": s.value,
            "threshold": s.threshold, "samples": s.samples,
            "enough_samples": o.enough if o else False,
            "current": o.current if o else None, "baseline": o.baseline if o else None,
            "window": s.window, "since": s.since.isoformat(), "query": s.query,
            "notified": self.notified,
            "deliveries_failed": sum(not d.ok for d in self.deliveries),
        }


def _evaluate_all(store: Store, rules: list[AlertRule], now: datetime) -> tuple[
        dict[tuple[str, str], state.AlertState], list[tuple[AlertRule, Observation]], set[str]]:
    previous = state.load(store)
    observed: list[tuple[AlertRule, Observation]] = []
    failed: set[str] = set()
    for rule in rules:
        try:
            observed += [(rule, o) for o in evaluate(store, rule, now.date())]
        except Exception as exc:
            # One bad rule (a column the view lacks, a query error) leaves its states
            # as they were; the others are still evaluated.
            failed.add(rule.name)
            log.error("alert rule %s not evaluated: %s", rule.name, exc)
    return previous, observed, failed


async def check(store: Store, settings: Settings, now: datetime | None = None,
                sleep: notify.Sleep = asyncio.sleep,
                counters: Counter[str] | None = None) -> list[Result]:
    """``counters``: the collector's, for its self-metrics (telemetry/selfmetrics.py)."""
    counters = Counter() if counters is None else counters
    lock = _LOCKS.setdefault(store, asyncio.Lock())
    async with lock:
        try:
            return await _check(store, settings, now or datetime.now(UTC), sleep, counters)
        except Exception:
            counters["alert_checks_failed"] += 1
            raise


async def _check(store: Store, settings: Settings, now: datetime,
                 sleep: notify.Sleep, counters: Counter[str]) -> list[Result]:
    rules = effective_rules(settings.alert_rules)
    by_name = {r.name: r for r in rules}
    previous, observed, failed = await asyncio.to_thread(_evaluate_all, store, rules, now)
    counters["alert_rules_evaluated"] += len(rules) - len(failed)
    counters["alert_rules_failed"] += len(failed)
    results: list[Result] = []
    seen: set[tuple[str, str]] = set()
    for rule, obs in observed:
        key = (rule.name, obs.scope)
        seen.add(key)
        prev = previous.get(key)
        new, kind = state.step(prev, obs, rule, rule.severity, now, settings.alert_reminder_s)
        results.append(Result(new, prev.state if prev else state.OK, obs, kind))
    for key, prev in previous.items():
        if key in seen or key[0] in failed or prev.state == state.OK:
            continue
        new, kind = state.step(prev, None, by_name.get(key[0]), prev.severity, now,
                               settings.alert_reminder_s)
        results.append(Result(new, prev.state, None, kind))
    changes = [(r.previous, r.state) for r in results if r.previous != r.state.state]
    await asyncio.to_thread(state.save, store, [r.state for r in results], changes)
    out = []
    for r in results:
        if r.notified is not None:
            found = by_name.get(r.state.rule)
            body = notify.payload(r.notified, r.state, r.observation,
                                  found.description if found else "", _link_base(settings))
            deliveries = await notify.send(store, settings.alert_webhooks, r.notified, body,
                                           sleep)
            r = Result(r.state, r.previous, r.observation, r.notified, deliveries)
            counters["alert_notifications"] += 1
        out.append(r)
    return out


def _link_base(s: Settings) -> str:
    return s.alert_link_base or f"http://{s.host}:{s.port}"


async def run_alerts(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx entry: evaluate every ``alert_interval_s`` (0: never)."""
    collector = app[COLLECTOR]
    interval = collector.settings.alert_interval_s
    stop = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), interval)
                return
            except TimeoutError:
                pass
            # Only the leader lease's holder: with several collectors, one notification.
            # Some seconds of the lease left, so that it cannot lapse while notifying.
            if collector.leader.remaining() < ALERT_LEASE_MARGIN_S:
                continue
            try:
                if collector.store.connected:
                    await check(collector.store, collector.settings,
                                counters=collector.counters)
            except Exception:
                log.exception("alert evaluation failed; next one in %ss", interval)

    task = asyncio.create_task(loop(), name="quietly-alerts") if interval > 0 else None
    yield
    stop.set()
    if task is not None:
        await task
