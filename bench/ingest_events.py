"""The ingest benchmark's events: the wire structs the SDKs send, the pool of installs
and sessions, and the deterministic generation of events and request bodies."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

FEATURES = (
    "debugging",
    "refactor.rename",
    "search",
    "terminal",
    "git.commit",
    "format",
    "test.run",
    "completion",
)
POOL_SEED = 7
INSTALLS = 2_000
SESSIONS_PER_INSTALL = 3


# -- the events ---------------------------------------------------------------------


class WireContext(msgspec.Struct, gc=False):
    app: str
    app_version: str
    os: str
    os_version: str
    locale: str
    sdk: str
    sdk_version: str
    consent: str


class WireProps(msgspec.Struct, gc=False):
    feature: str
    duration_ms: int
    success: bool


class WireEvent(msgspec.Struct, gc=False):
    event_id: uuid.UUID
    event: str
    ts: datetime
    install_id: uuid.UUID
    session_id: uuid.UUID
    context: WireContext
    props: WireProps


class WireBatch(msgspec.Struct, gc=False):
    sent_at: datetime
    events: list[WireEvent]


CONTEXT = WireContext(
    app="my-ide",
    app_version="1.4.2",
    os="linux",
    os_version="6.1",
    locale="en_US",
    sdk="quietly-python",
    sdk_version="0.1.0",
    consent="basic",
)
_encoder = msgspec.json.Encoder()


def _uuid4(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass
class Pool:
    """Installs and their sessions, shared by every phase (as real traffic would be)."""

    installs: list[uuid.UUID]
    sessions: list[list[uuid.UUID]]

    @classmethod
    def make(cls) -> Pool:
        rng = random.Random(POOL_SEED)
        installs = [_uuid4(rng) for _ in range(INSTALLS)]
        sessions = [[_uuid4(rng) for _ in range(SESSIONS_PER_INSTALL)] for _ in installs]
        return cls(installs, sessions)


def generate(seed: int, n: int, base: datetime, pool: Pool) -> Iterator[WireEvent]:
    """``n`` feature_used events with unique ids, stamped in the 10 minutes before ``base``.

    Deterministic in ``seed``, so the baseline subprocess rebuilds the very same events.
    """
    rng = random.Random(seed)
    for _ in range(n):
        i = rng.randrange(INSTALLS)
        yield WireEvent(
            event_id=_uuid4(rng),
            event="feature_used",
            ts=base - timedelta(milliseconds=rng.randrange(600_000)),
            install_id=pool.installs[i],
            session_id=rng.choice(pool.sessions[i]),
            context=CONTEXT,
            props=WireProps(
                feature=rng.choice(FEATURES),
                duration_ms=rng.randrange(1, 60_000),
                success=rng.random() < 0.95,
            ),
        )


def make_bodies(seed: int, n: int, batch: int, base: datetime, pool: Pool) -> list[bytes]:
    """Request bodies of ``batch`` events each (the last may be shorter)."""
    bodies: list[bytes] = []
    events = generate(seed, n, base, pool)
    for start in range(0, n, batch):
        chunk = [next(events) for _ in range(min(batch, n - start))]
        bodies.append(_encoder.encode(WireBatch(sent_at=base, events=chunk)))
    return bodies
