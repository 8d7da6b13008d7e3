"""Failed authentication: counted by reason, throttled per client address, audited.

Each client address has a token bucket of failures (``auth_failure_burst``, refilled
at ``auth_failures_per_minute``); an address with none left gets ``429`` for every
request that needs credentials, before they are checked, until the bucket refills.
IPv6 addresses count by their /64, the block one host is usually given. Addresses
live in memory only, at most ``MAX_ADDRESSES`` of them (the least recently failing
are forgotten first), and are never written anywhere: the audit log gets one row a
minute at most, with counts.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web

MAX_ADDRESSES = 65_536
FAILURE_PREFIX = "auth_failures_"


def client_address(request: web.Request) -> str:
    remote = request.remote or ""
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if ip.version == 6 and not ip.ipv4_mapped:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


class AuthFailures:
    def __init__(self, counters: Counter[str], burst: int, per_minute: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.counters = counters
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self._clock = clock
        # address -> (tokens, updated); ordered by last failure.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._interval: Counter[str] = Counter()
        self._routes: Counter[str] = Counter()
        self._addresses: set[str] = set()

    def _tokens(self, address: str, now: float) -> float:
        tokens, updated = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - updated) * self.rate)

    def blocked(self, address: str) -> int:
        """Seconds until this address may try again; 0 when it may now."""
        if self.rate <= 0 or address not in self._buckets:
            return 0
        tokens = self._tokens(address, self._clock())
        return 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.rate))

    def count(self, reason: str, path: str) -> None:
        self.counters[FAILURE_PREFIX + reason] += 1
        self._interval[reason] += 1
        # At most a few hundred distinct paths a minute are kept: the rest count as one.
        key = path[:64] if path in self._routes or len(self._routes) < 256 else "(other)"
        self._routes[key] += 1

    def failed(self, address: str, reason: str, path: str) -> None:
        """A wrong credential: counted, and one failure taken from the address's budget."""
        self.count(reason, path)
        self._addresses.add(address)
        if self.rate <= 0:
            return
        now = self._clock()
        tokens = self._tokens(address, now) - 1
        self._buckets[address] = (tokens, now)
        self._buckets.move_to_end(address)
        if len(self._buckets) > MAX_ADDRESSES:
            self._buckets.popitem(last=False)

    def summary(self) -> dict[str, Any] | None:
        """What failed since the last summary (counts only), or None if nothing did."""
        if not self._interval:
            return None
        out = {
            "failures": sum(self._interval.values()),
            "by_reason": dict(sorted(self._interval.items())),
            "top_routes": dict(self._routes.most_common(10)),
            "addresses": len(self._addresses),
        }
        self._interval.clear()
        self._routes.clear()
        self._addresses.clear()
        return out
