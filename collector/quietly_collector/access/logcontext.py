"""What a log line carries, and what it must never carry.

The request id travels in a context variable set by the errors middleware
(receivers/errors.py): aiohttp runs each request in its own task, so every log call
made while handling it (also in threads started with asyncio.to_thread, which copies
the context) sees it. Keys, tokens and the pseudonymization secret are registered
here and redacted from every line (selfobs/logs.py formats them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quietly_collector.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("quietly_request_id", default=None)
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
