"""Every Prometheus metric of the hub, declared once, and the exporter that serves them.

Why one module: dashboards (deploy/grafana/generate.py) and alert rules (deploy/prometheus/generate.py)
are generated from :data:`METRIC_CATALOGUE`, and :class:`Metrics` registers exactly that catalogue.
A renamed metric therefore changes the dashboards and alerts with it, and a panel or rule can never
point at a series nobody exports (tests/unit/test_deploy_generated.py checks it).

Why a dedicated :class:`~prometheus_client.CollectorRegistry` (:data:`REGISTRY`) instead of the
library's global one: tests build a fresh ``Metrics(CollectorRegistry())`` and read exact values
without counting what other tests did, and the hub's exposition carries no unrelated default
collectors.

Usage::

    from hub.metrics import METRICS, start_exporter
    METRICS.events_consumed.labels(topic="health.discharges.v1").inc()
    server, port = start_exporter("127.0.0.1", 0)   # port 0: any free port
    ...
    stop_exporter(server)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from typing import Literal, TextIO
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)

disable_created_metrics()
"""No ``*_created`` series: dashboards and alerts never use them and they double the series count."""

MetricType = Literal["counter", "gauge", "histogram"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
)
"""Seconds, 1 ms … 30 s: a one-stop settlement is promised at the cashier's counter, so anything
beyond 30 s is an incident whatever its exact value (it lands in +Inf)."""

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
BATCH_SECONDS_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

FUNDS: tuple[str, ...] = ("basic", "critical", "assistance", "top_up", "patient")
"""Values of the ``fund`` label: 基本医保, 大病保险, 医疗救助, 兜底 and the patient's own share."""

SETTLEMENT_KINDS: tuple[str, ...] = ("settled", "reversal", "redelivery")
REFERRAL_AGES: tuple[str, ...] = ("lt_1d", "1_7d", "7_30d", "gt_30d")


@dataclass(frozen=True)
class MetricSpec:
    """One metric as dashboards and alerts see it.

    ``name`` is the exposed name (counters end in ``_total``); ``attr`` the attribute of
    :class:`Metrics`; ``group`` the part of the hub it describes. ``source`` says who exports it:
    ``hub`` (a :class:`Metrics` attribute the hub sets) or ``process`` (prometheus_client's process
    collector, registered with every :class:`Metrics`: memory, CPU, start time of each process).
    """

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]
    attr: str
    group: str
    buckets: tuple[float, ...] | None = None
    source: Literal["hub", "process"] = "hub"

    @property
    def series(self) -> tuple[str, ...]:
        """Every series name Prometheus stores for this metric (histograms have three)."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)

    def select(self, **matchers: str) -> str:
        """A PromQL selector, refusing a label the metric does not have (a dead matcher matches nothing)."""
        unknown = set(matchers) - set(self.labels)
        if unknown:
            raise KeyError(f"{self.name} has no label(s) {sorted(unknown)}; labels: {list(self.labels)}")
        if not matchers:
            return self.name
        inner = ",".join(f'{k}="{v}"' for k, v in matchers.items())
        return f"{self.name}{{{inner}}}"

    def by(self, *labels: str) -> str:
        """A ``by (…)`` clause checked against the metric's labels."""
        unknown = set(labels) - set(self.labels) - {"le", "instance", "job"}
        if unknown:
            raise KeyError(f"{self.name} has no label(s) {sorted(unknown)}; labels: {list(self.labels)}")
        return f"by ({', '.join(labels)})" if labels else ""


def _c(name: str, help: str, labels: tuple[str, ...], attr: str, group: str) -> MetricSpec:
    return MetricSpec(name, "counter", help, labels, attr, group)


def _g(name: str, help: str, labels: tuple[str, ...], attr: str, group: str) -> MetricSpec:
    return MetricSpec(name, "gauge", help, labels, attr, group)


def _h(name: str, help: str, attr: str, group: str, buckets: tuple[float, ...]) -> MetricSpec:
    return MetricSpec(name, "histogram", help, (), attr, group, buckets)


def _p(name: str, type: MetricType, help: str) -> MetricSpec:
    return MetricSpec(name, type, help, (), "", "process", source="process")


METRIC_CATALOGUE: list[MetricSpec] = [
    _c("hub_events_consumed_total", "Records consumed by the hub's processors, per topic.",
       ("topic",), "events_consumed", "pipeline"),
    _c("hub_events_produced_total", "Records produced by the hub's processors, per topic.",
       ("topic",), "events_produced", "pipeline"),
    _c("hub_dead_letters_total", "Records sent to hub.dead-letters.v1, per source and reason.",
       ("source", "reason"), "dead_letters", "pipeline"),
    _c("hub_inputs_duplicate_total",
       "Re-sent inputs dropped because their event id was already applied (policy-spec §8), per topic.",
       ("topic",), "inputs_duplicate", "pipeline"),
    _c("hub_settlements_total",
       "One-stop settlements (一站式结算) produced, per insured region and kind "
       "(settled|reversal|redelivery).",
       ("region", "kind"), "settlements", "settlement"),
    _h("hub_settlement_latency_seconds",
       "Seconds from the discharge's event time (occurred_at: the cashier's request) to its settlement "
       "being produced, wall clock; observed for new settlements only.",
       "settlement_latency", "settlement", LATENCY_BUCKETS),
    _c("hub_settlement_amount_fen_total",
       "Fen paid per fund by settled discharges (gross: reversals are counted in hub_settlements_total "
       "and never subtracted here, a counter only rises).",
       ("fund",), "settlement_amount", "settlement"),
    _c("hub_deposit_decisions_total", "Deposit-waiver decisions (先诊疗后付费) at admission, per reason.",
       ("reason",), "deposit_decisions", "settlement"),
    _c("hub_policy_fallback_total",
       "Settlements and decisions for which the nearest policy stood in because no policy of the region "
       "covers the date, per region.",
       ("region",), "policy_fallback", "settlement"),
    _g("hub_policy_days_left",
       "Days until the home region's policy in force ends (negative once it has ended).",
       ("region",), "policy_days_left", "settlement"),
    _c("hub_risk_flags_total",
       "Risk-flag state transitions (防止因病返贫致贫监测预警), per flag, state and region.",
       ("flag", "state", "region"), "risk_flags", "risk"),
    _g("hub_referrals_open", "Relief referrals (救助转介) not yet final, per department and age bucket.",
       ("department", "age"), "referrals_open", "risk"),
    _c("hub_referral_escalations_total", "Referrals still open at their due time, per department.",
       ("department",), "referral_escalations", "risk"),
    _c("hub_mismatches_total", "Cross-department reconciliation mismatches (四清), per kind and state.",
       ("kind", "state"), "mismatches", "risk"),
    _h("hub_batch_size", "Records per batch handled by a processor.", "batch_size", "pipeline",
       BATCH_SIZE_BUCKETS),
    _h("hub_batch_seconds", "Seconds a processor spent on one batch.", "batch_seconds", "pipeline",
       BATCH_SECONDS_BUCKETS),
    _g("hub_consumer_lag",
       "Records not yet consumed by a consumer group, per group, topic and partition "
       "(end offset − committed offset), reported by the worker that owns the partition.",
       ("group", "topic", "partition"), "consumer_lag", "pipeline"),
    _g("hub_processor_events_per_second", "Events per second of this process's processors (last window).",
       (), "processor_events_per_second", "pipeline"),
    _g("hub_state_restoring",
       "1 while the task of this partition restores its state from the state topic, else 0.",
       ("partition",), "state_restoring", "pipeline"),
    _c("hub_state_restore_records_total", "State records read back while restoring, per partition.",
       ("partition",), "state_restore_records", "pipeline"),
    _c("hub_connector_records_total",
       "Records handled by connectors and the counter API, per connector and outcome "
       "(produced, rejected, delivered, dead_lettered, source_error, sink_error).",
       ("connector", "outcome"), "connector_records", "connectors"),
    _g("hub_connector_running", "1 while this process runs the connector (kind: source or sink).",
       ("connector", "kind"), "connector_running", "connectors"),
    _g("hub_build_info", "Always 1; the label carries the running hub version.", ("version",),
       "build_info", "pipeline"),
    _p("process_resident_memory_bytes", "gauge", "Resident memory of the process (prometheus_client)."),
    _p("process_cpu_seconds_total", "counter", "CPU seconds used by the process (prometheus_client)."),
    _p("process_start_time_seconds", "gauge",
       "Start of the process, Unix seconds (prometheus_client); changes() of it counts restarts."),
]

CATALOGUE_BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRIC_CATALOGUE}


def spec(name: str) -> MetricSpec:
    """The catalogue entry of ``name``; generators call this, so a renamed metric fails generation."""
    try:
        return CATALOGUE_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(CATALOGUE_BY_NAME))}") from None


def hub_version() -> str:
    """The installed distribution's version, or ``0+unknown`` when run from a source tree."""
    try:
        return metadata.version("health-relief-hub")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Metrics:
    """The hub's metrics registered on ``registry`` — one instance per registry.

    Attributes are named by :attr:`MetricSpec.attr` (``events_consumed``, ``settlements``,
    ``settlement_latency``, …). Built from :data:`METRIC_CATALOGUE`, so what is registered is the
    catalogue by construction.
    """

    events_consumed: Counter
    events_produced: Counter
    dead_letters: Counter
    settlements: Counter
    settlement_latency: Histogram
    settlement_amount: Counter
    deposit_decisions: Counter
    risk_flags: Counter
    referrals_open: Gauge
    referral_escalations: Counter
    mismatches: Counter
    batch_size: Histogram
    batch_seconds: Histogram
    consumer_lag: Gauge
    connector_records: Counter
    connector_running: Gauge
    processor_events_per_second: Gauge
    state_restoring: Gauge
    state_restore_records: Counter
    inputs_duplicate: Counter
    policy_fallback: Counter
    policy_days_left: Gauge
    build_info: Gauge

    def __init__(self, registry: CollectorRegistry | None = None, version: str | None = None, *,
                 process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()
        for m in METRIC_CATALOGUE:
            if m.source == "hub":
                setattr(self, m.attr, _make(m, self.registry))
        if process:
            # memory, CPU, open files and start time of this process: restarts are
            # changes(process_start_time_seconds[…]) and a leak is a rising resident memory.
            ProcessCollector(registry=self.registry)
        self.build_info.labels(version=version or hub_version()).set(1)

    def set_consumer_lag(self, group: str, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace ``group``'s lag series whole: ``{(topic, partition): end offset − committed}``.

        Replacing is why this is a method: after a rebalance a worker must stop reporting the
        partitions it no longer owns, or a stale value would keep a lag alert firing for ever.
        """
        with self._lock:
            for labels in [lb for lb in _label_sets(self.consumer_lag) if lb[0] == group]:
                self.consumer_lag.remove(*labels)
            for (topic, partition), lag in lags.items():
                self.consumer_lag.labels(group=group, topic=topic, partition=str(partition)).set(max(lag, 0))

    def set_state_restoring(self, partition: int, restoring: bool) -> None:
        """Mark the task of ``partition`` as restoring its state (1) or serving (0)."""
        self.state_restoring.labels(partition=str(partition)).set(1 if restoring else 0)

    def record_settlement(
        self, region: str, kind: str, amounts: Mapping[str, int] | None = None,
        latency_seconds: float | None = None,
    ) -> None:
        """Count one settlement output; amounts (fund → fen) only for ``settled`` (counters never fall)."""
        if kind not in SETTLEMENT_KINDS:
            raise ValueError(f"settlement kind must be one of {SETTLEMENT_KINDS}, found {kind!r}")
        self.settlements.labels(region=region, kind=kind).inc()
        if kind == "settled" and amounts:
            for fund, fen in amounts.items():
                if fund not in FUNDS:
                    raise ValueError(f"fund must be one of {FUNDS}, found {fund!r}")
                if fen > 0:
                    self.settlement_amount.labels(fund=fund).inc(fen)
        if latency_seconds is not None and kind == "settled":
            self.settlement_latency.observe(max(latency_seconds, 0.0))

    def set_referrals_open(self, counts: Mapping[tuple[str, str], int], departments: Iterable[str] = ()) -> None:
        """Replace the open-referral gauge whole: ``{(department, age_bucket): n}``.

        Replacing (not adding) is why this is a method: a department whose referrals all closed
        must drop to 0 rather than keep its last value. Every age bucket of every one of ``departments``
        (those the routing table can address) is present, 0 when empty, so "none open for 30 days" is a
        0 on the dashboard, not "no data".
        """
        with self._lock:
            self.referrals_open.clear()
            for department in departments:
                for age in REFERRAL_AGES:
                    self.referrals_open.labels(department=department, age=age).set(0)
            for (department, age), n in counts.items():
                if age not in REFERRAL_AGES:
                    raise ValueError(f"age must be one of {REFERRAL_AGES}, found {age!r}")
                self.referrals_open.labels(department=department, age=age).set(n)


def age_bucket(age: timedelta) -> str:
    """The ``age`` label of an open referral: lt_1d, 1_7d, 7_30d or gt_30d."""
    days = age / timedelta(days=1)
    if days < 1:
        return "lt_1d"
    if days < 7:
        return "1_7d"
    if days <= 30:
        return "7_30d"
    return "gt_30d"


def _label_sets(metric: Gauge) -> list[tuple[str, ...]]:
    """Label values of every child of a labelled metric (prometheus_client keeps them in ``_metrics``)."""
    return list(metric._metrics)  # type: ignore[attr-defined]


def _make(m: MetricSpec, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    if m.type == "counter":
        return Counter(m.name, m.help, m.labels, registry=registry)
    if m.type == "gauge":
        return Gauge(m.name, m.help, m.labels, registry=registry)
    buckets = m.buckets or Histogram.DEFAULT_BUCKETS
    return Histogram(m.name, m.help, m.labels, registry=registry, buckets=buckets)


def start_exporter(
    host: str = "127.0.0.1", port: int = 0, registry: CollectorRegistry | None = None,
) -> tuple[WSGIServer, int]:
    """Serve ``registry`` (default :data:`REGISTRY`) in the Prometheus text format at /metrics.

    Runs in a daemon thread; ``port=0`` picks a free port, which is returned so tests and
    ``hub up`` can print it. Stop with :func:`stop_exporter`.
    """
    reg = registry if registry is not None else REGISTRY
    server, _thread = start_http_server(port, addr=host, registry=reg)
    return server, int(server.server_port)


CONNECTOR_OUTCOMES: dict[str, tuple[str, ...]] = {
    "source": ("produced", "rejected", "dead_lettered", "source_error"),
    "sink": ("delivered", "dead_lettered", "sink_error"),
}
"""Outcomes of hub_connector_records_total a connector of each kind can report; all start at 0, so an
error rate is 0 (not absent) on a healthy connector and the first error is an increase."""


@contextlib.contextmanager
def connector_metrics(name: str, kind: str, *, serve: bool, host: str, port: int, out: TextIO,
                      metrics: Metrics | None = None) -> Iterator[None]:
    """Around a connector process: say it runs (``hub_connector_running``), start its outcome series at 0,
    and serve /metrics when ``serve`` (its config does not serve them itself).

    Why by default: a connector process Prometheus cannot scrape is a target down and a connector nobody
    sees fail. Served on ``port`` (HUB_METRICS_PORT), or a free port when that one is taken (e.g. beside
    ``hub up``); the address is printed.
    """
    m = metrics if metrics is not None else METRICS
    for outcome in CONNECTOR_OUTCOMES.get(kind, ()):
        m.connector_records.labels(connector=name, outcome=outcome)
    m.connector_running.labels(connector=name, kind=kind).set(1)
    server = None
    if serve:
        try:
            server, bound = start_exporter(host, port, m.registry)
        except OSError:
            server, bound = start_exporter(host, 0, m.registry)
        out.write(f"metrics: http://{host}:{bound}/metrics\n")
        out.flush()
    try:
        yield
    finally:
        m.connector_running.labels(connector=name, kind=kind).set(0)
        if server is not None:
            stop_exporter(server)


def stop_exporter(server: WSGIServer) -> None:
    """Stop serving and release the socket (no ResourceWarning, the port is free again)."""
    server.shutdown()
    server.server_close()


REGISTRY = CollectorRegistry()
"""The hub's registry: what ``hub up`` / ``hub worker`` export."""

METRICS = Metrics(REGISTRY)
"""The process-wide metrics on :data:`REGISTRY`."""

__all__ = [
    "CONNECTOR_OUTCOMES", "FUNDS", "LATENCY_BUCKETS", "METRICS", "METRIC_CATALOGUE", "REFERRAL_AGES", "REGISTRY",
    "SETTLEMENT_KINDS", "MetricSpec", "Metrics", "age_bucket", "connector_metrics", "spec", "start_exporter",
    "stop_exporter",
]
