"""``hub doctor`` against a real noida-db: all green when healthy, and it names what is wrong when not."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from hub.broker import EmbeddedBroker, ensure_topics, free_port
from hub.config import Settings
from hub.doctor import Check, doctor_command, render, run_probe
from hub.topics import Topic, hub_topics, probe_topic


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_healthy_embedded_broker_is_all_green(broker: EmbeddedBroker) -> None:
    checks = run_probe(broker.bootstrap)
    failed = [c for c in checks if not c.ok]
    assert failed == [], render(checks)
    names = _by_name(checks)
    for expected in ("broker reachable", "api versions", "end offsets after batches", "consumer group join",
                     "transactions"):
        assert expected in names
        assert names[expected].required, f"{expected} gates the worker's start"
    for t in hub_topics():  # the catalogue, connector offsets, the worker's state topic, the probe topic
        detail = names[f"topic {t.name}"].detail
        assert f"{t.partitions} partition(s)" in detail
        assert f"cleanup.policy={t.config['cleanup.policy']}" in detail  # noida-db answers DescribeConfigs
        assert "1 replica(s), min.insync.replicas=1" in detail
    assert "read back with read_committed" in names["transactions"].detail
    assert "all required checks passed" in render(checks)


def test_the_probe_creates_and_deletes_no_topic(broker: EmbeddedBroker) -> None:
    """The worker runs the probe at every start with its own (least-privilege) user: no CreateTopics, no
    DeleteTopics, only its pre-created probe topic."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        before = set(admin.list_topics())
        assert probe_topic().name in before
        checks = run_probe(broker.bootstrap, catalogue=())
        assert all(c.ok for c in checks), render(checks)
        assert set(admin.list_topics()) == before
    finally:
        admin.close()


def test_probe_writes_with_the_configured_replication_and_acks() -> None:
    """Issue 17: a topic whose min.insync.replicas exceeds its replicas makes every acks=all write fail
    (NotEnoughReplicas on Apache Kafka) — the probe says so instead of the first settlement failing.
    noida-db does not enforce min.insync.replicas, so here the finding comes from the topic's config."""
    with EmbeddedBroker() as b:
        bad = Settings(app_id="isr-too-high")
        probe = probe_topic(bad.app_id)
        ensure_topics(b.bootstrap, [probe], settings=bad, replication_factor=1, min_insync_replicas=2)
        check = _by_name(run_probe(b.bootstrap, catalogue=[probe], settings=bad))[f"topic {probe.name}"]
        assert not check.ok and check.required
        assert "min.insync.replicas=2 exceeds its 1 replica(s)" in check.detail

        # replication the one-broker cluster cannot give: the probe topic cannot be made, nothing runs on it
        wanted = Settings(app_id="rf-three", kafka_replication_factor=3, kafka_min_insync_replicas=2)
        names = _by_name(run_probe(b.bootstrap, catalogue=(), settings=wanted))
        assert not names["end offsets after batches"].ok and not names["transactions"].ok
        assert "InvalidReplicationFactor" in names["end offsets after batches"].detail

        # topics made with fewer replicas than configured are reported, each
        ensure_topics(b.bootstrap, [probe_topic(wanted.app_id)], settings=wanted, replication_factor=1,
                      min_insync_replicas=1)
        check = _by_name(run_probe(b.bootstrap, catalogue=[probe_topic(wanted.app_id)], settings=wanted))[
            f"topic {probe_topic(wanted.app_id).name}"]
        assert not check.ok and "1 replica(s), the configured replication factor is 3" in check.detail


def test_reports_a_missing_topic_and_a_wrong_partition_count(broker: EmbeddedBroker) -> None:
    missing = Topic(f"doctor-missing-{uuid.uuid4().hex[:8]}", "", "k", "test")
    shrunk = Topic(f"doctor-shrunk-{uuid.uuid4().hex[:8]}", "", "k", "test", compacted=True)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(shrunk.name, 1, 1, topic_configs={"cleanup.policy": "delete"})])
    finally:
        admin.close()
    checks = _by_name(run_probe(broker.bootstrap, catalogue=[missing, shrunk]))
    assert not checks[f"topic {missing.name}"].ok
    assert checks[f"topic {missing.name}"].detail == "missing"
    assert "hub up" in checks[f"topic {missing.name}"].hint
    wrong = checks[f"topic {shrunk.name}"]
    assert not wrong.ok and wrong.required
    assert "1 partition(s), catalogue says 4" in wrong.detail
    assert "cleanup.policy=delete, catalogue says compact" in wrong.detail
    assert "--reset" in wrong.hint


def test_doctor_command_exit_codes(kafka_bootstrap: str, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert doctor_command(Settings(broker=f"kafka://{kafka_bootstrap}"), out, err) == 0, err.getvalue()
    assert "all required checks passed" in out.getvalue()

    # A fresh embedded data dir: the embedded broker is the hub's own, so the doctor sets it up as
    # `hub up` would (every catalogue topic) and then judges it: all green, topics now present.
    out, err = io.StringIO(), io.StringIO()
    assert doctor_command(Settings(broker="embedded", data_dir=tmp_path), out, err) == 0, err.getvalue()
    assert "missing" not in out.getvalue()
    assert "topic health.discharges.v1" in out.getvalue()


def test_unreachable_broker_is_one_clear_failure() -> None:
    address = f"127.0.0.1:{free_port()}"
    checks = run_probe(address)
    assert len(checks) == 1 and not checks[0].ok and address in checks[0].detail
    out, err = io.StringIO(), io.StringIO()
    assert doctor_command(Settings(broker=f"kafka://{address}"), out, err) == 2
    assert "broker reachable" in err.getvalue()


def test_doctor_warns_loudly_when_the_home_policy_ends_within_30_days_or_has_ended(kafka_bootstrap: str) -> None:
    """Issue 15: every broker check green while every discharge is ``no_policy`` — the doctor says so."""
    from datetime import date

    settings = Settings(broker=f"kafka://{kafka_bootstrap}")
    out, err = io.StringIO(), io.StringIO()
    assert doctor_command(settings, out, err, today=date(2026, 6, 1)) == 0, err.getvalue()
    assert "WARNING" not in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert doctor_command(settings, out, err, today=date(2026, 12, 6)) == 0  # a warning, not a failure
    assert "hub doctor: WARNING policy of the home region: !!! the home region's policy Mengzi City (532503) ends " \
           "on 2026-12-31, in 25 day(s)" in err.getvalue()
    assert "HUB_POLICY_DIR" in err.getvalue() and "warn" in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    doctor_command(settings, out, err, today=date(2027, 1, 2))
    assert "no policy of the home region 532503 is in force today (2027-01-02)" in err.getvalue()
