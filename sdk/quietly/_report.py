"""Client reports: what this SDK dropped since its last report, sent to the collector.

At most once a minute a ``client_report`` event (counts by reason, nothing else) rides
along with a batch the worker sends anyway: no request of its own, and nothing while
there is nothing to send. A report is frozen when first built and resent with the same
event id until a batch carrying it is answered 200, so a resend is a duplicate the
collector drops and every drop is counted once. Counts live in memory: drops of a
process that exits before its next send are not reported.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from quietly._events import EventBuilder, EventInvalid
from quietly._stats import Stats

log = logging.getLogger("quietly")

EVENT = "client_report"
INTERVAL_S = 60.0
# stats() drop reason -> client_report field. Events the collector refused inside a 200
# (rejected_by_collector) are its own count, and events held back by consent settings
# are no loss: neither is reported.
FIELDS = {"queue_full": "queue_full", "spool_full": "spool_evicted", "too_old": "too_old",
          "invalid": "invalid", "opted_out": "consent_purged",
          "spool_undecryptable": "undecryptable"}
GAVE_UP_PREFIX = "http_"  # dropped after an answer that is not retried


def fields(dropped: dict[str, int]) -> Counter[str]:
    out: Counter[str] = Counter()
    for reason, n in dropped.items():
        if reason in FIELDS:
            out[FIELDS[reason]] += n
        elif reason.startswith(GAVE_UP_PREFIX):
            out["send_gave_up"] += n
    return out


@dataclass
class Report:
    event_id: str
    ts: float
    counts: dict[str, int]
    basis: Counter[str]  # the totals this report brings the collector up to


class Reporter:
    def __init__(self, stats: Stats, interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stats = stats
        self.interval = interval
        self._clock = clock
        self._reported: Counter[str] = Counter()
        self._pending: Report | None = None
        self._last = -math.inf

    def due(self) -> Report | None:
        """The report to send with the next batch, or None (nothing new, or too soon)."""
        if self._pending is not None:
            return self._pending
        if self._clock() - self._last < self.interval:
            return None
        totals = fields(self.stats.snapshot()["dropped"])
        counts = {k: n - self._reported[k] for k, n in totals.items() if n > self._reported[k]}
        if not counts:
            return None
        self._pending = Report(str(uuid.uuid4()), time.time(), counts, totals)
        return self._pending

    def attach(self, builder: EventBuilder, install: str | None) -> tuple[Report, bytes] | None:
        """The report due and its wire event, to add to the batch being sent; never raises
        (an error is counted as internal_errors and the batch goes without)."""
        try:
            report = self.due()
            if report is None or install is None:
                return None
            event, _ = builder.build(EVENT, report.counts, report.ts, "basic", install, None)
            event["event_id"] = report.event_id  # the same id on every resend
            return report, builder.encode(event)
        except EventInvalid:
            # A catalog of the app's own without client_report: no reports, no error.
            self.interval = math.inf
            return None
        except Exception:
            log.debug("quietly: could not build a client report", exc_info=True)
            self.stats.add("internal_errors")
            return None

    def delivered(self, report: Report) -> None:
        """A batch with ``report`` was answered 200 (stored, or refused with a reason)."""
        if self._pending is report:
            self._reported = report.basis
            self._pending = None
            self._last = self._clock()


__all__ = ["EVENT", "FIELDS", "Report", "Reporter", "fields"]
