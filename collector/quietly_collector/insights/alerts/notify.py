"""Webhook notifications: JSON with a Slack-compatible ``text``, retried with backoff.

A failed delivery is recorded in ``alert_notifications`` and logged; it never raises
into the scheduler. It is not queued for later: the next reminder carries the alert.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from quietly_collector.insights.alerts.evaluate import Observation
from quietly_collector.insights.alerts.state import AlertState
from quietly_collector.storage.store import Store

log = logging.getLogger("quietly.alerts")
ATTEMPTS = 4
BACKOFF_S = (1.0, 4.0, 15.0)  # before attempts 2, 3 and 4
TIMEOUT_S = 10.0
COLUMNS = ("at", "rule", "scope", "kind", "target", "attempts", "ok", "status", "error")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    target: str  # scheme://host/path, without credentials or query
    attempts: int
    ok: bool
    status: int
    error: str


def payload(kind: str, s: AlertState, obs: Observation | None, description: str,
            link_base: str) -> dict[str, Any]:
    link = (link_base.rstrip("/") + obs.link) if obs is not None and obs.link else ""
    value = "n/a" if s.value is None else f"{s.value:g}"
    title = {"firing": "FIRING", "resolved": "RESOLVED", "reminder": "STILL FIRING"}[kind]
    text = (f"[{s.severity.upper()}] {title}: {s.rule} ({s.scope}): value {value},"
            f" threshold {s.threshold:g}, window {s.window}, samples {s.samples}."
            f" {description} See: `{s.query}`" + (f" {link}" if link else ""))
    return {
        "text": text, "kind": kind, "rule": s.rule, "state": s.state, "severity": s.severity,
        "scope": s.scope, "app": s.app, "value": s.value, "threshold": s.threshold,
        "samples": s.samples, "window": s.window, "since": s.since.isoformat(),
        "query": s.query, "link": link,
    }


def _target(url: str) -> str:
    p = urlsplit(url)  # Slack webhook paths are secrets too: keep the host only
    return f"{p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}"


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
               sleep: Sleep = asyncio.sleep) -> Delivery:
    status, error = 0, ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with session.post(url, json=body,
                                    timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as resp:
                await resp.read()
                status = resp.status
                if resp.status < 300:
                    return Delivery(_target(url), attempt, True, status, "")
                error = f"HTTP {resp.status}"
                if 400 <= resp.status < 500 and resp.status not in (408, 429):
                    break  # the receiver refuses this message; resending cannot help
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, error = 0, f"{type(exc).__name__}: {exc}"[:500]
        if attempt < ATTEMPTS:
            await sleep(BACKOFF_S[attempt - 1])
    log.warning("alert notification to %s failed after %d attempts: %s",
                _target(url), attempt, error)
    return Delivery(_target(url), attempt, False, status, error)


async def send(store: Store, webhooks: list[str], kind: str, body: dict[str, Any],
               sleep: Sleep = asyncio.sleep) -> list[Delivery]:
    """Deliver to every webhook and record each outcome; never raises."""
    if not webhooks:
        return []
    async with aiohttp.ClientSession() as session:
        done = await asyncio.gather(*(post(session, u, body, sleep) for u in webhooks))
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    rows = b"\n".join(json.dumps([at, body["rule"], body["scope"], kind, d.target, d.attempts,
                                  int(d.ok), d.status, d.error]).encode() for d in done)
    try:
        await asyncio.to_thread(store.append, "alert_notifications", COLUMNS, rows)
    except Exception as exc:
        log.error("alert notification outcome not recorded: %s", exc)
    return list(done)
