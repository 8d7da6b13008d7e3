"""One pseudonym secret per store: collectors over one ClickHouse server must hash an
install alike, or the metrics count it once per secret. Each collector that did
not get ``pseudonym_secret`` generates its own, so the first one to start records a
fingerprint of its secret (an HMAC of a fixed text under it: it reveals nothing of
the secret), and a collector with another refuses to start."""

from __future__ import annotations

import hashlib
import hmac

from quietly_collector.storage.store import Store

_TEXT = b"quietly pseudonym key fingerprint v1"


class SecretMismatch(Exception):
    """Not a StorageError: start-up must stop, not retry."""


def fingerprint(secret: bytes) -> str:
    return hmac.new(secret, _TEXT, hashlib.sha256).hexdigest()[:32]


def check_secret(store: Store, secret: bytes, holder: str) -> None:
    """Record this secret's fingerprint if none is; refuse if another one is."""
    mine = fingerprint(secret)
    _, rows = store.query("SELECT DISTINCT fingerprint FROM pseudonym_keys")
    known = {str(r[0]) for r in rows}
    if not known:
        store.command("INSERT INTO pseudonym_keys (fingerprint, holder, at) VALUES"
                      f" ('{mine}', {_quote(holder)}, now64(3))")
    elif mine not in known:
        raise SecretMismatch(
            f"database {store.database} was written with another pseudonym secret: every"
            " collector of one store needs the same pseudonym_secret (QUIETLY_PSEUDONYM_SECRET),"
            " or each install is counted once per secret (docs/operations.md)")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
