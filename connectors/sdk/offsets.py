"""Source offsets kept in the compacted topic ``hub.connector-offsets.v1`` (Kafka Connect's design).

Why a topic and not a local file: a connector can be restarted on another machine, and the
offsets live next to the data they describe. The record key is ``["<connector>", "<partition>"]``
(JSON), the value the position (JSON); compaction keeps the latest per key, so reading the topic
from the beginning to its end gives every connector's last committed position.

Ordering is the whole guarantee: the runner writes an offset only after every record before it
was acknowledged by the broker, so after ``kill -9`` a connector resumes at or before where it
stopped — never after — and the few re-sent records carry the same deterministic event ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from hub.clients import kafka_python_options
from hub.topics import CONNECTOR_OFFSETS

OFFSETS_TOPIC = CONNECTOR_OFFSETS.name


def offset_key(connector: str, partition: str) -> bytes:
    return json.dumps([connector, partition], ensure_ascii=False).encode()


class OffsetStore:
    """Read and write one connector's offsets on the offsets topic."""

    def __init__(self, bootstrap: str, connector: str, producer: KafkaProducer,
                 topic: str = OFFSETS_TOPIC) -> None:
        self.bootstrap = bootstrap
        self.connector = connector
        self.producer = producer
        self.topic = topic

    def load(self, timeout_s: float = 30.0) -> dict[str, dict[str, Any]]:
        """Every committed position of this connector: read the topic from its start to its end."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                 client_id=f"{self.connector}-offsets", **kafka_python_options())
        try:
            parts = consumer.partitions_for_topic(self.topic) or {0}
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            found: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {self.topic} did not reach its end within {timeout_s}s")
                for records in consumer.poll(timeout_ms=500).values():
                    for rec in records:
                        self._apply(found, rec.key, rec.value)
            return found
        finally:
            consumer.close()

    def _apply(self, found: dict[str, dict[str, Any]], key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        try:
            name, partition = json.loads(key)
        except (ValueError, TypeError):
            return  # not ours; the topic is shared by every connector
        if name != self.connector:
            return
        if value is None:
            found.pop(partition, None)  # tombstone: the partition is forgotten
        else:
            found[partition] = json.loads(value)

    def write(self, offsets: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Write positions (``None`` = tombstone) and wait until the broker has them."""
        futures = [
            self.producer.send(self.topic, key=offset_key(self.connector, p),
                               value=None if pos is None else json.dumps(pos, ensure_ascii=False,
                                                                         sort_keys=True).encode())
            for p, pos in offsets.items()
        ]
        self.producer.flush()
        for f in futures:
            f.get(timeout=30)
