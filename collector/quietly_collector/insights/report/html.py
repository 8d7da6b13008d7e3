"""The report as one self-contained HTML page (inline CSS and SVG, nothing fetched)."""

from __future__ import annotations

from html import escape

from quietly_collector.insights.render import charts
from quietly_collector.insights.render.style import CSS
from quietly_collector.insights.report import fmt, targets
from quietly_collector.insights.report.markdown import TITLES
from quietly_collector.insights.report.model import Report


def kpi_rows(r: Report) -> str:
    out, group = [], ""
    for c in r.kpis:
        if c.kpi.group != group:
            group = c.kpi.group
            out.append(f'<tr><th colspan="4">{escape(group)}</th></tr>')
        out.append(
            f"<tr><td>{escape(c.kpi.label)}</td>"
            f'<td class="n">{fmt.value(c.kpi.kind, c.current)}</td>'
            f'<td class="n">{fmt.value(c.kpi.kind, c.previous)}</td>'
            f'<td class="n {c.verdict}">{fmt.arrow(c)} {escape(fmt.change(c))}</td></tr>')
    return "".join(out)


def targets_table(rows: list[dict[str, object]]) -> str:
    """Each KPI against its target; the dashboard's executive page shows the same."""
    if not rows:
        return '<p class="empty">No targets: every KPI is turned off in [targets].</p>'
    verdict = {"on_track": "better", "off_track": "worse", "no_data": "same"}
    out = ['<table><tr><th>KPI</th><th>period</th><th class="n">current</th>'
           '<th class="n">target</th><th>status</th></tr>']
    for t in rows:
        kpi, period, current, target, status = (escape(c) for c in targets.cells(t))
        out.append(f'<tr class="target {escape(str(t["status"]))}"><td>{kpi}</td>'
                   f'<td>{period}</td><td class="n">{current}</td><td class="n">{target}</td>'
                   f'<td class="{verdict.get(str(t["status"]), "same")}">{status}</td></tr>')
    return "".join(out) + "</table>"


def perf_table(r: Report) -> str:
    if not r.performance:
        return '<p class="empty">No performance samples in this period.</p>'
    out = ['<table><tr><th>operation</th><th>measure</th><th>version</th>'
           '<th class="n">samples</th><th class="n">p50</th><th class="n">p95</th>'
           '<th>grade</th><th class="n">p95 change</th></tr>']
    for p in r.performance:
        unit = p.unit or "ms"
        out.append(
            f"<tr><td>{escape(p.operation)}</td><td>{escape(p.measure)}</td>"
            f"<td>{escape(p.version)}</td><td class=\"n\">{p.samples:,}</td>"
            f'<td class="n">{escape(fmt.ms(p.p50, unit))}</td>'
            f'<td class="n">{escape(fmt.ms(p.p95, unit))}</td>'
            f'<td><span class="grade g-{escape(p.grade)}">{escape(p.grade)}</span></td>'
            f'<td class="n">{fmt.pct_change(p.p95, p.previous_p95)}</td></tr>')
    return "".join(out) + "</table>"


def jobs_section(r: Report) -> str:
    if not r.jobs:
        return '<p class="empty">No jobs started in this period.</p>'
    out = []
    for j in r.jobs:
        first = j.funnel[0][1] if j.funnel else 0
        steps = "".join(
            f"<tr><td>{escape(step)}</td><td class=\"n\">{n:,}</td>"
            f"<td>{charts.hbar(n / first if first else None)}</td>"
            f'<td class="n">{fmt.rate(n / first if first else None)}</td></tr>'
            for step, n in j.funnel)
        trend = " → ".join(fmt.score(s) for s in j.satisfaction)
        out.append(
            f"<h3>{escape(j.job)}</h3><p>Completion rate <b>{fmt.rate(j.completion_rate)}</b>"
            f" (previous {fmt.rate(j.previous_rate)}): of {j.started:,} installs new to the"
            f" job that started it, {j.completed:,} completed it successfully. Funnel: every"
            " install that started the job in the period, and those that completed it within"
            " a day.</p>"
            f"<table><tr><th>funnel step</th><th class=\"n\">users</th><th></th>"
            f'<th class="n">of the first step</th></tr>{steps}</table>'
            f"<p>Satisfaction over the last {len(r.trend)} {r.period}s: {trend} "
            f"{charts.spark(j.satisfaction, 'satisfaction trend of ' + j.job)}</p>")
    return "".join(out)


def render(r: Report) -> str:
    scope = f" \u2013 app {escape(r.app)}" if r.app else ""
    scope += f" \u2013 installs with {escape(r.segment)}" if r.segment else ""
    title = f"{TITLES[r.period]} report: {r.current.label()}{scope}"
    adoption = "".join(
        f"<tr><td>{escape(a.feature)}</td><td class=\"n\">{a.users:,}</td>"
        f"<td>{charts.hbar(a.rate)}</td><td class=\"n\">{fmt.rate(a.rate)}</td>"
        f'<td class="n">{fmt.rate(a.previous)}</td></tr>' for a in r.adoption)
    adoption_html = (
        '<table><tr><th>feature</th><th class="n">users</th><th></th>'
        f'<th class="n">adoption</th><th class="n">previous</th></tr>{adoption}</table>'
        if r.adoption else '<p class="empty">No feature use in this period.</p>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{escape(title)}</h1>
<p class="sub">Compared with the previous {r.period}: {r.previous.label()}.
Generated {r.generated_at.isoformat()}.</p>
<section class="panel"><h2>KPIs</h2><table>
<tr><th>KPI</th><th class="n">this period</th><th class="n">previous</th>
<th class="n">change</th></tr>{kpi_rows(r)}</table></section>
<section class="panel"><h2>Targets</h2>
<p class="sub">Each KPI over its own period ending {r.current.until}, against the target
in force then ([targets] in the configuration).</p>{targets_table(r.targets)}</section>
<section class="panel"><h2>Feature adoption</h2>{adoption_html}</section>
<section class="panel"><h2>Performance grades</h2>
<p class="sub">Newest app version seen per operation; p95 change against the previous
period's newest version.</p>{perf_table(r)}</section>
<section class="panel"><h2>Jobs to be done</h2>{jobs_section(r)}</section>
</main></body></html>
"""
