"""``Telemetry.experiment`` (and ``AsyncTelemetry``) and ``build_finished``, observed
through local analytics (a JSONL file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quietly import AsyncTelemetry, Telemetry


def local(tmp_path: Path, cls: type[Telemetry] = Telemetry, consent: str = "basic") -> Telemetry:
    t = cls(local_path=tmp_path / "events.jsonl", app="my-ide", state_dir=tmp_path / "state")
    if consent:
        t.set_consent(consent)
    return t


def written(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == name]


def test_one_exposure_per_install_and_experiment_across_restarts(tmp_path: Path) -> None:
    t = local(tmp_path)
    for _ in range(3):
        t.experiment("onboarding_tour", "short")
    t.experiment("onboarding_tour", "long")  # the first variant reported stays
    t.experiment("search_ranking", "control")
    t.build_finished(False, duration_ms=5400, kind="incremental")
    assert t.flush(5)
    t.shutdown(1)
    # A restart of the app (same state directory) sends no second exposure.
    t2 = local(tmp_path, consent="")
    t2.experiment("onboarding_tour", "short")
    t2.experiment("new_menu", "b")
    assert t2.flush(5)
    t2.shutdown(1)
    got = [(e["props"]["experiment"], e["props"]["variant"])
           for e in written(tmp_path, "experiment_exposure")]
    assert got == [("onboarding_tour", "short"), ("search_ranking", "control"),
                   ("new_menu", "b")]
    build = written(tmp_path, "build_finished")[0]["props"]
    assert build == {"success": False, "duration_ms": 5400, "kind": "incremental"}


def test_a_new_identity_is_exposed_again_and_off_sends_nothing(tmp_path: Path) -> None:
    t = local(tmp_path, consent="")
    t.experiment("onboarding_tour", "short")  # consent off: nothing, nothing remembered
    t.set_consent("basic")
    t.experiment("onboarding_tour", "short")
    first = t.install_id
    assert t.flush(5)  # opting out purges what is not yet delivered
    t.set_consent("off")  # forgets the install id, and so its exposures
    t.set_consent("basic")
    assert t.install_id != first
    t.experiment("onboarding_tour", "short")
    assert t.flush(5)
    t.shutdown(1)
    installs = [e["install_id"] for e in written(tmp_path, "experiment_exposure")]
    assert installs == [first, t.install_id]


def test_bad_arguments_are_counted_never_raised(tmp_path: Path) -> None:
    t = local(tmp_path)
    t.experiment("onboarding tour with spaces", "x" * 500)  # invalid keywords: dropped
    t.experiment(None, "a")  # type: ignore[arg-type]
    assert t.flush(5)
    t.shutdown(1)
    assert written(tmp_path, "experiment_exposure") == []
    stats = t.stats()
    assert stats["dropped"].get("invalid", 0) + stats.get("internal_errors", 0) >= 2


async def test_async_telemetry_mirrors_the_experiment_call(tmp_path: Path) -> None:
    t = local(tmp_path, AsyncTelemetry)
    assert isinstance(t, AsyncTelemetry)
    await t.aexperiment("onboarding_tour", "long")
    t.experiment("onboarding_tour", "long")
    t.build_finished(True)
    assert await t.aflush(5)
    await t.ashutdown(1)
    assert len(written(tmp_path, "experiment_exposure")) == 1
    assert written(tmp_path, "build_finished")[0]["props"] == {"success": True}
