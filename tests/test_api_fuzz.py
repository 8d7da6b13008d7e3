"""Fuzz the whole HTTP API from its own OpenAPI description (schemathesis).

The collector runs in a thread of this process on an embedded ClickHouse; the
description is the one it serves at /openapi.json. Every operation gets generated
requests, valid and invalid by the description, with the write key for
``/v1/batch`` and the admin token elsewhere, and every default check runs on every
answer: no server error, status codes, content types, headers and bodies as
described, invalid input refused, valid input accepted.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.conftest import make_settings
from tests.helpers import ADMIN_TOKEN, WRITE_KEY
from tests.sdk.conftest import ThreadedCollector

# Bounded so the file runs in well under a minute; derandomized so CI is repeatable.
# QUIETLY_FUZZ_EXAMPLES=500 digs deeper by hand.
EXAMPLES = int(os.environ.get("QUIETLY_FUZZ_EXAMPLES", "30"))

CONFIG: dict[str, Any] = {
    "generation": {"max-examples": EXAMPLES},
    "auth": {"openapi": {"writeKey": {"bearer": WRITE_KEY}, "adminToken": {"bearer": ADMIN_TOKEN}}},
    # Valid by the description yet refused with a 400, rightly: rules JSON Schema cannot
    # state. Any string is a valid `sql` to JSON Schema, not to ClickHouse; a metric's
    # `since` must not be after `until`, and a funnel needs two steps.
    "operations": [
        {
            "include-path": path,
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401"]}},
        }
        for path in ("/v1/sql", "/v1/metrics/{name}")
    ],
}


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, chdb_path: Path
) -> Iterator[ThreadedCollector]:
    c = ThreadedCollector(make_settings(tmp_path_factory.mktemp("fuzz"), chdb_path))
    c.start()
    try:
        yield c
    finally:
        c.close()


# Loaded at import, as schemathesis's pytest plugin needs (its lazy loader does not
# work with pytest 9); test_the_fuzzed_description_is_the_served_one ties the two.
SPEC = json.loads((resources.files("quietly_collector") / "openapi.json").read_text())
schema = schemathesis.openapi.from_dict(SPEC, config=SchemathesisConfig.from_dict(CONFIG))


def test_the_fuzzed_description_is_the_served_one(fuzzed: ThreadedCollector) -> None:
    with urllib.request.urlopen(fuzzed.url + "/openapi.json") as resp:
        assert json.loads(resp.read()) == SPEC


@schema.parametrize()
@settings(
    derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_matches_its_openapi_description(case: Any, fuzzed: ThreadedCollector) -> None:
    case.call_and_validate(base_url=fuzzed.url)
