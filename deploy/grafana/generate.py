"""Generate the hub's Grafana dashboard and provisioning files from hub.metrics.METRIC_CATALOGUE.

Why from the catalogue: one panel per metric (three quantiles for a histogram) is derived from the
metric's type and labels, so a metric added to hub/metrics.py gets a panel, and a renamed one cannot
leave a dead panel. Plain JSON dicts in Grafana's dashboard model (schemaVersion 39); the
grafana-foundation-sdk would build the same dicts but is not a dependency of the hub.

Outputs:
- deploy/grafana/dashboards/hub.json
- deploy/grafana/provisioning/datasources/prometheus.yaml
- deploy/grafana/provisioning/dashboards/hub.yaml

Run: ``python deploy/grafana/generate.py`` (``--check`` to verify the checked-in files).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HEADER, dump_yaml, run  # noqa: E402

from hub.metrics import METRIC_CATALOGUE, MetricSpec, spec  # noqa: E402

DATASOURCE_UID = "hub-prometheus"
DASHBOARD_UID = "hub-overview"
RATE_WINDOW = "$__rate_interval"
"""Grafana's own window variable; tests substitute a fixed window to run the queries on Prometheus."""

GROUPS = (
    ("settlement", "One-stop settlement (一站式结算) and deposit waiver (先诊疗后付费)"),
    ("risk", "Risk flags (防止因病返贫致贫监测预警), referrals (救助转介), reconciliation (四清)"),
    ("pipeline", "Pipeline: topics, batches, lag, dead letters"),
    ("connectors", "Connectors (department feeds)"),
)

_DS = {"type": "prometheus", "uid": "${datasource}"}
_W, _H = 12, 8


def _legend(labels: tuple[str, ...]) -> str:
    return " ".join("{{" + label + "}}" for label in labels) or "{{instance}}"


def _unit(m: MetricSpec) -> str:
    if m.name.endswith("_seconds"):
        return "s"
    if m.type == "counter":
        return "ops"
    return "short"


def panel_targets(m: MetricSpec) -> list[tuple[str, str, str]]:
    """(title, expr, legend) of the panel(s) showing ``m`` — the one place PromQL for panels is made."""
    sel = m.select()
    if m.type == "histogram":
        return [
            (f"{m.name} p{int(q * 100)}",
             f"histogram_quantile({q}, sum by (le) (rate({m.series[0]}[{RATE_WINDOW}])))",
             f"p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)
        ]
    if m.name == "hub_settlement_amount_fen_total":
        return [(m.name, f"sum {m.by('fund')} (increase({sel}[1h])) / 100", "{{fund}} (yuan / h)")]
    if m.name == "hub_build_info":
        return [(m.name, f"count {m.by('version')} ({sel})", "{{version}}")]
    if m.type == "counter":
        by = f"sum {m.by(*m.labels)}" if m.labels else "sum"
        return [(m.name, f"{by} (rate({sel}[{RATE_WINDOW}]))", _legend(m.labels))]
    if m.labels:
        return [(m.name, f"sum {m.by(*m.labels)} ({sel})", _legend(m.labels))]
    return [(m.name, f"sum by (instance) ({sel})", "{{instance}}")]


def _timeseries(pid: int, m: MetricSpec, x: int, y: int) -> dict:
    targets = panel_targets(m)
    return {
        "id": pid,
        "type": "timeseries",
        "title": m.name,
        "description": m.help,
        "datasource": _DS,
        "gridPos": {"h": _H, "w": _W, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": _unit(m)}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": _DS, "expr": expr, "legendFormat": legend}
            for i, (_title, expr, legend) in enumerate(targets)
        ],
    }


def _stat(pid: int, title: str, expr: str, unit: str, x: int) -> dict:
    return {
        "id": pid, "type": "stat", "title": title, "datasource": _DS,
        "gridPos": {"h": 4, "w": 6, "x": x, "y": 0},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
        "targets": [{"refId": "A", "datasource": _DS, "expr": expr}],
    }


def headline_stats() -> list[tuple[str, str, str]]:
    """(title, expr, unit) of the top row: what a duty officer looks at first."""
    settled = spec("hub_settlements_total")
    dead = spec("hub_dead_letters_total")
    open_ = spec("hub_referrals_open")
    lag = spec("hub_consumer_lag")
    return [
        ("Settlements / min", f"sum(rate({settled.select(kind='settled')}[5m])) * 60", "short"),
        ("Dead letters, last hour", f"sum(increase({dead.select()}[1h]))", "short"),
        ("Open referrals > 30 days", f"sum({open_.select(age='gt_30d')})", "short"),
        ("Max consumer lag", f"max({lag.select()})", "short"),
    ]


def dashboard() -> dict:
    """The hub overview dashboard: a headline row, then one row per metric group."""
    panels: list[dict] = []
    pid = 1
    for i, (title, expr, unit) in enumerate(headline_stats()):
        panels.append(_stat(pid, title, expr, unit, x=6 * i))
        pid += 1
    y = 4
    for group, title in GROUPS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        members = [m for m in METRIC_CATALOGUE if m.group == group]
        for i, m in enumerate(members):
            panels.append(_timeseries(pid, m, x=(i % 2) * _W, y=y + (i // 2) * _H))
            pid += 1
        y += ((len(members) + 1) // 2) * _H
    return {
        "uid": DASHBOARD_UID,
        "title": "Health-relief hub",
        "description": "Generated by deploy/grafana/generate.py from hub.metrics.METRIC_CATALOGUE.",
        "tags": ["hub", "generated"],
        "timezone": "Asia/Shanghai",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
            "current": {"text": "Prometheus", "value": DATASOURCE_UID}, "hide": 0,
        }]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> dict[str, str]:
    """Render deploy/grafana/dashboards/hub.json and the provisioning YAML."""
    head = HEADER.format(script="deploy/grafana/generate.py", source="hub.metrics.METRIC_CATALOGUE")
    datasources = {
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus", "uid": DATASOURCE_UID, "type": "prometheus", "access": "proxy",
            "url": "http://prometheus:9090", "isDefault": True, "editable": False,
        }],
    }
    providers = {
        "apiVersion": 1,
        "providers": [{
            "name": "hub", "folder": "Health-relief hub", "type": "file", "disableDeletion": True,
            "allowUiUpdates": False, "options": {"path": "/var/lib/grafana/dashboards"},
        }],
    }
    return {
        "deploy/grafana/dashboards/hub.json": json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n",
        "deploy/grafana/provisioning/datasources/prometheus.yaml": head + dump_yaml(datasources),
        "deploy/grafana/provisioning/dashboards/hub.yaml": head + dump_yaml(providers),
    }


if __name__ == "__main__":
    raise SystemExit(run(render))
