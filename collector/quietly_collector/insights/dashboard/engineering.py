"""Engineering page: crash and error rates over time, build success, the performance
grade table, the ingestion warnings (events lost before storage, delivery.py)."""

from __future__ import annotations

from html import escape
from typing import Any

from quietly_collector.insights.dashboard import delivery
from quietly_collector.insights.dashboard.layout import panel
from quietly_collector.insights.dashboard.widgets import View, by_day, cards, points, ratio
from quietly_collector.insights.render import charts
from quietly_collector.insights.report import fmt
from quietly_collector.insights.report.details import GRADE_ORDER, version_key
from quietly_collector.insights.report.kpis import rows, summarize


def body(v: View) -> str:
    w, app, f = v.window, v.app, v.fetch
    keys = ("crashes_per_1000", "crash_free_sessions", "crash_free_users",
            "errors_per_session", "build_success")
    now = summarize(f, w, app, keys)
    top = cards(now, summarize(f, v.previous, app, keys), keys)
    crash = rows(f, "crash_rate", w, app)
    sums = by_day(crash, "sessions", "crashes", "crashed_sessions")
    errors = by_day([{**r, "errors": (r["errors_per_session"] or 0) * (r["sessions"] or 0)}
                     for r in crash], "errors", "sessions")
    free = [("sessions", points(sums, lambda s: 1 - s[2] / s[0] if s[0] else None)),
            ("users", _daily_mean(crash, "crash_free_users_rate"))]
    return "".join([
        top,
        '<div class="grid">',
        panel("Crashes per 1,000 sessions", charts.line(
            [("crashes / 1,000 sessions", points(sums, ratio(1, 0, 1000)))],
            label="crashes per 1,000 sessions per day")),
        panel("Crash-free sessions and users", charts.line(
            free, charts.percent, "crash-free sessions and users per day", lo=None)),
        panel("Errors per session", charts.line(
            [("errors / session", points(errors, ratio(0, 1)))], lambda x: f"{x:.2f}",
            "errors per session per day")),
        panel("Build success rate and p95 duration", builds(rows(f, "builds", w, app))),
        "</div>",
        panel("Performance grades", grades(rows(f, "performance", w, app))),
        panel("Ingestion warnings", delivery.warnings(rows(f, "delivery", w, app))),
    ])


def builds(rs: list[dict[str, Any]]) -> str:
    sums = by_day(rs, "successful_builds", "builds")
    if not sums:
        return '<p class="empty">No build_finished events in this period.</p>'
    p95 = _daily_mean(rs, "p95_duration_ms")
    return (charts.line([("success rate", points(sums, ratio(0, 1)))], charts.percent,
                        "build success rate per day", lo=None)
            + charts.line([("p95 duration (s)", [(d, None if x is None else x / 1000)
                                                  for d, x in p95])],
                          label="p95 build duration per day (seconds)"))


def _daily_mean(rs: list[dict[str, Any]], col: str) -> list[tuple[str, float | None]]:
    per: dict[str, list[float]] = {}
    for r in rs:
        if r.get(col) is not None:
            per.setdefault(str(r["day"])[:10], []).append(float(r[col]))
    return [(d, sum(x) / len(x)) for d, x in sorted(per.items())]


def grades(rs: list[dict[str, Any]]) -> str:
    rs = [r for r in rs if not r.get("suppressed")]  # too few installs behind them
    if not rs:
        return '<p class="empty">No performance samples in this period.</p>'
    counts = {g: 0 for g in GRADE_ORDER}
    for r in rs:
        counts[str(r["grade"])] = counts.get(str(r["grade"]), 0) + 1
    summary = " ".join(f'<span class="grade g-{escape(g)}">{escape(g)}: {n}</span>'
                       for g, n in counts.items() if n)
    # Operations together, newest version first: a regression shows as a worse grade on top.
    ordered = sorted(rs, key=lambda r: version_key(str(r["app_version"])), reverse=True)
    ordered = sorted(ordered, key=lambda r: (r["measure"] != "duration_ms", r["operation"],
                                             r["measure"]))
    out = [f"<p>{summary}</p><table><tr><th>operation</th><th>measure</th><th>version</th>"
           '<th class="n">samples</th><th class="n">p50</th><th class="n">p95</th>'
           '<th class="n">p99</th><th>grade (p95)</th></tr>']
    for r in ordered:
        unit = str(r["unit"] or "ms")
        out.append(
            f"<tr><td>{escape(str(r['operation']))}</td><td>{escape(str(r['measure']))}</td>"
            f"<td>{escape(str(r['app_version']))}</td>"
            f'<td class="n">{int(r["samples"]):,}</td>'
            + "".join(f'<td class="n">{escape(fmt.ms(r[c], unit))}</td>'
                      for c in ("p50_ms", "p95_ms", "p99_ms"))
            + f'<td><span class="grade g-{escape(str(r["grade"]))}">'
              f"{escape(str(r['grade']))}</span></td></tr>")
    return "".join(out) + ("</table><p class=\"sub\">Graded by p95 against"
                           " <code>perf_thresholds</code>: target, good, acceptable, poor,"
                           " unacceptable.</p>")
