"""``paths``: the most common ways through sessions after (``--from``) or before
(``--to``) a step, read from ``agg_session_steps`` (one row per session).

A session's steps are sorted by time (then name, for a stable order of events in the
same millisecond) and repeats of a step collapsed. The table is read with FINAL: its
key is the session's, so each session is one row (a GROUP BY of the arrays cost 2-3x).
A start matches the session's first step equal to it, or, for a bare event name, its
first step of that event (``feature_used`` matches ``feature_used:search``). The path
is that step and up to ``steps - 1`` steps after it (or before it, ending with it, for
``--to``).

Built here, not as a view, because the start, end, length and limit are part of the
query; the rows are those of a view's: one per path, then a drop-off row per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quietly_collector.storage.store import Store

COLUMNS = ["kind", "path", "length", "sessions", "users", "share"]
ARROW = " → "

# Per session (and project): its collapsed steps, where the anchor is (0: absent), and
# how many steps remain from it to the session's end (--from) or lie before it, the
# anchor included (--to).
SESSIONS = """
SELECT install_hash, seq, idx,
       if({backward:UInt8}, idx, length(seq) - idx + 1) AS remaining,
       if({backward:UInt8},
          arraySlice(seq, greatest(1, idx - {n:UInt8} + 1), least(idx, {n:UInt8})),
          arraySlice(seq, idx, {n:UInt8})) AS path
FROM
(
    SELECT install_hash,
           arrayMap(x -> x.2, arraySort(steps)) AS raw,
           arrayFilter((s, prev) -> s != prev, raw, arrayPushFront(arrayPopBack(raw), '')) AS seq,
           arrayFirstIndex(s -> s = {anchor:String}
                                OR (position({anchor:String}, ':') = 0
                                    AND startsWith(s, concat({anchor:String}, ':'))), seq) AS idx
    FROM agg_session_steps FINAL
    WHERE ({app:String} = '' OR app = {app:String})
      AND toDate(first_ts) BETWEEN {since:Date} AND {until:Date}
)
WHERE idx > 0
"""


def paths(
    store: Store, params: dict[str, Any], start: str, end: str, steps: int, limit: int,
    settings: dict[str, Any] | None = None, sessions: str = SESSIONS,
) -> tuple[list[str], list[Sequence[Any]]]:
    """Top ``limit`` paths of ``steps`` steps from ``start`` (or to ``end``), then one
    drop-off row per step: sessions that ended (``--from``) or began (``--to``) there.
    ``sessions``: the per-session query (bench/ passes one over the raw events)."""
    backward = not start
    p = {**params, "anchor": start or end, "backward": int(backward), "n": steps}
    # One pass over the sessions for both: the paths (remaining left at its default, 0)
    # and the sessions by how far they went (path left empty).
    _, got = store.query(
        "SELECT arrayStringConcat(path, {arrow:String}) AS p, length(path) AS len, remaining,"
        " count() AS sessions, uniqExact(install_hash) AS users"
        f" FROM ({sessions}) GROUP BY GROUPING SETS ((p, len), (remaining))",
        {**p, "arrow": ARROW}, settings,
    )
    top = sorted(((str(r[0]), int(r[1]), int(r[3]), int(r[4])) for r in got if not r[2]),
                 key=lambda r: (-r[2], -r[3], r[0]))[:limit]
    ends = sorted((int(r[2]), int(r[3]), int(r[4])) for r in got if r[2])
    total = sum(s for _, s, _ in ends)
    out: list[Sequence[Any]] = [
        ["path", path, n, s, u, round(s / total, 4) if total else None] for path, n, s, u in top
    ]
    for k, s, u in ends:
        if k <= steps:
            label = f"(session began {k} steps before)" if backward else \
                f"(session ended after step {k})"
            out.append(["drop_off", label, k, s, u, round(s / total, 4)])
    return COLUMNS, out
