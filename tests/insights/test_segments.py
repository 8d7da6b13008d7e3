"""Breakdowns and filters by segment: every metric, cut by a segment, equals the same
metric computed in Python over that segment's installs alone; small cells are
suppressed so that no visible answer gives one away.

Each install has one value per segment, so a metric's cell for ``channel = beta`` is
the metric over the events of beta installs; the independent computation is the
plain-Python metric (tests/metrics_truth.py) over that subset.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from quietly_collector.insights import metrics
from quietly_collector.insights.suppress import DIMENSIONS, POPULATION
from quietly_collector.storage.clients import StorageError
from tests import metrics_truth as truth
from tests import metrics_truth_flows as flows
from tests.conftest import Running
from tests.helpers import body, headers

Row = dict[str, Any]
SINCE, UNTIL = truth.START.isoformat(), truth.END.isoformat()
CHANNELS = ["beta", "launch_week", "organic", "paid_ads", "enterprise"]
PLATFORMS = ["linux", "macos", "windows"]


def _segments(evs: list[truth.Ev], seed: int = 3) -> dict[str, dict[str, str]]:
    """Each install's true values: channel fixed at the first, plan the latest."""
    rng = random.Random(seed)
    out = {}
    for install in sorted({e.install for e in evs}):
        out[install] = {"channel": rng.choice(CHANNELS), "plan": rng.choice(["free", "paid"]),
                        "team": rng.choice(["individual", "team"]),
                        "platform": rng.choice(PLATFORMS)}
    return out


def _wire(e: truth.Ev, seg: dict[str, str]) -> dict[str, Any]:
    w = e.wire()
    w["context"]["os"] = seg["platform"]
    return w


@pytest.fixture
async def loaded(server: Running) -> tuple[Running, list[truth.Ev], dict[str, dict[str, str]]]:
    evs = truth.generate(seed=11, installs=30)
    segs = _segments(evs)
    first: dict[str, truth.Ev] = {}
    for e in sorted(evs, key=lambda e: e.ts):
        first.setdefault(e.install, e)
    extra = []
    for i, (install, e) in enumerate(sorted(first.items())):
        s = segs[install]
        # The first report: a channel and a plan; later, a plan change and a channel
        # that must not replace the first one (channel keeps the first value).
        other_plan = "paid" if s["plan"] == "free" else "free"
        extra.append(truth.Ev("segments", e.ts, install, e.app, None,
                              {"channel": s["channel"], "plan": other_plan},
                              event_id=f"00000000-0000-4000-8000-{i:012d}"))
        extra.append(truth.Ev("segments", e.ts + timedelta(hours=1), install, e.app, None,
                              {"channel": "other", "plan": s["plan"], "team": s["team"]},
                              event_id=f"00000000-0000-4000-9000-{i:012d}"))
    evs = evs + extra
    wires = [_wire(e, segs[e.install]) for e in evs]
    random.Random(5).shuffle(wires)
    for i in range(0, len(wires), 200):
        status, payload = await server.post("/v1/batch", body(wires[i:i + 200]), headers())
        assert status == 200 and not payload["rejected"], payload
    await server.settle()
    return server, evs, segs


def _rows(server: Running, name: str, k: int = 0, **kw: Any) -> list[dict[str, Any]]:
    q = metrics.parse_query(name, SINCE, UNTIL, kw.pop("app", ""), **kw)
    return metrics.as_objects(*metrics.run(server.store, q, min_cell_installs=k))


def _subset(evs: list[truth.Ev], segs: dict[str, dict[str, str]], **want: str
            ) -> list[truth.Ev]:
    return [e for e in evs if all(segs[e.install][s] == v for s, v in want.items())]


def _tenure(evs: list[truth.Ev]) -> dict[str, str]:
    first: dict[str, Any] = {}
    for e in evs:
        d = e.ts.date()
        first[e.install] = min(first.get(e.install, d), d)
    return {i: "new" if d > truth.END - timedelta(days=7) else "experienced"
            for i, d in first.items()}


async def test_every_metric_by_segment_equals_the_metric_over_that_segments_installs(
    loaded: tuple[Running, list[truth.Ev], dict[str, dict[str, str]]],
) -> None:
    server, evs, segs = loaded
    tenure = _tenure(evs)
    for install, t in tenure.items():
        segs[install]["tenure"] = t
    checks: list[tuple[str, Callable[[Row], Any], Callable[[Row], Any],
                       Callable[[list[truth.Ev]], Any]]] = [
        ("dau", lambda r: (r["day"], r["app"]), lambda r: r["users"], truth.dau),
        ("wau", lambda r: (r["day"], r["app"]), lambda r: r["users"],
         lambda es: truth.window_users(es, 7)),
        ("mau", lambda r: (r["day"], r["app"]), lambda r: r["users"],
         lambda es: truth.window_users(es, 30)),
        ("feature_adoption", lambda r: (r["app"], r["feature"]),
         lambda r: {c: r[c] for c in ("users", "active_users", "adoption_rate", "uses")},
         truth.feature_adoption),
        ("feature_breadth", lambda r: r["app"],
         lambda r: {"active_users": r["active_users"],
                    "users_3plus_features": r["users_3plus_features"]},
         truth.feature_breadth),
        ("activation", lambda r: (r["day"], r["app"]),
         lambda r: [r["new_installs"], r["activated_installs"]], truth.activation),
        ("retention", lambda r: (r["cohort"], r["period"]),
         lambda r: (r["cohort_users"], r["retained_users"]), truth.retention),
        ("deployments", lambda r: (r["month"], r["app"]),
         lambda r: r["successful_production_deployments"], truth.deployments),
        ("nps", lambda r: r["period"],
         lambda r: {c: r[c] for c in ("responses", "promoters", "detractors", "nps")},
         truth.nps),
        ("lifecycle", lambda r: (r["period_start"], r["app"]),
         lambda r: {c: r[c] for c in ("new", "returning", "resurrecting", "dormant", "users")},
         lambda es: flows.lifecycle(es, "week")),
        ("active_days", lambda r: (r["period_start"], r["app"], r["days_active"]),
         lambda r: r["users"], lambda es: flows.active_days(es, "week")),
    ]
    for segment in ("channel", "plan", "platform", "tenure"):
        values = sorted({s[segment] for s in segs.values()})
        for name, key, val, compute in checks:
            rows = _rows(server, name, by=[segment])
            if name == "retention":
                rows = [r for r in rows if r["cohort"] != "all"]
            got: dict[str, dict[Any, Any]] = defaultdict(dict)
            for r in rows:
                got[r[segment]][key(r)] = val(r)
            for v in values:
                assert got.get(v, {}) == compute(_subset(evs, segs, **{segment: v})), \
                    (name, segment, v)
            assert set(got) <= set(values), (name, segment)

    # Sessions and crashes, jobs, performance samples, funnels: per channel.
    for v in CHANNELS:
        sub = _subset(evs, segs, channel=v)
        got_s = {(r["day"], r["app"]): r["sessions"]
                 for r in _rows(server, "crash_rate", where=[f"channel={v}"])}
        assert got_s == {k: x["sessions"] for k, x in truth.session_metrics(sub).items()}, v
        jobs = {r["job"]: r["started_users"] for r in _rows(server, "jobs", by=["channel"])
                if r["channel"] == v}
        assert jobs == {j: x["started_users"] for j, x in truth.jobs(sub).items()}, v
        perf = {(r["operation"], r["measure"]): r["samples"]
                for r in _rows(server, "performance", by=["channel"]) if r["channel"] == v}
        assert perf == {k: len(x) for k, x in truth.performance(sub).items()}, v
        steps = ["job_started", "job_completed"]
        funnel = [r["users"] for r in _rows(server, "funnel", by=["channel"], steps=steps)
                  if r["channel"] == v]
        assert funnel == (truth.funnel(sub, steps, 86_400) if sub else []), v

    # Two breakdowns, and filters: values of one segment are alternatives, different
    # segments must all match.
    rows = _rows(server, "dau", by=["plan", "team"])
    for plan in ("free", "paid"):
        for team in ("individual", "team"):
            cell = {(r["day"], r["app"]): r["users"] for r in rows
                    if r["plan"] == plan and r["team"] == team}
            assert cell == truth.dau(_subset(evs, segs, plan=plan, team=team))
    filtered = {(r["day"], r["app"]): r["users"] for r in
                _rows(server, "dau", where=["plan=paid", "channel=beta", "channel=organic"])}
    want = truth.dau([e for e in _subset(evs, segs, plan="paid")
                      if segs[e.install]["channel"] in ("beta", "organic")])
    assert filtered == want

    # Retention pooled per channel: the seed's table.
    rows = _rows(server, "retention", by=["channel"])
    for v in CHANNELS:
        pooled: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (_, period), (users, kept) in truth.retention(_subset(evs, segs, channel=v)).items():
            pooled[period][0] += users
            pooled[period][1] += kept
        got_all = {r["period"]: [r["cohort_users"], r["retained_users"]] for r in rows
                   if r["channel"] == v and r["cohort"] == "all"}
        assert got_all == dict(pooled), v


def _groups(rows: list[dict[str, Any]], metric: str, segment: str
            ) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[tuple(r[d] for d in DIMENSIONS[metric])].append(r)
    return out


async def test_small_cells_are_suppressed_and_never_recoverable_from_the_rest(
    loaded: tuple[Running, list[truth.Ev], dict[str, dict[str, str]]],
) -> None:
    server, _, _ = loaded
    k = 5
    suppressed_somewhere = 0
    for metric in POPULATION:
        if metric in metrics.UNSEGMENTED:
            continue  # no breakdown; their rows are suppressed like any other
        kw: dict[str, Any] = {"steps": ["job_started", "job_completed"]} \
            if metric == "funnel" else {}
        pop = POPULATION[metric]
        true_rows = _rows(server, metric, 0, by=["channel"], **kw)
        shown = _rows(server, metric, k, by=["channel"], **kw)
        assert len(shown) == len(true_rows), metric
        truth_of = {tuple(r[d] for d in (*DIMENSIONS[metric], "channel")): r[pop]
                    for r in true_rows}
        for r in shown:
            if r["suppressed"]:
                suppressed_somewhere += 1
                # Dimensions kept, every count and rate withheld.
                assert all(v is None for c, v in r.items()
                           if c not in (*DIMENSIONS[metric], "channel", "suppressed")), metric
            else:
                assert r[pop] >= k, (metric, r)
        # The answer without the breakdown is the sum of the cells: the suppressed
        # cells of a group are never one alone and together never fewer than k, or
        # else the group is all suppressed and so is its total.
        totals = {tuple(r[d] for d in DIMENSIONS[metric]): r["suppressed"]
                  for r in _rows(server, metric, k, **kw)}
        for dims, cells in _groups(shown, metric, "channel").items():
            if metric == "retention" and cells[0]["cohort"] == "all":
                continue
            hidden = [c for c in cells if c["suppressed"]]
            together = sum(truth_of[tuple(c[d] for d in (*DIMENSIONS[metric], "channel"))]
                           for c in hidden)
            if len(hidden) == len(cells) and together < k:
                assert totals.get(dims, True), (metric, cells)
            elif hidden:
                assert len(hidden) >= 2 and together >= k, (metric, cells)
        # A filtered answer: unfiltered minus filtered never singles out fewer than k.
        whole = {tuple(r[d] for d in DIMENSIONS[metric]): r[pop]
                 for r in _rows(server, metric, 0, **kw)}
        for r in _rows(server, metric, k, where=["channel=beta"], **kw):
            if not r["suppressed"]:
                rest = whole[tuple(r[d] for d in DIMENSIONS[metric])] - r[pop]
                assert rest == 0 or rest >= k, (metric, r)
    assert suppressed_somewhere > 20  # the dataset is small enough to exercise the rule


async def test_segments_over_http_and_the_command_line_with_clear_errors(
    loaded: tuple[Running, list[truth.Ev], dict[str, dict[str, str]]],
) -> None:
    server, evs, segs = loaded
    from tests.helpers import ADMIN_TOKEN

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    url = f"{server.url}/v1/metrics/dau?since={SINCE}&until={UNTIL}&by=channel&where=plan:paid"
    async with server.session.get(url, headers=admin) as resp:
        assert resp.status == 200
        rows = await resp.json()
    assert {"day", "app", "channel", "users"} <= set(rows[0])
    got = {(r["day"], r["app"], r["channel"]): r["users"] for r in rows}
    for v in CHANNELS:
        for (day, app), n in truth.dau(_subset(evs, segs, channel=v, plan="paid")).items():
            assert got[(day, app, v)] == n
    for query, reason in [
        ("by=colour", "unknown segment 'colour'"),
        ("by=channel&by=plan&by=team", "at most 2 segments"),
        ("by=plan&by=plan", "given twice"),
        ("where=plan:gold", "plan is one of free, paid, enterprise, unknown"),
        ("where=nonsense", "expected SEGMENT=VALUE"),
        ("where=platform:" + "x" * 70, "expected SEGMENT=VALUE"),
        ("where=platform:a%20b", "not a segment value"),
        ("&".join(["where=plan:free"] * 17), "at most 16 filters"),
    ]:
        async with server.session.get(f"{server.url}/v1/metrics/dau?{query}",
                                      headers=admin) as resp:
            assert resp.status == 400, query
            text = await resp.text()
            assert reason in text, (query, text)


async def test_a_deletion_request_erases_the_installs_segments(server: Running) -> None:
    from datetime import UTC, datetime

    from tests.helpers import event

    ts = datetime(2026, 10, 1, 9, tzinfo=UTC)
    keep, gone = "0b6f3c1e-2a44-4f0e-9d6b-8a1e2f3c4d5e", "7d1e0c5a-3b2f-4e6d-8a9b-0c1d2e3f4a5b"
    events = [event("segments", {"channel": "beta", "plan": "paid"}, ts=ts, install_id=i)
              for i in (keep, gone)]
    status, _ = await server.post("/v1/batch", body(events), headers())
    assert status == 200
    await server.settle()
    assert server.rows("SELECT uniqExact(install_hash) FROM agg_install_segments") == [(2,)]
    deletion = event("deletion_request", {}, ts=ts, install_id=gone, consent="off")
    status, _ = await server.post("/v1/batch", body([deletion]), headers())
    assert status == 200
    await server.settle(60)
    assert server.rows("SELECT uniqExact(install_hash) FROM agg_install_segments") == [(1,)]
    rows = _rows(server, "dau", by=["channel"])
    assert [(r["channel"], r["users"]) for r in rows] == [("beta", 1)]


async def test_installs_that_never_reported_a_segment_are_unknown(server: Running) -> None:
    from datetime import UTC, datetime

    from tests.helpers import event

    ts = datetime(2026, 10, 1, 9, tzinfo=UTC)
    told, silent = "0b6f3c1e-2a44-4f0e-9d6b-8a1e2f3c4d5e", "7d1e0c5a-3b2f-4e6d-8a9b-0c1d2e3f4a5b"
    events = [event("segments", {"plan": "paid"}, ts=ts, install_id=told),
              event("feature_used", {"feature": "search"}, ts=ts, install_id=silent)]
    status, _ = await server.post("/v1/batch", body(events), headers())
    assert status == 200
    await server.settle()
    by_plan = {r["plan"]: r["users"] for r in _rows(server, "dau", by=["plan"])}
    assert by_plan == {"paid": 1, "unknown": 1}
    assert [r["users"] for r in _rows(server, "dau", where=["plan=unknown"])] == [1]
    direct = server.store.query(
        "SELECT seg1, users FROM metric_dau_by(since = '2026-10-01', until = '2026-10-01',"
        " app = '', by = ['plan'], where = []) ORDER BY seg1")
    assert direct[1] == [("paid", 1), ("unknown", 1)]


def _segmented_views() -> list[tuple[str, str]]:
    """Each metric with a _by view, and the arguments of its plain form."""
    out = []
    for name in metrics.METRICS:
        if name in metrics.NOT_VIEWS or name in metrics.UNSEGMENTED:
            continue
        period = ", period = 'week'" if name in metrics.PERIOD_VIEWS else ""
        out.append((name, f"since = '{SINCE}', until = '{UNTIL}', app = ''{period}"))
    return out


async def test_each_plain_view_answers_as_its_by_view_without_reading_the_segments(
    loaded: tuple[Running, list[truth.Ev], dict[str, dict[str, str]]],
) -> None:
    """metric_<name> is derived from metric_<name>_by with the join taken out
    (storage/views.py): the same answer, without the cost of the join."""
    server, _, _ = loaded
    store = server.store
    checked = answered = 0
    for name, args in _segmented_views():
        plain = f"SELECT * FROM metric_{name}({args}) ORDER BY ALL"
        by = f"SELECT * FROM metric_{name}_by({args}, by = [], where = []) ORDER BY ALL"
        got = store.query(plain)
        assert got == store.query(by), name
        answered += bool(got[1])
        plan = "\n".join(str(r[0]) for r in store.query(f"EXPLAIN {plain}")[1])
        assert "agg_install_segments" not in plan, name
        by_plan = "\n".join(str(r[0]) for r in store.query(
            f"EXPLAIN {by.replace('by = []', 'by = [' + repr('channel') + ']')}")[1])
        assert "agg_install_segments" in by_plan, name
        checked += 1
    # Every view checked; the ones this data reaches (not experiments, builds) with rows.
    assert checked >= 16 and answered >= 14


async def test_each_by_segment_view_answers_as_its_by_view_for_one_segment(
    loaded: tuple[Running, list[truth.Ev], dict[str, dict[str, str]]],
) -> None:
    """metric_<name>_by_segment joins one segment's rows (metric_install_segment), the
    commonest breakdown, instead of every wanted segment folded per install: the same
    answer for one segment other than tenure, and a clear error for anything else."""
    server, _, _ = loaded
    store = server.store
    checked = answered = 0
    for name, args in _segmented_views():
        for segment in ("channel", "plan", "platform", "unreported"):
            one = f"SELECT * FROM metric_{name}_by_segment({args}, by = ['{segment}'])"
            got = store.query(one + " ORDER BY ALL")
            assert got == store.query(f"SELECT * FROM metric_{name}_by({args},"
                                      f" by = ['{segment}'], where = []) ORDER BY ALL"), \
                (name, segment)
            answered += bool(got[1])
        checked += 1
    assert checked >= 16 and answered >= 3 * 14
    for by in ("['tenure']", "['channel', 'plan']"):
        with pytest.raises(StorageError, match="one segment other than tenure"):
            store.query(f"SELECT * FROM metric_dau_by_segment(since = '{SINCE}',"
                        f" until = '{UNTIL}', app = '', by = {by})")
