"""hub.metrics: the catalogue is exactly what is registered, and the exporter serves the text format."""

from __future__ import annotations

import urllib.request
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hub import metrics as hm

EXPECTED = {
    "hub_events_consumed_total": ("counter", ("topic",)),
    "hub_events_produced_total": ("counter", ("topic",)),
    "hub_dead_letters_total": ("counter", ("source", "reason")),
    "hub_settlements_total": ("counter", ("region", "kind")),
    "hub_settlement_latency_seconds": ("histogram", ()),
    "hub_settlement_amount_fen_total": ("counter", ("fund",)),
    "hub_deposit_decisions_total": ("counter", ("reason",)),
    "hub_risk_flags_total": ("counter", ("flag", "state", "region")),
    "hub_referrals_open": ("gauge", ("department", "age")),
    "hub_referral_escalations_total": ("counter", ("department",)),
    "hub_mismatches_total": ("counter", ("kind", "state")),
    "hub_batch_size": ("histogram", ()),
    "hub_batch_seconds": ("histogram", ()),
    "hub_consumer_lag": ("gauge", ("group", "topic", "partition")),
    "hub_connector_records_total": ("counter", ("connector", "outcome")),
    "hub_connector_running": ("gauge", ("connector", "kind")),
    "hub_processor_events_per_second": ("gauge", ()),
    "hub_state_restoring": ("gauge", ("partition",)),
    "hub_state_restore_records_total": ("counter", ("partition",)),
    "hub_inputs_duplicate_total": ("counter", ("topic",)),
    "hub_policy_fallback_total": ("counter", ("region",)),
    "hub_policy_days_left": ("gauge", ("region",)),
    "hub_build_info": ("gauge", ("version",)),
    # prometheus_client's process collector, registered with every Metrics (issue 17: memory, restarts)
    "process_resident_memory_bytes": ("gauge", ()),
    "process_cpu_seconds_total": ("counter", ()),
    "process_start_time_seconds": ("gauge", ()),
}
PROCESS_EXTRA = {"process_virtual_memory_bytes": "gauge", "process_max_fds": "gauge", "process_open_fds": "gauge"}
"""Also exported by the process collector; not in the catalogue because no panel or alert uses them."""


def _registered(registry: CollectorRegistry) -> dict[str, str]:
    """Exposed family name → type, as a scraper sees it (counters get their _total back)."""
    out = {}
    for fam in registry.collect():
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        out[name] = fam.type
    return out


def test_catalogue_is_the_agreed_metric_set() -> None:
    got = {m.name: (m.type, m.labels) for m in hm.METRIC_CATALOGUE}
    assert got == EXPECTED
    hub_attrs = [m.attr for m in hm.METRIC_CATALOGUE if m.source == "hub"]
    assert len(set(hub_attrs)) == len(hub_attrs)


def test_registered_metrics_equal_catalogue() -> None:
    reg = CollectorRegistry()
    m = hm.Metrics(reg, version="1.2.3")
    assert _registered(reg) == {s.name: s.type for s in hm.METRIC_CATALOGUE} | PROCESS_EXTRA
    for s in hm.METRIC_CATALOGUE:
        if s.source == "hub":
            metric = getattr(m, s.attr)
            assert tuple(metric._labelnames) == s.labels, s.name
            assert metric._documentation == s.help


def test_module_registry_holds_the_catalogue() -> None:
    assert _registered(hm.REGISTRY) == {s.name: s.type for s in hm.METRIC_CATALOGUE} | PROCESS_EXTRA


def test_process_metrics_say_when_the_process_started() -> None:
    import os
    import time

    import psutil

    reg = CollectorRegistry()
    hm.Metrics(reg)
    started = reg.get_sample_value("process_start_time_seconds")
    assert abs(started - psutil.Process(os.getpid()).create_time()) < 2
    assert started < time.time()
    assert reg.get_sample_value("process_resident_memory_bytes") > 10_000_000


def test_consumer_lag_is_replaced_whole_per_group() -> None:
    """A partition revoked by a rebalance stops being reported (a stale lag would alert for ever)."""
    reg = CollectorRegistry()
    m = hm.Metrics(reg)
    m.set_consumer_lag("health-relief-hub", {("health.discharges.v1", 0): 7, ("health.discharges.v1", 1): 3})
    m.set_consumer_lag("hub-connector-x", {("hub.settlements.v1", 2): 1})
    m.set_consumer_lag("health-relief-hub", {("health.discharges.v1", 1): 2})
    lag = {"group": "health-relief-hub", "topic": "health.discharges.v1"}
    assert reg.get_sample_value("hub_consumer_lag", {**lag, "partition": "0"}) is None
    assert reg.get_sample_value("hub_consumer_lag", {**lag, "partition": "1"}) == 2
    assert reg.get_sample_value("hub_consumer_lag", {"group": "hub-connector-x", "topic": "hub.settlements.v1",
                                                     "partition": "2"}) == 1


def test_connector_metrics_serve_and_start_error_series_at_zero() -> None:
    import io

    reg = CollectorRegistry()
    m = hm.Metrics(reg)
    out = io.StringIO()
    with hm.connector_metrics("family-doctor", "source", serve=True, host="127.0.0.1", port=0, out=out, metrics=m):
        url = out.getvalue().strip().removeprefix("metrics: ")
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
        assert 'hub_connector_running{connector="family-doctor",kind="source"} 1.0' in body
        assert 'hub_connector_records_total{connector="family-doctor",outcome="source_error"} 0.0' in body
    assert reg.get_sample_value("hub_connector_running", {"connector": "family-doctor", "kind": "source"}) == 0


def test_latency_buckets_span_1ms_to_30s() -> None:
    assert hm.spec("hub_settlement_latency_seconds").buckets[0] == 0.001
    assert hm.spec("hub_settlement_latency_seconds").buckets[-1] == 30.0


def test_record_settlement_counts_gross_amounts_only_for_settled() -> None:
    reg = CollectorRegistry()
    m = hm.Metrics(reg)
    m.record_settlement("532503", "settled", {"basic": 1000, "patient": 250}, latency_seconds=0.02)
    m.record_settlement("532503", "reversal", {"basic": -1000, "patient": -250})
    assert reg.get_sample_value("hub_settlements_total", {"region": "532503", "kind": "settled"}) == 1
    assert reg.get_sample_value("hub_settlements_total", {"region": "532503", "kind": "reversal"}) == 1
    assert reg.get_sample_value("hub_settlement_amount_fen_total", {"fund": "basic"}) == 1000
    assert reg.get_sample_value("hub_settlement_latency_seconds_count") == 1
    with pytest.raises(ValueError, match="kind"):
        m.record_settlement("532503", "settle")


def test_referrals_open_is_replaced_whole() -> None:
    reg = CollectorRegistry()
    m = hm.Metrics(reg)
    m.set_referrals_open({("health", "lt_1d"): 3, ("civil_affairs", "gt_30d"): 1})
    m.set_referrals_open({("health", "1_7d"): 2})
    assert reg.get_sample_value("hub_referrals_open", {"department": "health", "age": "lt_1d"}) is None
    assert reg.get_sample_value("hub_referrals_open", {"department": "health", "age": "1_7d"}) == 2


def test_referrals_open_shows_zero_for_every_routed_department_and_age() -> None:
    """A department with nothing open is a 0 per age bucket (the dashboard's "open > 30 days" has data)."""
    reg = CollectorRegistry()
    m = hm.Metrics(reg)
    m.set_referrals_open({("health", "1_7d"): 2}, ["health", "civil_affairs"])
    assert reg.get_sample_value("hub_referrals_open", {"department": "health", "age": "1_7d"}) == 2
    for age in hm.REFERRAL_AGES:
        assert reg.get_sample_value("hub_referrals_open", {"department": "civil_affairs", "age": age}) == 0
    assert reg.get_sample_value("hub_referrals_open", {"department": "health", "age": "gt_30d"}) == 0


@pytest.mark.parametrize(
    ("age", "bucket"),
    [(timedelta(hours=23), "lt_1d"), (timedelta(days=1), "1_7d"), (timedelta(days=7), "7_30d"),
     (timedelta(days=30), "7_30d"), (timedelta(days=31), "gt_30d")],
)
def test_age_bucket(age: timedelta, bucket: str) -> None:
    assert hm.age_bucket(age) == bucket


def test_select_refuses_unknown_label() -> None:
    assert hm.spec("hub_consumer_lag").select(topic="t") == 'hub_consumer_lag{topic="t"}'
    with pytest.raises(KeyError, match="no label"):
        hm.spec("hub_consumer_lag").select(region="0")
    with pytest.raises(KeyError, match="unknown metric"):
        hm.spec("hub_consumer_lags")


def test_exporter_serves_text_format_on_a_free_port() -> None:
    reg = CollectorRegistry()
    m = hm.Metrics(reg, version="9.9.9")
    m.events_consumed.labels(topic="health.discharges.v1").inc(3)
    server, port = hm.start_exporter("127.0.0.1", 0, reg)
    try:
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            ctype = resp.headers["Content-Type"]
            body = resp.read().decode()
    finally:
        hm.stop_exporter(server)
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    consumed = fams["hub_events_consumed"].samples
    assert [(s.name, s.labels, s.value) for s in consumed] == [
        ("hub_events_consumed_total", {"topic": "health.discharges.v1"}, 3.0)
    ]
    assert fams["hub_build_info"].samples[0].labels == {"version": "9.9.9"}
    assert "_created" not in body
