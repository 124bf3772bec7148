"""The runner: owns offsets, dead letters, retries and metrics so connectors own only formats.

Source loop (at-least-once, no loss on ``kill -9``)::

    offsets = load from hub.connector-offsets.v1
    connector.start(offsets)
    repeat:  for (record | rejected, offset) in connector.poll():
                 produce the event (or the dead letter)  — asynchronously
                 every batch_size records: COMMIT
             COMMIT; wait poll_interval (or stop when --once)
    COMMIT = flush the producer and check every send → write offsets → connector.committed()

Offsets are written only after the records before them are acknowledged, so a crash re-sends at
most one batch, and those records carry the same deterministic ``event_id`` (harmless).

Sink loop: consumer group ``hub-connector-<name>``; poll → decode → ``put`` → ``flush`` →
dead-letter what the connector rejected → commit consumer offsets. A sink that raises (target down
beyond its own retries) is given the same batch again after a back-off: nothing is skipped.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.sdk.base import ConnectorContext, SinkConnector, SourceConnector
from connectors.sdk.config import SinkConfig, SourceConfig
from connectors.sdk.errors import RecordRejected
from connectors.sdk.offsets import OffsetStore
from connectors.sdk.producer import BatchProducer
from connectors.sdk.records import Rejected, SinkRecord, SourceRecord
from hub import codec, deadletter, events
from hub.clients import kafka_python_options
from hub.errors import HubError
from hub.metrics import METRICS, Metrics
from hub.topics import DEAD_LETTERS

log = logging.getLogger("connectors.runner")

MAX_RECORD_BYTES = 900_000
"""Largest event value produced (Kafka's default ``max.message.bytes`` is 1 MiB with overhead). A larger one
is rejected (``record_too_large``) before it is sent: a send the broker refuses would fail the whole batch
again and again, and kafka-python's idempotent producer does not recover from it."""
MAX_ORIGINAL_BYTES = 256 * 1024
"""Most bytes of an original kept in a dead letter; a longer original keeps its head and its SHA-256."""


@dataclass
class RunStats:
    """What one run did; the CLI prints it and tests assert on it."""

    produced: int = 0
    rejected: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    commits: int = 0


def make_producer(bootstrap: str, client_id: str) -> KafkaProducer:
    """Idempotent, acks=all: a retried send cannot duplicate a record inside the broker."""
    return KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks="all",
                         enable_idempotence=True, linger_ms=10, retries=5, **kafka_python_options())


class _DeadLetters:
    """Builds and produces dead letters; edge originals are encrypted with the edge key."""

    def __init__(self, producer: KafkaProducer, source: str, edge_key: bytes, metrics: Metrics) -> None:
        self.producer = producer
        self.source = source
        self.edge_key = edge_key
        self.metrics = metrics

    def send(self, original: bytes, reason: str, detail: str, *, encrypt: bool, key: str | None = None,
             topic: str | None = None, partition: int | None = None, offset: int | None = None) -> Any:
        """Produce one dead letter, keyed by the source (topic catalogue); ``key`` is informative only."""
        if len(original) > MAX_ORIGINAL_BYTES:
            digest = hashlib.sha256(original).hexdigest()
            detail = f"{detail} [original of {len(original)} bytes truncated to {MAX_ORIGINAL_BYTES}; sha256 {digest}]"
            original = original[:MAX_ORIGINAL_BYTES]
        k, v = deadletter.dead_letter(original, self.source, reason, detail, topic=topic, partition=partition,
                                      offset=offset, at=datetime.now(UTC),
                                      encrypt_with=self.edge_key if encrypt else None)
        self.metrics.dead_letters.labels(source=self.source, reason=reason).inc()
        self.metrics.connector_records.labels(connector=self.source, outcome="dead_lettered").inc()
        return self.producer.send(DEAD_LETTERS, key=k, value=v)


class SourceRunner:
    """Runs one source connector against a broker."""

    def __init__(self, connector: SourceConnector, bootstrap: str, *, metrics: Metrics | None = None,
                 stop: threading.Event | None = None) -> None:
        self.connector = connector
        self.config: SourceConfig = connector.config
        self.bootstrap = bootstrap
        self.metrics = metrics or METRICS
        self.stop_event = stop or threading.Event()
        self.stats = RunStats()
        self._pending: list[Callable[[], None]] = []
        """Callbacks of the records sent since the last commit (run once they are committed)."""
        self._unflushed = 0
        self._offsets: dict[str, Mapping[str, Any]] = {}
        name = self.config.name
        self._produced = self.metrics.connector_records.labels(connector=name, outcome="produced")
        self._rejected = self.metrics.connector_records.labels(connector=name, outcome="rejected")

    def run(self, *, once: bool = False) -> RunStats:
        """Poll until stopped (or once, until caught up). Raises only in ``once`` mode."""
        name = self.config.name
        # Events and dead letters go through the batching producer (connectors/sdk/producer.py: why); the
        # offsets, one write per commit, through kafka-python as before.
        self.producer = make_producer(self.bootstrap, f"connector-{name}")
        try:
            self.records = BatchProducer(self.bootstrap, f"connector-{name}").start()
        except BaseException:
            self.producer.close(timeout=10)
            raise
        self.store = OffsetStore(self.bootstrap, name, self.producer)
        self.dead = _DeadLetters(self.records, name, self.connector.context.edge_key, self.metrics)
        backoff = 1.0
        try:
            self.connector.start(self.store.load())
            while not self.stop_event.is_set():
                try:
                    self.poll_once()
                    backoff = 1.0
                except Exception as exc:  # the source or the broker is unusable: back off, resume
                    if once:
                        raise
                    self.metrics.connector_records.labels(connector=name, outcome="source_error").inc()
                    log.error("connector %s: %s; retrying in %.0fs from the committed offsets", name, exc, backoff)
                    self._pending.clear()
                    self._offsets.clear()
                    self._unflushed = 0
                    self.records.discard()
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 60.0)
                    self.connector.stop()
                    self.connector.start(self.store.load())
                    continue
                if once:
                    break
                self.stop_event.wait(self.config.poll_interval_seconds)
        finally:
            self.connector.stop()
            self.records.close(timeout=10)
            self.producer.close(timeout=10)
        return self.stats

    def poll_once(self) -> None:
        """One pass over what the source has now, committing every ``batch_size`` records."""
        for n, (item, offset) in enumerate(self.connector.poll(), start=1):
            if isinstance(item, SourceRecord):
                self._produce(item)
            else:
                self._reject(item)
            if offset is not None:
                self._offsets[offset.partition] = dict(offset.position)
            if n % self.config.batch_size == 0:
                self.commit()
            if self.stop_event.is_set():
                break
        self.commit()

    def _produce(self, rec: SourceRecord) -> None:
        topic = rec.topic or self.config.topic
        schema = rec.schema or self.config.schema_name
        try:
            value = checked_value(schema, rec)
        except RecordRejected as exc:
            failed, detail = rec.on_failed, exc.detail
            self._reject(Rejected(original=rec.original_bytes(), reason=exc.reason, detail=detail, key=rec.key,
                                  field=exc.field, on_rejected=(lambda: failed(detail)) if failed else None))
            return
        self.records.send(topic, rec.key.encode(), value)
        self._unflushed += 1
        if rec.on_delivered is not None:
            self._pending.append(rec.on_delivered)
        self.stats.produced += 1
        self._produced.inc()

    def _reject(self, rej: Rejected) -> None:
        self.dead.send(rej.original, rej.reason, rej.detail, encrypt=True, key=rej.key)
        self._unflushed += 1
        self.stats.rejected += 1
        self._rejected.inc()
        if rej.on_rejected is not None:
            self._pending.append(rej.on_rejected)

    def commit(self) -> None:
        """Flush (every send acknowledged, or raise), then write offsets: the order that makes a crash lose
        nothing. Callbacks (an HTTP answer waiting for its record) run once both are durable."""
        if not self._unflushed and not self._offsets:
            return
        self.records.flush()  # raises on any failed send: offsets are then not written
        self._unflushed = 0
        pending, self._pending = self._pending, []
        offsets, self._offsets = self._offsets, {}
        if offsets:
            self.store.write(offsets)
            self.connector.committed(offsets)
        for callback in pending:
            callback()
        self.stats.commits += 1


class SinkRunner:
    """Runs one sink connector as a consumer group member."""

    def __init__(self, connector: SinkConnector, bootstrap: str, *, metrics: Metrics | None = None,
                 stop: threading.Event | None = None, caught_up_wait_s: float = 30.0) -> None:
        self.connector = connector
        self.config: SinkConfig = connector.config
        self.bootstrap = bootstrap
        self.metrics = metrics or METRICS
        self.stop_event = stop or threading.Event()
        self.caught_up_wait_s = caught_up_wait_s
        self.stats = RunStats()

    def run(self, *, once: bool = False) -> RunStats:
        """Consume and deliver until stopped (or once, until every partition is at its end)."""
        name = self.config.name
        self.producer = make_producer(self.bootstrap, f"connector-{name}")
        self.dead = _DeadLetters(self.producer, name, self.connector.context.edge_key, self.metrics)
        self.consumer = KafkaConsumer(
            *self.config.topics, bootstrap_servers=self.bootstrap, group_id=self.config.consumer_group,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=self.config.batch_size,
            client_id=f"connector-{name}", isolation_level="read_committed", **kafka_python_options(),
        )
        started = time.monotonic()
        backoff = 1.0
        self.audit = _audit_for(self.config)
        self._audited = self.audit.refs() if self.audit is not None else set()
        try:
            self.connector.start()
            while not self.stop_event.is_set():
                batch = self.consumer.poll(timeout_ms=int(self.config.poll_timeout_seconds * 1000))
                if not batch:
                    if once and self._caught_up(started):
                        break
                    continue
                try:
                    self._deliver(batch)
                    backoff = 1.0
                except Exception as exc:
                    if once:
                        raise
                    self.metrics.connector_records.labels(connector=name, outcome="sink_error").inc()
                    log.error("connector %s: %s; the batch is retried in %.0fs", name, exc, backoff)
                    self._rewind(batch)
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 60.0)
        finally:
            self.connector.stop()
            self.consumer.close()
            self.producer.close(timeout=10)
        return self.stats

    def _caught_up(self, started: float) -> bool:
        assigned = self.consumer.assignment()
        if not assigned:
            return time.monotonic() - started > self.caught_up_wait_s
        end = self.consumer.end_offsets(list(assigned))
        return all(self.consumer.position(tp) >= end[tp] for tp in assigned)

    def _rewind(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        for tp, recs in batch.items():
            if recs:
                self.consumer.seek(tp, recs[0].offset)

    def _deliver(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        ctx: ConnectorContext = self.connector.context
        records: list[SinkRecord] = []
        futures = []
        for tp, recs in sorted(batch.items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
            for r in recs:
                try:
                    schema, value = codec.decode(r.value)
                except Exception as exc:  # any bytes a consumer cannot read are dead-lettered, not fatal
                    futures.append(self.dead.send(r.value or b"", "undecodable", str(exc)[:2000], encrypt=False,
                                                  key=_text(r.key), topic=tp.topic, partition=tp.partition,
                                                  offset=r.offset))
                    continue
                if not self.config.wants(value):
                    continue
                records.append(SinkRecord(topic=tp.topic, partition=tp.partition, offset=r.offset,
                                          key=_text(r.key), schema=schema, value=value, raw=r.value))
        ctx.failures.clear()
        if records:
            self.connector.put(records)
            self.connector.flush()
        failed = {(rec.topic, rec.partition, rec.offset) for rec, _, _ in ctx.failures}
        for rec, reason, detail in ctx.failures:
            futures.append(self.dead.send(rec.raw, reason, detail, encrypt=False, key=rec.key, topic=rec.topic,
                                          partition=rec.partition, offset=rec.offset))
        ctx.failures.clear()
        self.producer.flush()
        for f in futures:
            f.get(timeout=30)
        delivered = sum(1 for r in records if (r.topic, r.partition, r.offset) not in failed)
        if self.audit is not None:
            self._audit_deliveries([r for r in records if (r.topic, r.partition, r.offset) not in failed])
        self.stats.delivered += delivered
        self.stats.dead_lettered += len(futures)
        self.metrics.connector_records.labels(connector=self.config.name, outcome="delivered").inc(delivered)
        self.consumer.commit()


    def _audit_deliveries(self, records: list[SinkRecord]) -> None:
        """One audit entry per delivered event (once, though a sink delivers at least once)."""
        assert self.audit is not None
        now = datetime.now(UTC)
        for r in records:
            ref = f"delivery:{self.config.name}:{r.event_id}"
            if ref in self._audited:
                continue
            self.audit.append("delivery", now, ref, connector=self.config.name, event_id=r.event_id, topic=r.topic,
                              partition=r.partition, offset=r.offset, schema=r.schema,
                              department=r.value.get("department"), subject=r.value.get("subject")
                              or r.value.get("person_token"))
            self._audited.add(ref)


def _audit_for(config: SinkConfig) -> Any:
    """The audit log deliveries go to: the connector's ``audit_log``, else ``HUB_AUDIT_LOG``, else none."""
    from hub.audit import AuditLog, audit_key
    from hub.config import get_settings

    settings = get_settings()
    path = config.resolve(config.audit_log) if config.audit_log else settings.audit_log
    return AuditLog(path, audit_key(settings.audit_key)) if path else None


def checked_value(schema: str, rec: SourceRecord) -> bytes:
    """The value of ``rec`` as it goes on the topic: encoded by :func:`encode_event` (or already, by a worker
    process running this same function), and within ``MAX_RECORD_BYTES``; else ``RecordRejected``."""
    value = rec.encoded if rec.encoded is not None else encode_event(schema, rec.value)
    if len(value) > MAX_RECORD_BYTES:
        raise RecordRejected("record_too_large", f"{schema}: the event encodes to {len(value)} bytes, more "
                             f"than {MAX_RECORD_BYTES}; a field holds far more than it should")
    return value


def encode_event(schema: str, value: Mapping[str, Any]) -> bytes:
    """Validate with the event model (rules Avro cannot say: owners, no raw ID number), then encode.

    A record the model refuses raises ``RecordRejected`` naming the field, never echoing its value.
    """
    try:
        model = events.model_for(schema).model_validate(dict(value))
        return codec.encode(schema, model)
    except pydantic.ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "<record>"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RecordRejected("schema_mismatch", f"{schema}.{field}: {err.get('msg')}{more}", field) from None
    except HubError as exc:
        raise RecordRejected("schema_mismatch", f"{schema}: {exc}", None) from None


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")
