"""Stream processors: thin faust agents around the pure rule code in :mod:`hub.policy`.

``register_all`` wires the person processor (settlement, deposit waiver, risk flags, referrals,
reconciliation — see :mod:`hub.processors.person` for why they share one ordered pass) into an app.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from typing import Any

import faust

from hub.processors.shell import BatchRunner, InRecord

log = logging.getLogger(__name__)

PERSON_INPUTS = (
    "revitalization.poverty-status.v1",
    "civil-affairs.assistance-status.v1",
    "insurance.enrollments.v1",
    "health.admissions.v1",
    "health.discharges.v1",
    "health.diagnoses.v1",
    "health.family-doctor.v1",
    "health.facilities.v1",
    "health.payment-defaults.v1",
    "department.referral-updates.v1",
)

BATCH_MAX = int(os.environ.get("HUB_BATCH_MAX", "2000"))
BATCH_WITHIN = float(os.environ.get("HUB_BATCH_WITHIN", "0.2"))
TICK_SECONDS = float(os.environ.get("HUB_TICK_SECONDS", "5"))


def load_runtime_policies() -> tuple[list[Any], Any]:
    """Every policy of HUB_POLICY_DIR (default: the bundled regions) and the monitoring policy.

    The monitoring rules (§5–6) of one deployment follow its home pooling region, HUB_REGION
    (default 532503, Mengzi, the simulator's county): the policy whose region is the longest prefix
    of it and that is in force today, else the newest one of that region.
    """
    from datetime import date
    from pathlib import Path

    from hub.config import get_settings
    from hub.policy.loader import load_policies, select_policy

    settings = get_settings()
    folder = settings.policy_dir or Path(__file__).resolve().parent.parent / "policy" / "regions"
    policies = load_policies(folder)
    region = os.environ.get("HUB_REGION", "532503")
    monitor = select_policy(policies, region, date.today())
    if monitor is None:
        candidates = [p for p in policies if region.startswith(p.region_prefix)] or policies
        monitor = max(candidates, key=lambda p: (len(p.region_prefix), p.effective_from))
    return policies, monitor


def register_all(app: faust.App, ctx: Any) -> None:
    """Declare the person table and agent on ``app``."""
    from hub.metrics import METRICS
    from hub.processors.person import PersonLogic

    policies, monitor_policy = load_runtime_policies()
    # Live, the wall clock advances event time so escalations fire on a quiet day (§5.1). `hub replay`
    # and the simulator of `hub up` run on event time only: HUB_WALL_CLOCK=0.
    wall_clock = os.environ.get("HUB_WALL_CLOCK", "1") != "0"
    logic = PersonLogic(policies, monitor_policy, metrics=METRICS, wall_clock=wall_clock)
    # Raw bytes in and out: the codec (Avro, schemas/) and the logic own (de)serialisation. Note that
    # ``app.topic(..., schema=faust.Schema(...raw...))`` silently delivers nothing in faust 0.15.3;
    # the explicit key/value types below are what works.
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    # key_type/value_type on the table itself: its changelog topic takes them from there, not from
    # `schema` — without them a restarted worker reads the changelog as JSON and never recovers.
    table = app.Table("person-state", partitions=None, key_type=bytes, value_type=bytes, schema=faust.Schema(**raw))
    channel = app.topic(*PERSON_INPUTS, **raw)
    holder: dict[str, BatchRunner] = {}

    async def runner() -> BatchRunner:
        if "r" not in holder:
            holder["r"] = BatchRunner(logic, table, await ctx.get_producer())
            ctx.runners.append(holder["r"])
        return holder["r"]

    def assigned() -> set[int]:
        try:
            return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic in PERSON_INPUTS}
        except Exception:  # before the first assignment
            return set()

    @app.agent(channel, name="person-processor")
    async def person_processor(stream: faust.StreamT) -> None:
        log.info("person processor started")
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            r = await runner()
            parts = assigned() | {e.message.partition for e in events}
            new = parts - logic.partitions
            if new:
                # Rebuild newly assigned partitions from the changelog itself, not from faust's
                # restored store: faust 0.15.3's memory-store recovery was measured to drop the tail of
                # multi-record changelog batches (the changelog held every key; the store did not).
                snapshot = await asyncio.get_running_loop().run_in_executor(
                    None, read_changelog, ctx.bootstrap, r.changelog_topic, sorted(new))
                async with r.lock:
                    logic.assign(parts, SnapshotState(snapshot))
            records = [
                InRecord(m.topic, m.partition, m.offset, e.key, e.value, m.timestamp)
                for e in events
                for m in (e.message,)
            ]
            # one labels().inc(n) per topic and batch: a prometheus child lookup per event is measurable here
            for topic, n in Counter(rec.topic for rec in records).items():
                METRICS.events_consumed.labels(topic=topic).inc(n)
            # A stop (SIGTERM) cancels the agent; faust's take_events then acks the whole batch as its
            # generator closes. Finish the batch first, so what is acked is also applied and saved.
            task = asyncio.ensure_future(r.run_batch(records))
            cancelled = False
            while not task.done():  # a stop may cancel more than once: keep waiting for the batch
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    cancelled = True
            result = task.result()
            if cancelled:
                raise asyncio.CancelledError
            log.debug("batch: %d in, %d out, %d state writes", len(records), len(result.outputs), len(result.state))

    @app.timer(interval=TICK_SECONDS)
    async def wall_clock_tick() -> None:
        if "r" not in holder:
            return
        parts = assigned()
        if wall_clock and parts and parts <= logic.partitions:  # a partition not yet rebuilt waits
            try:
                await holder["r"].run_tick(parts)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("wall-clock tick failed")
        async with holder["r"].lock:
            METRICS.set_referrals_open(logic.open_referrals())


class SnapshotState:
    """A :class:`~hub.processors.shell.PartitionState` over ``{(partition, key): value}``."""

    def __init__(self, data: dict[tuple[int, bytes], bytes]) -> None:
        self.data = data

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get((partition, key))

    def keys(self, partition: int) -> list[bytes]:
        return [k for (p, k) in self.data if p == partition]


def read_changelog(bootstrap: str, topic: str, partitions: list[int]) -> dict[tuple[int, bytes], bytes]:
    """The latest value of every key in ``partitions`` of a changelog topic (deletes applied)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                             max_partition_fetch_bytes=64 * 1024 * 1024, fetch_max_bytes=128 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        data: dict[tuple[int, bytes], bytes] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, msgs in consumer.poll(timeout_ms=1000, max_records=50_000).items():
                for m in msgs:
                    if m.value is None:
                        data.pop((tp.partition, m.key), None)
                    else:
                        data[(tp.partition, m.key)] = m.value
        log.info("rebuilt %d key(s) of partition(s) %s from %s", len(data), partitions, topic)
        return data
    finally:
        consumer.close()
