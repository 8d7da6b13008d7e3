"""The "firing alerts" panel, from the alert engine's state (``alerts.state.firing``)."""

from __future__ import annotations

import logging
from datetime import datetime
from html import escape

from quietly_collector.insights.alerts.state import FiringAlert
from quietly_collector.insights.alerts.state import firing as read_firing
from quietly_collector.insights.dashboard.layout import panel
from quietly_collector.storage.store import StorageError, Store

log = logging.getLogger("quietly.dashboard")


def firing(store: Store) -> list[FiringAlert] | None:
    """Alerts firing now; None when the alert state cannot be read."""
    try:
        return read_firing(store)
    except StorageError as exc:
        # The rest of the page is still worth showing; the panel says what is missing.
        log.warning("dashboard: alert state unreadable: %s", exc)
        return None


def _num(v: float | None) -> str:
    return "\u2013" if v is None else f"{v:,.4g}"


def render(alerts: list[FiringAlert] | None) -> str:
    if alerts is None:
        return panel("Firing alerts", '<p class="empty">Alert state unavailable (see the'
                     " collector log).</p>", "alerts")
    if not alerts:
        return panel("Firing alerts", "<p>No alert is firing.</p>", "alerts none")
    rows = []
    for a in alerts:
        since = a.since.strftime("%Y-%m-%d %H:%M UTC") if isinstance(a.since, datetime) else ""
        rows.append(
            f'<tr><td><span class="sev sev-{escape(a.severity)}">{escape(a.severity)}</span></td>'
            f"<td>{escape(a.rule)}</td><td>{escape(a.scope or a.app or 'all apps')}</td>"
            f'<td class="n">{_num(a.value)}</td><td class="n">{_num(a.threshold)}</td>'
            f"<td>{escape(a.window)}</td><td>{escape(since)}</td>"
            f"<td><code>{escape(a.query)}</code></td></tr>")
    table = ('<table><tr><th>severity</th><th>rule</th><th>scope</th><th class="n">value</th>'
             '<th class="n">threshold</th><th>window</th><th>firing since</th>'
             f"<th>see the data</th></tr>{''.join(rows)}</table>")
    return panel(f"Firing alerts ({len(alerts)})", table, "alerts")


def scoped(project: str) -> str:
    return panel("Firing alerts", "<p>Alerts are evaluated over every project; sign in with"
                 f" the admin token to see them. This session reads project {escape(project)}"
                 " only.</p>", "alerts scoped")
