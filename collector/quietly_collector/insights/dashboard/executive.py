"""Executive page: active users, stickiness, retention, NPS, deployments, targets."""

from __future__ import annotations

from datetime import timedelta
from html import escape

from quietly_collector.insights.dashboard.layout import panel
from quietly_collector.insights.dashboard.widgets import (
    View,
    by_day,
    cards,
    column,
    month,
    points,
    ratio,
)
from quietly_collector.insights.render import charts
from quietly_collector.insights.report.html import targets_table
from quietly_collector.insights.report.kpis import rows, summarize
from quietly_collector.insights.report.periods import Window

PERIODS = ("month_1", "month_2", "month_3", "month_6", "month_12", "day_30", "day_90")


def year(v: View) -> Window:
    """The 12 calendar months ending with the window's: for monthly figures."""
    start = (v.window.until.replace(day=1) - timedelta(days=335)).replace(day=1)
    return Window(start, v.window.until)


def body(v: View) -> str:
    w, app, f = v.window, v.app, v.fetch
    keys = ("dau", "wau", "mau", "stickiness", "retention_30d", "nps",
                              "deployments")
    now = summarize(f, w, app, keys)
    top = cards(now, summarize(f, v.previous, app, keys), keys)
    active = [
        ("DAU", points(by_day(rows(f, "dau", w, app), "users"), column(0))),
        ("WAU", points(by_day(rows(f, "wau", w, app), "users"), column(0))),
        ("MAU", points(by_day(rows(f, "mau", w, app), "users"), column(0))),
    ]
    sticky = points(by_day(rows(f, "stickiness", w, app), "dau", "mau"), ratio(0, 1))
    months = year(v)
    nps = [(month(r["period"]), r["nps"]) for r in rows(f, "nps", months, app)]
    deploys = by_day(rows(f, "deployments", months, app), "successful_production_deployments",
                     key="month")
    return "".join([
        top,
        '<div class="grid">',
        panel("Active users per day", charts.line(active, label="DAU, WAU and MAU per day")),
        panel("Stickiness (DAU / MAU)", charts.line([("stickiness", sticky)], charts.percent,
                                                     "stickiness per day")),
        panel("Net promoter score per month", charts.bars(
            nps, lambda x: f"{x:+.0f}", "NPS per month", charts.PALETTE[1])),
        panel("Successful production deployments per month", charts.bars(
            [(d[:7], s[0]) for d, s in deploys.items()], label="deployments per month",
            color=charts.PALETTE[3])),
        "</div>",
        # Each KPI's own period ends today, whatever the page's window.
        panel("Targets", f'<p class="sub">Each KPI over its own period ending {w.until},'
              " against its target ([targets] in the configuration).</p>"
              + targets_table(rows(f, "targets", Window(w.until, w.until), app)), "targets"),
        panel("Retention by monthly cohort", retention(v)),
    ])


def retention(v: View) -> str:
    cohorts = Window(year(v).since, v.window.until)
    got = rows(v.fetch, "retention", cohorts, v.app)
    table: dict[str, dict[str, tuple[float | None, int]]] = {}
    size: dict[str, int] = {}
    for r in got:
        if r.get("suppressed"):
            continue  # a cohort of too few installs is not shown
        c = month(r["cohort"])
        table.setdefault(c, {})[r["period"]] = (r["rate"], int(r["retained_users"] or 0))
        size[c] = int(r["cohort_users"] or 0)
    if not table:
        return ('<p class="empty">No cohort has reached its first month yet (a cohort is the'
                " month of an install's first event).</p>")
    head = "".join(f'<th class="n">{p.replace("_", " ")}</th>' for p in PERIODS)
    out = [f'<table><tr><th>cohort</th><th class="n">installs</th>{head}</tr>']
    for c in sorted(table):
        cells = []
        for p in PERIODS:
            rate, kept = table[c].get(p, (None, 0))
            if rate is None:
                cells.append('<td class="n same">\u2013</td>')
                continue
            # Darker is better retained: the table reads as a heat map.
            cells.append(f'<td class="n" style="background:rgba(37,99,235,{0.08 + 0.5 * rate:.2f})"'
                         f' title="{kept} of {size[c]}">{100 * rate:.0f}%</td>')
        out.append(f"<tr><td>{escape(c)}</td><td class=\"n\">{size[c]:,}</td>{''.join(cells)}</tr>")
    return "".join(out) + ("</table><p class=\"sub\">month k: active in the k-th calendar month"
                           " after the cohort's; day N: active again N or more days after the"
                           " first day. Only periods already over are shown.</p>")
