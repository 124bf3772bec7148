"""A worker that cannot write never runs wedged, and nothing is lost when it comes back (issue 15, items 1–2).

* **Too large.** noida-db, like Kafka, refuses a record batch above the topic's ``max.message.bytes``
  (≈1 MB by default). A batch's state writes for one task once went out as one record batch and crossed
  it: the worker crashed into a loop. Now record batches are cut at 512 KB: a single transaction carrying
  several MB to one partition commits.
* **Cannot write.** When the broker refuses every write of a task (here: its output topic's
  ``max.message.bytes`` lowered below one settlement), the task is restored from its committed state and
  retried; after three failures within a minute the worker exits non-zero — for its supervisor
  (``hub up``, systemd, Kubernetes) to restart — instead of staying alive without processing. Once the
  topic accepts records again, a new worker gives exactly ``hub replay``'s outputs: the failed attempts
  were aborted transactions.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from hub.broker import EmbeddedBroker, ensure_topics
from hub.processors.stream import append_records
from hub.runtime import spawn_worker, stop_process
from tests.e2e.stream_harness import Schedule, _produce, _run_workers, adversarial_lines, reference_and_records

pytestmark = pytest.mark.e2e


def test_a_transaction_of_several_megabytes_to_one_partition_commits() -> None:
    """3 MB of 1 KB state records to one partition in one transaction: cut into record batches that fit."""

    async def run(bootstrap: str) -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="big-batch",
                                    max_batch_size=512 * 1024)
        await producer.start()
        try:
            await producer.begin_transaction()
            records = [(b"k%05d" % i, b"x" * 1024, None) for i in range(3000)]
            await asyncio.gather(*await append_records(producer, "health-relief-hub-person-state", 0, records))
            await producer.commit_transaction()
        finally:
            await producer.stop()
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
        await reader.start()
        try:
            tp = TopicPartition("health-relief-hub-person-state", 0)
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            got = 0
            while got < 3000:
                batch = await reader.getmany(tp, timeout_ms=2000)
                if not batch:
                    break
                got += len(batch[tp])
            return got
        finally:
            await reader.stop()

    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        assert asyncio.run(run(broker.bootstrap)) == 3000


def _set_max_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"max.message.bytes": str(limit)})])
    finally:
        admin.close()


@pytest.mark.timeout(300)
def test_a_worker_that_cannot_write_exits_non_zero_and_a_new_one_loses_nothing(tmp_path: Path) -> None:
    lines = adversarial_lines(150, 1500, 5)
    reference, records = reference_and_records(lines, tmp_path)
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        _produce(broker.bootstrap, records)
        _set_max_message_bytes(broker.bootstrap, "hub.settlements.v1", 100)  # no settlement fits
        log = tmp_path / "failing.log"
        worker = spawn_worker(broker.bootstrap, data_dir=tmp_path / "failing", log_file=log,
                              extra_env={"HUB_WALL_CLOCK": "0"})
        try:
            code = worker.wait(120)
        except subprocess.TimeoutExpired:
            stop_process(worker)
            pytest.fail("the worker kept running although it could not write:\n" + log.read_text()[-3000:])
        text = log.read_text(errors="replace")
        assert code != 0, text[-3000:]
        assert "restoring it from its committed state" in text and "giving up" in text
        _set_max_message_bytes(broker.bootstrap, "hub.settlements.v1", 1_048_588)
        started = time.monotonic()
        live, logs = _run_workers(broker.bootstrap, tmp_path, Schedule(), len(reference), 150.0)
        assert time.monotonic() - started < 150
    missing, extra = set(reference) - set(live), set(live) - set(reference)
    differing = [k for k in set(reference) & set(live) if reference[k] != live[k]]
    assert not (missing or extra or differing), (len(missing), len(extra), differing[:3], logs[0][-2000:])
