"""The test ClickHouse HTTP endpoint answers clickhouse-connect as a server would."""

from __future__ import annotations

import datetime
import urllib.error
import urllib.request
import uuid
from typing import Any

import clickhouse_connect
import pytest


def _client(url: str, **kw: Any) -> Any:
    host, _, port = url.removeprefix("http://").partition(":")
    return clickhouse_connect.get_client(host=host, port=int(port), autogenerate_session_id=False,
                                         **kw)


@pytest.mark.parametrize("compress", [False, "lz4", True])
def test_inserts_and_queries_round_trip_in_every_body_encoding(
    ch_http: str, compress: Any
) -> None:
    db = "c_" + uuid.uuid4().hex[:10]
    admin = _client(ch_http)
    admin.command(f"CREATE DATABASE {db}")
    c = _client(ch_http, database=db, compress=compress)
    c.command("CREATE TABLE t (a UInt32, s String, d DateTime64(3, 'UTC'))"
              " ENGINE = MergeTree ORDER BY a")
    c.insert("t", [[1, "x", datetime.datetime(2026, 1, 1)]], column_names=["a", "s", "d"])
    c.raw_insert("t", ["a", "s", "d"], insert_block=b'[2,"y","2026-01-02T00:00:00Z"]\n',
                 fmt="JSONCompactEachRow", settings={"date_time_input_format": "best_effort"})
    assert c.query("SELECT a, s, toDate(d) FROM t ORDER BY a").result_rows == [
        (1, "x", datetime.date(2026, 1, 1)), (2, "y", datetime.date(2026, 1, 2))]
    assert c.query("SELECT count() FROM t WHERE s = {s:String}",
                   parameters={"s": "y"}).result_rows == [(1,)]


def test_settings_belong_to_their_request_and_readonly_holds(ch_http: str) -> None:
    c = _client(ch_http)
    assert c.query("SELECT getSetting('max_threads')",
                   settings={"max_threads": 1}).result_rows == [(1,)]
    assert c.query("SELECT getSetting('max_threads')").result_rows != [(1,)]
    ro = _client(ch_http, settings={"readonly": 1, "max_result_rows": 3,
                                    "result_overflow_mode": "throw"})
    with pytest.raises(Exception, match="readonly mode"):
        ro.command("CREATE DATABASE never_made")
    with pytest.raises(Exception, match="Limit for result exceeded"):
        ro.query("SELECT number FROM numbers(4)")


def test_errors_carry_the_engines_code_and_status(ch_http: str) -> None:
    req = urllib.request.Request(ch_http + "/?query=SELECT+*+FROM+no_such_table")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 404
    assert err.value.headers["X-ClickHouse-Exception-Code"] == "60"
    assert b"Code: 60." in err.value.read()
    with urllib.request.urlopen(ch_http + "/ping", timeout=10) as resp:
        assert resp.read() == b"Ok.\n"
