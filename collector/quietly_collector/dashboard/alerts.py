"""The "firing alerts" panel, from the alert engine's state (``alerts.state.firing``)."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from quietly_collector.dashboard.layout import panel
from quietly_collector.store import Store


def firing(store: Store) -> list[Any] | None:
    """Alerts firing now; None when the alert state cannot be read."""
    try:
        from quietly_collector.alerts.state import firing as read_firing
    except ImportError:  # a build without the alert engine
        return None
    try:
        return list(read_firing(store))
    except Exception:
        # No alert table yet, or storage trouble: the rest of the page is still worth showing.
        return None


def _num(v: Any) -> str:
    if v is None:
        return "\u2013"
    return f"{v:,.4g}" if isinstance(v, float) else escape(str(v))


def render(alerts: list[Any] | None) -> str:
    if alerts is None:
        return panel("Firing alerts", '<p class="empty">Alert state unavailable.</p>', "alerts")
    if not alerts:
        return panel("Firing alerts", "<p>No alert is firing.</p>", "alerts none")
    rows = []
    for a in alerts:
        sev = str(getattr(a, "severity", ""))
        since = getattr(a, "since", None)
        since_text = since.strftime("%Y-%m-%d %H:%M UTC") if isinstance(since, datetime) else ""
        scope = str(getattr(a, "scope", "") or getattr(a, "app", "") or "all")
        rows.append(
            f'<tr><td><span class="sev sev-{escape(sev)}">{escape(sev)}</span></td>'
            f"<td>{escape(str(getattr(a, 'rule', '')))}</td><td>{escape(scope)}</td>"
            f'<td class="n">{_num(getattr(a, "value", None))}</td>'
            f'<td class="n">{_num(getattr(a, "threshold", None))}</td>'
            f"<td>{escape(str(getattr(a, 'window', '')))}</td><td>{escape(since_text)}</td></tr>")
    table = ('<table><tr><th>severity</th><th>rule</th><th>scope</th><th class="n">value</th>'
             '<th class="n">threshold</th><th>window</th><th>firing since</th></tr>'
             f"{''.join(rows)}</table>")
    return panel(f"Firing alerts ({len(alerts)})", table, "alerts")
