"""deploy/: generated files are what the generators produce today, and they only name real things.

Why: dashboards, alert rules and topic manifests are derived from hub.metrics.METRIC_CATALOGUE and
hub.topics.CATALOGUE. A stale checked-in file, a panel on a metric that no longer exists, or a
KafkaTopic missing from production would each fail silently in operation; here they fail a test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hub.metrics import METRIC_CATALOGUE
from hub.topics import CATALOGUE, CONNECTOR_OFFSETS

ROOT = Path(__file__).resolve().parents[2]
GENERATORS = ("deploy/prometheus/generate.py", "deploy/grafana/generate.py", "deploy/k8s/generate_topics.py")
SERIES = {s for m in METRIC_CATALOGUE for s in m.series}
PROMETHEUS_OWN = {"up"}
_IDENT = re.compile(r"\b(hub_[a-z0-9_]+|up)\b")


@pytest.mark.parametrize("script", GENERATORS)
def test_generated_files_are_up_to_date(script: str, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / script), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written
    for path in written:
        rel = path.relative_to(tmp_path)
        checked_in = ROOT / rel
        assert checked_in.is_file(), f"{rel} is generated but not checked in: run python {script}"
        assert checked_in.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{rel} is stale: run python {script}")


def _dashboard_exprs() -> list[str]:
    dash = json.loads((ROOT / "deploy/grafana/dashboards/hub.json").read_text(encoding="utf-8"))
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def _alert_exprs() -> list[str]:
    doc = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8"))
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def test_every_referenced_metric_is_in_the_catalogue() -> None:
    exprs = _dashboard_exprs() + _alert_exprs()
    assert exprs
    used = {name for e in exprs for name in _IDENT.findall(e)}
    unknown = used - SERIES - PROMETHEUS_OWN
    assert not unknown, f"panels/alerts name metrics the hub does not export: {sorted(unknown)}"


def test_every_catalogue_metric_has_a_panel() -> None:
    used = {name for e in _dashboard_exprs() for name in _IDENT.findall(e)}
    missing = [m.name for m in METRIC_CATALOGUE if not set(m.series) & used]
    assert not missing


def test_label_matchers_and_groupings_name_real_labels() -> None:
    labels = {s: set(m.labels) | {"le", "instance", "job"} for m in METRIC_CATALOGUE for s in m.series}
    for e in _dashboard_exprs() + _alert_exprs():
        for name, inner in re.findall(r"\b(hub_[a-z0-9_]+)\{([^}]*)\}", e):
            for label in re.findall(r"([a-z_]+)\s*=", inner):
                assert label in labels[name], (e, label)


def test_required_alerts_exist() -> None:
    doc = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8"))
    names = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert {"HubDeadLettersRising", "HubReferralEscalations", "HubConsumerLagHigh", "HubSettlementsStalled",
            "HubExporterDown"} <= names


def test_every_yaml_file_parses() -> None:
    files = sorted((ROOT / "deploy").rglob("*.y*ml"))
    assert len(files) >= 10
    for f in files:
        docs = [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d is not None]
        assert docs, f


def test_kafka_topics_follow_the_catalogue_with_production_replication() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/topics.yaml").read_text(encoding="utf-8")))
    by_name = {d["spec"]["topicName"]: d for d in docs if d}
    assert set(by_name) == {t.name for t in (*CATALOGUE, CONNECTOR_OFFSETS)}
    for t in (*CATALOGUE, CONNECTOR_OFFSETS):
        spec = by_name[t.name]["spec"]
        assert spec["partitions"] == t.partitions and spec["replicas"] == 3
        assert spec["config"]["min.insync.replicas"] == "2"
        assert spec["config"]["cleanup.policy"] == ("compact" if t.compacted else "delete")


def test_acls_let_each_principal_write_only_its_catalogue_topics() -> None:
    users = {d["metadata"]["name"]: d for d in
             yaml.safe_load_all((ROOT / "deploy/k8s/users.yaml").read_text(encoding="utf-8")) if d}
    writes = {
        u: {a["resource"]["name"] for a in d["spec"]["authorization"]["acls"]
            if "Write" in a["operations"] and a["resource"]["type"] == "topic"
            and a["resource"]["patternType"] == "literal"}
        for u, d in users.items()
    }
    assert "health.admissions.v1" in writes["connector-hospital"]
    assert "revitalization.poverty-status.v1" not in writes["connector-civil-affairs"]
    assert "hub.settlements.v1" not in writes["connector-hospital"]
    assert all(d["spec"]["authentication"]["type"] == "scram-sha-512" for d in users.values())


def test_compose_has_three_kraft_brokers_and_the_stack() -> None:
    doc = yaml.safe_load((ROOT / "deploy/compose/docker-compose.yml").read_text(encoding="utf-8"))
    services = doc["services"]
    brokers = [s for s in services if s.startswith("kafka-")]
    assert len(brokers) == 3
    for b in brokers:
        env = services[b]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2 and env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
    assert {"topic-init", "prometheus", "grafana", "hub-settlement"} <= set(services)
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    targets = {t.split(":")[0] for sc in prom["scrape_configs"] if sc["job_name"] == "hub"
               for c in sc["static_configs"] for t in c["targets"]}
    assert targets <= set(services), targets - set(services)
    script = (ROOT / "deploy/compose/create-topics.sh").read_text(encoding="utf-8")
    assert all(f"--topic {t.name} " in script for t in CATALOGUE)
