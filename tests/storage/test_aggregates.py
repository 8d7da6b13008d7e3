"""The performance rollup holds no install: a deletion rebuilds its days (aggregates.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from quietly_collector.insights import metrics
from tests.conftest import Running
from tests.helpers import body, event, headers
from tests.storage.test_deletion import A, B, deletion

C = "c0000000-0000-4000-8000-00000000000c"
# Yesterday's noon: every event of the test falls in one day whatever the hour.
NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)


def _timing(install_id: str, ms: float) -> dict[str, Any]:
    return event("performance", {"operation": "search", "duration_ms": ms},
                 install_id=install_id, ts=NOON)


def _search(server: Running) -> tuple[int, float]:
    day = NOON.date().isoformat()
    cols, rows = metrics.run(server.store, metrics.parse_query("performance", day, day))
    [row] = [r for r in metrics.as_objects(cols, rows)
             if (r["operation"], r["measure"]) == ("search", "duration_ms")]
    return row["samples"], row["p50_ms"]


async def _post(server: Running, events: list[dict[str, Any]]) -> None:
    status, result = await server.post("/v1/batch", body(events), headers())
    assert status == 200 and not result["rejected"], result
    await server.settle(30)


async def test_a_deletion_rebuilds_the_rollup_days_of_the_install(server: Running) -> None:
    await _post(server, [_timing(A, 900.0), _timing(B, 10.0)])
    assert _search(server)[0] == 2
    await _post(server, [deletion(A)])
    assert _search(server) == (1, 10.0)
    # The next rebuild of that day yields the very rows of the first one: the table's
    # deduplication window must not drop them as a repeated block.
    await _post(server, [_timing(C, 500.0)])
    assert _search(server)[0] == 2
    await _post(server, [deletion(C)])
    assert _search(server) == (1, 10.0)
    assert server.rows("SELECT sum(samples) FROM agg_performance_rollup_v2") == [(1,)]
