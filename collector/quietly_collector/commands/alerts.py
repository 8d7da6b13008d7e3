"""``quietly alerts list`` (the rules in effect) and ``quietly alerts check`` (one
evaluation; exit status 1 when a critical rule fires, for cron or CI).

With the embedded store ``check`` asks the running collector
(``POST /v1/admin/alerts/check``, admin token), which evaluates with its own rules;
``--direct`` (a ClickHouse server, or no collector running) evaluates here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from quietly_collector.insights.alerts.rules import effective_rules
from quietly_collector.settings import Settings


def add_parser(sub: Any) -> list[argparse.ArgumentParser]:
    p: argparse.ArgumentParser = sub.add_parser(
        "alerts", help="list alert rules, or evaluate them once (docs/alerts.md)")
    cmds = p.add_subparsers(dest="alerts_command", required=True)
    ls = cmds.add_parser("list", help="the rules in effect: defaults and the config's")
    chk = cmds.add_parser(
        "check", help="evaluate every rule once, print what fires (exit 1: critical firing)",
        description="Evaluate every rule once: states are stored and changes notified, as"
        " the collector's scheduler does. Exit status 1 when a critical rule fires.")
    chk.add_argument("--url", help="collector URL (or QUIETLY_URL; default"
                     " http://127.0.0.1:8080)")
    chk.add_argument("--direct", action="store_true",
                     help="evaluate on the store directly (a ClickHouse server, or no"
                     " collector running)")
    for q in (ls, chk):
        q.add_argument("--format", choices=("text", "json"), default="text")
    return [ls, chk]


def run_alerts_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.alerts_command == "list":
        return _list(settings, args.format)
    got = _direct(settings) if args.direct or not settings.embedded else _over_http(
        args, settings)
    if isinstance(got, int):
        return got
    if args.format == "json":
        print(json.dumps(got))
    else:
        _print_check(got)
    critical = [a for a in got if a["state"] == "firing" and a["severity"] == "critical"]
    return 1 if critical else 0


def _list(settings: Settings, fmt: str) -> int:
    rules = effective_rules(settings.alert_rules)
    if fmt == "json":
        import msgspec

        print(msgspec.json.encode(rules).decode())
        return 0
    for r in rules:
        extra = f", for {r.for_}" if r.for_s else ""
        where = "".join(f" {k}={v}" for k, v in r.where.items())
        print(f"{r.name} [{r.severity}]: {r.metric}{where}: {r.condition()}"
              f" (window {r.window}{', full days' if r.complete_days else ''},"
              f" min samples {r.min_samples}{extra})")
        if r.description:
            print(f"    {r.description}")
    return 0


def _direct(settings: Settings) -> list[dict[str, Any]] | int:
    from quietly_collector.insights.alerts.scheduler import check
    from quietly_collector.storage.migrations import migrate
    from quietly_collector.storage.store import Store

    store = Store(settings)
    try:
        store.connect()
        migrate(store, settings)  # the alert tables may be newer than the store
        results = asyncio.run(check(store, settings))
    except Exception as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return [r.as_json() for r in results]


def _over_http(args: argparse.Namespace, settings: Settings) -> list[dict[str, Any]] | int:
    from quietly_collector.commands import client as admin_client

    got = admin_client.call(args, settings, "/v1/admin/alerts/check", data=b"",
                            method="POST", timeout=600)
    if isinstance(got, int):
        return got
    alerts: list[dict[str, Any]] = got["alerts"]
    return alerts


def _print_check(alerts: list[dict[str, Any]]) -> None:
    shown = [a for a in alerts if a["state"] != "ok" or a["previous_state"] != "ok"]
    order = {"firing": 0, "pending": 1, "resolved": 2, "ok": 3}
    shown.sort(key=lambda a: (order[a["state"]], a["severity"] != "critical", a["rule"]))
    for a in shown:
        value = "n/a" if a["value"] is None else f"{a['value']:g}"
        change = "" if a["state"] == a["previous_state"] else f" (was {a['previous_state']})"
        print(f"{a['state'].upper():8} [{a['severity']}] {a['rule']} {a['scope']}: value {value},"
              f" threshold {a['threshold']:g}, window {a['window']}, samples"
              f" {a['samples']}{change}\n         {a['query']}")
    firing = sum(a["state"] == "firing" for a in alerts)
    quiet = sum(a["state"] == "ok" and not a["enough_samples"] for a in alerts)
    print(f"{len(alerts)} rule scope(s) evaluated: {firing} firing"
          + (f", {quiet} below their minimum sample size" if quiet else ""))
