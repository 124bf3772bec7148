"""Stream processors: thin faust agents around the pure rule code in :mod:`hub.policy`.

``register_all`` wires the person processor (settlement, deposit waiver, risk flags, referrals,
reconciliation — see :mod:`hub.processors.person` for why they share one ordered pass) into an app.
"""

from __future__ import annotations

import asyncio
import logging
import os
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
    table = app.Table("person-state", partitions=None, schema=faust.Schema(**raw))
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
            parts = assigned()
            if parts:
                async with r.lock:
                    logic.assign(parts | {e.message.partition for e in events}, r.view)
            records = [
                InRecord(e.message.topic, e.message.partition, e.message.offset, e.key, e.value,
                         e.message.timestamp)
                for e in events
            ]
            for e in events:
                METRICS.events_consumed.labels(topic=e.message.topic).inc()
            result = await r.run_batch(records)
            log.debug("batch: %d in, %d out, %d state writes", len(records), len(result.outputs), len(result.state))

    @app.timer(interval=TICK_SECONDS)
    async def wall_clock_tick() -> None:
        if not wall_clock or "r" not in holder:
            return
        parts = assigned()
        if parts:
            try:
                await holder["r"].run_tick(parts)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("wall-clock tick failed")
