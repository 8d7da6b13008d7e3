"""``quietly sql``: one SELECT in the sandbox, through the running collector or on the
store directly."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from quietly_collector.commands.flags import COMMON, add_setting_flags, fatal
from quietly_collector.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sql", help="run read-only SQL against the stored events")
    p.add_argument("query", help='e.g. "SELECT event, count() FROM events GROUP BY event"')
    p.add_argument("--url", default=None,
                   help="collector to ask (default http://127.0.0.1:8080, env QUIETLY_URL)")
    p.add_argument("--direct", action="store_true",
                   help="open the store directly instead of asking a running collector")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_setting_flags(p, COMMON)


def run(args: argparse.Namespace, settings: Settings) -> int:
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
            return fatal(exc)
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
        print_table(result["columns"], result["rows"])
    return 0


def _sql_over_http(args: argparse.Namespace, settings: Settings) -> dict[str, Any] | int:
    from quietly_collector.commands import client as admin_client

    got: dict[str, Any] | int = admin_client.call(
        args, settings, "/v1/sql", data=json.dumps({"sql": args.query}).encode(),
        timeout=60, content_type="application/json")
    return got


def print_table(columns: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in columns]] + [[str(v) for v in r] for r in rows]
    widths = [min(60, max(len(row[i]) for row in cells)) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print("  ".join(v[:60].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
