"""The rows of the tables the writer fills, in column order (JSONCompactEachRow): what
the pipeline builds and the spool carries."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class Row(msgspec.Struct, array_like=True, gc=False):
    """One row of the ``events`` table, in column order (JSONCompactEachRow)."""

    event_id: uuid.UUID
    project: str
    event: str
    version: int
    install_hash: int
    session_hash: int
    ts: datetime
    client_ts: datetime
    sent_at: datetime | None
    received_at: datetime
    ts_source: str
    app: str
    app_version: str
    os: str
    os_version: str
    locale: str
    sdk: str
    sdk_version: str
    consent: str
    props: msgspec.Raw


class RejectedRow(msgspec.Struct, array_like=True, gc=False):
    """One row of ``rejected_events``: the reason, never the payload."""

    received_at: datetime
    project: str
    batch_index: int
    event_id: str
    event: str
    version: int
    reason: str
    # The event's app when its context said one (the loss account is per app), and the
    # reason's kind (rejections.py): bounded values to group by.
    app: str = ""
    kind: str = ""


EVENT_COLUMNS: tuple[str, ...] = Row.__struct_fields__
REJECTED_COLUMNS: tuple[str, ...] = RejectedRow.__struct_fields__
