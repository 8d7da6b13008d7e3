"""Consent: nothing leaves (or is even stored) before opt-in; opt-out deletes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from quietly import Telemetry
from tests.sdk.conftest import ThreadedCollector, run_sdk


def client(collector: ThreadedCollector, state: Path, **kw: object) -> Telemetry:
    return Telemetry(
        endpoint=collector.url, write_key=collector.write_key, app="my-ide",
        app_version="1.4.2", state_dir=state, **kw,  # type: ignore[arg-type]
    )


def test_default_is_off_and_stores_nothing(collector: ThreadedCollector, tmp_path: Path) -> None:
    t = client(collector, tmp_path / "state")
    assert t.consent == "off"
    t.track("feature_used", feature="debugging")
    t.crash(ValueError("boom"))
    assert t.flush(2.0)
    assert t.shutdown(1.0)
    assert collector.count() == 0
    # Not even spooled: no state, no spool file on disk.
    assert not (tmp_path / "state").exists()
    assert t.stats()["queued"] == 0


_COUNT_CONNECTS = """
import sys, json
connects = []
sys.addaudithook(lambda ev, args: connects.append(ev) if ev == "socket.connect" else None)
from quietly import Telemetry
t = Telemetry(endpoint={url!r}, write_key={key!r}, app="my-ide", state_dir={state!r})
{opt_in}
for i in range(1000):
    t.track("feature_used", feature="debugging", duration_ms=i)
t.flush(5.0)
t.shutdown(2.0)
print(json.dumps({{"connects": len(connects)}}))
"""


@pytest.mark.parametrize(
    "opt_in, expect_connections", [("", False), ('t.set_consent("basic")', True)]
)
def test_socket_connections_while_consent_off(
    collector: ThreadedCollector, tmp_path: Path, opt_in: str, expect_connections: bool
) -> None:
    script = _COUNT_CONNECTS.format(
        url=collector.url, key=collector.write_key, state=str(tmp_path / "s"), opt_in=opt_in
    )
    out = json.loads(run_sdk(script))
    if expect_connections:
        assert out["connects"] > 0  # the counter does see the SDK's connections
        assert collector.count("event = 'feature_used'") == 1000
    else:
        assert out["connects"] == 0
        assert collector.count() == 0


def test_consent_levels_gate_fields(collector: ThreadedCollector, tmp_path: Path) -> None:
    t = client(collector, tmp_path / "a")
    t.set_consent("basic")
    t.track("feature_used", feature="basic-run", duration_ms=5, project_size=120)
    t.track("crash", kind="ValueError", message="x", stack="Traceback ...")
    assert t.flush(10)
    t.set_consent("detailed")
    t.track("feature_used", feature="detailed-run", duration_ms=5, project_size=120)
    assert t.flush(10)
    t.shutdown(2)
    rows = dict(collector.rows(
        "SELECT JSONExtractString(props, 'feature'), props FROM events WHERE event = 'feature_used'"
    ))
    assert "project_size" not in json.loads(rows["basic-run"])
    assert json.loads(rows["detailed-run"])["project_size"] == 120
    crash = json.loads(collector.rows("SELECT props FROM events WHERE event = 'crash'")[0][0])
    assert "stack" not in crash and crash["message"] == "x"
    assert t.stats()["props_consent"] >= 2


def test_do_not_track_forces_off(
    collector: ThreadedCollector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = client(collector, tmp_path / "s")
    t.set_consent("basic")
    t.shutdown(2)
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    t2 = client(collector, tmp_path / "s")
    assert t2.consent == "off"
    t2.track("feature_used", feature="debugging")
    t2.set_consent("detailed")
    assert t2.consent == "off"
    t2.track("feature_used", feature="debugging")
    t2.shutdown(2)
    assert collector.count("event = 'feature_used'") == 0


def test_opt_out_purges_rotates_and_deletes_server_side(
    collector: ThreadedCollector, tmp_path: Path
) -> None:
    state = tmp_path / "s"
    t = client(collector, state)
    t.set_consent("basic")
    first_id = t.install_id
    for i in range(20):
        t.track("feature_used", feature="debugging", duration_ms=i)
    assert t.flush(10)
    assert collector.count("event = 'feature_used'") == 20
    # Queued but not yet sent when the user opts out: must never be sent.
    for _ in range(5):
        t.track("feature_used", feature="after-opt-out")
    t.set_consent("off")
    assert t.install_id is None
    assert t.flush(10)  # delivers the deletion request
    assert t.stats()["pending_deletion_requests"] == 0
    assert collector.count() == 0  # every event of the old install is gone
    receipts = collector.rows("SELECT count() FROM deletion_receipts")
    assert receipts[0][0] == 1
    t.set_consent("basic")
    assert t.install_id not in (None, first_id)
    t.track("feature_used", feature="new-id")
    assert t.flush(10)
    t.shutdown(2)
    assert collector.count("event = 'feature_used'") == 1
    saved = json.loads((state / "state.json").read_text())
    assert saved["install_id"] == t.install_id and saved["pending_deletions"] == []


def test_deletion_request_survives_restart_until_delivered(
    collector: ThreadedCollector, tmp_path: Path
) -> None:
    state = tmp_path / "s"
    t = client(collector, state)
    t.set_consent("basic")
    t.track("feature_used", feature="debugging")
    assert t.flush(10)
    t.shutdown(2)
    collector.stop()  # offline while the user opts out
    script = textwrap.dedent(f"""
        from quietly import Telemetry
        t = Telemetry(endpoint={collector.url!r}, write_key="k", app="my-ide",
                      state_dir={str(state)!r})
        t.set_consent("off")
        print(t.flush(0.5))
        t.shutdown(0.5)
    """)
    assert run_sdk(script).strip() == "False"
    assert json.loads((state / "state.json").read_text())["pending_deletions"]
    collector.start()
    t2 = client(collector, state)  # consent is off: it only sends the deletion request
    assert t2.flush(10)
    t2.shutdown(2)
    assert collector.count() == 0
    assert json.loads((state / "state.json").read_text())["pending_deletions"] == []
