"""lifecycle, active_days, paths, builds, experiments and experiment equal the same
metrics computed in Python (tests/metrics_truth_flows.py) from the events sent: shuffled
(late events), with a replayed batch, resent events inside new batches and a deletion
request. Then the statistics of experiments: a known effect is found and its interval
covers it, no effect rarely looks like one, an unbalanced split trips the SRM flag.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.insights import experiments, metrics
from tests import metrics_truth as truth
from tests import metrics_truth_flows as flows
from tests.conftest import Running, make_settings
from tests.helpers import headers
from tests.sdk.conftest import ThreadedCollector

SINCE, UNTIL = truth.START.isoformat(), truth.END.isoformat()
WEEK = 7 * 86_400


def _send(c: ThreadedCollector, server: Running, events: list[truth.Ev]) -> None:
    # No sent_at: stored times are then the events' own, not shifted by each batch's
    # clock skew (milliseconds that could reorder two steps of a session).
    data = json.dumps({"events": [e.wire() for e in events]}).encode()
    status, payload = c.call(server.post("/v1/batch", data, headers()))
    assert status == 200, payload
    assert not payload["rejected"], payload["rejected"][:3]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory,
           chdb_path: Path) -> Iterator[tuple[Running, list[truth.Ev]]]:
    c = ThreadedCollector(make_settings(tmp_path_factory.mktemp("flows"), chdb_path))
    c.start()
    try:
        server = c.running
        assert server is not None
        events = flows.generate_flows()
        rng = random.Random(3)
        shuffled = events[:]
        rng.shuffle(shuffled)  # later days often arrive before earlier ones
        batches = [shuffled[i:i + 400] for i in range(0, len(shuffled), 400)]
        for b in batches:
            _send(c, server, b)
        _send(c, server, batches[0])  # a replayed batch
        _send(c, server, rng.sample(events, len(events) // 10))  # resent in a new batch
        # An install with sessions, builds and an exposure asks for deletion.
        gone = next(e.install for e in events if e.event == "build_finished")
        deletion = truth.Ev("deletion_request", events[-1].ts, gone, "my-ide", None, {},
                            event_id="00000000-0000-4000-8000-00000000d00e")
        wire = deletion.wire()
        wire["context"]["consent"] = "off"
        status, _ = c.call(server.post("/v1/batch", json.dumps({"events": [wire]}).encode(),
                                       headers()))
        assert status == 200
        c.call(server.settle(60))
        kept = [e for e in events if e.install != gone]
        assert len(kept) < len(events)
        yield server, kept
    finally:
        c.close()


def _rows(server: Running, metric: str, **kw: Any) -> list[dict[str, Any]]:
    q = metrics.parse_query(metric, SINCE, UNTIL, kw.pop("app", ""), **kw)
    return metrics.as_objects(*metrics.run(server.store, q))


def test_lifecycle_and_active_days_match_python(loaded: tuple[Running, list[truth.Ev]]) -> None:
    server, evs = loaded
    assert server.rows("SELECT count() FROM events")[0][0] == len(evs)
    for period in ("week", "month"):
        got = {(r["period_start"], r["app"]): {c: r[c] for c in (
            "new", "returning", "resurrecting", "dormant", "users")}
            for r in _rows(server, "lifecycle", period=period)}
        assert got == flows.lifecycle(evs, period), period
        hist = {(r["period_start"], r["app"], r["days_active"]): r["users"]
                for r in _rows(server, "active_days", period=period)}
        assert hist == flows.active_days(evs, period), period
    weeks = {r["period_start"] for r in _rows(server, "lifecycle")}
    assert all(date.fromisoformat(w).weekday() == 0 for w in weeks)  # ISO: Monday


def test_builds_and_experiments_list_match_python(loaded: tuple[Running, list[truth.Ev]],
                                                  ) -> None:
    server, evs = loaded
    got = {(r["day"], r["app"]): {c: r[c] for c in (
        "builds", "successful_builds", "success_rate", "p95_duration_ms", "users")}
        for r in _rows(server, "builds")}
    assert got == flows.builds(evs)
    listed = {(r["experiment"], r["app"]): {c: r[c] for c in (
        "variants", "exposed_users", "first_exposure", "last_exposure")}
        for r in _rows(server, "experiments")}
    assert listed == flows.experiments(evs)


@pytest.mark.parametrize(("start", "end", "n", "limit"), [
    ("session_start", "", 3, 10), ("feature_used", "", 5, 100),
    ("screen_viewed:settings", "", 2, 5), ("", "build_finished", 3, 10),
    ("", "job_completed", 5, 3)])
def test_paths_match_python(loaded: tuple[Running, list[truth.Ev]], start: str, end: str,
                            n: int, limit: int) -> None:
    server, evs = loaded
    kw = {"start": start} if start else {"end": end}
    got = [list(r.values()) for r in _rows(server, "paths", path_steps=str(n),
                                           limit=str(limit), **kw)]
    want = flows.paths(evs, start, end, n, limit)
    assert want and any(r[0] == "drop_off" for r in want)
    assert got == want


def test_experiment_matches_python_and_finds_the_known_effect(
    loaded: tuple[Running, list[truth.Ev]],
) -> None:
    server, evs = loaded
    for name, goal in (("onboarding_tour", "job_completed"), ("checkout", flows.GOAL),
                       ("pricing", flows.GOAL)):
        rows = {r["variant"]: r for r in _rows(server, "experiment", name=name, goal=goal,
                                                  window="7d")}
        want = flows.experiment(evs, name, goal, WEEK)
        assert {v: (r["exposed_users"], r["converted_users"]) for v, r in rows.items()} == want
    checkout = {r["variant"]: r for r in _rows(server, "experiment", name="checkout",
                                                goal=flows.GOAL)}  # 7 days by default
    tour, control = checkout["tour"], checkout["control"]
    assert control["lift"] is None and control["p_value"] is None
    assert tour["p_value"] < 0.05
    assert tour["ci_low"] <= flows.TRUE_DIFFERENCE <= tour["ci_high"]
    assert tour["ci_low"] > 0
    assert tour["lift"] == pytest.approx(
        tour["conversion_rate"] / control["conversion_rate"] - 1, abs=1e-3)
    assert not tour["srm_mismatch"] and tour["srm_p_value"] >= 0.001
    pricing = _rows(server, "experiment", name="pricing", goal=flows.GOAL)
    assert {r["variant"]: r["exposed_users"] for r in pricing} == {"annual": 850,
                                                                   "control": 1000}
    assert all(r["srm_p_value"] < 0.001 and r["srm_mismatch"] for r in pricing)
    # An SQL user gets the same list of running experiments from the view.
    direct = server.store.query(
        "SELECT count() FROM metric_experiments(since = {s:Date}, until = {u:Date}, app = '')",
        {"s": truth.START, "u": truth.END})
    assert direct[1][0][0] == len(_rows(server, "experiments"))


def test_no_effect_rarely_looks_like_one(loaded: tuple[Running, list[truth.Ev]]) -> None:
    server, _ = loaded
    significant = 0
    for seed in range(100):
        rng = random.Random(seed)
        counts = []
        for variant in ("control", "b"):
            n = 400
            counts.append((variant, n, sum(rng.random() < 0.25 for _ in range(n))))
        rows = experiments.results(server.store, counts)
        significant += rows[1][7] < 0.05  # rows in the order given: control, then b
    assert significant <= 10, significant


def test_control_is_the_first_variant_by_name_without_a_control(
    loaded: tuple[Running, list[truth.Ev]],
) -> None:
    server, _ = loaded
    rows = experiments.results(server.store, [("a", 100, 10), ("b", 100, 30)])
    assert rows[0][4:8] == [None, None, None, None]
    assert rows[1][4] == 2.0 and rows[1][7] < 0.05
