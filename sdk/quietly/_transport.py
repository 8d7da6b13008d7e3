"""POST one gzip-compressed batch to the collector and classify the answer.

The standard library's ``urllib`` is enough for one request every few seconds
from a background thread, and keeps the SDK free of HTTP dependencies.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

# Retry: connection problems, server errors, and "slow down" answers.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Keep the batch and try later: the operator may fix the key or the route.
HOLD_STATUSES = frozenset({401, 403, 404})


@dataclass
class Outcome:
    kind: str  # "sent", "retry", "hold", "too_large", "drop"
    status: int = 0
    retry_after: float | None = None
    # Per-event rejections in a 200 answer: (index in batch, reason).
    rejected: list[tuple[int, str]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    error: str = ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Transport:
    def __init__(self, endpoint: str, write_key: str, user_agent: str) -> None:
        self.url = endpoint.rstrip("/") + "/v1/batch"
        self.headers = {
            "Authorization": f"Bearer {write_key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": user_agent,
        }

    def post(self, body: bytes, timeout: float) -> Outcome:
        data = gzip.compress(body, compresslevel=6)
        req = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status = resp.status
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            retry_after = parse_retry_after(exc.headers.get("Retry-After"))
            exc.close()
            if status in RETRY_STATUSES:
                return Outcome("retry", status, retry_after)
            if status in HOLD_STATUSES:
                return Outcome("hold", status, retry_after)
            if status == 413:
                return Outcome("too_large", status)
            return Outcome("drop", status, error=f"HTTP {status}")
        except (OSError, ValueError) as exc:
            # URLError, timeouts, connection refused/reset, DNS failures.
            return Outcome("retry", 0, error=type(exc).__name__)
        if status != 200:
            return Outcome("retry", status)
        out = Outcome("sent", 200)
        try:
            answer: Any = json.loads(payload)
            out.accepted = int(answer.get("accepted", 0))
            out.duplicates = int(answer.get("duplicates", 0))
            for r in answer.get("rejected", ()):
                out.rejected.append((int(r.get("index", -1)), str(r.get("reason", ""))))
        except (ValueError, TypeError, AttributeError):
            pass  # a 200 is a 200: the events are stored
        return out
