"""Setting flags on subcommands: every setting is a flag, named after it."""

from __future__ import annotations

import argparse

from quietly_collector.settings import env_name, flag_name

# Options every command takes; the rest of the settings are for ``serve``.
COMMON = ("data_dir", "clickhouse_url", "chdb_path", "database", "admin_token")


def add_setting_flags(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    p.add_argument("--config", help="TOML config file (or QUIETLY_CONFIG)")
    for name in names:
        p.add_argument(
            flag_name(name),
            dest=name,
            default=None,
            metavar=name.split("_")[-1].upper(),
            help=f"(env {env_name(name)})",
        )


def fatal(exc: Exception) -> int:
    """One line, not a traceback: what the operator needs."""
    import sys

    print(f"quietly: {exc}", file=sys.stderr)
    return 1
