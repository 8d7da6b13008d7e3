"""``paths``: the most common ways through sessions after (``--from``) or before
(``--to``) a step, read from ``agg_session_steps`` (one row per session).

A session's steps are sorted by time (then name, for a stable order of events in the
same millisecond) and repeats of a step collapsed. A start matches the session's
first step equal to it, or, for a bare event name, its first step of that event
(``feature_used`` matches ``feature_used:search``). The path is that step and up to
``steps - 1`` steps after it (or before it, ending with it, for ``--to``).

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
_SESSIONS = """
SELECT install_hash, seq, idx,
       if({backward:UInt8}, idx, length(seq) - idx + 1) AS remaining,
       if({backward:UInt8},
          arraySlice(seq, greatest(1, idx - {n:UInt8} + 1), least(idx, {n:UInt8})),
          arraySlice(seq, idx, {n:UInt8})) AS path
FROM
(
    SELECT install_hash,
           arrayMap(x -> x.2, arraySort(groupArrayArray(steps))) AS raw,
           arrayFilter((s, i) -> i = 1 OR s != raw[i - 1], raw, arrayEnumerate(raw)) AS seq,
           arrayFirstIndex(s -> s = {anchor:String}
                                OR (position({anchor:String}, ':') = 0
                                    AND startsWith(s, concat({anchor:String}, ':'))), seq) AS idx
    FROM agg_session_steps
    WHERE {app:String} = '' OR app = {app:String}
    GROUP BY app, project, install_hash, session_hash
    HAVING toDate(min(first_ts)) BETWEEN {since:Date} AND {until:Date}
)
WHERE idx > 0
"""


def paths(
    store: Store, params: dict[str, Any], start: str, end: str, steps: int, limit: int,
    settings: dict[str, Any] | None = None,
) -> tuple[list[str], list[Sequence[Any]]]:
    """Top ``limit`` paths of ``steps`` steps from ``start`` (or to ``end``), then one
    drop-off row per step: sessions that ended (``--from``) or began (``--to``) there."""
    backward = not start
    p = {**params, "anchor": start or end, "backward": int(backward), "n": steps}
    _, top = store.query(
        "SELECT arrayStringConcat(path, {arrow:String}) AS p, length(path) AS len,"
        " count() AS sessions, uniqExact(install_hash) AS users"
        f" FROM ({_SESSIONS}) GROUP BY p, len ORDER BY sessions DESC, users DESC, p"
        " LIMIT {limit:UInt32}",
        {**p, "arrow": ARROW, "limit": limit}, settings,
    )
    _, ends = store.query(
        "SELECT remaining, count(), uniqExact(install_hash), sum(count()) OVER ()"
        f" FROM ({_SESSIONS}) GROUP BY remaining ORDER BY remaining",
        p, settings,
    )
    total = int(ends[0][3]) if ends else 0
    out: list[Sequence[Any]] = [
        ["path", str(path), int(n), int(s), int(u), round(int(s) / total, 4) if total else None]
        for path, n, s, u in top
    ]
    for remaining, s, u, _ in ends:
        k = int(remaining)
        if k <= steps:
            label = f"(session began {k} steps before)" if backward else \
                f"(session ended after step {k})"
            out.append(["drop_off", label, k,
                        int(s), int(u), round(int(s) / total, 4)])
    return COLUMNS, out
