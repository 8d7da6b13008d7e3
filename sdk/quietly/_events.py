"""Turn a tracked call into the wire event the collector expects.

Runs on the worker thread (or the caller's, in debug and preview), never on the
``track`` fast path: schema checks, consent filtering, scrubbing and encoding
are the expensive part of telemetry and the host must not pay for them.
"""

from __future__ import annotations

import locale
import platform
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from quietly_schemas import Catalog, ConsentBlocked, EventInvalid, check_props
from quietly_schemas.catalog import keyword_ok, version_ok

LEVELS = ("off", "basic", "detailed")
_encode = msgspec.json.encode


class UnknownEvent(EventInvalid):
    pass


def _clean(value: str, limit: int, ok: Any) -> str:
    value = re.sub(r"[^A-Za-z0-9_.:+-]+", "_", value)[:limit]
    return value if ok(value) else ""


def _locale() -> str:
    try:
        name = locale.getlocale()[0] or ""
    except (ValueError, TypeError):
        name = ""
    return _clean(name, 35, keyword_ok)


def base_context(app: str, app_version: str, sdk_version: str) -> dict[str, str]:
    """The device context sent with every event: coarse, and never personal."""
    return {
        "app": _clean(app, 128, keyword_ok),
        "app_version": _clean(app_version, 64, version_ok),
        "os": _clean(platform.system().lower(), 32, keyword_ok),
        "os_version": _clean(platform.release(), 64, version_ok),
        "locale": _locale(),
        "sdk": "quietly-python",
        "sdk_version": _clean(sdk_version, 64, version_ok),
    }


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z"
    )


class EventBuilder:
    def __init__(self, catalog: Catalog, context: Mapping[str, str]) -> None:
        self.catalog = catalog
        self._contexts = {
            level: dict(context, consent=level) for level in LEVELS
        }
        self._latest = {s.name: max(catalog.versions(s.name)) for s in catalog}

    def build(
        self,
        name: str,
        props: Mapping[str, Any],
        ts: float,
        level: str,
        install_id: str,
        session_id: str | None,
    ) -> tuple[dict[str, Any], dict[str, int]]:
        """The wire event and what was dropped from it; raises EventInvalid / ConsentBlocked."""
        version = self._latest.get(name)
        schema = self.catalog.get(name, version) if version is not None else None
        if schema is None:
            raise UnknownEvent(f"unknown event type {name!r} at $.event")
        clean, dropped = check_props(
            schema, props, level, locale=self._contexts[level].get("locale")
        )
        event = {
            "event_id": str(uuid.uuid4()),
            "event": name,
            "version": schema.version,
            "ts": rfc3339(ts),
            "install_id": install_id,
            "session_id": session_id,
            "context": self._contexts[level],
            "props": clean,
        }
        return event, dict(dropped)

    def encode(self, event: Mapping[str, Any]) -> bytes:
        return _encode(event)

    def deletion_request(self, event_id: str, install_id: str, ts: str) -> bytes:
        return _encode({
            "event_id": event_id,
            "event": "deletion_request",
            "version": 1,
            "ts": ts,
            "install_id": install_id,
            "session_id": None,
            # Sent after opt-out: the one event the collector accepts with consent off.
            "context": self._contexts["off"],
            "props": {},
        })


__all__ = ["ConsentBlocked", "EventBuilder", "EventInvalid", "UnknownEvent", "base_context"]
