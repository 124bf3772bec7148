"""``hub doctor`` against a real noida-db: all green when healthy, and it names what is wrong when not."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from hub.broker import EmbeddedBroker, free_port
from hub.config import Settings
from hub.doctor import SCRATCH_PREFIX, Check, doctor_command, render, run_probe
from hub.topics import CATALOGUE, CONNECTOR_OFFSETS, Topic


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
    for t in (*CATALOGUE, CONNECTOR_OFFSETS):
        detail = names[f"topic {t.name}"].detail
        assert f"{t.partitions} partition(s)" in detail
        assert f"cleanup.policy={t.config['cleanup.policy']}" in detail  # noida-db answers DescribeConfigs
    assert "end offsets 1000" in names["end offsets after batches"].detail
    assert "all required checks passed" in render(checks)


def test_scratch_topics_are_deleted(broker: EmbeddedBroker) -> None:
    run_probe(broker.bootstrap, catalogue=())
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert not [t for t in admin.list_topics() if t.startswith(SCRATCH_PREFIX)]
    finally:
        admin.close()


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
