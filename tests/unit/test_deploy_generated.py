"""deploy/: generated files are what the generators produce today, and they only name real things.

Why: dashboards, alert rules, manifests and compose are derived from hub.metrics.METRIC_CATALOGUE,
hub.topics and the connector configs. A stale checked-in file, a panel on a metric that no longer
exists, an alert without a runbook or without a promtool case would each fail silently in operation;
here they fail a test.
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
from hub.topics import INPUT_TOPICS

ROOT = Path(__file__).resolve().parents[2]
GENERATORS = ("deploy/prometheus/generate.py", "deploy/grafana/generate.py", "deploy/k8s/generate.py",
              "deploy/compose/generate.py")
SERIES = {s for m in METRIC_CATALOGUE for s in m.series}
PROMETHEUS_OWN = {"up"}
_IDENT = re.compile(r"\b(hub_[a-z0-9_]+|process_[a-z0-9_]+|up)\b")
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))


def _prometheus_generator() -> object:
    sys.path[:0] = [str(ROOT / "deploy"), str(ROOT / "deploy/prometheus")]
    try:
        import importlib

        return importlib.import_module("generate")
    finally:
        del sys.path[:2]


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


def _panels() -> list[dict]:
    return [p for d in DASHBOARDS for p in json.loads(d.read_text(encoding="utf-8"))["panels"] if p["type"] != "row"]


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for p in _panels() for t in p.get("targets", [])]


def _rules() -> list[dict]:
    doc = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def _alert_exprs() -> list[str]:
    return [r["expr"] for r in _rules()]


def test_four_dashboards_for_their_readers() -> None:
    assert [d.stem for d in DASHBOARDS] == ["hub-connectors", "hub-overview", "hub-risk", "hub-settlement"]
    for d in DASHBOARDS:
        dash = json.loads(d.read_text(encoding="utf-8"))
        names = [v["name"] for v in dash["templating"]["list"]]
        assert names[0] == "datasource" and len(names) >= 2, (d.name, names)
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), d.name


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


def test_panels_are_titled_and_unitised_for_people() -> None:
    """Issue 17: panel titles were metric names and amounts were in unit "ops"."""
    for p in _panels():
        assert not re.search(r"\b(hub|process)_[a-z_]+", p["title"]), p["title"]
        assert p.get("description"), p["title"]
        unit = p["fieldConfig"]["defaults"]["unit"]
        assert unit != "ops", p["title"]
        if "yuan" in p["description"].lower() or "paid" in p["title"].lower():
            assert unit == "currencyCNY", p["title"]


def test_label_matchers_and_groupings_name_real_labels() -> None:
    labels = {s: set(m.labels) | {"le", "instance", "job"} for m in METRIC_CATALOGUE for s in m.series}
    for e in _dashboard_exprs() + _alert_exprs():
        for name, inner in re.findall(r"\b((?:hub|process)_[a-z0-9_]+)\{([^}]*)\}", e):
            for label in re.findall(r"([a-z_]+)\s*=~?", inner):
                assert label in labels[name], (e, label)


def test_every_alert_links_a_runbook_section_of_deploy_readme() -> None:
    readme = (ROOT / "deploy/README.md").read_text(encoding="utf-8")
    anchors = {h.strip().lower().replace(" ", "-") for h in re.findall(r"^#{2,4} (.+)$", readme, re.M)}
    for r in _rules():
        url = r["annotations"]["runbook_url"]
        assert url.endswith(f"deploy/README.md#{r['alert'].lower()}"), url
        assert r["alert"].lower() in anchors, f"deploy/README.md has no section '### {r['alert']}'"


def test_every_rule_has_a_firing_and_a_quiet_promtool_case() -> None:
    tests = yaml.safe_load((ROOT / "deploy/prometheus/alerts.test.yml").read_text(encoding="utf-8"))["tests"]
    firing: dict[str, set[str]] = {}
    quiet: set[str] = set()
    for case in tests:
        for t in case["alert_rule_test"]:
            if t["exp_alerts"]:
                for a in t["exp_alerts"]:
                    firing.setdefault(t["alertname"], set()).add(a["exp_labels"].get("waiting", ""))
            else:
                quiet.add(t["alertname"])
    names = {r["alert"] for r in _rules()}
    assert set(firing) == names and quiet == names
    lag_rules = {r["labels"]["waiting"] for r in _rules() if r["alert"] == "HubConsumerLagHigh"}
    assert firing["HubConsumerLagHigh"] == lag_rules  # each per-topic threshold fires in its own case


def test_required_alerts_exist() -> None:
    names = {r["alert"] for r in _rules()}
    assert {"HubDeadLettersRising", "HubDeadLetterBurst", "HubReferralEscalations", "HubConsumerLagHigh",
            "HubSettlementsStalled", "HubExporterDown", "HubSettlementLatencyBudgetBurn", "HubConnectorErrors",
            "HubProcessRestarting", "HubPolicyExpiring", "HubWorkerStuck"} <= names


def test_lag_thresholds_cover_every_input_topic_once() -> None:
    gen = _prometheus_generator()
    covered = [t for c in gen.LAG_CLASSES for t in c.topics]  # type: ignore[attr-defined]
    assert sorted(covered) == sorted(INPUT_TOPICS)
    cashier = next(c for c in gen.LAG_CLASSES if c.waiting == "cashier")  # type: ignore[attr-defined]
    roster = next(c for c in gen.LAG_CLASSES if c.waiting == "roster")  # type: ignore[attr-defined]
    assert "health.discharges.v1" in cashier.topics and cashier.records < roster.records


def test_every_rule_names_its_signals() -> None:
    gen = _prometheus_generator()
    signals = gen.alert_signals()  # type: ignore[attr-defined]
    assert set(signals) == {r["alert"] for r in _rules()}
    assert all(signals.values())


def test_every_yaml_file_parses() -> None:
    files = sorted((ROOT / "deploy").rglob("*.y*ml"))
    assert len(files) >= 12
    for f in files:
        docs = [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d is not None]
        assert docs, f
