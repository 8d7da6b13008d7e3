"""Telemetry.set_segments and the catalog's segments.toml."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quietly import AsyncTelemetry, EventInvalid, Telemetry
from quietly_schemas import CatalogError, load_catalog
from tests.sdk.test_api import local, written

OWN = """
[seat]
values = ["admin", "member"]
consent = "detailed"
keep = "latest"
"""


def test_set_segments_sends_the_declared_values(tmp_path: Path) -> None:
    t = local(tmp_path)
    t.set_segments(channel="beta", plan="paid", team="team")
    t.flush(5)
    [e] = written(tmp_path, "segments")
    assert e["props"] == {"channel": "beta", "plan": "paid", "team": "team"}
    t.shutdown(1)


def test_async_client_has_set_segments(tmp_path: Path) -> None:
    async def main() -> None:
        t = AsyncTelemetry(local_path=tmp_path / "events.jsonl", state_dir=tmp_path / "s")
        await t.aset_consent("basic")
        t.set_segments(plan="free")
        await t.aflush(5)
        await t.ashutdown(1)

    asyncio.run(main())
    assert [e["props"] for e in written(tmp_path, "segments")] == [{"plan": "free"}]


def test_undeclared_segments_and_values_are_refused_counted_and_raised_in_debug(
    tmp_path: Path,
) -> None:
    t = local(tmp_path)
    t.set_segments(plan="gold")  # not a declared value: the event is refused
    t.set_segments(plan="paid", colour="blue")  # undeclared segment: dropped
    t.flush(5)
    stats = t.stats()["dropped"]
    assert stats["invalid"] == 1 and t.stats()["props_undeclared"] == 1
    assert [e["props"] for e in written(tmp_path, "segments")] == [{"plan": "paid"}]
    t.shutdown(1)
    d = Telemetry(local_path=tmp_path / "d.jsonl", state_dir=tmp_path / "state", debug=True)
    with pytest.raises(EventInvalid, match=r"\$\.props\.plan"):
        d.set_segments(plan="gold")
    d.shutdown(1)


def test_segment_values_need_their_consent_and_nothing_goes_out_when_off(
    tmp_path: Path,
) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "segments.toml").write_text(OWN)
    t = local(tmp_path, schema_dirs=[schemas])
    t.set_segments(plan="paid", seat="admin")  # seat needs detailed consent
    t.set_consent("detailed")
    t.set_segments(seat="member")
    t.flush(5)
    assert [e["props"] for e in written(tmp_path, "segments")] == [
        {"plan": "paid"}, {"seat": "member"}]
    t.set_consent("off")
    t.set_segments(plan="free")
    t.flush(5)
    assert {"plan": "free"} not in [e["props"] for e in written(tmp_path, "segments")]
    t.shutdown(1)


def test_operators_declare_their_own_segments_with_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "segments.toml").write_text(OWN)
    catalog = load_catalog([tmp_path])
    assert set(catalog.segments) == {"channel", "plan", "team", "seat"}
    seg = catalog.get("segments")
    assert seg is not None and seg.fields["seat"].consent == "detailed"
    for text, message in [
        ('[plan]\nvalues = ["x"]\n', "already defined"),
        ('[platform]\nvalues = ["x"]\n', "derived by the collector"),
        ('[tier]\nvalues = ["x"]\nkeep = "middle"\n', "keep must be"),
        ('[tier]\nvalues = []\n', "values is a list"),
        ('[tier]\nvalues = ["a b"]\n', "not a keyword"),
        ('[tier]\nvalues = ["x"]\ncolour = 1\n', "unknown keys"),
    ]:
        (tmp_path / "segments.toml").write_text(text)
        with pytest.raises(CatalogError, match=message):
            load_catalog([tmp_path])
