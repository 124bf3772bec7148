"""The embedded broker against a real noida-db: life cycle, durability, noise, orphans, topic set-up."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from hub.broker import (
    GLIBC_NOISE,
    EmbeddedBroker,
    api_versions,
    binary_path,
    connect,
    ensure_topics,
    evict_group_members,
    free_port,
)
from hub.config import Settings
from hub.errors import BrokerError
from hub.topics import Topic

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return _gone(pid)


def _port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_start_answers_kafka_and_stop_leaves_nothing(tmp_path: Path) -> None:
    b = EmbeddedBroker(tmp_path / "data")
    with b:
        pid, port = b.pid, b.port
        assert pid is not None and port is not None
        assert b.bootstrap == f"127.0.0.1:{port}"
        assert 3 in api_versions(b.bootstrap)  # Metadata
    assert _gone(pid)
    assert not _port_answers(port)
    b.stop()  # idempotent


def test_temporary_data_dir_is_removed_at_stop() -> None:
    with EmbeddedBroker() as b:
        data = b.data_dir
        assert data.is_dir()
    assert not data.exists()


def test_data_survives_a_clean_restart(tmp_path: Path) -> None:
    topic = Topic(f"restart-{uuid.uuid4().hex[:8]}", "", "k", "test")
    with EmbeddedBroker(tmp_path) as b:
        ensure_topics(b.bootstrap, [topic])
        producer = KafkaProducer(bootstrap_servers=b.bootstrap, linger_ms=5)
        for i in range(50):
            producer.send(topic.name, key=b"%d" % i, value=b"v%d" % i)
        producer.flush()
        producer.close()
        first_port = b.port
    other_port = next(p for p in iter(free_port, None) if p != first_port)
    with EmbeddedBroker(tmp_path, port=other_port) as b:  # the saved data must not pin the old port
        assert ensure_topics(b.bootstrap, [topic]) == []
        consumer = KafkaConsumer(bootstrap_servers=b.bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=3000)
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        assert sum(consumer.end_offsets(tps).values()) == 50
        consumer.assign(tps)
        values = {m.value for m in consumer}
        consumer.close()
        assert values == {b"v%d" % i for i in range(50)}


def test_glibc_noise_is_filtered_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hub.broker")
    with EmbeddedBroker() as b:
        pass
    assert not any(GLIBC_NOISE in r.getMessage() for r in caplog.records)
    assert not any(GLIBC_NOISE in line for line in b.stderr_lines)
    assert any("kafka" in line for line in b.stdout_lines)  # its banner was read, not lost


def test_glibc_noise_really_is_printed_by_the_binary() -> None:
    """Guards the test above against passing vacuously on a machine where the noise never appears."""
    run = subprocess.run([str(binary_path()), "version"], capture_output=True, text=True, timeout=10)
    if GLIBC_NOISE not in run.stderr:
        pytest.skip("this machine's glibc does not make noida-db print the noise")
    assert run.returncode == 0


def test_real_errors_reach_the_logger_and_the_exception(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hub.broker")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port=port, start_timeout=10).start()
    assert any("already in use" in r.getMessage() for r in caplog.records)
    assert not any(GLIBC_NOISE in r.getMessage() for r in caplog.records)


def test_a_second_broker_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path), pytest.raises(BrokerError, match="already running"):
        EmbeddedBroker(tmp_path, start_timeout=10).start()


_PARENT = """
import sys, threading, time
sys.path.insert(0, {root!r})
from hub.broker import EmbeddedBroker

def run():
    b = EmbeddedBroker({data!r}).start()
    print(b.pid, flush=True)
    time.sleep(600)

if {in_thread!r}:
    threading.Thread(target=run, daemon=False).start()
else:
    run()
"""


@pytest.mark.parametrize("in_thread", [False, True], ids=["death-signal", "watchdog"])
def test_no_orphan_when_the_parent_is_killed_with_kill_9(tmp_path: Path, in_thread: bool) -> None:
    """Main thread: the kernel's death signal stops the broker; other threads: the watchdog does."""
    code = textwrap.dedent(_PARENT).format(root=str(ROOT), data=str(tmp_path), in_thread=in_thread)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    broker_pid = 0
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"parent did not start a broker: {line!r}"
        broker_pid = int(line)
        assert not _gone(broker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=5)
        assert _wait_gone(broker_pid, 15), f"noida-db pid {broker_pid} outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if broker_pid and not _gone(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)


def test_ensure_topics_is_idempotent(kafka_bootstrap: str) -> None:
    topic = Topic(f"idem-{uuid.uuid4().hex[:8]}", "", "k", "test", compacted=True, partitions=3)
    assert ensure_topics(kafka_bootstrap) == []  # the fixture already created the catalogue
    assert ensure_topics(kafka_bootstrap, [topic]) == [topic.name]
    assert ensure_topics(kafka_bootstrap, [topic]) == []
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        (described,) = admin.describe_topics([topic.name])
    finally:
        admin.close()
    assert len(described["partitions"]) == 3


def test_ensure_topics_refuses_a_wrong_partition_count(kafka_bootstrap: str, tmp_path: Path) -> None:
    name = f"shrunk-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, 1)])  # what a kill -9 can leave behind
    finally:
        admin.close()
    with pytest.raises(BrokerError) as info:
        ensure_topics(kafka_bootstrap, [Topic(name, "", "k", "test")], data_dir=tmp_path)
    message = str(info.value)
    assert "1 partition(s)" in message and "says 4" in message
    assert "kill -9" in message and "hub up --reset" in message and str(tmp_path) in message


def test_connect_starts_the_embedded_broker_only_when_asked(tmp_path: Path) -> None:
    remote = connect(Settings(broker="kafka://kafka-1:9092,kafka-2:9092"))
    assert remote.bootstrap == "kafka-1:9092,kafka-2:9092" and remote.embedded is None
    remote.close()  # nothing to stop
    with connect(Settings(broker="embedded", data_dir=tmp_path)) as handle:
        assert handle.embedded is not None and handle.embedded.data_dir == tmp_path / "broker"
        pid = handle.embedded.pid
        assert pid is not None and 18 in api_versions(handle.bootstrap)
    assert _gone(pid)


def test_free_port_is_free() -> None:
    assert not _port_answers(free_port())


_MEMBER = """
import sys
from kafka import KafkaConsumer
c = KafkaConsumer(bootstrap_servers=sys.argv[1], group_id=sys.argv[2], session_timeout_ms=6000,
                  heartbeat_interval_ms=1000)
c.subscribe([sys.argv[3]])
while not c.assignment():
    c.poll(200)
print("assigned", flush=True)
while True:
    c.poll(200)
"""


def test_evicting_a_killed_member_lets_the_group_assign_again(kafka_bootstrap: str) -> None:
    """noida-db keeps a kill -9'd member forever; evict_group_members is the way out (hub up after a crash)."""
    topic = Topic(f"evict-{uuid.uuid4().hex[:8]}", "", "k", "test")
    ensure_topics(kafka_bootstrap, [topic])
    group = f"{topic.name}-group"
    member = subprocess.Popen([sys.executable, "-c", _MEMBER, kafka_bootstrap, group, topic.name],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert member.stdout is not None and member.stdout.readline().strip() == "assigned"
    finally:
        member.kill()
        member.wait()
        if member.stdout is not None:
            member.stdout.close()
    assert len(evict_group_members(kafka_bootstrap, group)) == 1
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, session_timeout_ms=6000,
                             heartbeat_interval_ms=1000)
    try:
        consumer.subscribe([topic.name])
        deadline = time.monotonic() + 15
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(200)
        assert len(consumer.assignment()) == topic.partitions
    finally:
        consumer.close()
    assert evict_group_members(kafka_bootstrap, f"{group}-unknown") == []
