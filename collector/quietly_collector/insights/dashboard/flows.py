"""Product page panels of issue 24: lifecycle, days active per week, the top paths from
the start of a session (a flow), and the running experiments."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from html import escape

from quietly_collector.insights.dashboard.layout import panel
from quietly_collector.insights.dashboard.widgets import SUPPRESSED, View, by_day, column, points
from quietly_collector.insights.render import charts, flows
from quietly_collector.insights.report import fmt
from quietly_collector.insights.report.fetch import Rows
from quietly_collector.insights.report.kpis import rows

PATH_START = "session_start"
PATH_STEPS, PATH_LIMIT = 4, 8
STATUSES = ("new", "returning", "resurrecting", "dormant")


def panels(v: View) -> str:
    w, app, f = v.window, v.app, v.fetch
    life = by_day(rows(f, "lifecycle", w, app), *STATUSES, key="period_start")
    days = rows(f, "active_days", w, app)
    got = rows(f, "paths", w, app, start=PATH_START, path_steps=PATH_STEPS, limit=PATH_LIMIT)
    return "".join([
        '<div class="grid">',
        panel("Lifecycle per week (installs)", charts.line(
            [(s, points(life, column(i))) for i, s in enumerate(STATUSES)],
            label="new, returning, resurrecting and dormant installs per week")),
        panel("Days active in the last full week", active_days(days, w.until)),
        "</div>",
        panel(f"Top paths from {PATH_START} ({PATH_STEPS} steps)", paths(got)),
        panel("Running experiments", experiments(rows(f, "experiments", w, app))),
    ])


def active_days(rs: Rows, until: date) -> str:
    if any(r.get("suppressed") for r in rs):
        return SUPPRESSED  # a histogram without its small bars would misstate the shares
    full = [str(r["period_start"]) for r in rs
            if date.fromisoformat(str(r["period_start"])[:10]) + timedelta(days=6) <= until]
    if not full:
        return '<p class="empty">No full week in this period.</p>'
    week = max(full)
    counts: dict[int, float] = defaultdict(float)
    for r in rs:
        if str(r["period_start"]) == week:
            counts[int(r["days_active"])] += float(r["users"] or 0)
    total = sum(counts.values())
    out = [f'<table><tr><th>days active (week of {escape(week[:10])})</th>'
           '<th class="n">installs</th><th></th><th class="n">share</th></tr>']
    for d in range(1, 8):
        n = counts.get(d, 0.0)
        out.append(f'<tr><td>{d}</td><td class="n">{int(n):,}</td>'
                   f"<td>{charts.hbar(n / total if total else None, charts.PALETTE[3])}</td>"
                   f'<td class="n">{fmt.rate(n / total if total else None)}</td></tr>')
    return "".join(out) + "</table>"


def paths(rs: Rows) -> str:
    if rs and all(r.get("suppressed") for r in rs if r["kind"] == "path"):
        return SUPPRESSED
    rs = [r for r in rs if not r.get("suppressed")]  # paths of too few installs
    top = [r for r in rs if r["kind"] == "path"]
    if not top:
        return '<p class="empty">No sessions in this period.</p>'
    chart = flows.flow([(str(r["path"]).split(" → "), int(r["sessions"])) for r in top],
                       "most common paths from the start of a session")
    out = ['<table><tr><th>path</th><th class="n">sessions</th><th class="n">installs</th>'
           '<th class="n">share</th></tr>']
    for r in top:
        out.append(f"<tr><td>{escape(str(r['path']))}</td>"
                   f'<td class="n">{int(r["sessions"]):,}</td>'
                   f'<td class="n">{int(r["users"]):,}</td>'
                   f'<td class="n">{fmt.rate(r["share"])}</td></tr>')
    ended = ", ".join(f"{escape(str(r['path']))}: {int(r['sessions']):,}"
                      for r in rs if r["kind"] == "drop_off")
    return chart + "".join(out) + "</table>" + (
        f'<p class="sub">Drop-off: {ended}.</p>' if ended else "")


def experiments(rs: Rows) -> str:
    rs = [r for r in rs if not r.get("suppressed")]  # too few installs exposed to show
    if not rs:
        return '<p class="empty">No experiment exposures in this period.</p>'
    out = ['<table><tr><th>experiment</th><th>app</th><th>variants</th>'
           '<th class="n">installs exposed</th><th>first exposure</th><th>last</th></tr>']
    for r in rs:
        out.append(f"<tr><td><b>{escape(str(r['experiment']))}</b></td>"
                   f"<td>{escape(str(r['app']))}</td><td>{escape(str(r['variants']))}</td>"
                   f'<td class="n">{int(r["exposed_users"]):,}</td>'
                   f"<td>{escape(str(r['first_exposure']))}</td>"
                   f"<td>{escape(str(r['last_exposure']))}</td></tr>")
    return "".join(out) + ("</table><p class=\"sub\">Results per variant: <code>quietly query"
                           " experiment --name NAME --goal EVENT</code>.</p>")
