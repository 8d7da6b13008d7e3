"""The SDK distribution installs and imports without the collector's dependencies."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("aiohttp", "clickhouse_connect", "chdb", "opentelemetry", "cryptography")
# Loaded only when a text needs them (a number to check, a phone to look for).
LAZY = ("phonenumbers", "stdnum")


def test_sdk_distribution_does_not_depend_on_collector_libraries() -> None:
    deps = tomllib.loads((ROOT / "sdk" / "pyproject.toml").read_text())["project"]["dependencies"]
    schema_deps = tomllib.loads((ROOT / "schemas" / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    for dep in [*deps, *schema_deps]:
        assert not dep.lower().startswith(("aiohttp", "clickhouse", "chdb", "opentelemetry"))


def test_using_the_sdk_loads_no_collector_library(tmp_path: Path) -> None:
    code = (
        "import sys, quietly\n"
        f"t = quietly.Telemetry(local_path={str(tmp_path / 'e.jsonl')!r}, "
        f"state_dir={str(tmp_path / 's')!r})\n"
        "t.set_consent('basic'); t.track('feature_used', feature='x'); assert t.flush(5)\n"
        f"print([m for m in {(*HEAVY, *LAZY)!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_collector_requires_a_safe_aiohttp() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "aiohttp>=3.13.3" in deps


def test_the_phone_library_is_the_collectors_and_an_extra_for_the_sdk() -> None:
    schemas = tomllib.loads((ROOT / "schemas" / "pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith("phonenumbers") for d in schemas["dependencies"])
    assert schemas["optional-dependencies"]["phone"] == ["phonenumberslite>=9.0"]
    collector = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "quietly-schemas[phone]==0.1.0" in collector
