"""``quietly gc``: one maintenance cycle now (maintenance.py).

With the embedded store the data directory belongs to the running collector, so
the command asks it (``POST /v1/admin/gc``, admin token), as ``quietly sql`` does.
``--direct`` runs the cycle itself: on a stopped embedded store, or on a
ClickHouse server (the default there).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from quietly_collector.settings import Settings


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "gc", help="expire rows past their retention now, re-check deletions, merge aggregates",
        description="Run one maintenance cycle now: rows past their table's TTL are removed,"
        " rows of deleted installs are searched for and removed, aggregate tables left in"
        " several parts are merged, failed mutations are cleared. Writes one audit_log row.",
    )
    p.add_argument("--url", help="collector URL (or QUIETLY_URL; default http://127.0.0.1:8080)")
    p.add_argument("--direct", action="store_true",
                   help="run on the store directly (a ClickHouse server, or no collector running)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return p


def run_gc_command(args: argparse.Namespace, settings: Settings) -> int:
    direct = args.direct or not settings.embedded
    got = _direct(settings) if direct else _over_http(args, settings)
    if isinstance(got, int):
        return got
    if args.format == "json":
        print(json.dumps(got))
        return 0
    expired = got["expired_rows"]
    strays = got["stray_rows_deleted"]
    print("expired rows removed: "
          + (", ".join(f"{t} {n}" for t, n in sorted(expired.items())) or "none"))
    print("rows of deleted installs removed: "
          + (", ".join(f"{t} {n}" for t, n in sorted(strays.items())) or "none"))
    merged = got.get("parts_compacted", {})  # an older collector does not report it
    print("aggregate parts merged away: "
          + (", ".join(f"{t} {n}" for t, n in sorted(merged.items())) or "none"))
    print(f"failed mutations cleared: {got['mutations_killed']}")
    print(f"took {got['seconds']} s")
    return 0


def _direct(settings: Settings) -> dict[str, Any] | int:
    from quietly_collector.storage import audit
    from quietly_collector.storage.maintenance import run_gc
    from quietly_collector.storage.store import Store

    store = Store(settings)
    try:
        store.connect()
        report = run_gc(store).as_json()
        store.append(audit.AUDIT_TABLE, audit.AUDIT_COLUMNS,
                     audit.encode([audit.entry("cli", "gc", report)]))
    except Exception as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return report


def _over_http(args: argparse.Namespace, settings: Settings) -> dict[str, Any] | int:
    from quietly_collector.commands import client as admin_client

    # A cycle on a large store can take minutes (it rewrites expired partitions).
    got: dict[str, Any] | int = admin_client.call(
        args, settings, "/v1/admin/gc", data=b"", method="POST", timeout=3600)
    return got
