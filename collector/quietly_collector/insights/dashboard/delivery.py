"""The engineering page's ingestion-warnings panel: the loss account (metric
``delivery``) over the window, per app: what SDKs dropped before sending and the
collector refused, by reason, against what was stored."""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import Any


def _totals(rs: list[dict[str, Any]]) -> dict[str, tuple[Counter[str], Counter[str], int]]:
    per: dict[str, tuple[Counter[str], Counter[str], int]] = {}
    for r in rs:
        sdk, refused, stored = per.get(str(r["app"]), (Counter(), Counter(), 0))
        sdk.update({str(k): int(v) for k, v in (r.get("sdk_dropped") or {}).items()})
        refused.update({str(k): int(v) for k, v in (r.get("collector_rejected") or {}).items()})
        per[str(r["app"])] = (sdk, refused, stored + int(r.get("stored") or 0))
    return per


def _reasons(c: Counter[str]) -> str:
    if not c:
        return '<span class="sub">none</span>'
    return ", ".join(f"{escape(k)} {n:,}" for k, n in c.most_common())


def warnings(rs: list[dict[str, Any]]) -> str:
    per = _totals(rs)
    lost_any = any(sum(s.values()) + sum(r.values()) for s, r, _ in per.values())
    if not lost_any:
        return '<p class="empty">No event was dropped or refused in this period.</p>'
    out = ['<table><tr><th>app</th><th class="n">stored</th><th class="n">lost</th>'
           '<th class="n">lost share</th><th>dropped by SDKs</th>'
           "<th>refused by the collector</th></tr>"]
    ordered = sorted(per.items(), key=lambda kv: -(sum(kv[1][0].values()) + sum(kv[1][1].values())))
    for app, (sdk, refused, stored) in ordered:
        lost = sum(sdk.values()) + sum(refused.values())
        share = f"{100 * lost / (lost + stored):.2f}%" if lost + stored else "-"
        out.append(f"<tr><td>{escape(app or '(none)')}</td><td class=\"n\">{stored:,}</td>"
                   f'<td class="n">{lost:,}</td><td class="n">{share}</td>'
                   f"<td>{_reasons(sdk)}</td><td>{_reasons(refused)}</td></tr>")
    return "".join(out) + ("</table><p class=\"sub\">SDK drops as their <code>client_report</code>"
                           " events said; refusals from <code>rejected_events</code>."
                           " <code>quietly query delivery</code> has them per day.</p>")
