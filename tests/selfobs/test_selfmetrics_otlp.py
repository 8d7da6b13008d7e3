"""With ``otlp_endpoint`` set, self-metrics and traces reach an OTLP/HTTP receiver (a
small aiohttp server here, decoding the protobuf the exporters send)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from quietly_collector.selfobs.http import SELF_METRICS
from quietly_collector.server.app import start_server
from tests.conftest import make_settings, start, stop
from tests.helpers import WRITE_KEY, body, event, headers

Attrs = tuple[tuple[str, str], ...]


class Receiver:
    def __init__(self) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.traces: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []

    async def post_metrics(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        self.metrics.append(ExportMetricsServiceRequest.FromString(await request.read()))
        return web.Response(body=ExportMetricsServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def post_traces(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        self.traces.append(ExportTraceServiceRequest.FromString(await request.read()))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")


def _sums(requests: list[ExportMetricsServiceRequest]) -> dict[tuple[str, Attrs], float]:
    """The last value of each metric's points, keyed by name and attributes."""
    out: dict[tuple[str, Attrs], float] = {}
    for req in requests:
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    assert kind is not None
                    points = getattr(m, kind).data_points
                    for p in points:
                        attrs = tuple(sorted((a.key, a.value.string_value) for a in p.attributes))
                        if kind == "histogram":
                            out[(m.name, attrs)] = p.count
                        else:
                            out[(m.name, attrs)] = p.as_int or p.as_double
    return out


async def test_metrics_and_traces_reach_an_otlp_receiver(tmp_path: Path, chdb_path: Path) -> None:
    receiver = Receiver()
    rapp = web.Application()
    rapp.router.add_post("/v1/metrics", receiver.post_metrics)
    rapp.router.add_post("/v1/traces", receiver.post_traces)
    rrunner, rport = await start_server(rapp, "127.0.0.1", 0)
    try:
        running = await start(make_settings(tmp_path, chdb_path,
                                            otlp_endpoint=f"http://127.0.0.1:{rport}"))
        try:
            status, _ = await running.post("/v1/batch", body([event(), event("nope")]),
                                           headers(WRITE_KEY))
            assert status == 200
            for _ in range(200):
                if running.collector.spool.pending_rows == 0:
                    break
                await asyncio.sleep(0.02)
            assert running.collector.spool.pending_rows == 0
            # /metrics still answers from the same provider.
            assert b"quietly_events_accepted_total 1.0" in running.app[SELF_METRICS].render()
        finally:
            await stop(running)  # the last export and the span batch leave at shutdown
    finally:
        await rrunner.cleanup()

    values = _sums(receiver.metrics)
    assert values[("quietly.events.accepted", ())] == 1
    assert values[("quietly.events.rejected", (("reason", "unknown_event"),))] == 1
    assert values[("quietly.insert.duration", (("table", "events"),))] >= 1
    resources = {a.key: a.value.string_value for req in receiver.metrics
                 for rm in req.resource_metrics for a in rm.resource.attributes}
    assert resources["service.name"] == "quietly-collector"

    spans = [s for req in receiver.traces for rs in req.resource_spans
             for ss in rs.scope_spans for s in ss.spans]
    by_name = {s.name: s for s in spans}
    server_span = by_name["POST /v1/batch"]
    attrs = {a.key: a.value for a in server_span.attributes}
    assert attrs["http.response.status_code"].int_value == 200
    assert attrs["quietly.request_id"].string_value
    insert = by_name["clickhouse.insert"]
    assert {a.key: a.value.string_value for a in insert.attributes}["db.collection.name"] in (
        "events", "rejected_events")
    # No credential leaves in an export.
    exported = b"".join(r.SerializeToString() for r in [*receiver.metrics, *receiver.traces])
    assert WRITE_KEY.encode() not in exported
    assert all("Authorization" not in h for h in receiver.headers)


async def test_no_tracing_without_an_endpoint(tmp_path: Path, chdb_path: Path) -> None:
    running = await start(make_settings(tmp_path, chdb_path))
    try:
        # Only the errors and auth middlewares, and the writer's span hook is the no-op.
        assert [getattr(m, "__name__", "") for m in running.app.middlewares] == [
            "errors", "gate"]
        assert running.collector.hooks.span.__name__ == "_no_span"
    finally:
        await stop(running)
