"""The source runner's batching producer keeps the contract the offsets rely on (connectors/sdk/producer.py).

What is asserted, against the embedded broker: every record sent before ``flush`` is on the broker when it
returns, on the partition every Kafka client would choose, in the order it was sent; ``flush`` raises when the
broker is gone (so the runner writes no offset past a lost record) — and the murmur2 it partitions with is
Kafka's, compared with kafka-python's on random keys of every length.
"""

from __future__ import annotations

import os
import random

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2 as kafka_murmur2

from connectors.sdk.producer import BatchProducer, murmur2, partition_for
from hub.broker import EmbeddedBroker, ensure_topics
from hub.topics import CATALOGUE

pytestmark = pytest.mark.integration

TOPIC = "department.referral-updates.v1"


def test_murmur2_is_kafkas() -> None:
    rng = random.Random(18)
    for n in [*range(0, 40), 255, 256, 1000]:
        for _ in range(50):
            data = rng.randbytes(n)
            assert murmur2(data) == kafka_murmur2(data)


def _read(bootstrap: str, topic: str) -> dict[int, list[tuple[bytes, bytes]]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: dict[int, list[tuple[bytes, bytes]]] = {tp.partition: [] for tp in tps}
        for m in consumer:
            out[m.partition].append((m.key, m.value))
        return out
    finally:
        consumer.close()


def test_flush_returns_with_every_record_on_its_partition_in_order() -> None:
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, [t for t in CATALOGUE if t.name == TOPIC])
        producer = BatchProducer(broker.bootstrap, "test-batch-producer", hand_over=333).start()
        sent: list[tuple[bytes, bytes]] = []
        try:
            for i in range(5000):
                key = f"p_{i % 97:032x}".encode()
                value = b"%d:" % i + os.urandom(i % 300)
                producer.send(TOPIC, key, value)
                sent.append((key, value))
                if i % 1700 == 0:
                    producer.flush()
            assert producer.flush() > 0
        finally:
            producer.close()
        found = _read(broker.bootstrap, TOPIC)
    expected: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in found}
    for key, value in sent:
        expected[partition_for(key, len(found))].append((key, value))
    assert found == expected


def test_flush_raises_when_the_broker_is_gone() -> None:
    broker = EmbeddedBroker().start()
    try:
        ensure_topics(broker.bootstrap, [t for t in CATALOGUE if t.name == TOPIC])
        producer = BatchProducer(broker.bootstrap, "test-batch-producer-down").start()
        producer.send(TOPIC, b"p_" + b"0" * 32, b"first")
        producer.flush()
    finally:
        broker.stop()
    try:
        producer.send(TOPIC, b"p_" + b"0" * 32, b"lost")
        with pytest.raises(Exception):  # noqa: B017 - whatever aiokafka raises, the flush must not pass
            producer.flush(timeout=8)
    finally:
        producer.close(timeout=5)
