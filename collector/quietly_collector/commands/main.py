"""``quietly``: the command line. One module per subcommand, each with ``add_parser``
and ``run``; this one parses, loads the settings and dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from quietly_collector import __version__
from quietly_collector.commands import (
    alerts,
    cluster,
    gc,
    importer,
    migrate,
    query,
    report,
    serve,
    simulate,
    sql,
)
from quietly_collector.commands.flags import COMMON, add_setting_flags
from quietly_collector.commands.serve import loop_factory
from quietly_collector.selfobs.logs import configure_logging
from quietly_collector.settings import FIELDS, Settings, SettingsError, load_settings

Run = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, Run] = {
    "serve": serve.run,
    "migrate": migrate.run,
    "sql": sql.run,
    "import": importer.run,
    "query": query.run_query,
    "gc": gc.run_gc_command,
    "simulate": simulate.run_simulate,
    "report": report.run_report,
    "cluster-ddl": cluster.run_cluster_ddl,
    "alerts": alerts.run_alerts_command,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quietly", description="Quietly: privacy-first telemetry collector."
    )
    parser.add_argument("--version", action="version", version=f"quietly {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    migrate.add_parser(sub)
    sql.add_parser(sub)
    importer.add_parser(sub)
    add_setting_flags(query.add_parser(sub), COMMON)
    add_setting_flags(gc.add_parser(sub), (*COMMON, "keys_file"))
    add_setting_flags(simulate.add_parser(sub), ("data_dir",))
    add_setting_flags(report.add_parser(sub), COMMON)
    for p in alerts.add_parser(sub):
        add_setting_flags(p, (*COMMON, "alert_webhooks", "alert_link_base"))
    add_setting_flags(cluster.add_parser(sub), (
        "retention_days", "rejected_retention_days", "aggregate_retention_days",
        "table_retention_days"))
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from quietly_collector.insights.alerts import rules
    from quietly_collector.insights.report import target_plan

    overrides = {n: getattr(args, n) for n in FIELDS if getattr(args, n, None) is not None}
    settings = load_settings(args.config, overrides=overrides)
    rules.check(settings)  # the cross-checks settings.py cannot make on its own
    target_plan.check(settings)
    return settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)  # log_format: text or JSON lines, secrets redacted
    return COMMANDS[args.command](args, settings)


__all__ = ["build_parser", "loop_factory", "main"]
