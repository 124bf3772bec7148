"""Generate the Prometheus scrape config and alert rules from hub.metrics.METRIC_CATALOGUE.

Why generated: every alert expression is built through ``hub.metrics.spec(name)`` and its
``select``/``by`` helpers, so renaming a metric or a label fails *here*, at generation time, instead
of leaving a rule that silently matches nothing. Outputs:

- deploy/prometheus/prometheus.yml      scrape config for docker compose (job ``hub``)
- deploy/prometheus/alerts.yml          rule file (``promtool check rules`` clean)
- deploy/prometheus/alerts.test.yml     ``promtool test rules`` cases: each alert fires on its symptom
- deploy/k8s/prometheus-rules.yaml      the same groups as a prometheus-operator PrometheusRule

Run: ``python deploy/prometheus/generate.py`` (``--check`` to verify the checked-in files).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HEADER, dump_yaml, run  # noqa: E402

from hub import topics  # noqa: E402
from hub.metrics import spec  # noqa: E402

JOB = "hub"
"""Scrape job of every hub process (workers, connectors); alerts select ``up{job="hub"}``."""

METRICS_PORT = 9308
"""Port of the hub exporter inside containers (HUB_METRICS_PORT)."""

COMPOSE_TARGETS = (
    "hub-settlement", "hub-risk", "hub-referral",
    "connector-revitalization", "connector-civil-affairs", "connector-insurance", "connector-hospital",
    "connector-health", "sink-cashier", "sink-civil-affairs-inbox",
)
"""docker compose service names that serve /metrics (deploy/compose/docker-compose.yml)."""

DISCHARGES = topics.get("health.discharges.v1").name
SETTLEMENTS = topics.get("hub.settlements.v1").name


def _rate(name: str, window: str, *by: str, **matchers: str) -> str:
    m = spec(name)
    return f"sum {m.by(*by)} (rate({m.select(**matchers)}[{window}]))".replace("sum  (", "sum (")


def _increase(name: str, window: str, *by: str) -> str:
    m = spec(name)
    return f"sum {m.by(*by)} (increase({m.select()}[{window}]))".replace("sum  (", "sum (")


def alert_groups() -> list[dict]:
    """The hub's alert rules: what an operator must act on, with a runbook line each."""
    lag = spec("hub_consumer_lag")
    rules = [
        {
            "alert": "HubExporterDown",
            "expr": f'up{{job="{JOB}"}} == 0',
            "for": "2m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Hub process {{ $labels.instance }} is not serving /metrics",
                "description": "Prometheus cannot scrape {{ $labels.instance }} for 2 minutes: the process "
                               "is down or its exporter port is blocked. Check the pod/container logs.",
            },
        },
        {
            "alert": "HubExporterAbsent",
            "expr": f'absent(up{{job="{JOB}"}})',
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "No hub scrape target at all",
                "description": f"No target of job {JOB!r} has been discovered for 5 minutes "
                               "(service discovery or ServiceMonitor broken, or every hub process gone).",
            },
        },
        {
            "alert": "HubDeadLettersRising",
            "expr": f"{_rate('hub_dead_letters_total', '5m', 'source', 'reason')} > 0",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Dead letters from {{ $labels.source }} ({{ $labels.reason }}) keep arriving",
                "description": "Records from {{ $labels.source }} have gone to hub.dead-letters.v1 with "
                               "reason {{ $labels.reason }} for 10 minutes. Read the dead letters' detail "
                               "and fix the feed or the policy; the records are not lost.",
            },
        },
        {
            "alert": "HubReferralEscalations",
            "expr": f"{_increase('hub_referral_escalations_total', '1h', 'department')} > 0",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Referrals to {{ $labels.department }} passed their due time",
                "description": "{{ $value }} relief referral(s) to {{ $labels.department }} escalated in "
                               "the last hour (超时督办): not answered within the SLA.",
            },
        },
        {
            "alert": "HubConsumerLagHigh",
            "expr": f"max {lag.by('topic')} ({lag.select()}) > 10000",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Hub falls behind on {{ $labels.topic }}",
                "description": "{{ $value }} records of {{ $labels.topic }} wait for more than 10 minutes. "
                               "Add `hub worker` processes (up to the partition count) or look for a "
                               "stuck worker.",
            },
        },
        {
            "alert": "HubSettlementsStalled",
            "expr": (
                f"({_rate('hub_events_consumed_total', '10m', topic=DISCHARGES)} > 0)\n"
                f"unless\n({_rate('hub_settlements_total', '10m')} > 0)"
            ),
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Discharges arrive but no settlement is produced",
                "description": f"{DISCHARGES} is consumed but nothing reached {SETTLEMENTS} for 15 "
                               "minutes: patients wait at the cashier (一站式结算). Check the settlement "
                               "processor and the dead letters (no_policy?).",
            },
        },
    ]
    return [{"name": "hub", "rules": rules}]


def _render(text: str, labels: dict[str, str], value: str) -> str:
    """Expand the only template forms the rules use, as promtool will: $labels.X and $value."""
    for k, v in labels.items():
        text = text.replace(f"{{{{ $labels.{k} }}}}", v)
    return text.replace("{{ $value }}", value)


def _expect(alert: str, labels: dict[str, str], value: str = "") -> dict:
    rule = next(r for g in alert_groups() for r in g["rules"] if r["alert"] == alert)
    exp_labels = {**labels, **rule["labels"]}
    return {"exp_labels": exp_labels,
            "exp_annotations": {k: _render(v, exp_labels, value) for k, v in rule["annotations"].items()}}


def alert_tests() -> dict:
    """promtool unit tests of the rules: each alert fires on its symptom, and stays quiet on health."""
    hub = {"job": JOB, "instance": "hub-settlement:9308"}

    def series(name: str, values: str, **labels: str) -> dict:
        sel = spec(name).select(**labels) if name != "up" else "up"
        inner = ",".join(f'{k}="{v}"' for k, v in hub.items())
        sel = sel[:-1] + "," + inner + "}" if sel.endswith("}") else sel + "{" + inner + "}"
        return {"series": sel, "values": values}

    dl = {"source": "file_drop:civil-affairs", "reason": "invalid_input"}
    return {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {"name": "exporter down", "interval": "1m",
             "input_series": [series("up", "0x10")],
             "alert_rule_test": [{"eval_time": "5m", "alertname": "HubExporterDown",
                                  "exp_alerts": [_expect("HubExporterDown", hub)]}]},
            {"name": "discharges arrive, no settlement", "interval": "1m",
             "input_series": [series("hub_events_consumed_total", "0+60x30", topic=DISCHARGES),
                              series("hub_settlements_total", "0x30", region="532503", kind="settled")],
             "alert_rule_test": [{"eval_time": "20m", "alertname": "HubSettlementsStalled",
                                  "exp_alerts": [_expect("HubSettlementsStalled", {})]}]},
            {"name": "discharges arrive and settle", "interval": "1m",
             "input_series": [series("hub_events_consumed_total", "0+60x30", topic=DISCHARGES),
                              series("hub_settlements_total", "0+60x30", region="532503", kind="settled")],
             "alert_rule_test": [{"eval_time": "20m", "alertname": "HubSettlementsStalled",
                                  "exp_alerts": []}]},
            {"name": "dead letters rising", "interval": "1m",
             "input_series": [series("hub_dead_letters_total", "0+5x30", **dl)],
             "alert_rule_test": [{"eval_time": "20m", "alertname": "HubDeadLettersRising",
                                  "exp_alerts": [_expect("HubDeadLettersRising", dl)]}]},
            {"name": "dead letters flat", "interval": "1m",
             "input_series": [series("hub_dead_letters_total", "5x30", **dl)],
             "alert_rule_test": [{"eval_time": "20m", "alertname": "HubDeadLettersRising",
                                  "exp_alerts": []}]},
            {"name": "consumer lag", "interval": "1m",
             "input_series": [series("hub_consumer_lag", "20000x20", topic="health.admissions.v1")],
             "alert_rule_test": [{"eval_time": "15m", "alertname": "HubConsumerLagHigh",
                                  "exp_alerts": [_expect("HubConsumerLagHigh",
                                                         {"topic": "health.admissions.v1"}, "20000")]}]},
        ],
    }


def prometheus_config() -> dict:
    """Scrape config for docker compose: every hub process on its exporter port, every 15 s."""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{t}:{METRICS_PORT}" for t in COMPOSE_TARGETS]}],
            },
            {"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]},
        ],
    }


def prometheus_rule() -> dict:
    """The same groups for prometheus-operator (picked up by the Prometheus of the ServiceMonitor)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hub-alerts", "namespace": "hub", "labels": {"release": "prometheus"}},
        "spec": {"groups": alert_groups()},
    }


def render() -> dict[str, str]:
    """Render deploy/prometheus/{prometheus,alerts}.yml and deploy/k8s/prometheus-rules.yaml."""
    head = HEADER.format(script="deploy/prometheus/generate.py", source="hub.metrics.METRIC_CATALOGUE")
    return {
        "deploy/prometheus/prometheus.yml": head + dump_yaml(prometheus_config()),
        "deploy/prometheus/alerts.yml": head + dump_yaml({"groups": alert_groups()}),
        "deploy/prometheus/alerts.test.yml": head + dump_yaml(alert_tests()),
        "deploy/k8s/prometheus-rules.yaml": head + dump_yaml(prometheus_rule()),
    }


if __name__ == "__main__":
    raise SystemExit(run(render))
