"""The request gate of every ingest route (native batch, OTLP logs, Segment batch).

A foreign body is translated into a native batch and handed to ``Collector.ingest``:
the same validation, scrubbing, duplicate filter, rejection rows and spool as
``POST /v1/batch``, whose translation is the identity. Only the framing differs;
this module holds the part they share (rate limit, busy refusal, body limits, error
statuses).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from quietly_collector.body import BodyError, read_body
from quietly_collector.ingest import BatchError
from quietly_collector.keys import COLLECTOR
from quietly_collector.middlewares import error_body
from quietly_collector.service import BatchResult, Collector, TooLarge
from quietly_collector.spool import SpoolFull, SpoolUnavailable

RETRY_AFTER_SECONDS = 5
# Batches read and processed at once, at most. Each holds its body and decoded events
# in memory (about 1.5 MB for 500 events): past this, refusing before the body is read
# keeps memory bounded however many clients send at once (docs/reliability.md).
MAX_BATCHES_IN_FLIGHT = 64

# Namespaces of the UUIDv5s made from foreign ids: fixed, so a retry maps to the same id.
EVENT_NS = uuid.UUID("6b0f3b5e-58f4-4c1e-9a4e-2f7d0c1b9e11")
INSTALL_NS = uuid.UUID("0c8e4d7a-3f21-4b6e-8d59-71a2c4e6f803")


def as_uuid(value: object, namespace: uuid.UUID) -> str:
    """A UUID as itself; any other id as its UUIDv5 (stable, so resends deduplicate).
    Install ids are pseudonymized afterwards like native ones."""
    text = str(value)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return str(uuid.uuid5(namespace, text))


def keyword(value: object) -> str:
    # Foreign clients send names like "Mac OS X": spaces become underscores, and the
    # rest is checked as a native context is (a bad value rejects the event).
    return "_".join(str(value).split())


@dataclass
class Translated:
    """A native batch body, and what the foreign body held that is not in it."""

    body: bytes | bytearray
    # Native event index -> index of the record or call it came from.
    origin: list[int] = field(default_factory=list)
    ignored: int = 0


Translate = Callable[[bytes | bytearray], Translated]
ErrorBody = Callable[[int, str], web.Response]


def sender(
    request: web.Request, key: str | None, missing: str,
    unauthorized: Callable[[str], web.Response], content_types: tuple[str, ...],
) -> str | web.Response:
    """The project of the request's write key, or the error to send: 401 without a
    known key (how each route frames it), 415 for a content type it does not read."""
    if key is None:
        return unauthorized(missing)
    project = request.app[COLLECTOR].credentials.keys.project_for(key)
    if project is None:
        return unauthorized("unknown write key")
    ctype = request.content_type
    if ctype not in content_types:
        return error_body(415, f"Content-Type must be {' or '.join(content_types)},"
                               f" got {ctype!r}")
    return project


async def admit_and_ingest(
    request: web.Request, project: str, translate: Translate, error: ErrorBody
) -> tuple[BatchResult, Translated] | web.Response:
    """Admit (rate limit, busy), read, translate and ingest; the result, or the error
    response to send. Before the body is read, a flood is refused for the price of
    the two checks."""
    collector = request.app[COLLECTOR]
    wait = collector.limiter.admit(project)
    if wait:
        return rate_limited(collector, project, wait)
    if collector.batches_in_flight >= MAX_BATCHES_IN_FLIGHT:
        collector.counters["requests_refused_busy"] += 1
        return _unavailable(error, f"collector has {MAX_BATCHES_IN_FLIGHT} batches in progress,"
                                   " retry later")
    collector.batches_in_flight += 1
    s = collector.settings
    try:
        raw = await read_body(request, s.max_batch_bytes, s.max_decompressed_bytes)
        translated = translate(raw)
        result = await collector.ingest(translated.body, project)
    except BodyError as exc:
        return error(exc.status, exc.reason)
    except BatchError as exc:
        return error(400, str(exc))
    except TooLarge as exc:
        return error(413, str(exc))
    except SpoolFull as exc:
        return _unavailable(error, f"collector is at its buffer limit, retry later ({exc})")
    except SpoolUnavailable as exc:
        return _unavailable(error, f"collector cannot store batches right now ({exc})")
    finally:
        collector.batches_in_flight -= 1
    collector.limiter.charge(project, result.accepted + result.duplicates + len(result.rejected))
    return result, translated


def native(raw: bytes | bytearray) -> Translated:
    """``POST /v1/batch``: the body is already a native batch."""
    return Translated(raw)


def rate_limited(collector: Collector, project: str, wait: float) -> web.Response:
    collector.counters["requests_rate_limited"] += 1
    limiter = collector.limiter
    resp = error_body(429, f"project {project!r} is over its rate limit ({limiter.rate:g}"
                           f" events/s, burst {limiter.burst:g}); retry after Retry-After")
    resp.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return resp


def _unavailable(error: ErrorBody, reason: str) -> web.Response:
    resp = error(503, reason)
    resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return resp
