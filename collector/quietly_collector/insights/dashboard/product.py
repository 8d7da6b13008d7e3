"""Product page: adoption, activation, funnels, jobs-to-be-done, satisfaction, lifecycle,
paths and experiments (flows.py)."""

from __future__ import annotations

from html import escape

from quietly_collector.insights.dashboard import flows
from quietly_collector.insights.dashboard.layout import panel
from quietly_collector.insights.dashboard.widgets import (
    SUPPRESSED,
    View,
    by_day,
    cards,
    column,
    points,
    ratio,
)
from quietly_collector.insights.render import charts
from quietly_collector.insights.report import details, fmt
from quietly_collector.insights.report.kpis import rows, summarize
from quietly_collector.insights.report.periods import trailing

# From first session to a finished job, each step within a day of the first.
PRODUCT_FUNNEL = ("session_start", "feature_used", "job_started", "job_completed")
TREND = 6  # windows in the satisfaction trend, the current one included


def body(v: View) -> str:
    w, app, f = v.window, v.app, v.fetch
    keys = ("activation", "breadth", "sessions", "session_minutes",
                              "sessions_per_user")
    now = summarize(f, w, app, keys)
    top = cards(now, summarize(f, v.previous, app, keys), keys)
    sessions = by_day(rows(f, "sessions", w, app), "sessions")
    activation = by_day(rows(f, "activation", w, app), "activated_installs", "new_installs")
    trend = trailing(w, TREND)
    jobs = details.jobs(f, trend, app)
    # Periods before the first answer would only stretch the x axis.
    first = min((i for j in jobs for i, s in enumerate(j.satisfaction) if s is not None),
                default=0)
    satisfaction = [(j.job, [(t.until.isoformat(), s) for t, s in
                             zip(trend[first:], j.satisfaction[first:], strict=True)])
                    for j in jobs]
    return "".join([
        top,
        '<div class="grid">',
        panel("Sessions per day", charts.line([("sessions", points(sessions, column(0)))],
                                              label="sessions per day")),
        panel("Activation rate of new installs per day", charts.line(
            [("activation", points(activation, ratio(0, 1)))], charts.percent,
            "activation rate per day")),
        "</div>",
        '<div class="grid">',
        panel("Feature adoption", adoption(details.adoption(f, w, v.previous, app))),
        panel("Funnel: first session to a finished job", funnel(v)),
        "</div>",
        flows.panels(v),
        panel("Jobs to be done", job_table(jobs, len(trend))),
        panel(f"Job satisfaction per {w.days}-day period (mean score, 1-10)", charts.line(
            satisfaction, lambda x: f"{x:.1f}", "job satisfaction over time", lo=None)),
    ])


def adoption(items: list[details.Adoption]) -> str:
    if not items:
        return '<p class="empty">No feature use in this period.</p>'
    out = ['<table><tr><th>feature</th><th class="n">users</th><th>adoption</th>'
           '<th class="n"></th><th class="n">previous</th></tr>']
    for a in items:
        out.append(f"<tr><td>{escape(a.feature)}</td><td class=\"n\">{a.users:,}</td>"
                   f"<td>{charts.hbar(a.rate)}</td><td class=\"n\">{fmt.rate(a.rate)}</td>"
                   f'<td class="n same">{fmt.rate(a.previous)}</td></tr>')
    return "".join(out) + "</table>"


def funnel(v: View) -> str:
    got = rows(v.fetch, "funnel", v.window, v.app, steps=PRODUCT_FUNNEL, window_s=86_400)
    if any(r.get("suppressed") for r in got):
        return SUPPRESSED
    first = int(got[0]["users"]) if got else 0
    if not first:
        return '<p class="empty">No sessions in this period.</p>'
    out = ['<table><tr><th>step</th><th class="n">users</th><th></th>'
           '<th class="n">from previous</th></tr>']
    for r in got:
        n = int(r["users"])
        out.append(f"<tr><td>{escape(str(r['step']))}</td><td class=\"n\">{n:,}</td>"
                   f"<td>{charts.hbar(n / first, charts.PALETTE[1])}</td>"
                   f'<td class="n">{fmt.rate(r["conversion_from_previous"])}</td></tr>')
    return "".join(out) + "</table><p class=\"sub\">Installs reaching each step in order," \
        " within a day of their first session in the period.</p>"


def job_table(jobs: list[details.Job], n: int) -> str:
    if not jobs:
        return '<p class="empty">No jobs started in this period.</p>'
    out = ['<table><tr><th>job</th><th>started → completed (within a day)</th>'
           '<th class="n">completion rate</th><th class="n">previous</th>'
           f'<th class="n">satisfaction</th><th>last {n} periods</th></tr>']
    for j in jobs:
        first = j.funnel[0][1] if j.funnel else 0
        steps = "<br>".join(
            f"{charts.hbar(c / first if first else None, charts.PALETTE[2])} {s}: {c:,}"
            for s, c in j.funnel)
        out.append(
            f"<tr><td><b>{escape(j.job)}</b></td><td>{steps}</td>"
            f'<td class="n">{fmt.rate(j.completion_rate)}</td>'
            f'<td class="n same">{fmt.rate(j.previous_rate)}</td>'
            f'<td class="n">{fmt.score(j.satisfaction[-1] if j.satisfaction else None)}</td>'
            f"<td>{charts.spark(j.satisfaction, 'satisfaction of ' + j.job)}</td></tr>")
    return "".join(out) + ("</table><p class=\"sub\">Funnel: every install that started the"
                           " job in the period, and those that completed it within a day."
                           " Completion rate: of the installs new to the job in the period"
                           " that started it, those that completed it successfully.</p>")
