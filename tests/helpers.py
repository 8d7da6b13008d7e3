"""Builders for events and batches used across tests."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

WRITE_KEY = "test-write-key-0123456789"
OTHER_KEY = "other-write-key-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
INSTALL = "0b6f3c1e-2a44-4f0e-9d6b-8a1e2f3c4d5e"


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def event(
    name: str = "feature_used",
    props: dict[str, Any] | None = None,
    *,
    event_id: str | None = None,
    ts: datetime | None = None,
    install_id: str = INSTALL,
    consent: str = "basic",
    **extra: Any,
) -> dict[str, Any]:
    if props is None:
        props = {"feature": "debugging", "duration_ms": 1234, "success": True}
    ev: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()),
        "event": name,
        "ts": rfc3339(ts or now() - timedelta(seconds=1)),
        "install_id": install_id,
        "session_id": str(uuid.uuid4()),
        "context": {"app": "my-ide", "app_version": "1.4.2", "os": "linux", "consent": consent},
        "props": props,
    }
    ev.update(extra)
    return ev


def batch(events: list[dict[str, Any]], sent_at: datetime | None = None) -> dict[str, Any]:
    return {"sent_at": rfc3339(sent_at or now()), "events": events}


def body(events: list[dict[str, Any]], *, gz: bool = False) -> bytes:
    data = json.dumps(batch(events)).encode()
    return gzip.compress(data) if gz else data


def headers(key: str = WRITE_KEY, *, gz: bool = False) -> dict[str, str]:
    h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if gz:
        h["Content-Encoding"] = "gzip"
    return h
