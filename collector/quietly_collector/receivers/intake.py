"""The request gate of every ingest route (native batch, OTLP logs, Segment batch).

A foreign body is translated into a native batch and handed to ``Collector.ingest``:
the same validation, scrubbing, duplicate filter, rejection rows and spool as
``POST /v1/batch``, whose translation is the identity. Only the framing differs;
this module holds the part they share (rate limit, busy refusal, body limits, error
statuses).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from quietly_collector.access.appkeys import PRINCIPAL
from quietly_collector.pipeline.accept import BatchResult, TooLarge
from quietly_collector.pipeline.body import BodyError, read_body
from quietly_collector.pipeline.collector import COLLECTOR, Collector
from quietly_collector.pipeline.decode import BatchError
from quietly_collector.pipeline.foreign import ForeignIds
from quietly_collector.receivers.errors import error_body
from quietly_collector.spool.wal import SpoolFull, SpoolUnavailable

RETRY_AFTER_SECONDS = 5


def foreign_ids(request: web.Request, project: str) -> ForeignIds:
    return ForeignIds(request.app[COLLECTOR].credentials.pseudonym_secret, project)


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


def sender(request: web.Request, content_types: tuple[str, ...]) -> str:
    """The project of the write key the auth gate accepted; 415 for a content type the
    route does not read."""
    ctype = request.content_type
    if ctype not in content_types:
        raise web.HTTPUnsupportedMediaType(
            reason=f"Content-Type must be {' or '.join(content_types)}, got {ctype[:60]!r}")
    project = request[PRINCIPAL].project
    assert project is not None  # a write principal always has one
    return project


async def admit_and_ingest(
    request: web.Request, project: str, translate: Translate, error: ErrorBody
) -> tuple[BatchResult, Translated] | web.Response:
    """Admit (rate limit, busy), read, translate and ingest; the result, or the error
    response to send. Before the body is read, a flood is refused for the price of
    the two checks."""
    collector = request.app[COLLECTOR]
    refused = _admit(collector, project, error)
    if refused is not None:
        return refused
    try:
        raw = await read_admitted(request, error)
        if isinstance(raw, web.Response):
            return raw
        return await _ingest(collector, project, translate, raw, error)
    finally:
        collector.slots.give(project)


# The slots of requests whose key is inside their body, before it is read: one
# project's share at most (max_batches_in_flight_per_project), so unauthenticated
# bodies can never hold every slot. Not a project name (project names are identifiers).
UNAUTHENTICATED = "(body not yet read)"
Opened = tuple[str | None, Translate]


async def admit_body_keyed_and_ingest(
    request: web.Request, open_body: Callable[[bytes | bytearray], Opened],
    authenticate: Callable[[str | None], str], error: ErrorBody,
) -> tuple[BatchResult, Translated] | web.Response:
    """For a route whose key is in its body (PostHog): read it under the same size
    bound and deadline as every route, in a slot of the unauthenticated share; find
    the key (``open_body``), have the auth gate check it (``authenticate``, raising its
    HTTP errors); then the project's rate limit and slot, as for every route."""
    collector = request.app[COLLECTOR]
    full = collector.slots.take(UNAUTHENTICATED)
    if full:
        collector.counters["requests_refused_busy"] += 1
        return _unavailable(error, full)
    try:
        raw = await read_admitted(request, error)
        if isinstance(raw, web.Response):
            return raw
        try:
            key, translate = open_body(raw)
        except BodyError as exc:
            return error(exc.status, exc.reason)
        except BatchError as exc:
            return error(400, str(exc))
        project = authenticate(key)
    finally:
        collector.slots.give(UNAUTHENTICATED)
    refused = _admit(collector, project, error)
    if refused is not None:
        return refused
    try:
        return await _ingest(collector, project, translate, raw, error)
    finally:
        collector.slots.give(project)


def _admit(collector: Collector, project: str, error: ErrorBody) -> web.Response | None:
    """None with a slot taken, or the refusal (rate limit, busy)."""
    wait = collector.limiter.admit(project)
    if wait:
        return rate_limited(collector, project, wait, error)
    full = collector.slots.take(project)
    if full:
        collector.counters["requests_refused_busy"] += 1
        return _unavailable(error, full)
    return None


async def read_admitted(request: web.Request, error: ErrorBody) -> bytes | bytearray | web.Response:
    """The body within the size limits and the body deadline, or the error to answer."""
    collector = request.app[COLLECTOR]
    s = collector.settings
    try:
        async with asyncio.timeout(s.body_timeout_s):
            return await read_body(request, s.max_batch_bytes, s.max_decompressed_bytes)
    except TimeoutError:
        collector.counters["requests_refused_body_timeout"] += 1
        resp = error(408, f"the request body did not arrive within {s.body_timeout_s} s"
                          " (body_timeout_s)")
        resp.force_close()  # what is left of the body is never read
        return resp
    except BodyError as exc:
        return error(exc.status, exc.reason)


async def _ingest(collector: Collector, project: str, translate: Translate,
                  raw: bytes | bytearray, error: ErrorBody
                  ) -> tuple[BatchResult, Translated] | web.Response:
    try:
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
    collector.limiter.charge(project, result.accepted + result.duplicates + len(result.rejected))
    return result, translated


def native(raw: bytes | bytearray) -> Translated:
    """``POST /v1/batch``: the body is already a native batch."""
    return Translated(raw)


def rate_limited(collector: Collector, project: str, wait: float,
                 error: ErrorBody = error_body) -> web.Response:
    collector.counters["requests_rate_limited"] += 1
    limiter = collector.limiter
    resp = error(429, f"project {project!r} is over its rate limit ({limiter.rate:g}"
                           f" events/s, burst {limiter.burst:g}); retry after Retry-After")
    resp.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return resp


def _unavailable(error: ErrorBody, reason: str) -> web.Response:
    resp = error(503, reason)
    resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return resp
