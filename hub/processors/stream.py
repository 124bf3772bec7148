"""The live shell of the person processor: consume, merge by event time, apply, commit — per task.

Why not a faust agent: policy-spec §8 needs, per task (partition *p* of every input topic), control that
faust's agent/stream machinery does not give — buffered queues per topic-partition merged by event time,
a partition that is behind holding the merge back, state and outputs committed together, and the input
positions restored from that state. faust keeps what it is good at: the worker process, its services,
timers, signals and web server (its own Kafka clients are switched off, :mod:`hub.app`). Inside it, this
service drives consumption with aiokafka directly, as Kafka Streams' ``StreamThread`` does:

* **group**: one aiokafka consumer in group ``<app id>`` subscribed to the ten input topics with the range
  assignor, which gives a member the same partition numbers of every topic (co-partitioning), so a member
  owns whole tasks. Dead members are reaped (:mod:`hub.processors.membership`).
* **merge** (§8.1): fetched records are decoded once and queued per topic-partition
  (:class:`~hub.processors.merge.PartitionGroup`); a topic-partition is *caught up* when the consumer's
  position has reached its end (the last stable offset); the merge pops records while no empty, not
  caught-up queue holds it back.
* **exactly one state per batch**: each task has its own transactional producer
  (``transactional.id = <app id>-person-<p>``). A batch's outputs and its state changes — subjects,
  ledgers, clock, applied input offsets, recent ids — are one transaction on the output topics and the
  task's partition of ``<app id>-person-state``. A task that moves to another worker is restored from
  that partition (read committed) after its new producer fenced the old one, and its input positions
  come from the state, not from the group's committed offsets (which are committed only so that lag can
  be measured). A crash at any moment leaves the state after a whole batch; what was not committed is
  applied again from there, giving the same outputs (a read-uncommitted reader may see an aborted copy:
  same ids, same values).
* **clock** (§8.3): the wall clock moves a task only while all its topic-partitions are caught up.
* **failures**: a failed transaction is aborted and the task is restored from its committed state and
  retried; three failures within a minute crash the worker (exit non-zero) for its supervisor to restart:
  never a live process that no longer processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import ProducerFenced

from hub.clients import aiokafka_options, pace_empty_fetches
from hub.processors.membership import client_id, reap_dead_members
from hub.processors.merge import PartitionGroup
from hub.processors.partitioning import partition_for
from hub.processors.person import BatchResult, PersonLogic, decode_input
from hub.processors.store import open_backend
from hub.processors.task import TaskState
from hub.topics import INPUT_TOPICS, PARTITIONS, state_topic

log = logging.getLogger(__name__)

__all__ = ["StreamOptions", "PersonStream"]

QUEUE_HIGH = 20_000
QUEUE_LOW = 5_000
"""A topic-partition whose queue holds more than QUEUE_HIGH records (the merge waits for another one) stops
being fetched until it is below QUEUE_LOW: memory stays bounded on any backlog."""

RECORD_BATCH_BYTES = 512 * 1024
"""Record batches are cut at this size: Kafka's default ``max.message.bytes`` is ≈1 MB (noida-db: same),
and a batch above it is refused whole — the crash loop this worker once had."""


@dataclass
class StreamOptions:
    """Tunables of the live shell (``HUB_*`` settings in the worker)."""

    app_id: str
    batch_max: int = 2000
    poll_ms: int = 100
    wall_clock: bool = True
    tick_seconds: float = 5.0
    commit_interval: float = 1.0
    end_offsets_timeout: float = 2.0
    """Seconds to wait for the broker's end offsets of the empty partitions (then: not caught up, ask again)."""
    fetch_pace: float = 0.005
    """An empty fetch response is held this long before the next fetch (:func:`hub.clients.pace_empty_fetches`):
    a new record waits at most this, and an idle worker sends ≈200 fetches/s instead of thousands."""
    idle_pause: float = 0.0
    """Seconds every partition is paused when all is applied and caught up (0: none; pacing is enough)."""
    reap_interval: float = 10.0
    txn_timeout: float = 30.0
    max_failures: int = 3
    failure_window: float = 60.0
    partitions: int = PARTITIONS
    store: str = "memory://"
    """``HUB_STORE``: where a task keeps its subjects (:mod:`hub.processors.store`)."""
    data_dir: Path = Path(".hub-data/worker")


@dataclass
class _Task:
    """One task of this worker: its state, input queues, producer and status."""

    partition: int
    tps: list[TopicPartition]
    group: PartitionGroup
    status: str = "restoring"  # restoring | running | suspended | closed | fenced
    state: TaskState | None = None
    producer: AIOKafkaProducer | None = None
    restore: asyncio.Future[Any] | None = None
    failures: list[float] = field(default_factory=list)
    last_tick: float = 0.0
    throttled: set[TopicPartition] = field(default_factory=set)
    committed: dict[str, int] = field(default_factory=dict)
    """Input offsets last committed to the group (inside a transaction), per topic."""
    last_offsets_commit: float = 0.0


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]
"""(key, value, headers) of one record to produce."""


async def append_records(producer: AIOKafkaProducer, topic: str, partition: int, records: list[Record]) -> list[Any]:
    """Send ``records`` to one topic-partition as record batches of at most ``max_batch_size``; their futures.

    Why by hand: one ``send()`` per record costs a coroutine and a future each (a fifth of the worker's
    time when measured), and one record batch per partition and transaction crossed the broker's
    ``max.message.bytes`` (≈1 MB) — the crash loop this worker once had. A record larger than a batch goes
    alone in its own batch (the rules keep outputs below Kafka's limit; state records are small).
    """
    futures: list[Any] = []
    builder = producer.create_batch()
    for key, value, headers in records:
        if builder.append(timestamp=None, key=key, value=value, headers=headers or []) is None:
            builder.close()
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = producer.create_batch()
            builder.append(timestamp=None, key=key, value=value, headers=headers or [])
    builder.close()
    if builder.record_count():
        futures.append(await producer.send_batch(builder, topic, partition=partition))
    return futures


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stream: PersonStream) -> None:
        self.stream = stream

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.stream.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.stream.on_assigned(set(assigned))


class PersonStream(mode.Service):
    """The person processor's consume–merge–apply–commit loop (see the module docstring)."""

    def __init__(self, bootstrap: str, logic: PersonLogic, options: StreamOptions, metrics: Any = None,
                 **kwargs: Any) -> None:
        self.bootstrap = bootstrap
        self.logic = logic
        self.options = options
        self.metrics = metrics
        self.consumer: AIOKafkaConsumer | None = None
        self.tasks: dict[int, _Task] = {}
        self.state_topic = state_topic(options.app_id).name
        self._lock = asyncio.Lock()
        self._stopping = False
        self._loop_done = asyncio.Event()
        self._last_reap = 0.0
        self.fatal: BaseException | None = None
        self.lag: dict[tuple[str, int], int] = {}
        self._last_policy_check = -1e9
        self._worked = False
        self._last_gauge = 0.0
        self.processed = 0
        super().__init__(**kwargs)

    # -- life cycle ------------------------------------------------------------------------------

    async def on_start(self) -> None:
        if self.metrics is not None:  # series that exist from the start, so a healthy hub shows 0, not "no data"
            for topic in INPUT_TOPICS:
                self.metrics.inputs_duplicate.labels(topic=topic).inc(0)
            self.metrics.policy_fallback.labels(region=self.logic.timeline.home_region).inc(0)
            for department in self.logic.referral_departments():  # the first escalation is an increase from 0
                self.metrics.referral_escalations.labels(department=department).inc(0)
        self._policy_metrics()
        await self._reap()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap.split(","),
            group_id=self.options.app_id,
            client_id=client_id(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=10_000,  # noida-db, like Kafka, refuses < 6 s
            heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=15_000,
            max_poll_interval_ms=300_000,
            **aiokafka_options(),
        )
        self.consumer.subscribe(list(INPUT_TOPICS), listener=_Listener(self))
        await self.consumer.start()
        if self.options.fetch_pace > 0:
            pace_empty_fetches(self.consumer, self.options.fetch_pace)
        log.info("person stream: joining group %s as %s", self.options.app_id, client_id())

    async def on_stop(self) -> None:
        """Finish the batch in hand, then stop producers and leave the group — every wait bounded."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._loop_done.wait(), timeout=5.0)
        except TimeoutError:
            log.warning("person stream: the batch in hand did not finish within 5 s; it is abandoned "
                        "(not committed: it is applied again after the restart)")
        await asyncio.gather(*(self._guard(self._commit_offsets(t), 2.0, f"commit offsets of task {t.partition}")
                               for t in list(self.tasks.values()) if t.status == "running"))
        await asyncio.gather(*(self._guard(self._close_task(t), 2.0, f"close task {t.partition}")
                               for t in list(self.tasks.values())))
        if self.consumer is not None:
            await self._guard(self.consumer.stop(), 3.0, "leave the consumer group")
        log.info("person stream stopped after %d input record(s)", self.processed)

    @staticmethod
    async def _guard(aw: Any, timeout: float, what: str) -> None:
        try:
            await asyncio.wait_for(aw, timeout=timeout)
        except Exception as exc:  # a stop must finish whatever the broker does
            log.warning("person stream: %s failed on stop: %r", what, exc)

    # -- rebalancing -----------------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: finish the batch in hand (the lock), suspend every task, commit offsets."""
        async with self._lock:
            for task in self.tasks.values():
                if task.status == "running":
                    await self._guard(self._commit_offsets(task), 3.0, f"commit offsets of task {task.partition}")
                    task.status = "suspended"
                task.group.clear()
                task.throttled.clear()  # the new assignment starts unpaused

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: close tasks not kept, resume kept ones where their state says, restore new ones."""
        assert self.consumer is not None
        partitions = {tp.partition for tp in assigned if tp.topic in INPUT_TOPICS}
        async with self._lock:
            for p in [p for p in self.tasks if p not in partitions]:
                await self._close_task(self.tasks.pop(p))
            for p in sorted(partitions):
                tps = [TopicPartition(t, p) for t in INPUT_TOPICS]
                missing = [tp for tp in tps if tp not in assigned]
                if missing:
                    log.error("task %d: the group assigned only part of it (missing %s); every input topic must "
                              "have %d partitions (run `hub doctor`)", p, missing, self.options.partitions)
                    continue
                task = self.tasks.get(p)
                if task is not None and task.status == "suspended" and task.state is not None:
                    await self._seek_to_state(task)
                    task.status = "running"
                    continue
                if task is not None and task.status == "restoring" and task.restore is not None \
                        and not task.restore.done():
                    self.consumer.pause(*task.tps)  # still restoring: it seeks its inputs when done
                    continue
                if task is None:
                    task = self.tasks[p] = _Task(p, tps, PartitionGroup(INPUT_TOPICS))
                self._start_restore(task)
        log.info("person stream: tasks %s", sorted(self.tasks))

    def _start_restore(self, task: _Task) -> None:
        assert self.consumer is not None
        if task.restore is not None and not task.restore.done():
            task.restore.cancel()  # never two restores of one task: they would fence each other
        task.status = "restoring"
        task.group.clear()
        self.consumer.pause(*task.tps)
        task.restore = asyncio.ensure_future(self._restore(task))

    async def _restore(self, task: _Task) -> None:
        """Fence the task's previous producer, read its state partition to the end, seek its inputs."""
        p = task.partition
        if self.metrics is not None:
            self.metrics.set_state_restoring(p, True)
            self.metrics.state_restore_records.labels(partition=str(p)).inc(0)
        started = time.monotonic()
        try:
            if task.producer is not None:
                await self._guard(task.producer.stop(), 3.0, f"stop the producer of task {p}")
                task.producer = None
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap.split(","),
                transactional_id=f"{self.options.app_id}-person-{p}",
                enable_idempotence=True, acks="all", linger_ms=0,
                max_batch_size=RECORD_BATCH_BYTES, max_request_size=16 * 1024 * 1024,
                request_timeout_ms=int(self.options.txn_timeout * 1000),
                client_id=f"{client_id()}/task-{p}",
                **aiokafka_options(),
            )
            await producer.start()  # InitProducerId: fences a zombie owner and aborts its open transaction
            task.producer = producer
            if task.state is not None:
                task.state.close()
                task.state = None
            backend = open_backend(self.options.store, self.options.data_dir, self.options.app_id, p)
            adopted = False
            try:
                restorer = self.logic.restorer(p, backend)
                await self._read_state(p, restorer.add)
                state = restorer.finish()
                async with self._lock:
                    if self.tasks.get(p) is not task or task.status != "restoring":
                        return  # revoked meanwhile
                    task.state = state
                    adopted = True
                    await self._seek_to_state(task)
                    task.status = "running"
                    assert self.consumer is not None
                    self.consumer.resume(*task.tps)
            finally:
                if not adopted:
                    backend.close()
            log.info("task %d restored in %.1f s: %s", p, time.monotonic() - started, state.summary())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(task, exc, "restore")
        finally:
            if self.metrics is not None:
                self.metrics.set_state_restoring(p, False)

    async def _read_state(self, p: int, add: Any) -> None:
        """Feed every committed record of partition ``p`` of the state topic to ``add(key, value)``, in order."""
        tp = TopicPartition(self.state_topic, p)
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap.split(","), enable_auto_commit=False,
                                  isolation_level="read_committed", client_id=f"{client_id()}/restore-{p}",
                                  max_partition_fetch_bytes=16 * 1024 * 1024, **aiokafka_options())
        await reader.start()
        try:
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            n = 0
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=1000, max_records=50_000)
                for msg in batch.get(tp, ()):
                    add(msg.key, msg.value)
                    n += 1
                self._inc("state_restore_records", len(batch.get(tp, ())), partition=str(p))
                await asyncio.sleep(0)  # heartbeats and other tasks go on during a long restore
            log.info("task %d: read %d state record(s) from %s", p, n, self.state_topic)
        finally:
            await reader.stop()

    async def _seek_to_state(self, task: _Task) -> None:
        """Position every input of the task at the first offset its state has not applied."""
        assert self.consumer is not None and task.state is not None
        offsets = task.state.offsets
        unknown = [tp for tp in task.tps if tp.topic not in offsets]
        if unknown:
            firsts = await self.consumer.beginning_offsets(unknown)
            for tp in unknown:
                self.consumer.seek(tp, firsts[tp])
        for tp in task.tps:
            if tp.topic in offsets:
                self.consumer.seek(tp, offsets[tp.topic])
        task.group.clear()

    async def _close_task(self, task: _Task) -> None:
        task.status = "closed"
        if task.restore is not None and not task.restore.done():
            task.restore.cancel()
        if task.state is not None:
            task.state.close()
            task.state = None
        if task.producer is not None:
            producer, task.producer = task.producer, None
            await self._guard(producer.stop(), 3.0, f"stop the producer of task {task.partition}")

    # -- the loop --------------------------------------------------------------------------------

    @mode.Service.task
    async def _run(self) -> None:
        try:
            while not self._stopping and not self.should_stop:
                await self._iteration()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("person stream: the loop failed")
            await self._fatal(exc)
        finally:
            self._loop_done.set()

    async def _iteration(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        # Wait for records only when nothing is left to apply; otherwise take what is there and go on.
        wait = 0 if self._worked else self.options.poll_ms
        data = await consumer.getmany(timeout_ms=wait, max_records=self.options.batch_max * 4)
        now = time.time()
        # Positions are read outside the lock: during a rebalance aiokafka's position() waits for the new
        # assignment, which waits for on_partitions_revoked, which waits for the lock.
        caught_up = await self._caught_up([t for t in list(self.tasks.values()) if t.status == "running"])
        async with self._lock:
            fetched = 0
            store = self.logic.schema_store
            for tp, msgs in data.items():
                task = self.tasks.get(tp.partition)
                if task is None or task.status != "running":
                    continue  # re-fetched from the task's state offsets once it runs
                task.group.add(decode_input(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp, store)
                               for m in msgs)
                fetched += len(msgs)
                if self.metrics is not None:
                    self.metrics.events_consumed.labels(topic=tp.topic).inc(len(msgs))
            for p, flags in caught_up.items():
                task = self.tasks.get(p)
                if task is not None and task.status == "running":
                    for topic, flag in flags.items():
                        task.group.mark(topic, flag)
                    for topic in task.group.queues:
                        if topic not in flags:
                            task.group.mark(topic, False)  # it has records: not caught up, and it cannot hold
                    self._throttle(task)
            worked = self._worked = await self._process_ready(now)
            await self._tick(now)
        self._rate(now)
        self._policy_metrics()
        if time.monotonic() - self._last_reap >= self.options.reap_interval:
            await self._reap()
        if not fetched and not worked and all(t.group.idle() for t in self.tasks.values() if t.status == "running"):
            async with self._lock:
                for task in self.tasks.values():
                    if task.status == "running":
                        await self._commit_offsets(task)
            await self._idle()

    async def _caught_up(self, tasks: list[_Task]) -> dict[int, dict[str, bool]]:
        """Per task and input topic with nothing queued: has the consumer reached the end of it (§8.1)?

        The end offset is asked of the broker now (ListOffsets, the last stable offset under read_committed),
        *after* the fetch whose records the merge is about to weigh. The end the consumer already knows
        (``last_stable_offset``/``highwater``) comes from the partition's last fetch response, and aiokafka leaves
        a partition whose fetched records wait unconsumed out of the fetches that follow: that end can be older
        than a newer record of another partition, and the merge would then pass over an older record already
        on the broker (benchmarks/probes/stale_end_offset.py). Asked after the fetch, every record written
        before the ones the merge holds is below the end, so an empty partition holds the merge until it has
        been read. One request per iteration for all tasks; a failed one counts as not caught up.
        """
        consumer = self.consumer
        assert consumer is not None
        assigned = consumer.assignment()
        empty = [tp for task in tasks for tp in task.tps if not task.group.buffered(tp.topic) and tp in assigned]
        ends: dict[TopicPartition, int] = {}
        if empty:
            try:
                ends = await asyncio.wait_for(consumer.end_offsets(empty), self.options.end_offsets_timeout)
            except Exception as exc:  # a rebalance or a slow broker: hold the merge, ask again next time
                log.debug("person stream: end offsets not known now (%s): holding the merge", exc)
        flags: dict[int, dict[str, bool]] = {}
        for task in tasks:
            mine = flags[task.partition] = {}
            for tp in task.tps:
                if task.group.buffered(tp.topic):
                    continue  # only an empty queue can hold the merge: its flag is all that matters
                end = ends.get(tp)
                try:
                    mine[tp.topic] = end is not None and await asyncio.wait_for(consumer.position(tp), 0.2) >= end
                except Exception:  # repositioning (a rebalance): not caught up
                    mine[tp.topic] = False
        return flags

    def _throttle(self, task: _Task) -> None:
        """Backpressure: stop fetching a topic-partition whose queue is long, resume it once drained."""
        consumer = self.consumer
        assert consumer is not None
        for tp in task.tps:
            n = task.group.buffered(tp.topic)
            if tp not in task.throttled and n > QUEUE_HIGH:
                consumer.pause(tp)
                task.throttled.add(tp)
            elif tp in task.throttled and n < QUEUE_LOW:
                consumer.resume(tp)
                task.throttled.discard(tp)

    def _rate(self, now: float) -> None:
        """The events/s gauge over the last window of ≥ 5 s."""
        last = getattr(self, "_rate_mark", None)
        if last is None:
            self._rate_mark = (now, self.processed)
            return
        t0, n0 = last
        if now - t0 >= 5.0:
            if self.metrics is not None:
                self.metrics.processor_events_per_second.set((self.processed - n0) / (now - t0))
            self._rate_mark = (now, self.processed)

    async def _idle(self) -> None:
        """Everything applied and caught up: optionally pause fetching for ``idle_pause`` seconds.

        noida-db answers a fetch that finds nothing at once (a Kafka broker waits ``fetch.max.wait.ms``), so an
        idle consumer would send thousands of fetches a second. The paced fetches (``fetch_pace``) bound that
        at a cost of ≤ 5 ms per new record; this pause (public pause/resume) is the older, coarser bound: a
        record arriving during it waits out the rest, ≈29 ms of a counter request's 51 ms median when it was
        50 ms (BENCHMARKS.md), so it is off unless set.
        """
        if self.options.idle_pause <= 0:
            return
        consumer = self.consumer
        assert consumer is not None
        tps = [tp for t in self.tasks.values() if t.status == "running" for tp in t.tps]
        consumer.pause(*tps)
        try:
            await asyncio.sleep(self.options.idle_pause)
        finally:
            running = [tp for t in self.tasks.values() if t.status == "running" for tp in t.tps]
            consumer.resume(*[tp for tp in tps if tp in running])

    async def _process_ready(self, now: float) -> bool:
        """Pop each running task's ready records, apply them, commit each task's batch as a transaction."""
        work: list[tuple[_Task, int, BatchResult]] = []
        for task in self.tasks.values():
            if task.status != "running" or task.state is None:
                continue
            state = task.state
            started = time.perf_counter()
            result = self.logic.process(
                state, task.group.drain(self.options.batch_max, lambda r, s=state: self.logic.drop_duplicate(s, r)),
                now, fire_limit=self.options.batch_max)
            if result.applied or result.state:
                self._observe_batch(result.applied, time.perf_counter() - started)
                work.append((task, result.applied, result))
        if not work:
            return False
        done = await asyncio.gather(*(self._commit(task, result) for task, _, result in work))
        for (_task, n, _), ok in zip(work, done, strict=True):
            if ok:
                self.processed += n
        return True

    async def _tick(self, now: float) -> None:
        """§8.3: the wall clock moves a task only while every one of its topic-partitions is caught up.

        Every ``tick_seconds`` also refreshes the open-referral gauge (whether or not the wall clock drives
        the rules: ``hub up``'s simulator runs on event time).
        """
        if self.options.wall_clock:
            for task in self.tasks.values():
                if (task.status == "running" and task.state is not None and task.group.idle()
                        and now - task.last_tick >= self.options.tick_seconds):
                    task.last_tick = now
                    await self._commit(task, self.logic.tick(task.state, now, fire_limit=self.options.batch_max))
        if self.metrics is not None and now - self._last_gauge >= self.options.tick_seconds:
            self._last_gauge = now
            self.metrics.set_referrals_open(self.logic.open_referrals(
                t.state for t in self.tasks.values() if t.state is not None), self.logic.referral_departments())

    # -- transactions ------------------------------------------------------------------------------

    async def _commit(self, task: _Task, result: BatchResult | None, offsets: bool = False) -> bool:
        """One transaction: the batch's outputs and the task's state changes. False when it failed.

        The group's committed offsets ride along (``TxnOffsetCommit``) at most once per ``commit_interval``
        and when the worker goes idle: they serve lag monitoring only (the task's positions come from its
        state), and live, with a transaction per one or two inputs, adding them to every one cost a round
        trip and a republished lag gauge each time. Why not ``consumer.commit()``: noida-db answers a commit made
        during a rebalance with ILLEGAL_GENERATION, on which aiokafka rejoins under a new member id and the
        old one stays in the group for ever (the rejoin-every-10-s loop once seen here).
        """
        if result is not None and not result.outputs and not result.state and not offsets:
            return True
        now = time.monotonic()
        if task.state is not None and (offsets or now - task.last_offsets_commit >= self.options.commit_interval):
            offsets = task.state.offsets != task.committed
        try:
            await asyncio.wait_for(self._transaction(task, result, offsets), timeout=self.options.txn_timeout)
            if offsets and task.state is not None:
                task.committed = dict(task.state.offsets)
                task.last_offsets_commit = now
                self._publish_lag(task)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(task, exc, "commit")
            return False

    async def _transaction(self, task: _Task, result: BatchResult | None, offsets: bool) -> None:
        producer = task.producer
        assert producer is not None and task.state is not None
        await producer.begin_transaction()
        try:
            groups: dict[tuple[str, int], list[Record]] = {}
            n = self.options.partitions
            if result is not None:
                for topic, key, value, headers in result.outputs:
                    part = partition_for(key, n) if key is not None else task.partition
                    groups.setdefault((topic, part), []).append((key, value, headers))
                if result.state:
                    groups[(self.state_topic, task.partition)] = [(k, v, None) for k, v in result.state.items()]
            futures: list[Any] = []
            for (topic, part), records in groups.items():
                futures += await append_records(producer, topic, part, records)
            await asyncio.gather(*futures)
            if offsets:
                await producer.send_offsets_to_transaction(
                    {TopicPartition(t, task.partition): o for t, o in task.state.offsets.items()}, self.options.app_id)
            await producer.commit_transaction()
        except BaseException:
            with contextlib.suppress(Exception):  # the restore's new producer aborts it anyway
                await asyncio.wait_for(producer.abort_transaction(), timeout=3.0)
            raise

    async def _failed(self, task: _Task, exc: BaseException, what: str) -> None:
        """A task's transaction or restore failed: restore it from its committed state, or give up loudly."""
        if isinstance(exc, ProducerFenced):
            log.warning("task %d: fenced by a newer owner (%s); dropping it until the group reassigns it",
                        task.partition, exc)
            task.status = "fenced"
            task.group.clear()
            if self.consumer is not None:
                self.consumer.pause(*task.tps)
            return
        now = time.monotonic()
        task.failures = [t for t in task.failures if now - t < self.options.failure_window] + [now]
        log.error("task %d: %s failed (%s: %s); restoring it from its committed state (failure %d of %d allowed "
                  "within %.0f s)", task.partition, what, type(exc).__name__, exc, len(task.failures),
                  self.options.max_failures, self.options.failure_window)
        if len(task.failures) > self.options.max_failures:
            await self._fatal(RuntimeError(f"task {task.partition}: {what} failed {len(task.failures)} times "
                                           f"within {self.options.failure_window:.0f} s; last: {exc!r}"))
            return
        if task.state is not None:
            task.state.close()
            task.state = None
        self._start_restore(task)

    async def _fatal(self, exc: BaseException) -> None:
        """Crash the worker: its supervisor (hub up, systemd, Kubernetes) restarts it."""
        if self.fatal is not None:
            return
        self.fatal = exc
        log.critical("person stream: giving up (%s); the worker exits non-zero so that it is restarted", exc)
        self._stopping = True
        asyncio.get_running_loop().call_later(15.0, os._exit, 70)  # if the orderly stop hangs
        await self.crash(exc)

    # -- bookkeeping -----------------------------------------------------------------------------

    async def _commit_offsets(self, task: _Task) -> None:
        """Commit the task's applied input offsets to the group, alone in a transaction, if they moved."""
        if task.state is not None and task.producer is not None and task.state.offsets != task.committed:
            await self._commit(task, None, offsets=True)

    def _publish_lag(self, task: _Task) -> None:
        """``hub_consumer_lag``: the end offsets the consumer saw minus the offsets just committed."""
        consumer = self.consumer
        if consumer is None or self.metrics is None:
            return
        owned = {p for p, t in self.tasks.items() if t.status in ("running", "suspended")}
        self.lag = {k: v for k, v in self.lag.items() if k[1] in owned}
        for tp in task.tps:
            end = consumer.highwater(tp)
            if end is not None:
                self.lag[(tp.topic, tp.partition)] = max(end - task.committed.get(tp.topic, 0), 0)
        self.metrics.set_consumer_lag(self.options.app_id, self.lag)

    def _policy_metrics(self) -> None:
        """Days left of the home policy in force, and dates for which the nearest policy stood in (§8.4)."""
        if self.metrics is None:
            return
        for region, days in self.logic.take_fallbacks().items():
            log.warning("policy: no policy of the home region covers %d new date(s); the nearest one (%s) stood "
                        "in (policy-spec §8.4) — add the policy file for that period", days, region)
            self.metrics.policy_fallback.labels(region=region).inc(days)
        now = time.monotonic()
        if now - self._last_policy_check >= 60.0:
            self._last_policy_check = now
            region, days_left = self.logic.policy_days_left()
            self.metrics.policy_days_left.labels(region=region).set(days_left)

    async def _reap(self) -> None:
        self._last_reap = time.monotonic()
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, reap_dead_members, self.bootstrap, self.options.app_id)
        except Exception as exc:
            log.debug("reaping dead group members failed: %r", exc)

    def _observe_batch(self, n: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.batch_size.observe(n)
            self.metrics.batch_seconds.observe(seconds)

    def _inc(self, name: str, n: int, **labels: str) -> None:
        metric = getattr(self.metrics, name, None) if self.metrics is not None else None
        if metric is not None and labels:
            metric.labels(**labels).inc(n)

