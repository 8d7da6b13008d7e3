"""``quietly serve``: run the collector."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from quietly_collector.commands.flags import add_setting_flags, fatal
from quietly_collector.settings import FIELDS, Settings, SettingsError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the collector (default 127.0.0.1:8080, embedded store)")
    add_setting_flags(p, FIELDS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from quietly_collector.access.credentials import load_credentials
    from quietly_collector.server.app import serve

    try:
        cred = load_credentials(settings)
    except ValueError as exc:  # a bad keys file or secret
        return fatal(exc)
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
        return fatal(exc)
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
