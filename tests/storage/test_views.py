"""The plain metric views are derived from the segmented ones of views.sql
(storage/views.py); a view written against the conventions is refused when the
views are made, not left to answer wrongly."""

from __future__ import annotations

import pytest

from quietly_collector.storage.views import ViewError, expand

JOIN = ("ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},"
        "\n    where = {where:Array(String)}) AS g USING (project, app, install_hash)")


def test_the_plain_view_drops_the_join_and_its_columns() -> None:
    by = ("CREATE OR REPLACE VIEW metric_x_by AS SELECT day, g.seg1 AS seg1, g.seg2 AS seg2,"
          f" count() AS n FROM agg_x AS t {JOIN} WHERE day >= {{since:Date}}"
          " AND (empty({where:Array(String)}) OR g.matched = 1) GROUP BY day, seg1, seg2")
    out = expand([by])
    assert out[0] == by
    assert out[1] == ("CREATE OR REPLACE VIEW metric_x AS SELECT day, '' AS seg1, '' AS seg2,"
                      " count() AS n FROM agg_x AS t WHERE day >= {since:Date}"
                      " AND (empty(CAST([], 'Array(String)')) OR 1 = 1)"
                      " GROUP BY day, seg1, seg2")


def test_a_by_view_reading_another_reads_its_plain_view_in_the_plain_one() -> None:
    by = ("CREATE OR REPLACE VIEW metric_y_by AS SELECT * FROM metric_x_by(since = {since:Date},"
          " until = {until:Date}, app = {app:String}, by = {by:Array(String)},"
          " where = {where:Array(String)}) AS d")
    assert expand([by])[1] == ("CREATE OR REPLACE VIEW metric_y AS SELECT * FROM"
                               " metric_x(since = {since:Date}, until = {until:Date},"
                               " app = {app:String}) AS d")


@pytest.mark.parametrize("body", [
    # the join under another alias: its columns would be left in the plain view
    "SELECT s.seg1 AS seg1 FROM t ANY LEFT JOIN metric_install_segments(until = {until:Date},"
    " by = {by:Array(String)}, where = {where:Array(String)}) AS s USING (project, app,"
    " install_hash)",
    # a _by view with no segments to take out
    "SELECT g.seg1 FROM (SELECT 1) AS g",
])
def test_a_view_against_the_conventions_is_refused(body: str) -> None:
    with pytest.raises(ViewError):
        expand([f"CREATE OR REPLACE VIEW metric_z_by AS {body}"])


def test_a_view_joining_the_segments_must_be_a_by_view() -> None:
    with pytest.raises(ViewError, match="metric_<name>_by"):
        expand(["CREATE OR REPLACE VIEW metric_z AS SELECT * FROM t ANY LEFT JOIN"
                " metric_install_segments(until = {until:Date}, by = {by:Array(String)},"
                " where = {where:Array(String)}) AS g USING (project, app, install_hash)"])
