"""OTLP/HTTP export of metrics and traces, only when ``otlp_endpoint`` is set.

Without an endpoint nothing here is built: no tracer, no middleware, and the writer's
span hook stays a no-op, so tracing costs nothing. The providers are the app's own
(never the global ones), for the same reason as selfmetrics.py's registry.

Spans: one per HTTP request (server) and one per ClickHouse insert (client). Neither
carries headers, query strings or bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from aiohttp import web
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from quietly_collector.selfobs.selfmetrics import resource

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _url(endpoint: str, signal: str) -> str:
    # The base URL of an OTLP/HTTP receiver, as OTEL_EXPORTER_OTLP_ENDPOINT is.
    return endpoint.rstrip("/") + "/v1/" + signal


def otlp_metric_reader(endpoint: str) -> MetricReader:
    # The interval is the SDK's: OTEL_METRIC_EXPORT_INTERVAL (ms), 60 s by default.
    return PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=_url(endpoint, "metrics")))


class Tracing:
    def __init__(self, endpoint: str) -> None:
        self.provider = TracerProvider(resource=resource(), shutdown_on_exit=False)
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=_url(endpoint, "traces"))))
        self.tracer = self.provider.get_tracer("quietly_collector")

    def insert_span(self, name: str, attributes: dict[str, Any]) -> AbstractContextManager[Any]:
        return self.tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes={"db.system.name": "clickhouse", **attributes})

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        with self.tracer.start_as_current_span(
            f"{request.method} {route}", kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
        ) as span:
            response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            span.set_attribute("quietly.request_id", response.headers.get("X-Request-Id", ""))
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    def shutdown(self) -> None:
        self.provider.shutdown()  # exports the spans still batched
