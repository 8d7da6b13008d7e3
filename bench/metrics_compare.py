"""The metrics benchmark's comparison of a view's answer with its raw equivalent: exact,
approximate (t-digest quantiles within a tolerance) or a mismatch."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

# t-digests merged from per-install states are not the digest of all samples.
QUANTILE_TOLERANCE = 0.05
APPROXIMATE_COLUMNS = {"performance": frozenset({"p50_ms", "p95_ms", "p99_ms"})}


# -- comparing answers ------------------------------------------------------------------


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _unsegmented(answer: tuple[list[str], list[Any]]) -> tuple[list[str] | None, list[Any]]:
    """Without its seg1/seg2 columns, which must be empty when nothing is broken down
    (the raw queries have none); None if one is set."""
    cols, rows = answer
    segs = [i for i, c in enumerate(cols) if c in ("seg1", "seg2")]
    if any(r[i] != "" for r in rows for i in segs):
        return None, rows
    return ([c for i, c in enumerate(cols) if i not in segs],
            [[v for i, v in enumerate(r) if i not in segs] for r in rows])


def compare(metric: str, view: tuple[list[str], list[Any]],
            raw: tuple[list[str], list[Any]]) -> dict[str, Any]:
    """``exact``, ``approximate`` (t-digest columns within tolerance) or ``MISMATCH``."""
    (vcols, vrows), (rcols, rrows) = _unsegmented(view), _unsegmented(raw)
    if vcols is None or rcols is None:
        return {"status": "MISMATCH", "detail": "segment columns set without a breakdown"}
    if vcols != rcols:
        return {"status": "MISMATCH", "detail": f"columns {vcols} != {rcols}"}
    if len(vrows) != len(rrows):
        return {"status": "MISMATCH", "detail": f"{len(vrows)} rows from the view,"
                                                f" {len(rrows)} from events"}
    approx = APPROXIMATE_COLUMNS.get(metric, frozenset())
    worst = 0.0
    last_digit = 0
    differing: list[str] = []
    for i, (vr, rr) in enumerate(zip(vrows, rrows, strict=True)):
        for col, a, b in zip(vcols, map(_plain, vr), map(_plain, rr), strict=True):
            if a == b:
                continue
            if col in approx and isinstance(a, float) and isinstance(b, float):
                rel = abs(a - b) / max(abs(a), abs(b), 1e-9)
                worst = max(worst, rel)
                if rel <= QUANTILE_TOLERANCE:
                    continue
            elif col == "grade" and approx:
                # A grade follows p95, which is allowed to differ slightly.
                continue
            elif isinstance(a, float) and isinstance(b, float) and _last_digit(a, b):
                # Averages summed in a different order can round either way at the
                # last kept decimal: not a wrong answer.
                last_digit += 1
                continue
            if len(differing) < 5:
                differing.append(f"row {i} {col}: view {a!r}, raw {b!r}")
            else:
                break
    if differing:
        return {"status": "MISMATCH", "detail": "; ".join(differing),
                "max_quantile_rel_diff": worst}
    rounding = (f"; {last_digit} value(s) differ by one in the last rounded decimal"
                if last_digit else "")
    if worst > 0:
        return {"status": "approximate", "max_quantile_rel_diff": worst,
                "last_digit_diffs": last_digit,
                "detail": f"t-digest quantiles within {worst:.2%}{rounding}"}
    if last_digit:
        return {"status": "exact", "last_digit_diffs": last_digit, "detail": rounding[2:]}
    return {"status": "exact"}


def _last_digit(a: float, b: float) -> bool:
    """``a`` and ``b`` differ by one unit of their last decimal (2992.034 and 2992.033).

    The views round averages and rates to 3 or 4 decimals; fewer shown decimals are
    trailing zeros, so 0.5 against 0.4 is a real difference, 0.5 against 0.5001 is not.
    """
    decimals = max(len(repr(x).partition(".")[2]) for x in (a, b))
    return decimals >= 3 and abs(a - b) <= 1.001 * 10.0 ** -decimals
