"""``quietly``: run the collector, apply migrations, query or import events, gc."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quietly_collector import __version__
from quietly_collector.selfobs.logs import configure_logging
from quietly_collector.settings import (
    FIELDS,
    Settings,
    SettingsError,
    env_name,
    flag_name,
    load_settings,
)

# Options every command takes; the rest of the settings are for ``serve``.
_COMMON = ("data_dir", "clickhouse_url", "chdb_path", "database", "admin_token")


def _add_setting_flags(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    p.add_argument("--config", help="TOML config file (or QUIETLY_CONFIG)")
    for name in names:
        p.add_argument(
            flag_name(name),
            dest=name,
            default=None,
            metavar=name.split("_")[-1].upper(),
            help=f"(env {env_name(name)})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quietly", description="Quietly: privacy-first telemetry collector."
    )
    parser.add_argument("--version", action="version", version=f"quietly {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run the collector (default 127.0.0.1:8080, embedded store)"
    )
    _add_setting_flags(serve, FIELDS)
    mig = sub.add_parser("migrate", help="apply ClickHouse migrations (idempotent)")
    _add_setting_flags(mig, (
        *_COMMON, "retention_days", "rejected_retention_days", "aggregate_retention_days",
        "table_retention_days",
        "activation_event", "production_environments", "perf_thresholds",
    ))
    sql = sub.add_parser("sql", help="run read-only SQL against the stored events")
    sql.add_argument("query", help='e.g. "SELECT event, count() FROM events GROUP BY event"')
    sql.add_argument("--url", default=None,
                     help="collector to ask (default http://127.0.0.1:8080, env QUIETLY_URL)")
    sql.add_argument("--direct", action="store_true",
                     help="open the store directly instead of asking a running collector")
    sql.add_argument("--format", choices=("table", "json"), default="table")
    _add_setting_flags(sql, _COMMON)
    imp = sub.add_parser(
        "import", help="load local events files (JSONL, one event per line) into a collector"
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE",
                     help="JSONL, one wire event per line (.gz is read as gzip)")
    imp.add_argument("--url", default=None,
                     help="collector to send to (default http://127.0.0.1:8080, env QUIETLY_URL)")
    imp.add_argument("--write-key", default=None,
                     help="write key of the project (env QUIETLY_WRITE_KEY; default: the"
                     " development key in the data directory)")
    imp.add_argument("--batch-size", type=int, default=500, help="events per request")
    _add_setting_flags(imp, ("data_dir",))
    from quietly_collector.commands import query as query_cli

    _add_setting_flags(query_cli.add_parser(sub), _COMMON)
    from quietly_collector.commands import gc as gc_cli

    _add_setting_flags(gc_cli.add_parser(sub), (*_COMMON, "keys_file"))
    from quietly_collector.commands import simulate

    _add_setting_flags(simulate.add_parser(sub), ("data_dir",))
    from quietly_collector.commands import report as report_cli

    _add_setting_flags(report_cli.add_parser(sub), _COMMON)
    from quietly_collector.commands import alerts as alerts_cli

    for p in alerts_cli.add_parser(sub):
        _add_setting_flags(p, (*_COMMON, "alert_webhooks", "alert_link_base"))
    from quietly_collector.commands import cluster as cluster_cli

    _add_setting_flags(cluster_cli.add_parser(sub), (
        "retention_days", "rejected_retention_days", "aggregate_retention_days",
        "table_retention_days"))
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from quietly_collector.insights.alerts import rules

    overrides = {n: getattr(args, n) for n in FIELDS if getattr(args, n, None) is not None}
    settings = load_settings(args.config, overrides=overrides)
    rules.check(settings)  # the cross-checks settings.py cannot make on its own
    return settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)  # log_format: text or JSON lines, secrets redacted
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "import":
        return _import(args, settings)
    if args.command == "query":
        from quietly_collector.commands.query import run_query

        return run_query(args, settings)
    if args.command == "gc":
        from quietly_collector.commands.gc import run_gc_command

        return run_gc_command(args, settings)
    if args.command == "simulate":
        from quietly_collector.commands.simulate import run_simulate

        return run_simulate(args, settings)
    if args.command == "report":
        from quietly_collector.commands.report import run_report

        return run_report(args, settings)
    if args.command == "cluster-ddl":
        from quietly_collector.commands.cluster import run_cluster_ddl

        return run_cluster_ddl(args, settings)
    if args.command == "alerts":
        from quietly_collector.commands.alerts import run_alerts_command

        return run_alerts_command(args, settings)
    return _sql(args, settings)


def _serve(settings: Settings) -> int:
    from quietly_collector.access.credentials import load_credentials
    from quietly_collector.server.app import serve

    try:
        cred = load_credentials(settings)
    except ValueError as exc:  # a bad keys file or secret
        return _fatal(exc, settings)
    if cred.generated_write_key:
        state = "generated" if cred.generated_write_key_new else "reusing"
        print(
            f"quietly: no write keys configured; {state} a development key for project"
            f" 'default':\n\n    {cred.generated_write_key}\n\n"
            f"  (kept in {settings.data_path / 'dev-write-key'}). For real projects set"
            " QUIETLY_WRITE_KEYS='project_a=key1,project_b=key2' or [write_keys] in the"
            " --config file.",
            flush=True,
        )
    if cred.generated_admin_token and cred.generated_admin_token_new:
        print(
            f"quietly: admin token generated in {settings.data_path / 'admin-token'}"
            " (used by 'quietly sql'; set QUIETLY_ADMIN_TOKEN for your own).",
            flush=True,
        )
    store = (
        f"embedded ClickHouse in {settings.chdb_dir}"
        if settings.embedded
        else f"ClickHouse at {_redact(settings.clickhouse_url)}"
    )

    try:
        factory, loop_name = loop_factory(settings.event_loop)
    except SettingsError as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 2

    def ready(port: int) -> None:
        print(f"quietly: collector listening on http://{settings.host}:{port} ({store};"
              f" event loop {loop_name})", flush=True)

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(settings, ready))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        return _fatal(exc, settings)
    return 0


def loop_factory(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The event loop ``serve`` runs on (the event_loop setting), and its name."""
    if choice == "asyncio":
        return None, "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError(
                "event_loop: uvloop is not installed (pip install uvloop; it has no Windows"
                " build), or set event_loop to auto or asyncio"
            ) from None
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def _fatal(exc: Exception, settings: Settings) -> int:
    print(f"quietly: {exc}", file=sys.stderr)
    return 1


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _migrate(settings: Settings) -> int:
    from quietly_collector.storage.migrations import migrate
    from quietly_collector.storage.store import Store

    store = Store(settings)
    try:
        store.connect()
        applied = migrate(store, settings)
    except Exception as exc:
        return _fatal(exc, settings)
    finally:
        store.close()
    if applied:
        print("applied: " + ", ".join(applied))
    else:
        print(f"database {store.database} is up to date")
    return 0


def _sql(args: argparse.Namespace, settings: Settings) -> int:
    if args.direct or not settings.embedded:
        from quietly_collector.storage.sandbox.runner import Refused, SqlError
        from quietly_collector.storage.store import Store

        store = Store(settings)
        try:
            store.connect()
            # The same sandbox as /v1/sql: one SELECT, limited, read-only.
            columns, rows = store.sandbox.query(args.query)
        except Refused as exc:
            print(f"quietly: refused: {exc}", file=sys.stderr)
            return 1
        except SqlError as exc:
            print(f"quietly: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:
            return _fatal(exc, settings)
        finally:
            store.close()
        result: dict[str, Any] = {"columns": columns, "rows": [list(r) for r in rows]}
    else:
        got = _sql_over_http(args, settings)
        if isinstance(got, int):
            return got
        result = got
    if args.format == "json":
        print(json.dumps(result, default=str))
    else:
        _print_table(result["columns"], result["rows"])
    return 0


def _sql_over_http(args: argparse.Namespace, settings: Settings) -> dict[str, Any] | int:
    from quietly_collector.commands import client as admin_client

    got: dict[str, Any] | int = admin_client.call(
        args, settings, "/v1/sql", data=json.dumps({"sql": args.query}).encode(),
        timeout=60, content_type="application/json")
    return got


def _import(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from quietly_collector.access.credentials import DEV_KEY_FILE
    from quietly_collector.commands.importer import run_import

    url = args.url or os.environ.get("QUIETLY_URL") or "http://127.0.0.1:8080"
    key = args.write_key or os.environ.get("QUIETLY_WRITE_KEY")
    if not key:
        try:
            key = (settings.data_path / DEV_KEY_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            print("quietly: no write key: set QUIETLY_WRITE_KEY or --write-key", file=sys.stderr)
            return 2
    return run_import(args.files, url, key, args.batch_size, sys.stdout)


def _print_table(columns: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in columns]] + [[str(v) for v in r] for r in rows]
    widths = [min(60, max(len(row[i]) for row in cells)) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print("  ".join(v[:60].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
