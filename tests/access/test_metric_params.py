"""The new metric parameters (issue 24) from a hostile caller's side: every value is
bounded and checked before it reaches the engine, a bad one is a 400 that says why
(never a 500 or 503), and a read key sees its own project's experiments and paths only."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, OTHER_KEY, WRITE_KEY, body, event, headers

READ_KEY = "params-read-key-0123456789"

BAD = [
    ("lifecycle?period=year", "period"),
    ("active_days?period=", "period"),
    ("lifecycle?period=week%27%20OR%201%3D1", "period"),
    ("paths", "one of from or to"),
    ("paths?from=a&to=b", "one of from or to"),
    ("paths?from=" + quote("x') UNION SELECT * FROM system.users --"), "from"),
    ("paths?to=" + "a" * 65, "to"),
    ("paths?from=a&steps=6", "steps"),
    ("paths?from=a&steps=0", "steps"),
    ("paths?from=a&steps=-1", "steps"),
    ("paths?from=a&steps=" + "9" * 5000, "steps"),
    ("paths?from=a&limit=101", "limit"),
    ("paths?from=a&limit=1e3", "limit"),
    ("paths?from=" + quote("a\n"), "from"),
    ("experiment?goal=x", "needs a name and a goal"),
    ("experiment?name=x", "needs a name and a goal"),
    ("experiment?name=" + quote("x' OR '1'='1") + "&goal=y", "name"),
    ("experiment?name=x&goal=" + quote("job_completed;DROP TABLE events"), "goal"),
    ("experiment?name=" + "n" * 65 + "&goal=y", "name"),
    ("experiment?name=x&goal=y&window=367d", "366 days"),
    ("experiment?name=x&goal=y&window=0", "window"),
    ("experiment?name=" + quote("é") + "&goal=y", "name"),
]


async def _get(server: Running, path: str, token: str = ADMIN_TOKEN) -> tuple[int, str]:
    async with server.session.get(server.url + path,
                                  headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.text()


@pytest.fixture
async def two_projects(tmp_path: Path, chdb_path: Path) -> Running:
    return await start(make_settings(tmp_path, chdb_path, read_keys={"proj": READ_KEY}))


async def test_bad_parameters_are_400s_naming_the_parameter(two_projects: Running) -> None:
    server = two_projects
    try:
        for path, reason in BAD:
            status, text = await _get(server, "/v1/metrics/" + path)
            assert status == 400, (path, status, text)
            assert reason in json.loads(text)["error"], (path, text)
        # At the bounds: answered.
        for path in ("paths?from=session_start&steps=5&limit=100", "paths?to=feature_used:x",
                     "experiment?name=a.b:c-d&goal=job_completed&window=366d",
                     "lifecycle?period=month", "active_days?period=week", "builds",
                     "experiments"):
            status, text = await _get(server, "/v1/metrics/" + path)
            assert status == 200, (path, text)
    finally:
        await stop(server)


async def test_a_read_key_sees_its_own_projects_experiments_and_paths(
    two_projects: Running,
) -> None:
    server = two_projects
    try:
        ts = datetime.now(UTC) - timedelta(hours=1)
        for key, variant in ((WRITE_KEY, "mine"), (OTHER_KEY, "theirs")):
            sid = str(uuid.uuid4())
            evs = [event("session_start", {}, ts=ts, session_id=sid),
                   event("experiment_exposure", {"experiment": "tour", "variant": variant},
                         ts=ts + timedelta(seconds=1), session_id=sid),
                   event("screen_viewed", {"screen": variant}, ts=ts + timedelta(seconds=2),
                         session_id=sid)]
            status, _ = await server.post("/v1/batch", body(evs), headers(key))
            assert status == 200
        await server.settle()
        status, text = await _get(server, "/v1/metrics/experiments", READ_KEY)
        assert status == 200 and [r["variants"] for r in json.loads(text)] == ["mine"]
        status, text = await _get(server, "/v1/metrics/experiment?name=tour&goal=x", READ_KEY)
        assert [r["variant"] for r in json.loads(text)] == ["mine"]
        status, text = await _get(server, "/v1/metrics/paths?from=session_start", READ_KEY)
        paths = [r["path"] for r in json.loads(text) if r["kind"] == "path"]
        assert paths == ["session_start → screen_viewed:mine"], paths
        status, text = await _get(server, "/v1/metrics/experiment?name=tour&goal=x")
        assert sorted(r["variant"] for r in json.loads(text)) == ["mine", "theirs"]
    finally:
        await stop(server)
