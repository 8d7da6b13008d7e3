"""The metric views of sql/views.sql, each written once with segments
(``metric_<name>_by(since, until, app, by, where)``) and made three times: that view,
and two derived from it here:
- the plain ``metric_<name>(since, until, app)``, the same SQL with the join to the
  segments taken out: a join costs even when ``by`` and ``where`` are empty
  (ClickHouse builds it and its nested aggregations whatever the constant conditions
  say: 4.7x the time of dau without it, 500k events), and most calls have no
  breakdown;
- ``metric_<name>_by_segment(since, until, app, by)``, joining
  ``metric_install_segment`` (one segment's rows) instead of
  ``metric_install_segments`` (every wanted segment, folded into a map per install):
  one ``by`` other than tenure and no ``where`` is the commonest breakdown, and one
  view doing both costs both (the branch not taken is still planned and its scalar
  settings read).
Derived, so they cannot drift apart; tests/storage/test_views.py checks that each
plain view answers what its ``_by`` view answers with no breakdown, and each
``_by_segment`` view what it answers with one.

Conventions in views.sql that the derivation relies on (a view breaking them is
refused here, when the views are made):
- the join is written ``ANY LEFT JOIN metric_install_segments(...) AS g USING
  (project, app, install_hash)``;
- the joined columns are read as ``g.seg1``, ``g.seg2`` and ``g.matched`` (they
  become ``''``, ``''`` and ``1``);
- a ``_by`` view reads another as ``metric_<other>_by(..., by = {by:Array(String)},
  where = {where:Array(String)})``.
"""

from __future__ import annotations

import re

_VIEW = re.compile(r"^CREATE OR REPLACE VIEW (metric_\w+)_by AS\b")
_JOIN = re.compile(
    r"\s*ANY LEFT JOIN metric_install_segments\(until = \{until:Date\},\s*"
    r"by = \{by:Array\(String\)\},\s*where = \{where:Array\(String\)\}\) AS g\s+"
    r"USING \(project, app, install_hash\)")
_NESTED = re.compile(
    r"\b(metric_\w+)_by\(([^)]*?),\s*by = \{by:Array\(String\)\},\s*"
    r"where = \{where:Array\(String\)\}\)")
_COLUMNS = (("g.seg1", "''"), ("g.seg2", "''"), ("g.matched", "1"))
_ONE_JOIN = (" ANY LEFT JOIN metric_install_segment(by = {by:Array(String)}) AS g"
             " USING (project, app, install_hash)")
_EMPTY = "CAST([], 'Array(String)')"
# What a plain view must not contain once derived.
_LEFTOVER = re.compile(r"metric_install_segments|\{by:|\{where:|\bg\.|_by\(")


class ViewError(ValueError):
    """A view of views.sql breaks the conventions the plain view is derived by."""


def plain(name: str, body: str) -> str:
    """The plain view's SELECT, from the ``_by`` view's."""
    if not (_JOIN.search(body) or _NESTED.search(body)):
        raise ViewError(f"views.sql: {name}_by neither joins metric_install_segments nor"
                        " reads another _by view: name it without _by")
    out = _JOIN.sub("", body)
    out = _NESTED.sub(r"\1(\2)", out)
    for column, value in _COLUMNS:
        out = out.replace(column, value)
    out = out.replace("{by:Array(String)}", _EMPTY).replace("{where:Array(String)}", _EMPTY)
    if m := _LEFTOVER.search(out):
        raise ViewError(f"views.sql: {name}_by: {m.group(0)!r} left in its plain view"
                        " (see storage/views.py for how views.sql writes segments)")
    return out


def by_segment(name: str, body: str) -> str:
    """The ``_by_segment`` view's SELECT, from the ``_by`` view's."""
    plain(name, body)  # the same conventions
    out = _JOIN.sub(lambda _: _ONE_JOIN, body)
    out = _NESTED.sub(r"\1_by_segment(\2, by = {by:Array(String)})", out)
    out = out.replace("{where:Array(String)}", _EMPTY)
    if m := re.search(r"metric_install_segments|\{where:|\w_by\(", out):
        raise ViewError(f"views.sql: {name}_by: {m.group(0)!r} left in its _by_segment"
                        " view (see storage/views.py for how views.sql writes segments)")
    return out


def expand(statements: list[str]) -> list[str]:
    """Every statement, each ``metric_<name>_by`` view followed by its two derived
    views."""
    out = []
    for stmt in statements:
        out.append(stmt)
        if m := _VIEW.match(stmt):
            out.append(f"CREATE OR REPLACE VIEW {m.group(1)} AS"
                       + plain(m.group(1), stmt[m.end():]))
            out.append(f"CREATE OR REPLACE VIEW {m.group(1)}_by_segment AS"
                       + by_segment(m.group(1), stmt[m.end():]))
        elif "metric_install_segments(" in stmt:
            raise ViewError("views.sql: a view joining metric_install_segments must be named"
                            f" metric_<name>_by: {stmt[:80]!r}")
    return out
