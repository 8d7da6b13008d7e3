"""``deletion_request``: erase one install's rows from every per-install table, with a receipt.

A request travels through the spool like events (record kind ``KIND_DELETIONS``),
so the writer applies it in spool order: after every event spooled before it.

Which tables: every MergeTree-family table of the database with a ``UInt64``
column named ``install_hash``, looked up in ``system.columns`` each time, so
tables added later (aggregates) are covered without a registry; the one aggregate
without installs, ``agg_performance_rollup_v2``, is rebuilt for the install's days
(aggregates.py). Views hold no rows and are skipped (a materialized view's target
or inner table is a table, and is covered); so is ``deletion_receipts``, which must keep the hash.

Rows are removed with ``ALTER TABLE ... DELETE`` and ``mutations_sync = 2``:
when it returns, no active part holds them (a lightweight ``DELETE`` would only
mask them until some later merge). The parts they were in are deleted from disk
by ClickHouse's cleanup (``old_parts_lifetime``). Everything here blocks and is
run in the writer's thread, never on the event loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from quietly_collector.storage import aggregates, audit
from quietly_collector.storage.mutations import Targets, quote_str
from quietly_collector.storage.store import Store

DELETION_EVENT = "deletion_request"
RECEIPTS_TABLE = "deletion_receipts"
METHOD = "ALTER TABLE DELETE, mutations_sync=2"

_TABLES_SQL = (
    "SELECT c.table, c.table IN (SELECT table FROM system.columns"
    " WHERE database = currentDatabase() AND name = 'project') FROM system.columns AS c"
    " INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table"
    " WHERE c.database = currentDatabase() AND c.name = 'install_hash' AND c.type = 'UInt64'"
    " AND t.engine LIKE '%MergeTree' AND c.table != {receipts:String}"
    " ORDER BY c.table"
)


class DeletionRow(msgspec.Struct, array_like=True, gc=False):
    """A spooled ``deletion_request``: the install's keyed hash, never its id."""

    request_id: uuid.UUID
    project: str
    install_hash: int
    requested_at: datetime
    received_at: datetime


class Receipt(msgspec.Struct, array_like=True):
    """One row of ``deletion_receipts``, in column order."""

    request_id: uuid.UUID
    project: str
    install_hash: int
    requested_at: datetime
    received_at: datetime
    completed_at: datetime
    rows_deleted: int
    rows_by_table: dict[str, int]
    method: str


RECEIPT_COLUMNS: tuple[str, ...] = Receipt.__struct_fields__

_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(DeletionRow)
_list_decoder = msgspec.json.Decoder(list[Any])


def encode_request(row: DeletionRow) -> bytes:
    return _encoder.encode(row)


def decode_requests(payload: bytes) -> list[DeletionRow]:
    return [_request_decoder.decode(line) for line in payload.splitlines() if line]


def line_install(line: bytes) -> tuple[str, int]:
    """(project, install_hash) of a spooled ``events`` row (a JSON array; see ingest.Row)."""
    row = _list_decoder.decode(line)
    return str(row[1]), int(row[4])


def event_of(line: bytes) -> tuple[str, int]:
    """Event name and version of a spooled ``events`` row."""
    row = _list_decoder.decode(line)
    return str(row[2]), int(row[3])


@dataclass
class DeletedInstalls:
    """Deleted installs, as (project, keyed hash): later events of these are refused. A
    deletion belongs to the project that asked for it: another project's install with
    the same id is a different user's, and stays."""

    hashes: set[tuple[str, int]] = field(default_factory=set)
    # False until deletion_receipts was read (a ClickHouse server down at start).
    loaded: bool = False


def deleted_installs(store: Store) -> set[tuple[str, int]]:
    _, rows = store.query(f"SELECT DISTINCT project, install_hash FROM {RECEIPTS_TABLE}")
    return {(str(r[0]), int(r[1])) for r in rows}


def installs_in(keys: Sequence[tuple[str, int]] | set[tuple[str, int]]) -> str:
    """An SQL condition matching these (project, install_hash) pairs. Hashes are ints from
    our own HMAC, projects names from our configuration: quoted, never a client's text."""
    pairs = ",".join(f"({quote_str(p)},{int(h)})" for p, h in sorted(set(keys)))
    return f"(project, install_hash) IN ({pairs})"


def per_install_tables(store: Store) -> list[tuple[str, bool]]:
    """Tables holding installs, each with whether it has a ``project`` column."""
    _, rows = store.query(_TABLES_SQL, {"receipts": RECEIPTS_TABLE})
    return [(str(r[0]), bool(r[1])) for r in rows]


def installs_where(keys: Sequence[tuple[str, int]] | set[tuple[str, int]],
                   has_project: bool) -> str:
    """The condition for a table: by project and install where it has a project column.
    A table without one (an operator's own) cannot tell projects apart, so the install's
    rows go whichever project asked: a deletion never leaves a user's rows behind."""
    if has_project:
        return installs_in(keys)
    return "install_hash IN (" + ",".join(str(int(h)) for _, h in sorted(set(keys))) + ")"


@dataclass
class Applied:
    requests: int = 0
    rows: int = 0
    skipped: int = 0  # already had a receipt (replayed after a crash)


def apply_deletions(store: Store, requests: Sequence[DeletionRow], token: str) -> Applied:
    """Delete the requests' installs everywhere, then write their receipts. Idempotent:
    deleting twice removes nothing more, and a request that already has a receipt (a
    replay after a crash) gets no second one. Its delete still runs, in case the replay
    inserted rows of the install again."""
    out = Applied()
    if not requests:
        return out
    ids = list({str(r.request_id) for r in requests})
    _, rows = store.query(
        f"SELECT DISTINCT request_id FROM {RECEIPTS_TABLE} WHERE request_id IN {{ids:Array(UUID)}}",
        {"ids": ids},
    )
    done = {uuid.UUID(str(r[0])) for r in rows}
    todo: dict[uuid.UUID, DeletionRow] = {}
    for r in requests:
        if r.request_id in done or r.request_id in todo:
            out.skipped += 1
        else:
            todo[r.request_id] = r
    # Inlined (ALTER takes no query parameters): see installs_in.
    keys = {(r.project, r.install_hash) for r in requests}
    counts: dict[str, dict[tuple[str, int], int]] = {}
    # The performance rollup holds no install: its days of these installs are rebuilt
    # from agg_performance once their rows are gone there.
    rollup_days = aggregates.rollup_days(store, installs_in(keys))
    targets = Targets(store)  # on a cluster: every shard, not the connected node's
    for table, has_project in per_install_tables(store):
        target = targets[table]
        where = installs_where(keys, has_project)
        project = "project" if has_project else "''"
        _, found = store.query(
            f"SELECT {project}, install_hash, count() FROM {target.read} WHERE {where}"
            " GROUP BY 1, 2"
        )
        if has_project:
            counts[table] = {(str(p), int(h)): int(n) for p, h, n in found}
        else:  # no project to tell: each request of the install is credited its rows
            by_hash = {int(h): int(n) for _, h, n in found}
            counts[table] = {k: by_hash[k[1]] for k in keys if k[1] in by_hash}
        if counts[table]:
            store.write_command(
                f"ALTER TABLE {target.alter} DELETE WHERE {where}", {"mutations_sync": 2},
            )
    aggregates.rebuild_rollup(store, rollup_days)
    completed = datetime.now(UTC)
    receipts = []
    credited: set[tuple[str, int]] = set()
    for r in todo.values():
        # Two requests for one install: the first is credited with the rows.
        key = (r.project, r.install_hash)
        first = key not in credited
        credited.add(key)
        by_table = {t: (c.get(key, 0) if first else 0) for t, c in counts.items()}
        deleted = sum(by_table.values())
        receipts.append(Receipt(
            r.request_id, r.project, r.install_hash, r.requested_at, r.received_at,
            completed, deleted, by_table, METHOD,
        ))
    out.rows = sum(sum(c.values()) for c in counts.values())
    if not receipts:
        return out
    _audit(store, receipts, token)
    data = b"".join(_encoder.encode(x) + b"\n" for x in receipts)
    store.insert(RECEIPTS_TABLE, RECEIPT_COLUMNS, data, f"{RECEIPTS_TABLE}:{token}")
    out.requests = len(receipts)
    return out


def _audit(store: Store, receipts: Sequence[Receipt], token: str) -> None:
    """One ``deletion_applied`` row per receipt, written before the receipts: a replay
    (no receipt yet) finds its row here and adds none."""
    _, rows = store.query(
        f"SELECT request_id FROM {audit.AUDIT_TABLE} WHERE action = 'deletion_applied'"
        " AND request_id IN {ids:Array(String)}",
        {"ids": [str(r.request_id) for r in receipts]},
    )
    logged = {str(r[0]) for r in rows}
    new = [
        audit.entry(f"project:{r.project}", "deletion_applied",
                    {"rows_deleted": r.rows_deleted, "tables": len(r.rows_by_table)},
                    str(r.request_id))
        for r in receipts if str(r.request_id) not in logged
    ]
    if new:
        store.insert(audit.AUDIT_TABLE, audit.AUDIT_COLUMNS, audit.encode(new),
                     f"{audit.AUDIT_TABLE}:{token}")
