"""Local analytics: events appended to a JSON Lines file instead of the network.

One wire event per line, exactly as it would have been sent, so
``quietly import events.jsonl`` can load the file into a collector later.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import msgspec

from quietly._transport import Outcome

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.encode


class LocalSink:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def post(self, body: bytes, timeout: float) -> Outcome:
        events = _decode(body).get("events", [])
        data = b"".join(_encode(e) + b"\n" for e in events)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
        except OSError as exc:
            return Outcome("retry", 0, error=type(exc).__name__)
        return Outcome("sent", 200, accepted=len(events))
