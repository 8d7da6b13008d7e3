"""``quietly cluster-ddl``: print the ClickHouse cluster schema (cluster_ddl.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from quietly_collector.settings import Settings


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "cluster-ddl", help="print the ClickHouse cluster variant of every migration",
        description="Print the scale-out schema: Replicated*MergeTree local tables, Distributed"
        " tables under the single-node names, views and materialized views, ON CLUSTER, and the"
        " retention TTLs from the settings. Apply it once with"
        " `clickhouse-client --multiquery < cluster.sql` (docs/operations.md).",
    )
    p.add_argument("--cluster", required=True, help="cluster name in the servers' remote_servers")
    p.add_argument("--database", dest="cluster_database", default="quietly",
                   help="database to create (default quietly)")
    p.add_argument("--after", type=int, default=0, metavar="VERSION",
                   help="only migrations after this version (an upgrade)")
    return p


def run_cluster_ddl(args: argparse.Namespace, settings: Settings) -> int:
    from quietly_collector.storage.cluster_ddl import (
        cluster_statements,
        render,
        retention_statements,
    )

    try:
        statements = cluster_statements(args.cluster, args.cluster_database, args.after)
    except ValueError as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 2
    statements += retention_statements(args.cluster, args.cluster_database, settings)
    sys.stdout.write(render(statements))
    return 0
