"""Every metric view equals the same metric computed in Python from the events sent.

The dataset arrives the hard way: shuffled (late events), with a replayed batch,
resent events inside new batches, and a deletion request for one install.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from quietly_collector.insights import metrics, segments
from tests import metrics_truth as truth
from tests.conftest import Running
from tests.helpers import ADMIN_TOKEN, body, headers

SINCE, UNTIL = truth.START.isoformat(), truth.END.isoformat()


async def _send(server: Running, events: list[truth.Ev]) -> None:
    status, payload = await server.post("/v1/batch", body([e.wire() for e in events]), headers())
    assert status == 200, payload
    assert not payload["rejected"], payload["rejected"][:3]


@pytest.fixture
async def loaded(server: Running) -> tuple[Running, list[truth.Ev]]:
    events = truth.generate()
    rng = random.Random(1)
    shuffled = events[:]
    rng.shuffle(shuffled)  # later days often arrive before earlier ones
    batches = [shuffled[i:i + 150] for i in range(0, len(shuffled), 150)]
    for b in batches:
        await _send(server, b)
    await _send(server, batches[0])  # a replayed batch
    await _send(server, rng.sample(events, len(events) // 10))  # resent inside a new batch
    # One install asks for deletion: its events must vanish from every metric.
    gone = events[len(events) // 2].install
    deletion = truth.Ev("deletion_request", events[-1].ts, gone, "my-ide", None, {},
                        event_id="00000000-0000-4000-8000-00000000d00d")
    wire = deletion.wire()
    wire["context"]["consent"] = "off"
    status, _ = await server.post("/v1/batch", json.dumps(
        {"events": [wire]}).encode(), headers())
    assert status == 200
    await server.settle(60)  # the deletion rewrites parts of every per-install table
    kept = [e for e in events if e.install != gone]
    assert len(kept) < len(events)
    return server, kept


def _rows(server: Running, name: str, **kw: Any) -> list[dict[str, Any]]:
    q = metrics.parse_query(name, SINCE, UNTIL, kw.pop("app", ""), **kw)
    return metrics.as_objects(*metrics.run(server.store, q))


async def test_views_match_python(loaded: tuple[Running, list[truth.Ev]]) -> None:
    server, evs = loaded
    assert server.rows("SELECT count() FROM events")[0][0] == len(evs)

    assert {(r["day"], r["app"]): r["users"] for r in _rows(server, "dau")} == truth.dau(evs)
    assert {(r["day"], r["app"]): r["users"] for r in _rows(server, "wau")} == \
        truth.window_users(evs, 7)
    mau = truth.window_users(evs, 30)
    assert {(r["day"], r["app"]): r["users"] for r in _rows(server, "mau")} == mau
    dau = truth.dau(evs)
    assert {(r["day"], r["app"]): (r["dau"], r["mau"], r["ratio"])
            for r in _rows(server, "stickiness")} == {
        k: (v, mau[k], round(v / mau[k], 4)) for k, v in dau.items()}

    expected = truth.session_metrics(evs)
    got = {(r["day"], r["app"]): r for r in _rows(server, "sessions")}
    assert got.keys() == expected.keys()
    for k, r in got.items():
        for col in ("sessions", "avg_duration_s", "sessions_per_user"):
            # 1e-3: the last rounded digit may differ (float sums in another order).
            assert r[col] == pytest.approx(expected[k][col], abs=1.01e-3), (k, col)
    got = {(r["day"], r["app"]): r for r in _rows(server, "crash_rate")}
    assert got.keys() == expected.keys()
    for k, r in got.items():
        for col in ("sessions", "crashed_sessions", "crashes", "crashes_per_1000_sessions",
                    "crash_free_sessions_rate", "crash_free_users_rate", "errors_per_session"):
            assert r[col] == expected[k][col], (k, col)

    adoption = {(r["app"], r["feature"]): {c: r[c] for c in
                                           ("users", "active_users", "adoption_rate", "uses")}
                for r in _rows(server, "feature_adoption")}
    assert adoption == truth.feature_adoption(evs)
    breadth = {r["app"]: {"active_users": r["active_users"],
                          "users_3plus_features": r["users_3plus_features"]}
               for r in _rows(server, "feature_breadth")}
    assert breadth == truth.feature_breadth(evs)
    assert {(r["day"], r["app"]): [r["new_installs"], r["activated_installs"]]
            for r in _rows(server, "activation")} == truth.activation(evs)
    assert {(r["cohort"], r["period"]): (r["cohort_users"], r["retained_users"])
            for r in _rows(server, "retention")} == truth.retention(evs)

    # quietly query runs each view's stored SELECT; an engineer's SELECT * FROM the view
    # must give the very same rows (with empty seg1, seg2 columns when nothing is
    # broken down).
    params = {"since": truth.START, "until": truth.END, "app": "", "by": [], "where": []}
    for name in metrics.METRICS:
        if name in metrics.NOT_VIEWS:
            continue
        period = ", period = 'month'" if name in metrics.PERIOD_VIEWS else ""
        direct = server.store.query(
            f"SELECT * FROM metric_{name}(since = {{since:Date}}, until = {{until:Date}},"
            f" app = {{app:String}}{period}, by = {{by:Array(String)}},"
            " where = {where:Array(String)})", params)
        if direct[1] and "seg1" in direct[0]:
            assert {r[direct[0].index("seg1")] for r in direct[1]} <= {""}, name
        q = metrics.parse_query(name, SINCE, UNTIL, period="month" if period else None)
        columns, rows = metrics.run(server.store, q)
        want = segments.name_columns(
            direct[0], [[metrics._plain(v) for v in r] for r in direct[1]], ())
        # (This dataset has no experiments: an empty result names no columns here.)
        assert (columns if direct[1] else [], rows) == (
            want[0] if direct[1] else [], want[1]), name


async def test_quantiles_grades_jobs_nps_deployments_funnel(
    loaded: tuple[Running, list[truth.Ev]],
) -> None:
    server, evs = loaded
    perf = {(r["operation"], r["measure"]): r for r in _rows(server, "performance")}
    exact = truth.performance(evs)
    assert perf.keys() == exact.keys()
    for k, values in exact.items():
        r = perf[k]
        assert r["samples"] == len(values)
        # t-digest: documented error, a few percent of the range on small samples.
        spread = values[-1] - values[0]
        for col, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            assert abs(r[col] - values[min(len(values) - 1, int(q * len(values)))]) <= \
                0.1 * spread, (k, col)
    startup = perf[("startup", "duration_ms")]
    p95 = startup["p95_ms"]
    assert startup["grade"] == ("target" if p95 < 2000 else "good" if p95 < 3000 else
                                "acceptable" if p95 < 5000 else "unacceptable")
    jobs = {r["job"]: r for r in _rows(server, "jobs")}
    expected = truth.jobs(evs)
    assert jobs.keys() == expected.keys()
    for job, want in expected.items():
        for col, value in want.items():
            # Stored ts are corrected per batch by the sent_at/received_at skew
            # (milliseconds here), so a duration across two batches moves a little.
            tol = 0.25 if col == "median_time_to_complete_s" else 0
            assert jobs[job][col] == pytest.approx(value, abs=tol), (job, col)
    assert {r["period"]: {c: r[c] for c in ("responses", "promoters", "detractors", "nps")}
            for r in _rows(server, "nps")} == truth.nps(evs)
    assert {(r["month"], r["app"]): r["successful_production_deployments"]
            for r in _rows(server, "deployments")} == truth.deployments(evs)
    steps = ["job_started", "job_completed"]
    rows = _rows(server, "funnel", steps=steps, window="1d")
    assert [r["users"] for r in rows] == truth.funnel(evs, steps, 86_400)
    assert rows[1]["conversion_from_previous"] == round(rows[1]["users"] / rows[0]["users"], 4)


async def test_a_replaced_view_reaches_quietly_query_without_a_restart(
    server: Running, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = server.store
    q = metrics.parse_query("nps", "2026-09-01", "2026-10-31")
    metrics.run(store, q)  # reads, and caches, the shipped view's SELECT
    assert "agg_surveys" in str(metrics.view_select(store, "metric_nps"))

    def replace(table: str, responses: int) -> None:
        store.command(f"CREATE TABLE {table} (period Date, responses UInt64) ENGINE = Memory")
        store.command(f"INSERT INTO {table} VALUES ('2026-10-01', {responses})")
        store.command(f"CREATE OR REPLACE VIEW metric_nps AS SELECT period, responses FROM"
                      f" {table} WHERE period BETWEEN {{since:Date}} AND {{until:Date}}"
                      " AND {app:String} = ''")

    # Replaced over tables that still exist: read again once the cached SELECT is old.
    replace("nps_v8", 7)
    monkeypatch.setattr(metrics, "VIEW_SQL_TTL_S", 0.0)
    assert metrics.as_objects(*metrics.run(store, q)) == [
        {"period": "2026-10-01", "responses": 7}]
    # Replaced, and the table the cached SELECT reads dropped: read again at once.
    monkeypatch.setattr(metrics, "VIEW_SQL_TTL_S", 3600.0)
    replace("nps_v9", 8)
    store.command("DROP TABLE nps_v8")
    assert metrics.as_objects(*metrics.run(store, q)) == [
        {"period": "2026-10-01", "responses": 8}]


async def test_thresholds_come_from_configuration(
    server: Running,
) -> None:
    from quietly_collector.settings import load_settings
    from quietly_collector.storage.metric_config import write_metric_settings

    ev = truth.Ev("performance", datetime(2026, 10, 1, 9, tzinfo=UTC),
                  "0b6f3c1e-2a44-4f0e-9d6b-8a1e2f3c4d5e", "my-ide", None,
                  {"operation": "search", "duration_ms": 120.0},
                  event_id="00000000-0000-4000-8000-000000000001")
    await _send(server, [ev])
    await server.settle()
    assert _rows(server, "performance")[0]["grade"] == "acceptable"  # default 50/100/200 ms
    strict = load_settings(env={}, overrides={"perf_thresholds": {"search": "150/300/500"}})
    write_metric_settings(server.store, strict)
    assert _rows(server, "performance")[0]["grade"] == "target"


async def test_metrics_over_http_need_the_admin_token(loaded: tuple[Running, list[truth.Ev]],
                                                      ) -> None:
    server, evs = loaded
    url = f"{server.url}/v1/metrics/dau?since={SINCE}&until={UNTIL}"
    async with server.session.get(url, headers=headers()) as resp:
        assert resp.status == 403  # a write key never reads
    async with server.session.get(url) as resp:
        assert resp.status == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(url, headers=admin) as resp:
        assert resp.status == 200
        rows = await resp.json()
    assert {(r["day"], r["app"]): r["users"] for r in rows} == truth.dau(evs)
    async with server.session.get(url + "&format=csv", headers=admin) as resp:
        assert (await resp.text()).splitlines()[0] == "day,app,users"
    # A window without data: no rows, and the CSV still has its header.
    empty = f"{server.url}/v1/metrics/crash_rate?since=2001-01-01&until=2001-01-31"
    async with server.session.get(empty, headers=admin) as resp:
        assert await resp.json() == []
    async with server.session.get(empty + "&format=csv", headers=admin) as resp:
        assert (await resp.text()).splitlines() == [
            "day,app,sessions,crashed_sessions,crashes,crashes_per_1000_sessions,"
            "crash_free_sessions_rate,users,crash_free_users_rate,errors_per_session"]
    async with server.session.get(f"{server.url}/v1/metrics/nope", headers=admin) as resp:
        assert resp.status == 404
        assert "known:" in (await resp.json())["error"]
    async with server.session.get(f"{server.url}/v1/metrics/dau?since=yesterday",
                                  headers=admin) as resp:
        assert resp.status == 400
