"""Collector settings: defaults, then a TOML file, then ``QUIETLY_*`` variables, then flags.

Every setting has one name used everywhere: ``spool_max_bytes`` is the TOML key,
``QUIETLY_SPOOL_MAX_BYTES`` the variable and ``--spool-max-bytes`` the flag.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

EVENT_LOOPS = ("auto", "uvloop", "asyncio")


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting and its source."""


_DURATION = re.compile(r"([0-9]+)([smhd]?)")


class AlertRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True,
                rename={"for_": "for"}):
    name: str
    metric: str
    column: str
    threshold: float
    op: str = ">"
    # Only rows whose columns equal these values, e.g. {operation = "startup"}.
    where: dict[str, str] = msgspec.field(default_factory=dict)
    # One state per value of these columns (and per app), e.g. ["operation", "measure"].
    group_by: list[str] = msgspec.field(default_factory=list)
    aggregate: str = "max"
    per: str = ""  # the denominator column of aggregate = "ratio"
    samples: str = ""  # the column counting what the value stands on (sessions, responses)
    min_samples: int = 0
    window: str = "1d"
    # The window ends yesterday: a partial today would look like a drop in volume.
    complete_days: bool = False
    compare: str = ""
    change: str = "percent"
    for_: str = "0s"
    severity: str = "warning"
    apps: list[str] = msgspec.field(default_factory=list)  # empty: each app seen
    enabled: bool = True
    description: str = ""

    @property
    def window_days(self) -> int:
        return max(1, seconds(self.window) // 86_400)

    @property
    def for_s(self) -> int:
        return seconds(self.for_)

    def condition(self) -> str:
        column = f"{self.column} / {self.per}" if self.aggregate == "ratio" else self.column
        what = column if not self.compare else (
            f"change of {column} vs {self.compare.replace('_', ' ')}"
            f" ({'%' if self.change == 'percent' else 'points'})")
        return f"{what} {self.op} {self.threshold:g}"


def seconds(value: str) -> int:
    m = _DURATION.fullmatch(value.strip())
    if not m:
        raise ValueError(f"expected a duration like 90s, 15m, 2h or 7d, got {value!r}")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[m.group(2)]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    # Everything the collector keeps on disk lives here: embedded ClickHouse,
    # spool, generated keys and the pseudonymization secret.
    data_dir: str = "./quietly-data"
    # Empty: embedded ClickHouse (chdb) under data_dir/clickhouse.
    # Otherwise http(s)://user:pass@host:8123/database.
    clickhouse_url: str = ""
    # Embedded engine directory; defaults to data_dir/clickhouse.
    chdb_path: str = ""
    database: str = "quietly"
    write_keys: dict[str, str] = msgspec.field(default_factory=dict)
    admin_token: str = ""
    # project -> key: reads that project's metrics, dashboard and reports, nothing else.
    read_keys: dict[str, str] = msgspec.field(default_factory=dict)
    # TOML file of write keys and admin tokens, re-read while running (keyfile.py).
    keys_file: str = ""
    # Token bucket per project, in events; 0 turns it off.
    rate_limit_events_per_s: int = 0
    rate_limit_burst: int = 10_000
    schema_dirs: list[str] = msgspec.field(default_factory=list)
    pseudonym_secret: str = ""
    spool_dir: str = ""
    spool_max_bytes: int = 1 << 30
    spool_segment_bytes: int = 64 << 20
    # The most of spool_max_bytes one project's backlog may take (pipeline/spoolshare.py);
    # 100 turns it off.
    spool_project_share_pct: int = 75
    max_event_bytes: int = 32 << 10
    max_batch_bytes: int = 2 << 20
    max_decompressed_bytes: int = 8 << 20
    max_batch_events: int = 2000
    # Admission (docs/security.md): a body must arrive within body_timeout_s (else 408);
    # a connection must send its request headers, and an idle one its next request,
    # within keepalive_timeout_s. Batches read and processed at once, in all and per
    # project: one project's clients can never take every slot.
    body_timeout_s: int = 10
    keepalive_timeout_s: int = 15
    # A connection whose answers wait unread this long is closed; an address may hold
    # this many connections (0: no cap; raise it behind a proxy). server/connections.py
    write_timeout_s: int = 30
    max_connections_per_address: int = 512
    max_batches_in_flight: int = 64
    max_batches_in_flight_per_project: int = 48
    # Failed authentication: each client address may fail this many times in a burst,
    # then this many times a minute; past that its requests get 429 (0: no throttle).
    auth_failure_burst: int = 20
    auth_failures_per_minute: int = 60
    # Each of the collector's own reads (metrics, dashboard, reports, alerts) at most.
    query_max_execution_s: int = 60
    # The SQL sandbox (POST /v1/sql, quietly sql): per query, and queries at once.
    sql_max_execution_s: int = 30
    sql_max_result_rows: int = 100_000
    sql_max_memory_bytes: int = 512 << 20
    sql_max_result_bytes: int = 64 << 20
    sql_max_query_bytes: int = 64 << 10
    sql_max_concurrency: int = 2
    # Each insert has a fixed cost (nine views, a part per table), so under backlog
    # larger spans store more per second; the writer holds one span in memory.
    flush_rows: int = 50_000
    # ClickHouse's guidance: about one insert per second per table. Each insert into
    # events also writes a part into every aggregate table its views feed.
    flush_interval_ms: int = 1000
    # A burst's end (no new batch this long, and at least flush_rows/10 waiting) is
    # inserted without waiting out flush_interval_ms; 0 turns it off.
    flush_idle_ms: int = 50
    # Nice value of the writer's thread and, embedded, of the engine's threads: storing
    # yields the cores to the loop that acknowledges (priority.py); 0 turns it off.
    storage_nice: int = 10
    dedup_memory_ids: int = 250_000
    dedup_filter_mb: int = 32
    future_tolerance_s: int = 60
    retention_days: int = 0
    rejected_retention_days: int = 30
    aggregate_retention_days: int = 0
    # Per table, over the three above; also deletion_receipts and audit_log (kept by default).
    table_retention_days: dict[str, int] = msgspec.field(default_factory=dict)
    # Expire TTL'd rows, re-check deletions (maintenance.py); 0: only `quietly gc`.
    maintenance_interval_s: int = 3600
    # "auto": uvloop when installed (it is, except on Windows), else asyncio's own loop.
    # Every request is handled on the one event loop, and uvloop's costs less per
    # request.
    event_loop: str = "auto"
    log_level: str = "info"
    # Self-observation (docs/observability.md): "text" or "json" (one object a line).
    log_format: str = "text"
    # GET /metrics without the admin token (a scraper on a private network).
    metrics_public: bool = False
    # An OTLP/HTTP receiver's base URL (http://host:4318): metrics and traces go there.
    otlp_endpoint: str = ""
    # Metrics (docs/metrics.md): written to the metric_settings tables at start.
    activation_event: str = "feature_used"
    production_environments: list[str] = msgspec.field(default_factory=lambda: ["production"])
    # Segments (docs/metrics.md): an install is "new" while its first event is younger.
    new_install_days: int = 7
    # k-anonymity: a row counting fewer distinct installs is suppressed; 0 turns it off.
    min_cell_installs: int = 5
    # "operation" or "operation.measure" -> "target/good/acceptable[/unacceptable]";
    # merged over DEFAULT_THRESHOLDS, so configuring one operation keeps the others.
    perf_thresholds: dict[str, str] = msgspec.field(default_factory=dict)
    # Alerts (docs/alerts.md): [[alert_rules]] in TOML, merged by name over the defaults.
    alert_rules: list[AlertRule] = msgspec.field(default_factory=list)
    alert_interval_s: int = 300
    alert_reminder_s: int = 14_400
    alert_webhooks: list[str] = msgspec.field(default_factory=list)
    alert_link_base: str = ""
    # KPI targets ([targets], docs/configuration.md#targets): the table as TOML gave it,
    # merged over the KPI plan's defaults and checked after loading, since the KPIs are
    # the insights' (insights/report/target_plan.py).
    targets: dict[str, Any] = msgspec.field(default_factory=dict)
    # Several collectors over one ClickHouse server (docs/operations.md): a lease decides
    # which one runs the alerts, the maintenance and the promotion of staged events. Its
    # holder renews it every third of this; silent for this long, another takes it.
    lease_ttl_s: int = 30
    # "auto": on with clickhouse_url, off embedded. On: every writer inserts into
    # events_staging, and the lease holder moves new ids into events (promote.py).
    ingest_staging: str = "auto"
    promote_interval_ms: int = 200

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def chdb_dir(self) -> Path:
        return Path(self.chdb_path) if self.chdb_path else self.data_path / "clickhouse"

    @property
    def spool_path(self) -> Path:
        return Path(self.spool_dir) if self.spool_dir else self.data_path / "spool"

    @property
    def embedded(self) -> bool:
        return not self.clickhouse_url

    @property
    def staging(self) -> bool:
        """Events go through events_staging (ingest_staging)."""
        return self.ingest_staging == "on" or (self.ingest_staging == "auto"
                                               and not self.embedded)


# Tables with a retention TTL and the time it counts from. Aggregates that span days
# count from their oldest time, so no row holds data older than the retention.
RETENTION_COLUMNS: dict[str, str] = {
    "events": "ts",
    "rejected_events": "received_at",
    "agg_sessions": "first_ts",
    "agg_session_events_v2": "first_ts",
    # One row per install holds its days: the row goes when its newest day expires,
    # older days are trimmed at each maintenance cycle (aggregates.py).
    "agg_active_days_v2": "last_day",
    "agg_features_v2": "last_day",
    "agg_performance": "day",
    "agg_performance_rollup_v2": "day",
    "agg_install_segments": "last_day",
    "agg_jobs": "first_seen",
    "agg_surveys": "day",
    "agg_deployments": "day",
    "agg_session_steps": "first_ts",
    "agg_experiments": "first_ts",
    "agg_builds": "day",
    "deletion_receipts": "received_at",
    "audit_log": "at",
}


# Tables replaced by migrations 0009, 0012 and 0014 (segments): a configuration naming the old table
# keeps applying to its successor (dau reads active days since 0012).
RENAMED_TABLES: dict[str, str] = {
    "agg_install_day": "agg_active_days_v2",
    "agg_install_day_v2": "agg_active_days_v2",
    "agg_session_events": "agg_session_events_v2",
    "agg_features": "agg_features_v2",
    "agg_performance_rollup": "agg_performance_rollup_v2",
}


def retention_of(s: Settings, table: str) -> int:
    """Days a table's rows are kept (0: forever)."""
    if table in s.table_retention_days:
        return s.table_retention_days[table]
    for old, new in RENAMED_TABLES.items():
        if new == table and old in s.table_retention_days:
            return s.table_retention_days[old]
    if table == "events":
        return s.retention_days
    if table == "rejected_events":
        return s.rejected_retention_days
    if table.startswith("agg_"):
        return s.aggregate_retention_days
    return 0


# The product's benchmark grades (issue #4): durations in ms, memory in MB, CPU in %.
DEFAULT_THRESHOLDS: dict[str, str] = {
    "startup": "2000/3000/5000",
    "file_open": "100/200/500",
    "search": "50/100/200",
    "autocomplete": "50/100/150",
    "build": "1000/2000/5000",
    "idle.memory_mb": "300/500/750/1000",
    "idle.cpu_pct": "1/2/5",
}


def thresholds(s: Settings) -> list[tuple[str, str, float, float, float, float]]:
    """(operation, measure, target, good, acceptable, unacceptable) rows, defaults merged."""
    out = []
    for key, value in sorted({**DEFAULT_THRESHOLDS, **s.perf_thresholds}.items()):
        operation, _, measure = key.partition(".")
        parts = [float(p) for p in value.split("/")]
        if len(parts) == 3:
            parts.append(parts[2])
        out.append((operation, measure or "duration_ms", *parts))
    return out  # type: ignore[return-value]


FIELDS: tuple[str, ...] = Settings.__struct_fields__
_TYPES: dict[str, Any] = {
    f.name: f.type for f in msgspec.inspect.type_info(Settings).fields  # type: ignore[attr-defined]
}


def _parse_env_value(name: str, raw: str) -> Any:
    """Turn a string (env var or flag) into the setting's type."""
    tp = _TYPES[name]
    if isinstance(tp, msgspec.inspect.BoolType):
        if raw.strip().lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise SettingsError(f"{name}: expected true or false, got {raw!r}")
        return raw.strip().lower() in ("true", "1", "yes", "on")
    if isinstance(tp, msgspec.inspect.IntType):
        try:
            return int(raw.replace("_", ""))
        except ValueError as exc:
            raise SettingsError(f"{name}: expected an integer, got {raw!r}") from exc
    if isinstance(tp, msgspec.inspect.ListType):
        return [p.strip() for p in raw.split(",") if p.strip()]
    if isinstance(tp, msgspec.inspect.DictType):
        out: dict[str, Any] = {}
        for part in raw.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise SettingsError(f"{name}: expected 'name=value,name2=value2', got {part!r}")
            out[key.strip()] = value.strip()
            if isinstance(tp.value_type, msgspec.inspect.IntType):
                try:
                    out[key.strip()] = int(value.strip().replace("_", ""))
                except ValueError as exc:
                    raise SettingsError(f"{name}.{key.strip()}: expected an integer") from exc
        return out
    return raw


def env_name(name: str) -> str:
    return "QUIETLY_" + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def load_settings(
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults < config file < environment < overrides (command-line flags)."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    config = config or env.get("QUIETLY_CONFIG")
    if config:
        path = Path(config)
        try:
            merged.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    for name in FIELDS:
        value = env.get(env_name(name))
        if value is not None and value != "":
            merged[name] = _parse_env_value(name, value)
    for name, value in (overrides or {}).items():
        if value is not None:
            merged[name] = _parse_env_value(name, value) if isinstance(value, str) else value
    try:
        settings = msgspec.convert(merged, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from exc
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    if not 0 <= s.port <= 65535:
        raise SettingsError("port: must be 0-65535")
    for name in (
        "spool_max_bytes",
        "max_event_bytes",
        "max_batch_bytes",
        "max_decompressed_bytes",
        "max_batch_events",
        "flush_rows",
        "flush_interval_ms",
        "dedup_memory_ids",
        "body_timeout_s",
        "keepalive_timeout_s",
        "max_batches_in_flight",
        "max_batches_in_flight_per_project",
        "auth_failure_burst",
        "sql_max_execution_s",
        "sql_max_result_rows",
        "sql_max_memory_bytes",
        "sql_max_result_bytes",
        "query_max_execution_s",
        "sql_max_query_bytes",
        "sql_max_concurrency",
        "lease_ttl_s",
        "promote_interval_ms",
    ):
        if getattr(s, name) <= 0:
            raise SettingsError(f"{name}: must be positive")
    if s.max_event_bytes > s.max_decompressed_bytes:
        raise SettingsError("max_event_bytes: cannot exceed max_decompressed_bytes")
    if not s.database.replace("_", "").isalnum():
        raise SettingsError("database: letters, digits and underscores only")
    for key, value in s.perf_thresholds.items():
        where = f"perf_thresholds.{key}"
        operation, _, measure = key.partition(".")
        if not operation or measure not in ("", "duration_ms", "memory_mb", "cpu_pct"):
            raise SettingsError(
                f"{where}: the key is 'operation' or 'operation.measure' with measure"
                " duration_ms, memory_mb or cpu_pct"
            )
        try:
            parts = [float(p) for p in value.split("/")]
        except ValueError:
            parts = []
        if len(parts) not in (3, 4) or parts != sorted(parts):
            raise SettingsError(
                f"{where}: expected 'target/good/acceptable[/unacceptable]', increasing,"
                f" got {value!r}"
            )
    _check_alerts(s)
    if s.event_loop not in EVENT_LOOPS:
        raise SettingsError(
            f"event_loop: expected {', '.join(EVENT_LOOPS)}, got {s.event_loop!r}"
        )
    if s.ingest_staging not in ("auto", "on", "off"):
        raise SettingsError(f"ingest_staging: expected auto, on or off, got {s.ingest_staging!r}")
    if s.lease_ttl_s > 3600:
        raise SettingsError("lease_ttl_s: at most 3600")
    if s.log_format not in ("text", "json"):
        raise SettingsError(f"log_format: expected text or json, got {s.log_format!r}")
    if s.otlp_endpoint and not s.otlp_endpoint.startswith(("http://", "https://")):
        raise SettingsError("otlp_endpoint: expected an http(s) URL such as http://host:4318")
    for name in ("rate_limit_events_per_s", "maintenance_interval_s", "retention_days",
                 "rejected_retention_days", "aggregate_retention_days", "dedup_filter_mb",
                 "flush_idle_ms", "auth_failures_per_minute", "write_timeout_s",
                 "max_connections_per_address"):
        if getattr(s, name) < 0:
            raise SettingsError(f"{name}: cannot be negative")
    if not 1 <= s.spool_project_share_pct <= 100:
        raise SettingsError("spool_project_share_pct: must be 1-100 (100 turns it off)")
    if not 0 <= s.storage_nice <= 19:
        raise SettingsError("storage_nice: must be 0-19 (0 turns it off)")
    if s.rate_limit_burst <= 0:
        raise SettingsError("rate_limit_burst: must be positive")
    for table, days in s.table_retention_days.items():
        if table not in RETENTION_COLUMNS and table not in RENAMED_TABLES:
            raise SettingsError(
                f"table_retention_days.{table}: not a table with retention; one of"
                f" {', '.join(RETENTION_COLUMNS)}"
            )
        if days < 0:
            raise SettingsError(f"table_retention_days.{table}: cannot be negative")
    if not 1 <= s.new_install_days <= 3660:
        raise SettingsError("new_install_days: from 1 to 3660")
    if not 0 <= s.min_cell_installs <= 1_000_000:
        raise SettingsError("min_cell_installs: from 0 (off) to 1000000")
    if s.max_batches_in_flight_per_project > s.max_batches_in_flight:
        raise SettingsError("max_batches_in_flight_per_project: cannot exceed"
                            " max_batches_in_flight")
    for kind in ("write_keys", "read_keys"):
        for project, key in getattr(s, kind).items():
            if len(key) < 16:
                raise SettingsError(f"{kind}.{project}: keys must be at least 16 characters")
    reused = set(s.write_keys.values()) & set(s.read_keys.values())
    if reused or (s.admin_token and s.admin_token in {*s.write_keys.values(),
                                                      *s.read_keys.values()}):
        raise SettingsError("read_keys: a read key must differ from every write key and the"
                            " admin token")


def _check_alerts(s: Settings) -> None:
    # The rules themselves are checked against the metrics after loading
    # (alerts.rules.check): they name views this module knows nothing of.
    for name in ("alert_interval_s", "alert_reminder_s"):
        if getattr(s, name) < 0:
            raise SettingsError(f"{name}: cannot be negative")
    for url in s.alert_webhooks:
        if not url.startswith(("http://", "https://")):
            raise SettingsError(f"alert_webhooks: expected http(s) URLs, got {url[:40]!r}")
