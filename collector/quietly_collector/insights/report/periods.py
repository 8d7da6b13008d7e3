"""Report periods: rolling windows of whole UTC days, and the windows before them.

Rolling (the 7 or 30 days ending ``until``) rather than calendar weeks and months,
so a period and the one before it always have the same length and compare fairly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

PERIOD_DAYS = {"day": 1, "week": 7, "month": 30}


@dataclass(frozen=True)
class Window:
    since: date
    until: date

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def before(self) -> Window:
        """The window of the same length that ends the day before this one starts."""
        return Window(self.since - timedelta(days=self.days), self.since - timedelta(days=1))

    def label(self) -> str:
        if self.since == self.until:
            return self.since.isoformat()
        return f"{self.since.isoformat()} \u2013 {self.until.isoformat()}"


def window(period: str, until: date) -> Window:
    if period not in PERIOD_DAYS:
        raise ValueError(f"period: expected one of {', '.join(PERIOD_DAYS)}, got {period!r}")
    return Window(until - timedelta(days=PERIOD_DAYS[period] - 1), until)


def trailing(current: Window, n: int) -> list[Window]:
    """``n`` consecutive windows ending with ``current``, oldest first."""
    out = [current]
    while len(out) < n:
        out.append(out[-1].before())
    return out[::-1]
