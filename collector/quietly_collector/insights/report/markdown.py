"""The report as Markdown: headings and tables, readable as plain text too."""

from __future__ import annotations

from quietly_collector.insights.report import fmt, targets
from quietly_collector.insights.report.model import Report

TITLES = {"day": "Daily", "week": "Weekly", "month": "Monthly"}


def _cell(text: str) -> str:
    # A name from the events must not break (or inject into) the table.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render(r: Report) -> str:
    scope = f" \u2013 app {_cell(r.app)}" if r.app else ""
    scope += f" \u2013 installs with {_cell(r.segment)}" if r.segment else ""
    out = [
        f"# {TITLES[r.period]} report: {r.current.label()}{scope}",
        "",
        f"Compared with the previous {r.period}: {r.previous.label()}."
        f" Generated {r.generated_at.isoformat()}.",
        "",
    ]
    group = ""
    for c in r.kpis:
        if c.kpi.group != group:
            group = c.kpi.group
            out += ["", f"## {group}", "", "| KPI | this period | previous | change |",
                    "|---|---:|---:|---:|"]
        out.append(f"| {c.kpi.label} | {fmt.value(c.kpi.kind, c.current)} |"
                   f" {fmt.value(c.kpi.kind, c.previous)} | {fmt.arrow(c)} {fmt.change(c)} |")

    out += ["", "## Targets", "", f"Each KPI over its own period ending {r.current.until},"
            " against the target in force then ([targets] in the configuration).", "",
            "| KPI | period | current | target | status |", "|---|---|---:|---:|---|"]
    out += ["| " + " | ".join(_cell(c) for c in targets.cells(t)) + " |" for t in r.targets]

    out += ["", "## Feature adoption", ""]
    if r.adoption:
        out += ["| feature | users | adoption | previous |", "|---|---:|---:|---:|"]
        out += [f"| {_cell(a.feature)} | {a.users:,} | {fmt.rate(a.rate)} |"
                f" {fmt.rate(a.previous)} |" for a in r.adoption]
    else:
        out.append("No feature use in this period.")

    out += ["", "## Performance grades", ""]
    if r.performance:
        out += ["Newest app version seen per operation; p95 change against the previous"
                " period's newest version.", "",
                "| operation | measure | version | samples | p50 | p95 | grade | p95 change |",
                "|---|---|---|---:|---:|---:|---|---:|"]
        for p in r.performance:
            unit = p.unit or "ms"
            out.append(f"| {_cell(p.operation)} | {p.measure} | {_cell(p.version)} |"
                       f" {p.samples:,} | {fmt.ms(p.p50, unit)} | {fmt.ms(p.p95, unit)} |"
                       f" {p.grade} | {fmt.pct_change(p.p95, p.previous_p95)} |")
    else:
        out.append("No performance samples in this period.")

    out += ["", "## Jobs to be done", ""]
    if not r.jobs:
        out.append("No jobs started in this period.")
    trend = " → ".join(w.label() for w in r.trend)
    for j in r.jobs:
        out += [f"### {_cell(j.job)}", "",
                f"Completion rate {fmt.rate(j.completion_rate)} (previous"
                f" {fmt.rate(j.previous_rate)}): of {j.started:,} installs new to the job"
                f" that started it, {j.completed:,} completed it successfully.", "",
                "Funnel: every install that started the job in the period, and those that"
                " completed it within a day.", "",
                "| funnel step | users | of the first step |", "|---|---:|---:|"]
        first = j.funnel[0][1] if j.funnel else 0
        out += [f"| {step} | {n:,} | {fmt.rate(n / first if first else None)} |"
                for step, n in j.funnel]
        values = " → ".join(fmt.score(s) for s in j.satisfaction)
        out += ["", f"Satisfaction (mean score, 1-10) over the last {len(r.trend)}"
                f" {r.period}s: {values}", f"<sub>{trend}</sub>", ""]
    return "\n".join(out).rstrip() + "\n"
