"""The thin faust shell around the pure rule code: batches in, state and outputs out.

Why not the textbook agent (``table[k] = v`` and ``await topic.send()`` per event)? On this
machine that path runs at ≈400–600 events/s (broker-notes.md): every table assignment and every
send goes through faust's per-message producer machinery. The hub's processors must sustain
≥ 2,000 events/s per worker, so the shell

1. takes events in batches (``stream.take_events``),
2. hands the whole batch to a pure :class:`BatchLogic` that reads state through a
   :class:`PartitionState` view and returns outputs plus the *last* value of each changed key,
3. writes each changed key once per batch straight into the table's store, and sends its
   changelog record, together with every output, through one raw aiokafka producer — as one
   record batch per topic-partition (:class:`PartitionBatches`), not one ``send()`` per record,
4. awaits every send before the batch's offsets can be committed.

Recovery is still faust's: the changelog records are byte-for-byte what faust would have written
(raw key, raw value, same partition), so a restarted worker restores the table from the changelog
as usual. Processing is at-least-once; the logic makes every state change idempotent by event id
and gives every output a deterministic ``event_id``, so a redelivered batch changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InRecord:
    """One consumed record, with where it came from (for dead letters and ordering)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce. ``partition=None`` lets the default (murmur2) partitioner key it."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass
class BatchResult:
    outputs: list[OutRecord] = field(default_factory=list)
    state: dict[tuple[int, bytes], bytes | None] = field(default_factory=dict)
    """(partition, key) → new value (None deletes); the last write of the batch wins."""


class PartitionState(Protocol):
    def get(self, partition: int, key: bytes) -> bytes | None: ...

    def keys(self, partition: int) -> Iterable[bytes]: ...


class BatchLogic(Protocol):
    """Pure processing of one batch: no I/O, no clock other than ``now``."""

    def process(self, records: Sequence[InRecord], state: PartitionState, now: float) -> BatchResult: ...

    def tick(self, partitions: Iterable[int], state: PartitionState, now: float) -> BatchResult: ...


class StoreView:
    """Read and write a faust table's store by partition, for memory:// and rocksdb:// stores.

    faust's own ``table[key]`` finds the partition from the *current event*, which a batch does
    not have; this view takes the partition explicitly.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def _store(self) -> Any:
        return self.table.data

    def _is_rocks(self) -> bool:
        return hasattr(self._store, "_db_for_partition")

    def get(self, partition: int, key: bytes) -> bytes | None:
        store = self._store
        if self._is_rocks():
            return store._db_for_partition(partition).get(key)
        return store.data.get(key)

    def keys(self, partition: int) -> Iterable[bytes]:
        store = self._store
        if self._is_rocks():
            db = store._db_for_partition(partition)
            return [k for k in db.keys() if k != store.offset_key]  # noqa: SIM118 - Rdict, not dict
        return [k for k, p in list(store._key_partition.items()) if p == partition]

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        store = self._store
        if self._is_rocks():
            db = store._db_for_partition(partition)
            if value is None:
                db.delete(key)
                store._key_index.pop(key, None)
            else:
                db[key] = value
                store._key_index[key] = partition
        else:
            if value is None:
                store.data.pop(key, None)
                store._key_partition.pop(key, None)
            else:
                store.data[key] = value
                store._key_partition[key] = partition


class PartitionBatches:
    """Produce many records as one aiokafka record batch per topic-partition, then await them all.

    Why: ``AIOKafkaProducer.send()`` costs a coroutine, a metadata check, an accumulator append and a
    delivery future per record, and every resolved future schedules a callback on the event loop.
    Profiling the worker showed that path at ≈20 % of its main thread with two records (outputs and
    changelog) per input event. ``create_batch``/``send_batch`` builds the same records in the
    producer's own batch builder and leaves one future per topic-partition.

    What stays the same as ``send()``: the bytes, keys and partitions (``partition=None`` goes through
    the producer's own partitioner, as ``send()`` does), the order of records within a partition, the
    idempotent producer's sequence numbers (assigned when a batch is drained, either way), record
    timestamps (the append time) and that nothing counts as sent before every batch is acknowledged.
    """

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self._known_topics: set[str] = set()

    async def _partition(self, topic: str, key: bytes | None, value: bytes | None) -> int:
        if topic not in self._known_topics:
            await self.producer.partitions_for(topic)  # waits for the topic's metadata, as send() does
            self._known_topics.add(topic)
        # the producer's partitioner exactly as send() calls it (no serializers on this producer)
        return int(self.producer._partition(topic, None, key, value, key, value))

    async def send_all(self, records: Iterable[tuple[str, bytes | None, bytes | None, int | None]]) -> None:
        """Send ``(topic, key, value, partition or None)`` records and wait until all are acknowledged."""
        producer = self.producer
        builders: dict[tuple[str, int], Any] = {}
        futures = []
        for topic, key, value, partition in records:
            if partition is None:
                partition = await self._partition(topic, key, value)
            tp = (topic, partition)
            builder = builders.get(tp)
            if builder is None:
                builder = builders[tp] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=value) is None:  # full: ship it, start another
                futures.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[tp] = producer.create_batch()
                builder.append(timestamp=None, key=key, value=value)  # a first record always fits
        for (topic, partition), builder in builders.items():
            builder.close()  # nothing else may join it through send()
            futures.append(await producer.send_batch(builder, topic, partition=partition))
        if futures:
            await asyncio.gather(*futures)


class BatchRunner:
    """Applies a :class:`BatchLogic` result: store writes, changelog and outputs, then waits for acks."""

    def __init__(self, logic: BatchLogic, table: Any, producer: Any, metrics: Any | None = None) -> None:
        self.logic = logic
        self.view = StoreView(table)
        self.table = table
        self.producer = producer
        self.batches = PartitionBatches(producer)
        self.metrics = metrics
        self.lock = asyncio.Lock()
        self.processed = 0

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    async def run_batch(self, records: Sequence[InRecord]) -> BatchResult:
        async with self.lock:
            started = time.perf_counter()
            result = self.logic.process(records, self.view, time.time())
            await self._apply(result)
            self.processed += len(records)
            if self.metrics is not None:
                self.metrics.observe_batch(len(records), time.perf_counter() - started, records, result)
            return result

    async def run_tick(self, partitions: Iterable[int]) -> BatchResult:
        async with self.lock:
            result = self.logic.tick(partitions, self.view, time.time())
            await self._apply(result)
            return result

    async def _apply(self, result: BatchResult) -> None:
        """Outputs first, acknowledged; only then the state (with the input offsets it has applied).

        Why this order: the state records which input offsets are applied, and a restarted worker
        skips those. Were the state durable before the outputs, a crash in between would lose the
        outputs for good; this way a crash in between redelivers the batch onto the *old* state,
        which recomputes the same outputs under the same event ids (duplicates, never gaps).
        """
        await self.batches.send_all((out.topic, out.key, out.value, out.partition) for out in result.outputs)
        changelog = self.changelog_topic
        records: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        for (partition, key), value in result.state.items():
            self.view.put(partition, key, value)
            records.append((changelog, key, value, partition))
        await self.batches.send_all(records)
