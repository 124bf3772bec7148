"""faust table recovery on noida-db: a table rebuilt from its changelog equals the table before.

Why: every piece of processor state (person status, year-to-date sums, open flags) lives in faust
tables, and broker-notes.md measured one broker that silently lost updates on recovery. These tests
run the tiny worker of ``faust_counter.py`` as a real subprocess, with the memory store (recovery
reads the whole changelog) and the rocksdb store (recovery reads from its saved offset).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer

from hub.broker import EmbeddedBroker, ensure_topics, evict_group_members
from hub.topics import Topic

ROOT = Path(__file__).resolve().parents[2]
STORES = ["memory://", "rocksdb://"]


class CounterWorker:
    """One ``faust_counter`` worker process; its table dump is read from ``dump``."""

    def __init__(self, bootstrap: str, app_id: str, store: str, source: str, tmp: Path) -> None:
        self.app_id = app_id
        self.dump = tmp / "dump.json"
        self.log = tmp / "worker.log"
        self.cmd = [sys.executable, "-m", "tests.integration.faust_counter", "--app-id", app_id,
                    "--broker", f"kafka://{bootstrap}", "--store", store, "--data-dir", str(tmp / "state"),
                    "--source", source, "--dump", str(self.dump)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dump.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def table(self) -> dict[str, int] | None:
        """The last dump of the table, or None before the worker has recovered and dumped."""
        try:
            return json.loads(self.dump.read_text())["table"]
        except (OSError, ValueError):
            return None

    def wait_table(self, predicate: object, timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            table = self.table()
            if table is not None and predicate(table):  # type: ignore[operator]
                return table
            time.sleep(0.2)
        pytest.fail(f"table not as expected after {timeout} s (last: {len(self.table() or {})} keys); "
                    f"worker log: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"worker ignored signal {sig} for {timeout} s")


def _produce(bootstrap: str, topic: str, events: list[tuple[str, int]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    try:
        for event_id, value in events:
            value_bytes = json.dumps({"id": event_id, "value": value}).encode()
            producer.send(topic, key=event_id.encode(), value=value_bytes)
        producer.flush()
    finally:
        producer.close()


def _events(n: int, distinct: int) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """``n`` events over ``distinct`` ids (ids repeat, later values win) and the table a clean run gives."""
    events = [(f"e{i % distinct}", i) for i in range(n)]
    return events, {event_id: value for event_id, value in events}


def _setup(bootstrap: str, tmp: Path, store: str) -> CounterWorker:
    app_id = f"frc-{uuid.uuid4().hex[:8]}"
    source = Topic(f"{app_id}-events", "", "event id", "test")
    ensure_topics(bootstrap, [source])  # before the worker: an auto-created topic has 1 partition
    return CounterWorker(bootstrap, app_id, store, source.name, tmp)


@pytest.fixture
def alive_workers() -> list[CounterWorker]:
    """Workers a test started; killed at teardown whatever happened."""
    workers: list[CounterWorker] = []
    yield workers
    for w in workers:
        if w.proc is not None and w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("store", STORES)
def test_table_after_a_clean_restart_equals_the_table_before(
    broker: EmbeddedBroker, tmp_path: Path, store: str, alive_workers: list[CounterWorker]
) -> None:
    worker = _setup(broker.bootstrap, tmp_path, store)
    alive_workers.append(worker)
    events, expected = _events(2000, 500)
    _produce(broker.bootstrap, worker.cmd[worker.cmd.index("--source") + 1], events)
    worker.start()
    before = worker.wait_table(lambda t: t == expected, timeout=40)
    worker.stop(signal.SIGTERM)
    worker.start()
    after = worker.wait_table(lambda t: True, timeout=30)  # the first dump after recovery, nothing newer
    assert after == before


@pytest.mark.timeout(90)
@pytest.mark.parametrize("store", STORES)
def test_table_after_kill_9_mid_stream_equals_a_clean_run(
    broker: EmbeddedBroker, tmp_path: Path, store: str, alive_workers: list[CounterWorker]
) -> None:
    worker = _setup(broker.bootstrap, tmp_path, store)
    alive_workers.append(worker)
    events, expected = _events(4000, 2000)
    _produce(broker.bootstrap, worker.cmd[worker.cmd.index("--source") + 1], events)
    worker.start()
    partial = worker.wait_table(lambda t: len(t) >= 300, timeout=40)
    worker.stop(signal.SIGKILL)
    assert partial != expected, "the worker finished before it was killed; the test proves nothing"
    # noida-db never evicts the killed member: without this the new worker never gets an assignment
    assert len(evict_group_members(broker.bootstrap, worker.app_id)) == 1
    worker.start()
    worker.wait_table(lambda t: t == expected, timeout=45)
