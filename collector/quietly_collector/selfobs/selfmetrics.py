"""Self-metrics: one OpenTelemetry MeterProvider per app, read by Prometheus at /metrics
and, when ``otlp_endpoint`` is set, pushed over OTLP.

Counts come from the collector's existing counters (the ones /v1/stats shows) through
observable instruments, read only when something scrapes or exports: the ingest path
keeps incrementing one ``Counter`` entry per fact, as before. Timings (one per batch,
never per event) are appended to a buffer as they happen and folded into the
histograms when metrics are collected: a histogram record in the OpenTelemetry SDK
costs far more than an append, and the request path should not pay it.

Each app owns its ``CollectorRegistry``: ``PrometheusMetricReader`` registers with the
process-wide default registry unless given one, and two apps in one process (tests,
an embedding program) would then clash or report each other's numbers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Histogram, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from quietly_collector.access.throttle import FAILURE_PREFIX
from quietly_collector.pipeline.rejections import REJECTED_PREFIX, SDK_DROPPED_PREFIX

if TYPE_CHECKING:
    from quietly_collector.pipeline.collector import Collector

# Seconds: a ClickHouse insert takes milliseconds to seconds; an fsync wait, less.
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)
PENDING_TIMINGS = 100_000
PROPS_PREFIX = "props_dropped_"
REDACTED_PREFIX = "redacted_"
Callback = Callable[[CallbackOptions], Iterable[Observation]]


def resource() -> Resource:
    return Resource.create({"service.name": "quietly-collector"})


class SelfMetrics:
    def __init__(self, collector: Collector, extra_readers: Iterable[MetricReader] = ()) -> None:
        self.collector = collector
        self.registry = CollectorRegistry()
        # scope_info off: one instrumentation scope, its labels would only add noise.
        prometheus = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
        # shutdown_on_exit off: the app shuts it down; an atexit hook per app would pile up.
        self.provider = MeterProvider(metric_readers=[prometheus, *extra_readers],
                                      resource=resource(), shutdown_on_exit=False)
        # (histogram, seconds, label) waiting to be recorded; bounded, so that with
        # nothing collecting, memory is too (the oldest timings are dropped).
        self._pending: deque[tuple[Histogram, float, dict[str, str]]] = deque(
            maxlen=PENDING_TIMINGS)
        self._started = time.monotonic()
        # First registered, so first called at each collection: the buffered timings
        # are in the histograms before those are read.
        self._gauge("quietly.uptime", "Seconds since this collector started",
                    self._fold_timings, unit="s")
        self._observe()
        self._record()

    # -- counts, read from the collector's counters when scraped ------------------
    def _counter(self, name: str, desc: str, cb: Callback, unit: str = "") -> None:
        meter = self.provider.get_meter("quietly_collector")
        meter.create_observable_counter(name, [cb], unit=unit, description=desc)

    def _gauge(self, name: str, desc: str, cb: Callback, unit: str = "") -> None:
        meter = self.provider.get_meter("quietly_collector")
        meter.create_observable_gauge(name, [cb], unit=unit, description=desc)

    def _observe(self) -> None:
        c = self.collector
        n = c.counters

        def one(*keys: str) -> Callback:
            return lambda _: [Observation(sum(n[k] for k in keys))]

        # The OTLP reader calls back from its own thread while the loop adds keys:
        # dict(n) copies in one step under the GIL, iterating n itself could fail.
        def by_prefix(prefix: str, label: str) -> Callback:
            return lambda _: [Observation(v, {label: k[len(prefix):]})
                              for k, v in sorted(dict(n).items()) if k.startswith(prefix)]

        def by_key(keys: dict[str, str], label: str) -> Callback:
            return lambda _: [Observation(n[k], {label: v}) for k, v in keys.items()]

        refused = {"events_refused_spool_full": "spool_full", "events_refused_disk": "disk",
                   "events_refused_spool_share": "spool_share"}
        self._counter("quietly.events.received", "Events in batches that were read: accepted,"
                      " duplicate, rejected, or refused with their batch (503)",
                      one("events_accepted", "events_duplicate", "events_rejected", *refused))
        self._counter("quietly.events.accepted", "Events stored durably (spool) and"
                      " acknowledged; deletion requests included", one("events_accepted"))
        self._counter("quietly.events.duplicate", "Events acknowledged as already received",
                      one("events_duplicate"))
        self._counter("quietly.events.rejected", "Events refused, by kind of reason",
                      by_prefix(REJECTED_PREFIX, "reason"))
        self._counter("quietly.events.refused", "Events in whole batches refused with 503",
                      by_key(refused, "reason"))
        self._counter("quietly.requests.refused", "Batches refused before processing",
                      by_key({"requests_refused_busy": "busy",
                              "requests_rate_limited": "rate_limited",
                              "requests_refused_spool_full": "spool_full",
                              "requests_refused_spool_share": "spool_share",
                              "requests_refused_disk": "disk",
                              "requests_refused_body_timeout": "body_timeout"}, "reason"))
        self._counter("quietly.auth.failures", "Requests refused for their credentials, by"
                      " reason: missing, unknown_key, forbidden (a key of the wrong kind),"
                      " bad_cookie, expired_cookie, throttled (429: the address failed too"
                      " often)", by_prefix(FAILURE_PREFIX, "reason"))
        self._counter("quietly.pii.redactions", "Personal data redacted from free text,"
                      " by type", by_prefix(REDACTED_PREFIX, "type"))
        self._counter("quietly.properties.dropped", "Properties removed: undeclared in the"
                      " schema, or detailed under basic consent", by_prefix(PROPS_PREFIX, "reason"))
        self._counter("quietly.sdk.dropped", "Events SDKs dropped before sending, by reason,"
                      " as their client_report events said (counted once stored)",
                      by_prefix(SDK_DROPPED_PREFIX, "reason"))
        self._counter("quietly.rows.inserted", "Event rows inserted into ClickHouse",
                      one("rows_inserted"))
        self._counter("quietly.insert.failures", "Failed insert attempts (retried)",
                      one("insert_failures"))
        self._counter("quietly.alert.evaluations", "Alert rule evaluations, by outcome",
                      by_key({"alert_rules_evaluated": "ok", "alert_rules_failed": "failed",
                              "alert_checks_failed": "check_failed"}, "outcome"))
        self._counter("quietly.alert.notifications", "Alert notifications sent (state changes"
                      " and reminders)", one("alert_notifications"))
        self._counter("quietly.stats.counter", "Every counter of GET /v1/stats, by name",
                      lambda _: [Observation(v, {"counter": k})
                                 for k, v in sorted(dict(n).items())])
        spool = c.spool
        self._gauge("quietly.spool.rows", "Rows in the spool not yet in ClickHouse",
                    lambda _: [Observation(spool.pending_rows)])
        def spool_bytes(_: CallbackOptions) -> Iterable[Observation]:
            try:
                return [Observation(spool.pending_bytes)]
            except RuntimeError:  # a segment rotated during the sum (OTLP thread): skip once
                return []

        self._gauge("quietly.spool.bytes", "Bytes in the spool not yet in ClickHouse",
                    spool_bytes, unit="By")
        self._gauge("quietly.spool.limit", "Spool size limit (spool_max_bytes)",
                    lambda _: [Observation(spool.max_bytes)], unit="By")
        self._gauge("quietly.batches.in_flight", "Batches being read or processed now",
                    lambda _: [Observation(c.batches_in_flight)])
        self._gauge("quietly.storage.up", "1 when the last insert succeeded, 0 when failing",
                    lambda _: [Observation(int(c.storage_ok))])
        self._gauge("quietly.leader", "1 while this collector holds the leader lease (alerts,"
                    " maintenance, promotion of staged events)",
                    lambda _: [Observation(int(c.leader.valid()))])

    # -- timings, one per batch ---------------------------------------------------
    def _record(self) -> None:
        meter = self.provider.get_meter("quietly_collector")
        inserts = meter.create_histogram(
            "quietly.insert.duration", unit="s", description="One ClickHouse insert of a"
            " batch of rows, by table", explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        waits = meter.create_histogram(
            "quietly.queue.wait", unit="s", description="Time a batch waits, by queue: fsync"
            " (the spool's group commit), inflight_ids (a concurrent batch with the same"
            " event ids)", explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        hooks = self.collector.hooks
        add = self._pending.append  # deque.append: atomic, also from the writer's thread
        # One attribute dict per label value, made once.
        tables = {t: {"table": t} for t in ("events", "events_staging", "rejected_events")}
        queues = {q: {"queue": q} for q in ("fsync", "inflight_ids")}
        hooks.insert_seconds = lambda s, t: add((inserts, s, tables.get(t) or {"table": t}))
        hooks.queue_wait = lambda s, q: add((waits, s, queues.get(q) or {"queue": q}))

    def _fold_timings(self, _: CallbackOptions) -> Iterable[Observation]:
        pending = self._pending
        while pending:
            histogram, seconds, attributes = pending.popleft()
            histogram.record(seconds, attributes)
        return [Observation(time.monotonic() - self._started)]

    def render(self) -> bytes:
        """The Prometheus text exposition of this app's metrics."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        # Exports what an OTLP reader still holds, and unregisters from the registry.
        self.provider.shutdown(timeout_millis=5_000)
