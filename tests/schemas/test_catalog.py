"""The event catalog: built-ins, operators' own schema files, and evolution rules."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import msgspec
import pytest

from quietly_schemas import CatalogError, builtin_catalog, check_evolution, load_catalog
from quietly_schemas.catalog import parse_schema
from quietly_schemas.evolution import fingerprint
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import body, event, headers

BUILTIN = {
    "session_start", "session_end", "feature_used", "performance", "crash", "error",
    "survey_response", "job_started", "job_step", "job_completed", "deployment",
    "screen_viewed", "deletion_request", "segments", "experiment_exposure",
    "build_finished", "client_report",
}
LOCK = Path(__file__).resolve().parents[2] / "schemas" / "catalog.lock.json"


def test_builtin_catalog_has_every_product_event_with_bounded_fields() -> None:
    catalog = builtin_catalog()
    assert {s.name for s in catalog} == BUILTIN
    for schema in catalog:
        for spec in schema.fields.values():
            assert spec.consent in ("basic", "detailed")
            if spec.type in ("keyword", "text"):
                assert spec.max_length or spec.values
            if spec.type in ("int", "float"):
                assert spec.min is not None and spec.max is not None


def test_compiled_types_enforce_declared_bounds() -> None:
    survey = builtin_catalog().get("survey_response")
    assert survey is not None
    ok = msgspec.json.decode(b'{"survey": "nps", "score": 10}', type=survey.props_type)
    assert ok.score == 10  # type: ignore[attr-defined]
    with pytest.raises(msgspec.ValidationError, match="<= 10"):
        msgspec.json.decode(b'{"survey": "nps", "score": 11}', type=survey.props_type)
    with pytest.raises(msgspec.ValidationError, match="survey"):
        msgspec.json.decode(b'{"score": 3}', type=survey.props_type)
    # Keywords cannot carry an e-mail address or a path (checked after decoding).
    for value in ("a@b.com", "/home/bob", "two words"):
        decoded = msgspec.json.decode(msgspec.json.encode({"survey": value}),
                                      type=survey.props_type)
        assert survey.bad_keyword(decoded) == "survey"
    assert survey.bad_keyword(ok) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nversion = 1\n[fields.a]\ntype = "text"\n', "max_length"),
        ('name = "x"\nversion = 1\n[fields.a]\ntype = "int"\nmin = 0\n', "min <= max"),
        ('name = "x"\nversion = 1\n[fields.a]\ntype = "blob"\n', "type must be"),
        ('name = "x"\nversion = 1\n[fields.a]\ntype = "bool"\nconsent = "all"\n', "consent"),
        ('name = "X-Y"\nversion = 1\n', "lower_snake_case"),
        ('name = "x"\nversion = 0\n', "version"),
        ('name = "x"\nversion = 1\nowner = "me"\n', "unknown keys"),
        ("name = ", "not valid TOML"),
    ],
)
def test_invalid_schema_files_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_schema(text, "<string>")


def test_schema_file_name_must_match_its_content(tmp_path: Path) -> None:
    (tmp_path / "build_done.v1.toml").write_text('name = "build_finished"\nversion = 1\n')
    with pytest.raises(CatalogError, match=r"build_finished\.v1\.toml"):
        load_catalog([tmp_path])


def test_builtin_catalog_keeps_the_evolution_rules_against_the_lock() -> None:
    published = json.loads(LOCK.read_text())
    assert check_evolution(published, builtin_catalog()) == []
    # Every published event version is in the lock: adding a version means updating it.
    assert set(published) == set(fingerprint(builtin_catalog()))


def test_evolution_check_names_each_breaking_change() -> None:
    published = {"feature_used.v1": {"feature": "keyword", "duration_ms": "float", "gone": "bool"},
                 "removed.v1": {}}
    extra = parse_schema(
        'name = "feature_used"\nversion = 1\n'
        '[fields.feature]\ntype = "keyword"\nmax_length = 9\n'
        '[fields.duration_ms]\ntype = "int"\nmin = 0\nmax = 9\n'
        '[fields.new_required]\ntype = "bool"\nrequired = true\n',
        "<string>",
    )
    from quietly_schemas import Catalog

    problems = check_evolution(published, Catalog([extra]))
    assert any("removed.v1" in p and "removed" in p for p in problems)
    assert any("'gone' was removed" in p for p in problems)
    assert any("'duration_ms' changed type float -> int" in p for p in problems)
    assert any("'new_required' must be optional" in p for p in problems)


def test_builtin_schema_files_are_packaged() -> None:
    root = resources.files("quietly_schemas") / "events"
    assert any(p.name == "feature_used.v1.toml" for p in root.iterdir())


async def test_operators_add_event_types_as_files_without_code(
    tmp_path: Path, chdb_path: Path
) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "export_done.v1.toml").write_text(
        'name = "export_done"\nversion = 1\n'
        '[fields.format]\ntype = "keyword"\nvalues = ["pdf", "csv"]\nrequired = true\n'
        '[fields.pages]\ntype = "int"\nmin = 0\nmax = 10000\n'
        '[fields.note]\ntype = "text"\nmax_length = 200\n'
    )
    settings = make_settings(tmp_path, chdb_path, schema_dirs=[str(schemas)])
    running: Running = await start(settings)
    try:
        good = event("export_done", {"format": "pdf", "pages": 3, "note": "sent to a@b.org"})
        bad = event("export_done", {"format": "docx"})
        _, result = await running.post("/v1/batch", body([good, bad]), headers())
        assert result["accepted"] == 1
        assert "$.events[1].props.format" in result["rejected"][0]["reason"]
        await running.settle()
        [(props,)] = running.rows("SELECT props FROM events")
        assert json.loads(props) == {"format": "pdf", "pages": 3, "note": "sent to [email]"}
    finally:
        await stop(running)
