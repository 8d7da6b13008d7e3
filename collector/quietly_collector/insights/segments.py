"""Breakdowns (``by``) and filters (``where``) by segment, checked against the catalog.

A segment is declared in the catalog's ``segments.toml`` (enumerated values) or
derived by the collector (platform, app_version, tenure). Every metric view takes
``by`` (its ``seg1``, ``seg2`` columns) and ``where`` ('segment=value' entries); this
module checks what a caller asks for and names the columns after the segments.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from quietly_schemas import load_catalog
from quietly_schemas.segments import DERIVED_SEGMENTS, TENURE_VALUES, UNKNOWN, SegmentSpec

MAX_BY = 2
MAX_WHERE = 16
SEGMENT_COLUMNS = ("seg1", "seg2")
_VALUE = re.compile(r"[A-Za-z0-9_.:+\-]{1,64}")


class SegmentError(ValueError):
    """A bad breakdown or filter: HTTP 400, naming what is accepted."""


@functools.lru_cache(maxsize=16)
def declared(schema_dirs: tuple[str, ...]) -> dict[str, SegmentSpec]:
    return load_catalog(schema_dirs).segments


def known(schema_dirs: Sequence[str]) -> list[str]:
    return [*declared(tuple(schema_dirs)), *DERIVED_SEGMENTS]


def check_by(by: Sequence[str], schema_dirs: Sequence[str]) -> tuple[str, ...]:
    names = known(schema_dirs)
    if len(by) > MAX_BY:
        raise SegmentError(f"by: at most {MAX_BY} segments, got {len(by)}")
    if len(set(by)) != len(by):
        raise SegmentError("by: a segment is given twice")
    for name in by:
        if name not in names:
            raise SegmentError(f"by: unknown segment {name[:64]!r}; known: {', '.join(names)}")
    return tuple(by)


def check_where(where: Sequence[str], schema_dirs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``SEGMENT=VALUE`` (command line) or ``SEGMENT:VALUE`` (HTTP) entries."""
    if len(where) > MAX_WHERE:
        raise SegmentError(f"where: at most {MAX_WHERE} filters, got {len(where)}")
    specs = declared(tuple(schema_dirs))
    names = known(schema_dirs)
    out = []
    for entry in where:
        m = re.fullmatch(r"([a-z][a-z0-9_]{0,63})[=:](.{1,64})", entry)
        if not m:
            raise SegmentError(f"where: expected SEGMENT=VALUE, got {entry[:80]!r}")
        name, value = m.groups()
        if name not in names:
            raise SegmentError(f"where: unknown segment {name!r}; known: {', '.join(names)}")
        allowed: Sequence[str] | None = None
        if name in specs:
            allowed = (*specs[name].values, UNKNOWN)
        elif name == "tenure":
            allowed = TENURE_VALUES
        if allowed is not None and value not in allowed:
            raise SegmentError(f"where: {name} is one of {', '.join(allowed)}; got {value!r}")
        if not _VALUE.fullmatch(value):
            raise SegmentError(f"where: {name}: {value!r} is not a segment value")
        out.append((name, value))
    return tuple(dict.fromkeys(out))


def view_params(by: Sequence[str], where: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {"by": list(by), "where": [f"{s}={v}" for s, v in where]}


def name_columns(
    columns: list[str], rows: list[list[Any]], by: Sequence[str]
) -> tuple[list[str], list[list[Any]]]:
    """``seg1``/``seg2`` renamed after the ``by`` segments, unused ones dropped; an
    install with no value shows ``unknown``."""
    idx = [columns.index(c) for c in SEGMENT_COLUMNS if c in columns]
    if not idx:
        return columns, rows
    keep = [i for i in range(len(columns)) if i not in idx[len(by):]]
    names = dict(zip(idx, by, strict=False))
    cols = [names.get(i, columns[i]) for i in keep]
    out = []
    for r in rows:
        out.append([(r[i] or UNKNOWN) if i in names else r[i] for i in keep])
    return cols, out


def pool_cohorts(columns: list[str], rows: list[list[Any]], by: Sequence[str]) -> list[list[Any]]:
    """Retention broken down: per segment value and period, a ``cohort = "all"`` row
    pooling its cohorts (installs add up: each is in one cohort)."""
    c = {name: i for i, name in enumerate(columns)}
    pooled: dict[tuple[Any, ...], list[int]] = {}
    order: list[tuple[Any, ...]] = []
    for r in rows:
        key = (r[c["period"]], *(r[c[s]] for s in by))
        if key not in pooled:
            pooled[key] = [0, 0]
            order.append(key)
        pooled[key][0] += int(r[c["cohort_users"]] or 0)
        pooled[key][1] += int(r[c["retained_users"]] or 0)
    out = list(rows)
    for key in order:
        users, retained = pooled[key]
        row: list[Any] = [None] * len(columns)
        row[c["cohort"]], row[c["period"]] = "all", key[0]
        for s, v in zip(by, key[1:], strict=True):
            row[c[s]] = v
        row[c["cohort_users"]], row[c["retained_users"]] = users, retained
        row[c["rate"]] = round(retained / users, 4) if users else None
        row[c["churn_rate"]] = round(1 - retained / users, 4) if users else None
        out.append(row)
    return out
