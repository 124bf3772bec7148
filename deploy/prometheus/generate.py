"""Generate the Prometheus scrape config, alert rules and their promtool tests from hub.metrics.METRIC_CATALOGUE.

Why generated: every alert expression is built through ``hub.metrics.spec(name)`` and its
``select``/``by`` helpers, so renaming a metric or a label fails *here*, at generation time, instead
of leaving a rule that silently matches nothing. Each rule also names its *signals*: the queries it
judges (its expression without the threshold). tests/e2e/test_observability.py runs every signal
against a real Prometheus scraping ``hub up`` — a rule whose signal has no data can never fire.
Outputs:

- deploy/prometheus/prometheus.yml      scrape config for docker compose (job ``hub``), Alertmanager
- deploy/prometheus/alerts.yml          rule file (``promtool check rules`` clean)
- deploy/prometheus/alerts.test.yml     ``promtool test rules``: every rule fires on its symptom, and
                                        stays quiet on a look-alike that is healthy
- deploy/k8s/prometheus-rules.yaml      the same groups as a prometheus-operator PrometheusRule

Every rule has ``runbook_url`` = RUNBOOK_BASE + ``#`` + the alert's name in lower case: a section of
deploy/README.md (tests/unit/test_deploy_generated.py checks the section exists).

Run: ``python deploy/prometheus/generate.py`` (``--check`` to verify the checked-in files).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HEADER, dump_yaml, run  # noqa: E402
from _processes import APP_ID, METRICS_PORT, compose_services  # noqa: E402

from hub import topics  # noqa: E402
from hub.metrics import spec  # noqa: E402

JOB = "hub"
"""Scrape job of every hub process (workers, API, connectors); alerts select ``up{job="hub"}``."""

RUNBOOK_BASE = "https://hub-docs.invalid/deploy/README.md"
"""Where operators read deploy/README.md. A placeholder (.invalid): set it to the address your copy is served at
and regenerate; the anchor after it is the alert name in lower case, a section of deploy/README.md."""

DISCHARGES = topics.get("health.discharges.v1").name
SETTLEMENTS = topics.get("hub.settlements.v1").name
SLO_SECONDS = 5.0
"""Settlement latency objective: 99 % of settlements within 5 s of the cashier's request."""
SLO_TARGET = 0.99


@dataclass(frozen=True)
class LagClass:
    """Topics whose records may wait the same time before someone notices: a threshold each."""

    waiting: str
    topics: tuple[str, ...]
    records: int
    for_: str
    severity: str
    why: str


LAG_CLASSES: tuple[LagClass, ...] = (
    LagClass("cashier", ("health.admissions.v1", "health.discharges.v1"), 50, "2m", "critical",
             "a patient waits at the hospital cashier for the deposit waiver or the one-stop settlement"),
    LagClass("department", ("department.referral-updates.v1", "health.diagnoses.v1", "health.family-doctor.v1",
                            "health.payment-defaults.v1"), 5000, "15m", "warning",
             "referral answers, diagnoses and follow-ups reach the risk rules late"),
    LagClass("roster", ("revitalization.poverty-status.v1", "civil-affairs.assistance-status.v1",
                        "insurance.enrollments.v1", "health.facilities.v1"), 200_000, "2h", "warning",
             "a roster load of hundreds of thousands of rows legitimately waits; two hours of it does not"),
)
"""Every input topic is in exactly one class (tests/unit/test_deploy_generated.py)."""


@dataclass(frozen=True)
class Rule:
    """One alerting rule and the queries it judges (``signals``: they must return data under ``hub up``)."""

    alert: str
    expr: str
    signals: tuple[str, ...]
    severity: str
    summary: str
    description: str
    for_: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict:
        rule: dict = {"alert": self.alert, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **dict(self.labels)}
        rule["annotations"] = {"summary": self.summary, "description": self.description,
                               "runbook_url": f"{RUNBOOK_BASE}#{self.alert.lower()}"}
        return rule


def _sum(fn: str, name: str, window: str, *by: str, **matchers: str) -> str:
    m = spec(name)
    by_clause = f" {m.by(*by)}" if by else ""
    return f"sum{by_clause} ({fn}({m.select(**matchers)}[{window}]))"


def _regex(values: tuple[str, ...]) -> str:
    return "|".join(v.replace(".", "\\\\.") for v in values)


def rules() -> list[Rule]:
    """The hub's alert rules: each names what is wrong, for whom, and links its runbook section."""
    up = f'up{{job="{JOB}"}}'
    dead_burst = _sum("increase", "hub_dead_letters_total", "5m", "source", "reason")
    dead_trickle = _sum("increase", "hub_dead_letters_total", "30m", "source", "reason")
    esc = spec("hub_referral_escalations_total").select()
    escalated = (f"sum by (department) (\n  (increase({esc}[1h]) + (min_over_time({esc}[1h]) unless {esc} offset 1h))"
                 f"\n  or increase({esc}[1h])\n)")
    discharges_in = _sum("increase", "hub_events_consumed_total", "15m", topic=DISCHARGES)
    settled_out = _sum("increase", "hub_settlements_total", "15m")
    lat = spec("hub_settlement_latency_seconds")
    le = f'{lat.series[0]}{{le="{SLO_SECONDS}"}}'

    def slow_ratio(window: str) -> str:
        return (f"(1 - sum(rate({le}[{window}])) / sum(rate({lat.series[2]}[{window}])))")

    budget = 1 - SLO_TARGET
    lag = spec("hub_consumer_lag")
    consumed = _sum("rate", "hub_events_consumed_total", "10m", "instance")
    worker_lag = f'max by (instance) ({lag.select(group=APP_ID)})'
    conn_err = _sum("increase", "hub_connector_records_total", "10m", "connector", "outcome",
                    outcome="source_error|sink_error").replace('outcome="', 'outcome=~"')
    restarts = f'changes(process_start_time_seconds{{job="{JOB}"}}[1h])'
    days_left = f"min by (region) ({spec('hub_policy_days_left').select()})"
    fallback = _sum("increase", "hub_policy_fallback_total", "1h", "region")
    restoring = f"max by (instance, partition) ({spec('hub_state_restoring').select()})"

    out = [
        Rule("HubExporterDown", f"{up} == 0", (up,), "critical",
             "Hub process {{ $labels.instance }} is not serving /metrics",
             "Prometheus cannot scrape {{ $labels.instance }} for 2 minutes: the process is down or its "
             "exporter port is blocked.", "2m"),
        Rule("HubExporterAbsent", f"absent({up})", (up,), "critical",
             "No hub scrape target at all",
             f"No target of job {JOB!r} has been discovered for 5 minutes (service discovery or ServiceMonitor "
             "broken, or every hub process gone).", "5m"),
        Rule("HubProcessRestarting", f"{restarts} >= 3", (restarts,), "warning",
             "{{ $labels.instance }} restarted {{ $value }} times in the last hour",
             "The process keeps restarting (crash loop, OOM kill, failed start-up probe). Its log says why; "
             "`hub doctor` with the same environment shows a broker or configuration problem."),
        Rule("HubDeadLetterBurst", f"{dead_burst} >= 100", (dead_burst,), "critical",
             "{{ $value }} dead letters from {{ $labels.source }} ({{ $labels.reason }}) in 5 minutes",
             "A burst of records from {{ $labels.source }} is being rejected with reason {{ $labels.reason }}: "
             "usually a changed export format or a wrong policy. The records are kept in hub.dead-letters.v1."),
        Rule("HubDeadLettersRising", f"{dead_trickle} >= 5", (dead_trickle,), "warning",
             "Dead letters from {{ $labels.source }} ({{ $labels.reason }}) keep arriving",
             "At least 5 records in every 30 minutes for 10 minutes went to hub.dead-letters.v1 from "
             "{{ $labels.source }} with reason {{ $labels.reason }}. One record never alerts.", "10m"),
        Rule("HubReferralEscalations", f"{escalated} > 0", (escalated,), "warning",
             "Referrals to {{ $labels.department }} passed their due time",
             "{{ $value }} relief referral(s) to {{ $labels.department }} escalated in the last hour (超时督办): "
             "not answered within the SLA. The first escalation after a restart counts too."),
        Rule("HubSettlementsStalled", f"({discharges_in} >= 10)\nunless\n({settled_out} > 0)",
             (discharges_in, settled_out), "critical",
             "Discharges arrive but no settlement is produced",
             f"At least 10 discharges of {DISCHARGES} were consumed in 15 minutes and nothing reached "
             f"{SETTLEMENTS}: patients wait at the cashier (一站式结算). A single dead-lettered discharge at low "
             "traffic does not page.", "5m"),
        Rule("HubSettlementLatencyBudgetBurn",
             f"{slow_ratio('1h')} > {14.4 * budget:.3f}\nand\n{slow_ratio('5m')} > {14.4 * budget:.3f}",
             (slow_ratio("1h"), slow_ratio("5m")), "critical",
             f"Settlements slower than {SLO_SECONDS:g} s burn the monthly error budget 14× too fast",
             f"The objective is {SLO_TARGET:.0%} of settlements within {SLO_SECONDS:g} s of the cashier's request; "
             "{{ $value | humanizePercentage }} of the last hour's were slower."),
        Rule("HubSettlementLatencySlowBurn",
             f"{slow_ratio('6h')} > {6 * budget:.3f}\nand\n{slow_ratio('30m')} > {6 * budget:.3f}",
             (slow_ratio("6h"), slow_ratio("30m")), "warning",
             f"Settlements slower than {SLO_SECONDS:g} s burn the error budget 6× too fast",
             "{{ $value | humanizePercentage }} of the last 6 hours' settlements missed the objective.", "15m"),
        Rule("HubWorkerStuck", f"({worker_lag} > 0)\nand on (instance)\n({consumed} == 0)",
             (worker_lag, consumed), "critical",
             "Worker {{ $labels.instance }} owns partitions with lag but consumes nothing",
             "The worker reports records waiting on its partitions and has consumed none for 10 minutes: it is "
             "stuck (the other workers cannot take its partitions while it stays in the group).", "10m"),
        Rule("HubConnectorErrors", f"{conn_err} >= 3", (conn_err,), "warning",
             "Connector {{ $labels.connector }}: {{ $value }} {{ $labels.outcome }}(s) in 10 minutes",
             "The connector cannot reach its department system (source_error) or deliver to it (sink_error); "
             "it retries from its committed offsets, nothing is skipped, but nothing moves either.", "10m"),
        Rule("HubPolicyExpiring", f"{days_left} < 30", (days_left,), "warning",
             "The policy of region {{ $labels.region }} ends in {{ $value }} days",
             "Load the next period's policy (hub/policy/regions, policy-spec §2) before it ends; afterwards "
             "discharges are settled by the nearest policy standing in.", "1h"),
        Rule("HubPolicyExpired", f"{days_left} < 0", (days_left,), "critical",
             "The policy of region {{ $labels.region }} has ended",
             "No policy covers today in region {{ $labels.region }}: settlements use the nearest policy as a "
             "stand-in (hub_policy_fallback_total). Load the current policy."),
        Rule("HubPolicyFallback", f"{fallback} > 0", (fallback,), "warning",
             "{{ $value }} decisions in region {{ $labels.region }} used a stand-in policy",
             "No policy covers these dates, so the nearest policy stood in; amounts may be wrong. Load the "
             "policy covering them and re-settle."),
        Rule("HubStateRestoreSlow", f"{restoring} == 1", (restoring,), "warning",
             "Partition {{ $labels.partition }} on {{ $labels.instance }} restores its state for 15 minutes",
             "The task is reading its state topic back and serves nothing meanwhile. A large state or a slow "
             "broker; if it never ends, look for a restart loop (HubProcessRestarting).", "15m"),
    ]
    for c in LAG_CLASSES:
        sel = lag.select(topic=_regex(c.topics)).replace('topic="', 'topic=~"')
        signal = f"max by (group, topic, partition) ({sel})"
        out.append(Rule(
            "HubConsumerLagHigh", f"{signal} > {c.records}", (signal,), c.severity,
            "{{ $value }} records wait on {{ $labels.topic }} partition {{ $labels.partition }}",
            f"More than {c.records:,} records of {{{{ $labels.topic }}}} wait for group {{{{ $labels.group }}}} for "
            f"{c.for_}: {c.why}. Add `hub worker` replicas (up to the partition count) or look for a stuck worker "
            "(HubWorkerStuck).", c.for_, (("waiting", c.waiting),)))
    return out


def alert_groups() -> list[dict]:
    return [{"name": "hub", "rules": [r.as_dict() for r in rules()]}]


def alert_signals() -> dict[str, tuple[str, ...]]:
    """alert name → the queries it judges (several rules of one name: every one's)."""
    signals: dict[str, tuple[str, ...]] = {}
    for r in rules():
        signals[r.alert] = (*signals.get(r.alert, ()), *r.signals)
    return signals


# ---------------------------------------------------------------- promtool tests


def _render(text: str, labels: dict[str, str], value: str) -> str:
    """Expand the template forms the rules use, as promtool will: $labels.X and $value."""
    for k, v in labels.items():
        text = text.replace(f"{{{{ $labels.{k} }}}}", v)
    return text.replace("{{ $value | humanizePercentage }}", value).replace("{{ $value }}", value)


def _expect(alert: str, labels: dict[str, str], value: str = "", **rule_labels: str) -> dict:
    rule = next(r for r in rules() if r.alert == alert and all(dict(r.labels).get(k) == v
                                                                for k, v in rule_labels.items()))
    exp_labels = {**labels, "severity": rule.severity, **dict(rule.labels)}
    annotations = rule.as_dict()["annotations"]
    return {"exp_labels": exp_labels,
            "exp_annotations": {k: _render(v, exp_labels, value) for k, v in annotations.items()}}


HUB = {"job": JOB, "instance": "hub-worker-1:9308"}


def _series(name: str, values: str, instance: str | None = None, **labels: str) -> dict:
    own = {**HUB, **({"instance": instance} if instance else {})}
    inner = ",".join(f'{k}="{v}"' for k, v in {**labels, **own}.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _case(name: str, series: list[dict], alert: str, at: str, expected: list[dict]) -> dict:
    return {"name": name, "interval": "1m", "input_series": series,
            "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}]}


def alert_tests() -> dict:
    """promtool unit tests: every rule fires on its symptom, and stays quiet on a healthy look-alike."""
    dl = {"source": "file_drop:civil-affairs", "reason": "invalid_input"}
    lat = spec("hub_settlement_latency_seconds")

    def latency(fast: str, total: str) -> list[dict]:
        return [_series(lat.series[0], fast, le=f"{SLO_SECONDS}"), _series(lat.series[2], total)]

    worker = {"group": APP_ID, "topic": DISCHARGES, "partition": "2"}
    cases = [
        _case("exporter down", [_series("up", "0x10")], "HubExporterDown", "5m", [_expect("HubExporterDown", HUB)]),
        _case("exporter up", [_series("up", "1x10")], "HubExporterDown", "5m", []),
        _case("no target at all", [_series("up", "_x10")], "HubExporterAbsent", "8m",
              [_expect("HubExporterAbsent", {"job": JOB})]),
        _case("a target", [_series("up", "1x10")], "HubExporterAbsent", "8m", []),
        _case("crash loop", [_series("process_start_time_seconds", "100 100 400 400 700 700 1000 1000")],
              "HubProcessRestarting", "7m", [_expect("HubProcessRestarting", HUB, "3")]),
        _case("one deliberate restart", [_series("process_start_time_seconds", "100 100 400 400 400 400")],
              "HubProcessRestarting", "5m", []),
        _case("10,000 dead letters in one minute", [_series("hub_dead_letters_total", "0 0 10000 10000", **dl)],
              "HubDeadLetterBurst", "2m", [_expect("HubDeadLetterBurst", dl, "10000")]),
        _case("a few dead letters", [_series("hub_dead_letters_total", "0 0 3 3", **dl)],
              "HubDeadLetterBurst", "2m", []),
        _case("dead letters keep arriving", [_series("hub_dead_letters_total", "0+1x60", **dl)],
              "HubDeadLettersRising", "45m", [_expect("HubDeadLettersRising", dl, "30")]),
        _case("one dead letter", [_series("hub_dead_letters_total", "0 1x60", **dl)],
              "HubDeadLettersRising", "45m", []),
        _case("first escalation after a restart (new series starts at 1)",
              [_series("hub_referral_escalations_total", "_x5 1x10", department="civil_affairs")],
              "HubReferralEscalations", "8m", [_expect("HubReferralEscalations", {"department": "civil_affairs"},
                                                       "1")]),
        _case("escalation on a running worker",
              [_series("hub_referral_escalations_total", "2x70 3x10", department="civil_affairs")],
              "HubReferralEscalations", "75m", [_expect("HubReferralEscalations", {"department": "civil_affairs"},
                                                        "1")]),
        _case("no escalation for an hour",
              [_series("hub_referral_escalations_total", "2x130", department="civil_affairs")],
              "HubReferralEscalations", "125m", []),
        _case("discharges arrive, no settlement",
              [_series("hub_events_consumed_total", "0+5x30", topic=DISCHARGES),
               _series("hub_settlements_total", "0x30", region="532503", kind="settled")],
              "HubSettlementsStalled", "25m", [_expect("HubSettlementsStalled", {})]),
        _case("discharges arrive and settle",
              [_series("hub_events_consumed_total", "0+5x30", topic=DISCHARGES),
               _series("hub_settlements_total", "0+5x30", region="532503", kind="settled")],
              "HubSettlementsStalled", "25m", []),
        _case("one dead-lettered discharge at night",
              [_series("hub_events_consumed_total", "0 1x30", topic=DISCHARGES),
               _series("hub_settlements_total", "0x30", region="532503", kind="settled")],
              "HubSettlementsStalled", "25m", []),
        _case("half the settlements slow", latency("0+30x90", "0+60x90"), "HubSettlementLatencyBudgetBurn", "70m",
              [_expect("HubSettlementLatencyBudgetBurn", {}, "50%")]),
        _case("settlements fast", latency("0+60x90", "0+60x90"), "HubSettlementLatencyBudgetBurn", "70m", []),
        _case("a tenth of settlements slow for hours", latency("0+54x420", "0+60x420"),
              "HubSettlementLatencySlowBurn", "400m", [_expect("HubSettlementLatencySlowBurn", {}, "10%")]),
        _case("settlements fast for hours", latency("0+60x420", "0+60x420"), "HubSettlementLatencySlowBurn",
              "400m", []),
        _case("one stuck worker out of three",
              [_series("hub_consumer_lag", "300x30", **worker),
               _series("hub_events_consumed_total", "500x30", topic=DISCHARGES),
               _series("hub_events_consumed_total", "0+60x30", instance="hub-worker-2:9308", topic=DISCHARGES)],
              "HubWorkerStuck", "25m", [_expect("HubWorkerStuck", {"instance": HUB["instance"]})]),
        _case("a busy worker with lag",
              [_series("hub_consumer_lag", "300x30", **worker),
               _series("hub_events_consumed_total", "0+60x30", topic=DISCHARGES)],
              "HubWorkerStuck", "25m", []),
        _case("a source cannot reach its database",
              [_series("hub_connector_records_total", "0+1x30", connector="hospital-admissions",
                       outcome="source_error")],
              "HubConnectorErrors", "25m", [_expect("HubConnectorErrors", {"connector": "hospital-admissions",
                                                                           "outcome": "source_error"}, "10")]),
        _case("one hiccup",
              [_series("hub_connector_records_total", "0 1x30", connector="hospital-admissions",
                       outcome="source_error")],
              "HubConnectorErrors", "25m", []),
        _case("policy ends in 20 days", [_series("hub_policy_days_left", "20x120", region="532503")],
              "HubPolicyExpiring", "90m", [_expect("HubPolicyExpiring", {"region": "532503"}, "20")]),
        _case("policy ends in 200 days", [_series("hub_policy_days_left", "200x120", region="532503")],
              "HubPolicyExpiring", "90m", []),
        _case("policy ended", [_series("hub_policy_days_left", "-3x10", region="532503")],
              "HubPolicyExpired", "5m", [_expect("HubPolicyExpired", {"region": "532503"}, "-3")]),
        _case("policy in force", [_series("hub_policy_days_left", "3x10", region="532503")],
              "HubPolicyExpired", "5m", []),
        _case("stand-in policy used", [_series("hub_policy_fallback_total", "0 0 4x10", region="530000")],
              "HubPolicyFallback", "5m", [_expect("HubPolicyFallback", {"region": "530000"}, "4")]),
        _case("no stand-in", [_series("hub_policy_fallback_total", "0x70", region="530000")],
              "HubPolicyFallback", "65m", []),
        _case("restore never ends", [_series("hub_state_restoring", "1x30", partition="3")],
              "HubStateRestoreSlow", "20m", [_expect("HubStateRestoreSlow", {"instance": HUB["instance"],
                                                                             "partition": "3"})]),
        _case("restore done in minutes", [_series("hub_state_restoring", "1 1 1 0x30", partition="3")],
              "HubStateRestoreSlow", "20m", []),
    ]
    for c in LAG_CLASSES:
        labels = {"group": APP_ID, "topic": c.topics[0], "partition": "1"}
        minutes = int(c.for_[:-1]) * (60 if c.for_.endswith("h") else 1)
        at = f"{minutes + 5}m"
        n = minutes + 10
        cases.append(_case(f"lag above the {c.waiting} threshold",
                           [_series("hub_consumer_lag", f"{c.records * 2}x{n}", **labels)],
                           "HubConsumerLagHigh", at,
                           [_expect("HubConsumerLagHigh", labels, str(c.records * 2), waiting=c.waiting)]))
        cases.append(_case(f"lag under the {c.waiting} threshold",
                           [_series("hub_consumer_lag", f"{c.records}x{n}", **labels)], "HubConsumerLagHigh", at, []))
    return {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": cases}


# ---------------------------------------------------------------- scrape config


def prometheus_config() -> dict:
    """Scrape config for docker compose: every hub process on its exporter port, alerts to Alertmanager."""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["alerts.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]},
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{t}:{METRICS_PORT}" for t in compose_services()]}],
            },
            {"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]},
        ],
    }


def alertmanager_config() -> dict:
    """A minimal Alertmanager route: critical alerts and warnings to two receivers an operator fills in."""
    return {
        "route": {"receiver": "hub-duty", "group_by": ["alertname", "topic", "source", "department"],
                  "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
                  "routes": [{"matchers": ['severity="warning"'], "receiver": "hub-daytime"}]},
        "receivers": [
            {"name": "hub-duty", "webhook_configs": [{"url": "http://hub-duty-pager.invalid/alerts",
                                                      "send_resolved": True}]},
            {"name": "hub-daytime", "webhook_configs": [{"url": "http://hub-daytime-inbox.invalid/alerts",
                                                         "send_resolved": True}]},
        ],
        "inhibit_rules": [{"source_matchers": ['alertname="HubExporterAbsent"'],
                           "target_matchers": ['severity=~"warning|critical"'], "equal": ["job"]}],
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
    """Render deploy/prometheus/{prometheus,alerts,alerts.test,alertmanager}.yml and the PrometheusRule."""
    head = HEADER.format(script="deploy/prometheus/generate.py", source="hub.metrics.METRIC_CATALOGUE")
    return {
        "deploy/prometheus/prometheus.yml": head + dump_yaml(prometheus_config()),
        "deploy/prometheus/alerts.yml": head + dump_yaml({"groups": alert_groups()}),
        "deploy/prometheus/alerts.test.yml": head + dump_yaml(alert_tests()),
        "deploy/prometheus/alertmanager.yml": head + dump_yaml(alertmanager_config()),
        "deploy/k8s/prometheus-rules.yaml": head + dump_yaml(prometheus_rule()),
    }


if __name__ == "__main__":
    raise SystemExit(run(render))
