"""Generate the hub's Grafana dashboards (grafana-foundation-sdk) and provisioning from hub.metrics.METRIC_CATALOGUE.

Why generated, and why so: every query is built by :func:`q` from the catalogue's :class:`MetricSpec`, which
refuses a metric or a label the hub does not export, so a renamed metric fails generation instead of
leaving a dead panel; Grafana's own SDK builds the dashboard model, so the JSON is what Grafana expects.
Panels are written for the people who read them — titles say what is measured in words, units say
records/s, yuan, seconds — and grouped by who looks:

- ``hub-overview``      duty officer: throughput, lag per partition, latency, errors, processes
- ``hub-settlement``    medical insurance: settlements, latency against the objective, money, policy
- ``hub-risk``          civil affairs / rural revitalization: risk flags, referrals and escalations, 四清
- ``hub-connectors``    the edge: every connector's records, errors, dead letters, process health

Variables: data source, instance and topic (overview), region (settlement), department (risk),
connector (connectors); "All" is the regex ``.*``. tests/e2e/test_observability.py runs every query,
variables replaced by ``.*`` and ``$__rate_interval`` by a fixed window, against Prometheus scraping ``hub up``.

Outputs: deploy/grafana/dashboards/*.json and deploy/grafana/provisioning/{datasources,dashboards}/*.yaml.
Run: ``python deploy/grafana/generate.py`` (``--check`` to verify the checked-in files).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HEADER, dump_yaml, run  # noqa: E402
from _processes import APP_ID  # noqa: E402
from grafana_foundation_sdk.builders import common as cb  # noqa: E402
from grafana_foundation_sdk.builders import dashboard as db  # noqa: E402
from grafana_foundation_sdk.builders import prometheus as pb  # noqa: E402
from grafana_foundation_sdk.builders import stat as sb  # noqa: E402
from grafana_foundation_sdk.builders import timeseries as tb  # noqa: E402
from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from grafana_foundation_sdk.models import common as cm  # noqa: E402
from grafana_foundation_sdk.models import dashboard as dm  # noqa: E402

from hub.metrics import spec  # noqa: E402

DATASOURCE_UID = "hub-prometheus"
RATE = "$__rate_interval"
"""Grafana's own window variable; tests substitute a fixed window to run the queries on Prometheus."""
SLO_SECONDS = 5.0
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TARGET_LABELS = {"instance", "job"}

RECORDS_S = "suffix: records/s"
PER_MIN = "suffix: /min"
PER_HOUR = "suffix: /h"
RECORDS = "suffix: records"


def q(name: str, **matchers: str) -> str:
    """A selector of catalogue metric ``name`` (or one of its series); ``~value`` is a regex matcher.

    Refuses labels the metric does not have (a dead matcher matches nothing, silently).
    """
    base = name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and not name.endswith("_total"):
            base = name.removesuffix(suffix)
            break
    m = spec(base)
    allowed = set(m.labels) | TARGET_LABELS | ({"le"} if base != name else set())
    unknown = set(matchers) - allowed
    if unknown:
        raise KeyError(f"{name} has no label(s) {sorted(unknown)}; labels: {sorted(allowed)}")
    if not matchers:
        return name
    parts = [f'{k}=~"{v[1:]}"' if v.startswith("~") else f'{k}="{v}"' for k, v in matchers.items()]
    return f"{name}{{{','.join(parts)}}}"


def by(name: str, *labels: str) -> str:
    """``by (…)`` checked against the metric's labels (plus instance/job)."""
    m = spec(name)
    unknown = set(labels) - set(m.labels) - TARGET_LABELS - {"le"}
    if unknown:
        raise KeyError(f"{name} has no label(s) {sorted(unknown)}")
    return f"by ({', '.join(labels)})"


INST = {"instance": "~$instance"}


def quantiles(name: str, *qs: float, **matchers: str) -> list[tuple[str, str]]:
    bucket = q(f"{name}_bucket", **matchers)
    return [(f"histogram_quantile({x}, sum by (le) (rate({bucket}[{RATE}])))", f"p{round(x * 100)}") for x in qs]


@dataclass(frozen=True)
class Panel:
    """A panel as written here: title, unit, queries (expr, legend) and what it is for."""

    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]
    description: str
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    stack: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _ts(p: Panel) -> tb.Panel:
    panel = (tb.Panel().title(p.title).description(p.description).datasource(DS).unit(p.unit)
             .height(8).span(p.width).line_width(1).fill_opacity(10 if not p.stack else 60)
             .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                     .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"])))
    if p.stack:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    for i, (expr, legend) in enumerate(p.queries):
        panel = panel.with_target(pb.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)))
    return panel


def _stat(p: Panel) -> sb.Panel:
    panel = (sb.Panel().title(p.title).description(p.description).datasource(DS).unit(p.unit)
             .height(4).span(p.width).color_mode(cm.BigValueColorMode.VALUE)
             .graph_mode(cm.BigValueGraphMode.AREA)
             .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"])))
    for i, (expr, legend) in enumerate(p.queries):
        panel = panel.with_target(pb.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)))
    return panel


def _datasource_var() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def _query_var(name: str, label: str, query: str) -> db.QueryVariable:
    return (db.QueryVariable(name).label(label).query(query).datasource(DS).multi(True).include_all(True)
            .all_value(".*").refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC))


def _build(uid: str, title: str, description: str, variables: list[object], rows: list[Row]) -> dict:
    d = (db.Dashboard(title).uid(uid).description(description).tags(["hub", "generated"])
         .timezone("Asia/Shanghai").refresh("30s").time("now-6h", "now").readonly())
    d = d.variables(variables)  # type: ignore[arg-type]
    pid = 0
    for row in rows:
        pid += 1
        d = d.with_row(db.Row(row.title).id(pid))
        for p in row.panels:
            pid += 1
            d = d.with_panel((_stat(p) if p.kind == "stat" else _ts(p)).id(pid))
    return json.loads(json.dumps(d.build(), cls=JSONEncoder))


# ---------------------------------------------------------------- the dashboards


def overview() -> dict:
    """Duty officer's view: is data flowing, is anything waiting, failing or restarting."""
    topic = {"topic": "~$topic"}
    lag = q("hub_consumer_lag", group=APP_ID, **topic, **INST)
    rows = [
        Row("Now", (
            Panel("Settlements per minute", "short",
                  ((f"sum(rate({q('hub_settlements_total', kind='settled', **INST)}[5m])) * 60", "settled"),),
                  "One-stop settlements (一站式结算) produced in the last 5 minutes, per minute.", "stat", 6),
            Panel("Largest lag", RECORDS, ((f"max({lag})", "records"),),
                  "Records waiting on the most behind input partition of the worker group.", "stat", 6),
            Panel("Dead letters in the last hour", "short",
                  ((f"sum(increase({q('hub_dead_letters_total')}[1h]))", "dead letters"),),
                  "Records rejected to hub.dead-letters.v1 by any part of the hub.", "stat", 6),
            Panel("Hub processes up", "short", (('sum(up{job="hub"})', "up"), ('count(up{job="hub"})', "known")),
                  "Targets serving /metrics, out of those Prometheus knows.", "stat", 6),
        )),
        Row("Throughput", (
            Panel("Input records consumed", RECORDS_S,
                  ((f"sum by (topic) (rate({q('hub_events_consumed_total', **topic, **INST)}[{RATE}]))", "{{topic}}"),),
                  "Records the worker consumed per second, by input topic."),
            Panel("Output records produced", RECORDS_S,
                  ((f"sum by (topic) (rate({q('hub_events_produced_total', **topic, **INST)}[{RATE}]))", "{{topic}}"),),
                  "Records the worker produced per second, by output topic."),
            Panel("Events per second per worker", RECORDS_S,
                  ((f"sum by (instance) ({q('hub_processor_events_per_second', **INST)})", "{{instance}}"),),
                  "Each worker's own measure of the events it processed in its last window."),
            Panel("Records per batch", RECORDS,
                  tuple(quantiles("hub_batch_size", 0.5, 0.95, **INST)),
                  "How many records the worker applies in one ordered batch (median and 95th percentile)."),
            Panel("Time per batch", "s", tuple(quantiles("hub_batch_seconds", 0.5, 0.95, 0.99, **INST)),
                  "Seconds the worker spends on one batch, outputs and state write included."),
            Panel("Re-sent inputs dropped", RECORDS_S,
                  ((f"sum by (topic) (rate({q('hub_inputs_duplicate_total', **topic, **INST)}[{RATE}]))",
                    "{{topic}}"),),
                  "Inputs whose event id was already applied (a source re-sent them): dropped, policy-spec §8."),
        )),
        Row("Lag and state", (
            Panel("Records waiting, per partition", RECORDS,
                  ((f"max by (topic, partition) ({lag})", "{{topic}} [{{partition}}]"),),
                  "End offset minus the group's committed offset, per input partition.", width=24),
            Panel("Partitions restoring their state", "short",
                  ((f"sum by (instance) ({q('hub_state_restoring', **INST)})", "{{instance}}"),),
                  "Tasks reading their state back from the state topic after a start or a rebalance."),
            Panel("State records restored", RECORDS_S,
                  ((f"sum by (partition) (rate({q('hub_state_restore_records_total', **INST)}[{RATE}]))",
                    "partition {{partition}}"),),
                  "Restore progress: state records read back per second, per partition."),
        )),
        Row("Errors", (
            Panel("Dead letters", PER_MIN,
                  ((f"sum by (source, reason) (rate({q('hub_dead_letters_total', **INST)}[{RATE}])) * 60",
                    "{{source}}: {{reason}}"),),
                  "Records sent to hub.dead-letters.v1 per minute, by who rejected them and why."),
            Panel("Settlement latency", "s",
                  tuple(quantiles("hub_settlement_latency_seconds", 0.5, 0.95, 0.99, **INST)),
                  "From the cashier's request (event time) to the settlement on its topic."),
        )),
        Row("Processes", (
            Panel("Memory", "bytes",
                  ((f"sum by (instance) ({q('process_resident_memory_bytes', **INST, job='hub')})", "{{instance}}"),),
                  "Resident memory of each hub process."),
            Panel("CPU", "percentunit",
                  ((f"sum by (instance) (rate({q('process_cpu_seconds_total', **INST, job='hub')}[{RATE}]))",
                    "{{instance}}"),),
                  "Share of one core each hub process uses."),
            Panel("Restarts in the last hour", "short",
                  ((f"changes({q('process_start_time_seconds', **INST, job='hub')}[1h])", "{{instance}}"),),
                  "How often each process started anew (a crash loop shows here first)."),
            Panel("Running versions", "short",
                  ((f"count by (version) ({q('hub_build_info', **INST)})", "{{version}}"),),
                  "Hub processes per version: more than one during a rolling upgrade only."),
        )),
    ]
    variables = [_datasource_var(), _query_var("instance", "Instance", 'label_values(up{job="hub"}, instance)'),
                 _query_var("topic", "Topic", f"label_values({q('hub_events_consumed_total')}, topic)")]
    return _build("hub-overview", "Hub — overview", "Throughput, lag, latency and errors of the whole hub.",
                  variables, rows)


def settlement() -> dict:
    """Medical insurance's view: settlements at the cashier, how fast, how much, under which policy."""
    region = {"region": "~$region"}
    slo_bucket = q("hub_settlement_latency_seconds_bucket", le=str(SLO_SECONDS))
    rows = [
        Row("Settlements", (
            Panel("Settlements per minute", PER_MIN,
                  ((f"sum by (region, kind) (rate({q('hub_settlements_total', **region)}[{RATE}])) * 60",
                    "{{region}} {{kind}}"),),
                  "Settled, reversed (冲正) and redelivered settlements per minute, by insured region."),
            Panel("Settlement latency", "s", tuple(quantiles("hub_settlement_latency_seconds", 0.5, 0.95, 0.99)),
                  "From the discharge's event time to its settlement (50th, 95th, 99th percentile)."),
            Panel(f"Settled within {SLO_SECONDS:g} s", "percentunit",
                  ((f"sum(rate({slo_bucket}[{RATE}])) / sum(rate({q('hub_settlement_latency_seconds_count')}"
                    f"[{RATE}]))", "within objective"),),
                  f"Share of settlements produced within {SLO_SECONDS:g} s; the objective is 99 %."),
            Panel("Paid per hour, by fund", "currencyCNY",
                  ((f"sum by (fund) (increase({q('hub_settlement_amount_fen_total')}[1h])) / 100", "{{fund}}"),),
                  "Yuan paid in the last hour by basic insurance, critical-illness insurance, medical assistance, "
                  "top-up, and by patients.", stack=True),
            Panel("Deposit decisions per minute", PER_MIN,
                  ((f"sum by (reason) (rate({q('hub_deposit_decisions_total')}[{RATE}])) * 60", "{{reason}}"),),
                  "Deposit-waiver decisions at admission (先诊疗后付费), by reason."),
            Panel("Counter API requests per minute", PER_MIN,
                  ((f"sum by (outcome) (rate({q('hub_connector_records_total', connector='counter-api')}[{RATE}])) "
                    "* 60", "{{outcome}}"),),
                  "Admissions and discharges sent by hospital counters through the HTTP API, by outcome."),
        )),
        Row("Policy", (
            Panel("Days until the policy ends", "d",
                  ((f"min by (region) ({q('hub_policy_days_left', **region)})", "{{region}}"),),
                  "Days left in the home region's policy period; load the next period's file before 0.", "stat", 12),
            Panel("Stand-in policy used, per hour", PER_HOUR,
                  ((f"sum by (region) (increase({q('hub_policy_fallback_total', **region)}[1h]))", "{{region}}"),),
                  "Decisions for dates no policy covers, made with the nearest policy instead.", "timeseries", 12),
        )),
    ]
    variables = [_datasource_var(),
                 _query_var("region", "Insured region", f"label_values({q('hub_settlements_total')}, region)")]
    return _build("hub-settlement", "Hub — one-stop settlement (一站式结算)",
                  "Settlements, latency against the objective, funds paid and policy validity.", variables, rows)


def risk() -> dict:
    """Civil affairs' and rural revitalization's view: who is at risk, which referral waits on whom."""
    dept = {"department": "~$department"}
    rows = [
        Row("Risk flags (防止因病返贫致贫监测预警)", (
            Panel("Flag changes per hour", PER_HOUR,
                  ((f"sum by (flag, state) (increase({q('hub_risk_flags_total')}[1h]))", "{{flag}} → {{state}}"),),
                  "Risk flags raised, confirmed and cleared in the last hour, by flag."),
            Panel("Reconciliation mismatches per hour (四清)", PER_HOUR,
                  ((f"sum by (kind, state) (increase({q('hub_mismatches_total')}[1h]))", "{{kind}} {{state}}"),),
                  "Records two departments disagree on, told to both."),
        )),
        Row("Referrals (救助转介)", (
            Panel("Open referrals by age", "short",
                  ((f"sum by (department, age) ({q('hub_referrals_open', **dept)})", "{{department}} {{age}}"),),
                  "Referrals not yet final, by the department that must act and how long they have waited.",
                  stack=True),
            Panel("Escalations per hour", PER_HOUR,
                  ((f"sum by (department) (increase({q('hub_referral_escalations_total', **dept)}[1h]))",
                    "{{department}}"),),
                  "Referrals still open at their due time (超时督办), by department."),
            Panel("Open longer than 30 days", "short",
                  ((f"sum by (department) ({q('hub_referrals_open', age='gt_30d', **dept)})", "{{department}}"),),
                  "Referrals waiting more than a month: follow them up with the department.", "stat", 24),
        )),
    ]
    variables = [_datasource_var(),
                 _query_var("department", "Department", f"label_values({q('hub_referrals_open')}, department)")]
    return _build("hub-risk", "Hub — risk flags and referrals",
                  "Households at risk, referrals to departments and their escalations, reconciliation.", variables,
                  rows)


def connectors() -> dict:
    """The edge: is every connector running, moving records, failing, dead-lettering."""
    conn = {"connector": "~$connector"}
    running = q("hub_connector_running", **conn)
    rows = [
        Row("Connectors", (
            Panel("Connectors running", "short", ((f"sum by (kind) ({running})", "{{kind}}"),),
                  "Connector processes serving metrics, by kind (source or sink).", "stat", 8),
            Panel("Records per minute", PER_MIN,
                  ((f"sum by (connector, outcome) (rate({q('hub_connector_records_total', **conn)}[{RATE}])) * 60",
                    "{{connector}} {{outcome}}"),),
                  "Records each connector produced, delivered, rejected or dead-lettered per minute.", width=16),
            Panel("Errors per minute", PER_MIN,
                  ((f"sum by (connector, outcome) (rate({q('hub_connector_records_total', outcome='~source_error|sink_error', **conn)}[{RATE}])) * 60",  # noqa: E501
                    "{{connector}} {{outcome}}"),),
                  "The department system could not be read (source_error) or written (sink_error): the connector "
                  "backs off and retries from its committed offsets."),
            Panel("Dead letters per minute", PER_MIN,
                  ((f"sum by (source, reason) (rate({q('hub_dead_letters_total', source='~$connector')}[{RATE}])) * 60",
                    "{{source}}: {{reason}}"),),
                  "Rows or records a connector rejected to hub.dead-letters.v1, by reason."),
            Panel("Connector memory", "bytes",
                  ((f"sum by (connector) (process_resident_memory_bytes * on (instance) group_left (connector) "
                    f"{running})", "{{connector}}"),),
                  "Resident memory of each connector process."),
            Panel("Connector restarts in the last hour", "short",
                  ((f"sum by (connector) (changes(process_start_time_seconds[1h]) * on (instance) group_left "
                    f"(connector) {running})", "{{connector}}"),),
                  "How often each connector process started anew."),
        )),
    ]
    variables = [_datasource_var(), _query_var("connector", "Connector",
                                               f"label_values({q('hub_connector_records_total')}, connector)")]
    return _build("hub-connectors", "Hub — connectors", "Every department connector's records, errors and health.",
                  variables, rows)


DASHBOARDS = {"hub-overview": overview, "hub-settlement": settlement, "hub-risk": risk, "hub-connectors": connectors}


def render() -> dict[str, str]:
    """Render deploy/grafana/dashboards/*.json and the provisioning YAML."""
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
    files = {f"deploy/grafana/dashboards/{uid}.json": json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
             for uid, build in DASHBOARDS.items()}
    files["deploy/grafana/provisioning/datasources/prometheus.yaml"] = head + dump_yaml(datasources)
    files["deploy/grafana/provisioning/dashboards/hub.yaml"] = head + dump_yaml(providers)
    return files


if __name__ == "__main__":
    raise SystemExit(run(render))
