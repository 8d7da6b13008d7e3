"""Generated telemetry for the alert tests: sessions, crashes, errors, timings, NPS
answers and returning installs, per app and day, sent through POST /v1/batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.conftest import Running
from tests.helpers import body, headers

TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)
Event = dict[str, Any]


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def install(app: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"quietly-test/{app}/{n}"))


def ev(name: str, ts: datetime, inst: str, app: str, session: str | None = None,
       version: str = "1.0.0", **props: Any) -> Event:
    return {"event_id": str(uuid.uuid4()), "event": name,
            "ts": ts.isoformat().replace("+00:00", "Z"), "install_id": inst,
            "session_id": session,
            "context": {"app": app, "app_version": version, "consent": "basic"},
            "props": props}


def sessions(app: str, day: date, n: int, *, crashed: int = 0, errors_each: int = 0,
             first: int = 0) -> list[Event]:
    """``n`` sessions of distinct installs on ``day`` (the first ``crashed`` crash)."""
    out = []
    for i in range(n):
        inst, sid, t = install(app, first + i), str(uuid.uuid4()), at(day, 0, 0, i % 50)
        out.append(ev("session_start", t, inst, app, sid))
        if i < crashed:
            out.append(ev("crash", t, inst, app, sid, kind="OSError", message="boom"))
        out += [ev("error", t, inst, app, sid, kind="io", code="E1") for _ in range(errors_each)]
    return out


def active(app: str, days: Iterable[date], users: int, first: int = 0) -> list[Event]:
    """``users`` installs active on each of ``days`` (one event each)."""
    return [ev("feature_used", at(d, 0, 0, 1), install(app, first + i), app, feature="search")
            for d in days for i in range(users)]


def timings(app: str, day: date, operation: str, value: float, n: int, *,
            version: str = "1.0.0", measure: str = "duration_ms", first: int = 0) -> list[Event]:
    # A few installs, each with many samples: the view counts samples, not installs.
    out = [ev("performance", at(day, 0, 0, i % 50), install(app, first + i % 5), app,
              version=version, operation=operation) for i in range(n)]
    for e in out:
        e["props"][measure] = value
    return out


def nps(app: str, day: date, promoters: int, passives: int, detractors: int,
        first: int = 0) -> list[Event]:
    scores = [10] * promoters + [8] * passives + [3] * detractors
    return [ev("survey_response", at(day, 0, 0, 2), install(app, first + i), app,
               survey="nps", score=s) for i, s in enumerate(scores)]


async def send(server: Running, events: list[Event]) -> None:
    for i in range(0, len(events), 500):
        status, payload = await server.post("/v1/batch", body(events[i:i + 500]), headers())
        assert status == 200 and not payload["rejected"], payload
    await server.settle(60)
