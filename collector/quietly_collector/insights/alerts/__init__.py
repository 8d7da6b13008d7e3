"""Alerts on the product metrics (docs/alerts.md).

- ``rules``: the rule shape (``[[alert_rules]]`` in the TOML config) and the defaults.
- ``evaluate``: a rule read through the metric views, one ``Observation`` per scope.
- ``state``: ok → pending → firing → resolved per rule and scope, kept in ClickHouse
  (``alert_state``, ``alert_history``; migration 0010).
- ``notify``: webhooks (JSON, Slack-compatible ``text``), retried, outcomes recorded.
- ``scheduler``: ``check`` (one evaluation) and the collector's background task.
- ``cli``: ``quietly alerts list|check``.

For reports and the dashboard, the alerts firing now::

    from quietly_collector.insights.alerts.state import firing
    for a in firing(store):  # list[FiringAlert], critical first
        a.rule, a.scope, a.app, a.severity, a.value, a.threshold, a.since, a.window, a.query

``value`` is what the threshold is compared with (for a relative rule, the change in
percent or points); ``since`` is when the alert started firing (UTC). Blocking: call
it in a thread from async code. Empty before the first evaluation.
"""
