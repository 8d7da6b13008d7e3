"""POST /v1/logs with the real OpenTelemetry SDK and OTLP/HTTP exporter, and OTLP JSON.

Records with an event name become events through the native pipeline: the rows are
checked in ClickHouse (scrubbed, undeclared props dropped, context mapped), as are
the rejected record's reason and the deduplication of an exporter's resend.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from tests.conftest import make_settings
from tests.helpers import INSTALL, WRITE_KEY
from tests.sdk.conftest import ThreadedCollector

RESOURCE = Resource.create({
    "service.name": "my-ide", "service.version": "1.4.2", "os.type": "linux",
    "os.version": "6.1", "quietly.install_id": INSTALL,
})


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path
              ) -> Iterator[ThreadedCollector]:
    c = ThreadedCollector(make_settings(tmp_path_factory.mktemp("otlp"), chdb_path))
    c.start()
    try:
        yield c
    finally:
        c.close()


def _exporter(c: ThreadedCollector, key: str = WRITE_KEY) -> OTLPLogExporter:
    return OTLPLogExporter(endpoint=c.url + "/v1/logs", compression=Compression.Gzip,
                           headers={"Authorization": f"Bearer {key}"}, timeout=10)


def _post(c: ThreadedCollector, data: bytes, ctype: str, key: str | None = WRITE_KEY
          ) -> tuple[int, str, bytes]:
    headers = {"Content-Type": ctype}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(c.url + "/v1/logs", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def _counter(c: ThreadedCollector, name: str) -> int:
    assert c.running is not None
    return c.running.collector.counters[name]


def test_the_real_exporter_sends_events_validated_and_scrubbed_like_native(
    collector: ThreadedCollector,
) -> None:
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(BatchLogRecordProcessor(_exporter(collector)))
    logger = provider.get_logger("my-ide.telemetry")
    t0 = time.time_ns() - 2_000_000_000
    ignored = _counter(collector, "otlp_log_records_ignored")
    # An event.name attribute, and the newer top-level event_name field.
    logger.emit(LogRecord(timestamp=t0, attributes={
        "event.name": "feature_used", "feature": "debugging", "duration_ms": 5,
        "success": True, "internal_user_email": "bob@example.com"}))
    logger.emit(LogRecord(timestamp=t0, event_name="crash", attributes={
        "kind": "ValueError",
        "message": "cannot open /home/alice/notes.txt for alice@example.com"}))
    logger.emit(LogRecord(timestamp=t0, body="an ordinary log line"))
    logger.emit(LogRecord(timestamp=t0, event_name="feature_used",
                          attributes={"feature": "search", "duration_ms": "fast"}))
    assert provider.force_flush(10_000)
    provider.shutdown()

    rows = collector.rows("SELECT event, app, app_version, os, os_version, sdk, sdk_version,"
                          " consent, props, install_hash, ts FROM events ORDER BY event")
    assert [r[0] for r in rows] == ["crash", "feature_used"]
    assert rows[0][1:8] == ("my-ide", "1.4.2", "linux", "6.1", "opentelemetry-python",
                            rows[0][6], "basic")
    assert rows[0][6] and rows[0][6][0].isdigit()
    assert json.loads(rows[0][8])["message"] == "cannot open /home/[user]/notes.txt for [email]"
    assert json.loads(rows[1][8]) == {"feature": "debugging", "duration_ms": 5, "success": True}
    assert collector.running is not None
    pseudo = collector.running.collector.ctx.pseudonymize
    assert rows[0][9] == rows[1][9] == pseudo(uuid.UUID(INSTALL).int)
    assert abs(rows[0][10].timestamp() - t0 / 1e9) < 0.01
    rejected = collector.rows("SELECT event, reason FROM rejected_events")
    assert len(rejected) == 1 and rejected[0][0] == "feature_used"
    assert "props.duration_ms" in rejected[0][1] and "fast" not in rejected[0][1]
    assert _counter(collector, "otlp_log_records_ignored") == ignored + 1
    assert _counter(collector, "props_dropped_undeclared") >= 1


def test_a_resent_export_is_stored_once(collector: ThreadedCollector) -> None:
    provider = LoggerProvider(resource=RESOURCE)
    memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("retry")
    for n in range(3):
        logger.emit(LogRecord(event_name="job_started", timestamp=time.time_ns(),
                              attributes={"job": f"build-{n}"}))
    records = list(memory.get_finished_logs())
    before = collector.count("event = 'job_started'")
    exporter = _exporter(collector)
    # What the exporter does after a lost response: the same records again.
    assert exporter.export(records) == LogRecordExportResult.SUCCESS
    assert exporter.export(records) == LogRecordExportResult.SUCCESS
    assert collector.count("event = 'job_started'") == before + 3
    assert _counter(collector, "events_duplicate") >= 3


def _json_body(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "json-app"}},
            {"key": "os.type", "value": {"stringValue": "darwin"}},
            {"key": "user.id", "value": {"stringValue": "not-a-uuid-user-7"}}]},
        "scopeLogs": [{"scope": {"name": "x"}, "logRecords": records}],
    }]}).encode()


def test_otlp_json_encoding(collector: ThreadedCollector) -> None:
    ts = str(time.time_ns() - 1_000_000_000)
    good = {"timeUnixNano": ts, "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174", "severityNumber": 9,
            "attributes": [{"key": "event.name", "value": {"stringValue": "performance"}},
                           {"key": "operation", "value": {"stringValue": "open_file"}},
                           {"key": "duration_ms", "value": {"doubleValue": 12.5}},
                           {"key": "memory_mb", "value": {"intValue": "64"}}]}
    unknown = {"timeUnixNano": ts, "eventName": "teleport", "attributes": []}
    body = _json_body([good, unknown, {"body": {"stringValue": "plain log"}}])
    status, ctype, payload = _post(collector, body, "application/json")
    assert (status, ctype.split(";")[0]) == (200, "application/json")
    partial = json.loads(payload)["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "log record 1: unknown event type 'teleport'" in partial["errorMessage"]
    assert "1 log records without event.name ignored" in partial["errorMessage"]
    # The same body again (a retry): nothing new stored.
    assert _post(collector, body, "application/json")[0] == 200
    rows = collector.rows("SELECT app, os, props FROM events WHERE event = 'performance'")
    assert len(rows) == 1 and rows[0][:2] == ("json-app", "darwin")
    assert json.loads(rows[0][2]) == {"operation": "open_file", "duration_ms": 12.5,
                                      "memory_mb": 64}


def test_otlp_protobuf_answer_and_errors(collector: ThreadedCollector) -> None:
    status, ctype, payload = _post(collector, b"", "application/x-protobuf")
    assert (status, ctype) == (200, "application/x-protobuf")
    assert ExportLogsServiceResponse.FromString(payload) == ExportLogsServiceResponse()
    assert _post(collector, b"\xff\xff\xff", "application/x-protobuf")[0] == 400
    assert _post(collector, b"{not json", "application/json")[0] == 400
    assert _post(collector, b"[]", "application/json")[0] == 400
    assert _post(collector, b"{}", "text/plain")[0] == 415
    assert _post(collector, b"{}", "application/json", key=None)[0] == 401
    assert _post(collector, b"{}", "application/json", key="unknown-key-0123456789")[0] == 401
