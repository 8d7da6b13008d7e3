"""The audit log: exactly one ``audit_log`` row per admin or deletion action.

Actions: ``sql`` (each ``POST /v1/sql``), ``gc`` (each maintenance run: admin,
``quietly gc`` or the scheduler), ``key_reload`` (each keys-file reload) and
``deletion_applied`` (each deletion request carried out). Reads of counters and
metrics (``/v1/stats``, ``/v1/metrics``) are aggregates and are not logged.
Details are JSON, passed through the scrubber with UUIDs masked: no install ids,
no key values, no query results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from quietly_collector.storage.store import Store
from quietly_schemas import scrub

AUDIT_TABLE = "audit_log"
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
)
_encoder = msgspec.json.Encoder()


class AuditRow(msgspec.Struct, array_like=True):
    """One row of ``audit_log``, in column order."""

    at: datetime
    actor: str
    action: str
    outcome: str
    detail: str
    request_id: str


AUDIT_COLUMNS: tuple[str, ...] = AuditRow.__struct_fields__


def clean(text: str, limit: int = 2000) -> str:
    """Free text for a detail (a query, an error): UUIDs masked, then scrubbed."""
    return scrub(_UUID.sub("[uuid]", text[: limit * 2]))[:limit]


def entry(
    actor: str, action: str, detail: dict[str, Any], request_id: str = "", outcome: str = "ok"
) -> AuditRow:
    return AuditRow(
        datetime.now(UTC), actor, action, outcome,
        json.dumps(detail, sort_keys=True, default=str), scrub(request_id[:64]),
    )


def encode(rows: Sequence[AuditRow]) -> bytes:
    return b"".join(_encoder.encode(r) + b"\n" for r in rows)


def record(store: Store, row: AuditRow) -> None:
    """Blocking; from a request handler (through a thread), on the reader's client."""
    store.append(AUDIT_TABLE, AUDIT_COLUMNS, encode([row]))
