"""asyncio adapter: the same client, with the calls that wait made awaitable.

``track`` and the helpers only append to a queue, so they are safe to call on
the event loop as they are (``experiment`` also writes the small state file, once per
experiment: ``aexperiment`` does that in a thread). ``flush``, ``shutdown`` and
``set_consent`` (a small file write) run in a thread so the loop never waits on disk or network.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from quietly._client import Telemetry


class AsyncTelemetry(Telemetry):
    """``Telemetry`` for asyncio code: ``await t.aflush()``, ``async with AsyncTelemetry(...)``."""

    async def aset_consent(self, level: str) -> None:
        await asyncio.to_thread(self.set_consent, level)

    async def aexperiment(self, name: str, variant: str) -> None:
        """``experiment`` off the loop: its first call per experiment writes the state file."""
        await asyncio.to_thread(self.experiment, name, variant)

    async def aflush(self, timeout: float = 5.0) -> bool:
        return await asyncio.to_thread(self.flush, timeout)

    async def ashutdown(self, timeout: float = 2.0) -> bool:
        return await asyncio.to_thread(self.shutdown, timeout)

    async def __aenter__(self) -> AsyncTelemetry:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.ashutdown(self._exit_timeout)

    def __repr__(self) -> str:
        return f"<AsyncTelemetry consent={self.consent!r}>"


__all__ = ["AsyncTelemetry"]
