"""Log lines: JSON (one object a line) or text, with the request id of the request
that logged them, and no secret in them.

The request id travels in a context variable set by middlewares.errors: aiohttp runs
each request in its own task, so every log call made while handling it (also in
threads started with asyncio.to_thread, which copies the context) sees it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quietly_collector.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("quietly_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
# Credentials that may reach a message by way of an exception or a caller's mistake:
# the value of an Authorization header or a bearer token, and keys the collector
# generates (qk_ write keys, qa_ admin tokens, see credentials.py).
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s,;'\"]+")
# Any scheme (Basic, Digest, a bare token): the scheme word and the credential after it.
_AUTHORIZATION = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!bearer\b)(?:[a-z]+ +)?[^\s,;'\"]+")
_GENERATED = re.compile(r"\bq[ka]_[A-Za-z0-9_-]{16,}")
_secrets: set[str] = set()


def register_secrets(settings: Settings) -> None:
    """Configured keys, tokens and the pseudonymization secret never appear in a log."""
    register_values([settings.admin_token, settings.pseudonym_secret,
                     *settings.write_keys.values(), *settings.read_keys.values()])


def register_values(values: Iterable[str]) -> None:
    # Kept after a key is revoked: an old key in a log is still a leak.
    _secrets.update(s for s in values if len(s) >= 8)


def redact(text: str) -> str:
    text = _BEARER.sub(r"\1 " + REDACTED, text)
    text = _AUTHORIZATION.sub(r"\1" + REDACTED, text)
    text = _GENERATED.sub(REDACTED, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            out["request_id"] = request_id
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        request_id = REQUEST_ID.get()
        return f"{text} (request {request_id})" if request_id is not None else text


def configure_logging(settings: Settings) -> None:
    """The root logger's one handler (stderr), formatted per ``log_format``."""
    register_secrets(settings)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
