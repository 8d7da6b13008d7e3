"""Ids made from a foreign client's ids: keyed per project, stable across resends."""

from __future__ import annotations

import hashlib
import hmac
import uuid


class ForeignIds:
    """Ids made from a foreign client's ids (Segment userId/anonymousId/messageId, OTLP
    user.id/session.id), keyed with the collector's secret and the sending project: the
    same client id in two projects is two installs, nobody without the secret can
    compute one, and a resend maps to the same id, so it deduplicates. Install ids are
    pseudonymized afterwards like native ones."""

    def __init__(self, secret: bytes, project: str) -> None:
        # Domain separation: the pseudonymization key itself is never used here.
        self._key = hmac.new(secret, b"quietly foreign ids v1", hashlib.sha256).digest()
        self._project = project.encode()

    def make(self, kind: str, value: object) -> str:
        msg = b"\0".join((kind.encode(), self._project, str(value).encode()))
        raw = bytearray(hmac.new(self._key, msg, hashlib.sha256).digest()[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # UUIDv8: application-defined
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
        return str(uuid.UUID(bytes=bytes(raw)))

    def event(self, value: object) -> str:
        """Keyed too, UUIDs included: one Segment source sending to two projects would
        otherwise have each event stored in the first and refused as a duplicate in
        the second (event ids are unique across the collector)."""
        return self.make("event", value)

    def install(self, value: object) -> str:
        return self.make("install", value)

    def session(self, value: object) -> str:
        return self.make("session", value)
