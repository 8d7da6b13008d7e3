"""What can be checked of deploy/ without Docker, Kubernetes or Grafana: the files
parse, carry the required pieces, and every dashboard query runs against the real
views (docs/operations.md, "What was and was not run here")."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML comes with schemathesis (dev extra)

from quietly_collector.server.app import SHUTDOWN_DRAIN_SECONDS
from quietly_collector.storage.migrations import migrate
from quietly_collector.storage.store import Store
from tests.conftest import make_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _yaml(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_dockerfile_runs_unprivileged_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n.*/readyz", text, re.M)
    assert "EXPOSE 8080" in text and "VOLUME" in text
    assert "[dev]" not in text and "./schemas" in text
    assert '"--host", "0.0.0.0"' in text
    ignore = (DEPLOY.parent / ".dockerignore").read_text()
    assert "!collector/" in ignore and "!schemas/" in ignore


def test_compose_pins_images_and_wires_the_collector_to_clickhouse() -> None:
    [compose] = _yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"collector", "clickhouse", "grafana"}
    for name in ("clickhouse", "grafana"):
        image = services[name]["image"]
        assert re.search(r":\d+(\.\d+)+$", image), image  # pinned, never :latest
    collector = services["collector"]
    assert collector["environment"]["QUIETLY_CLICKHOUSE_URL"].startswith("http://quietly:")
    assert "@clickhouse:8123/quietly" in collector["environment"]["QUIETLY_CLICKHOUSE_URL"]
    assert any(v.endswith(":/var/lib/quietly") for v in collector["volumes"])
    grafana = services["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    [ds] = _yaml(DEPLOY / "grafana/provisioning/datasources/clickhouse.yml")
    assert ds["datasources"][0]["uid"] == "quietly-clickhouse"
    [provider] = _yaml(DEPLOY / "grafana/provisioning/dashboards/quietly.yml")
    mounted = {v.split(":")[1] for v in grafana["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounted


def test_systemd_unit_is_hardened_and_outlasts_the_drain() -> None:
    unit = DEPLOY / "systemd/quietly.service"
    text = unit.read_text()
    for line in ("User=quietly", "ProtectSystem=strict", "StateDirectory=quietly",
                 "Restart=on-failure", "KillSignal=SIGTERM", "NoNewPrivileges=yes"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    timeout = re.search(r"^TimeoutStopSec=(\d+)$", text, re.M)
    assert timeout and int(timeout.group(1)) > SHUTDOWN_DRAIN_SECONDS
    if shutil.which("systemd-analyze"):
        out = subprocess.run(["systemd-analyze", "verify", str(unit)],
                             capture_output=True, text=True, timeout=30)
        # /opt/quietly is not installed on a test machine; anything else is a mistake.
        problems = [ln for ln in (out.stdout + out.stderr).splitlines()
                    if ln.strip() and "is not executable" not in ln]
        assert problems == []


def test_kubernetes_statefulset_keeps_one_spool_per_pod() -> None:
    docs = [d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in _yaml(p)]
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Service", "Secret", "ConfigMap", "Kustomization"} <= kinds
    [sts] = [d for d in docs if d["kind"] == "StatefulSet"]
    [c] = sts["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["memory"]
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/quietly"} in c[
        "volumeMounts"]
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > SHUTDOWN_DRAIN_SECONDS
    [kust] = [d for d in docs if d["kind"] == "Kustomization"]
    assert sorted(kust["resources"]) == sorted(
        p.name for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")
    [cm] = [d for d in docs if d["kind"] == "ConfigMap"]
    import tomllib

    assert tomllib.loads(cm["data"]["quietly.toml"])["port"] == 8080


def _dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "quietly-clickhouse"
                out.append((path.name, panel["title"], target["rawSql"]))
    return out


def _as_grafana_sends(sql: str) -> str:
    return (sql.replace("${__from:date:YYYY-MM-DD}", "2026-10-01")
            .replace("${__to:date:YYYY-MM-DD}", "2027-12-31").replace("${app}", ""))


def test_every_dashboard_query_runs_against_the_views(tmp_path: Path, chdb_path: Path) -> None:
    queries = _dashboard_queries()
    names = {n for n, _, _ in queries}
    assert names == {"executive.json", "product.json", "engineering.json"}
    settings = make_settings(tmp_path, chdb_path)
    store = Store(settings)
    store.connect()
    try:
        migrate(store, settings)
        from tests.storage.test_cluster_ddl import EVENTS

        store.command(EVENTS.format(t="events"))
        for board, title, sql in queries:
            assert "$" not in _as_grafana_sends(sql), title
            columns, rows = store.query(_as_grafana_sends(sql))
            assert rows, f"{board}: {title}"
            if "AS time" in sql:  # a time series: a time column and numbers
                assert columns[0] == "time", title
    finally:
        store.close()


def test_every_pod_starts_alike_and_the_lease_picks_the_runner() -> None:
    """No ordinal decides who runs alerts and maintenance (the leader lease does:
    tests/insights/test_alerts_takeover.py), so no pod's settings turn them off."""
    docs = [d for d in _yaml(DEPLOY / "k8s/statefulset.yaml")]
    [c] = docs[0]["spec"]["template"]["spec"]["containers"]
    assert "command" not in c
    assert c["args"] == ["serve", "--config", "/etc/quietly/quietly.toml"]
    names = {e["name"] for e in c["env"]}
    assert not names & {"QUIETLY_ALERT_INTERVAL_S", "QUIETLY_MAINTENANCE_INTERVAL_S"}
    [cm] = [d for d in _yaml(DEPLOY / "k8s/configmap.yaml")]
    import tomllib

    config = tomllib.loads(cm["data"]["quietly.toml"])
    assert config["alert_interval_s"] > 0 and config["maintenance_interval_s"] > 0
    assert config["lease_ttl_s"] * 4 / 3 <= 60  # the lease moves within a minute
