"""Every option reads from flags, QUIETLY_* variables and a TOML file, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from quietly_collector.settings import SettingsError, load_settings


def test_defaults_serve_locally_with_an_embedded_store() -> None:
    s = load_settings(env={})
    assert (s.host, s.port, s.data_dir, s.embedded) == ("127.0.0.1", 8080, "./quietly-data", True)
    assert s.chdb_dir == Path("quietly-data/clickhouse")


def test_flags_beat_environment_beat_config_file(tmp_path: Path) -> None:
    config = tmp_path / "quietly.toml"
    config.write_text(
        'port = 9000\nhost = "0.0.0.0"\nspool_max_bytes = 1000\n'
        '[write_keys]\nfrom_file = "file-key-0123456789"\n'
    )
    env = {"QUIETLY_PORT": "9100", "QUIETLY_SPOOL_MAX_BYTES": "2_000"}
    s = load_settings(config, env=env, overrides={"port": "9200"})
    assert s.port == 9200
    assert s.host == "0.0.0.0"
    assert s.spool_max_bytes == 2000
    assert s.write_keys == {"from_file": "file-key-0123456789"}


def test_write_keys_from_the_environment() -> None:
    s = load_settings(env={"QUIETLY_WRITE_KEYS": "project_a=key1-0123456789abcdef, "
                                                 "project_b=key2-0123456789abcdef"})
    assert s.write_keys == {"project_a": "key1-0123456789abcdef",
                            "project_b": "key2-0123456789abcdef"}


def test_retention_per_table_from_the_environment() -> None:
    from quietly_collector.settings import retention_of

    s = load_settings(env={"QUIETLY_RETENTION_DAYS": "30", "QUIETLY_AGGREGATE_RETENTION_DAYS": "60",
                           "QUIETLY_TABLE_RETENTION_DAYS": "agg_jobs=1_000,audit_log=730"})
    assert s.table_retention_days == {"agg_jobs": 1000, "audit_log": 730}
    assert [retention_of(s, t) for t in (
        "events", "rejected_events", "agg_sessions", "agg_jobs", "deletion_receipts", "audit_log"
    )] == [30, 30, 60, 1000, 0, 730]


def test_clickhouse_url_switches_to_a_server() -> None:
    s = load_settings(env={"QUIETLY_CLICKHOUSE_URL": "http://u:p@ch:8123/analytics"})
    assert not s.embedded
    from quietly_collector.storage.clients import _server_kwargs, database_of

    assert database_of(s) == "analytics"
    kw = _server_kwargs(s.clickhouse_url)
    assert (kw["host"], kw["port"], kw["username"], kw["password"]) == ("ch", 8123, "u", "p")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QUIETLY_PORT": "eighty"}, "port: expected an integer"),
        ({"QUIETLY_WRITE_KEYS": "nokey"}, "name=value"),
        ({"QUIETLY_WRITE_KEYS": "a=short"}, "at least 16"),
        ({"QUIETLY_SPOOL_MAX_BYTES": "0"}, "spool_max_bytes: must be positive"),
        ({"QUIETLY_DATABASE": "a;drop"}, "database"),
        ({"QUIETLY_TABLE_RETENTION_DAYS": "evnts=30"}, "table_retention_days.evnts: not a"),
        ({"QUIETLY_TABLE_RETENTION_DAYS": "events=soon"}, "events: expected an integer"),
        ({"QUIETLY_RATE_LIMIT_BURST": "0"}, "rate_limit_burst: must be positive"),
        ({"QUIETLY_EVENT_LOOP": "uv"}, "event_loop: expected auto, uvloop, asyncio"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_unknown_keys_in_the_config_file_are_errors(tmp_path: Path) -> None:
    config = tmp_path / "q.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(config, env={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})


ROOT = Path(__file__).resolve().parents[1]


def test_the_example_config_loads() -> None:
    s = load_settings(ROOT / "deploy" / "quietly.example.toml", env={})
    assert s.retention_days == 400 and "my_ide" in s.write_keys


def test_every_setting_is_documented() -> None:
    from quietly_collector.settings import FIELDS, env_name

    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in FIELDS if f"`{name}`" not in doc or env_name(name) not in doc]
    assert not missing, f"undocumented settings: {missing}"


class _RecordingClient:
    def __init__(self) -> None:
        self.settings: dict[str, object] = {}

    def raw_insert(self, table: str, columns: list[str], **kwargs: object) -> None:
        self.settings = dict(kwargs["settings"])  # type: ignore[call-overload]


@pytest.mark.parametrize("url", ["", "http://u:p@127.0.0.1:8123/db"])
def test_no_engine_is_sent_nice_settings(url: str) -> None:
    # A server's version or settings profile may reject them, failing every insert; the
    # embedded engine, with CAP_SYS_NICE, would reset the writer's thread to nice 0
    # after each query, undoing storage_nice (priority.py, tests/spool/test_priority.py).
    from quietly_collector.storage.store import Store

    store = Store(load_settings(env={}, overrides={"clickhouse_url": url}))
    client = _RecordingClient()
    store._writer = client
    store.insert("events", ["event_id"], b"[]\n", token="t1")
    assert client.settings["insert_deduplication_token"] == "t1"
    assert not [k for k in client.settings if k.startswith("os_thread")]
