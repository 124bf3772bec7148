"""The person processor's rules over one task: settlement (§3), deposit waiver (§4), risk, referrals,
reconciliation (§5–6), in the order of policy-spec §8.

Why one processor and not three agents: every rule here reads the same person state, and §5.1
says arrival order decides. Three agents on three consumer streams would see the same person's
events in different orders; one pass over a task's records in merge order (:mod:`hub.processors.merge`)
gives the stream the exact semantics of ``hub settle`` and ``hub monitor``, which run the same functions.

This module is pure: no Kafka, no clock other than the ``now`` it is given (for metrics only). The live
worker (:mod:`hub.processors.stream`) and ``hub replay`` (:mod:`hub.processors.replay`) both call it, with
records they ordered each in their own way; whatever the batches, the outputs are the same.

Per record (:meth:`PersonLogic.process`):

1. undecodable, the wrong schema for its topic, or on a partition its subject does not hash to →
   dead letter, nothing else;
2. §8.2: an ``event_id`` already applied for the same subject (and still remembered) → dropped;
3. a discharge → the ledger (§3), then the settlement as a monitoring input (§5.1);
   anything else → the monitoring engine (§4–6).

Every output carries a deterministic ``event_id``; a processor dead letter's id and value depend only
on the input (never on its offset, never on the wall clock), so a redelivered or re-sent input gives
the same dead letter, with the offset in the record's headers.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from hub import codec
from hub.deadletter import dead_letter
from hub.errors import HubError
from hub.identity import TOKEN_PATTERN
from hub.policy.loader import select_policy
from hub.policy.model import Policy
from hub.policy.monitor.inputs import SettlementInput
from hub.policy.monitor.outputs import Escalation, FlagEvent, InputRefused, MismatchEvent, Output
from hub.policy.settlement import Discharge, PersonFacts, Reversal, SettlementLedger
from hub.policy.settlement import Outcome as LedgerOutcome
from hub.policy.timeline import PolicyTimeline
from hub.processors.convert import discharge_item, monitor_input, output_record, settlement_record
from hub.processors.dedupe import digest
from hub.processors.merge import UNKNOWN_TIME, Fetched
from hub.processors.partitioning import partition_for
from hub.processors.store import Backend
from hub.processors.task import LedgerEntry, Restorer, TaskState, to_us
from hub.timeutil import SHANGHAI, year_start
from hub.topics import BY_NAME, DEAD_LETTERS, MERGE_RANK, PARTITIONS

log = logging.getLogger(__name__)

DISCHARGES = "health.discharges.v1"
FACILITIES = "health.facilities.v1"
_FREE_SUBJECT_TOPICS = frozenset({FACILITIES, "department.referral-updates.v1"})
"""Topics whose subject may be a facility code (a facility_gap referral's answer names its facility)."""
SOURCE = "person-processor"
MAX_OUTPUT_BYTES = 900_000
"""An output record larger than this (Kafka's default ``max.message.bytes`` is ≈1 MB) becomes a dead
letter ``output_too_large`` instead of failing the whole transaction for ever."""


def decode_input(topic: str, partition: int, offset: int, key: bytes | None, raw: bytes | None,
                 timestamp_ms: int | None, store: codec.SchemaStore | None = None) -> Fetched:
    """A consumed record, decoded once: its event time orders the merge, its value feeds the rules."""
    rank = MERGE_RANK.get(topic, 99)
    try:
        if raw is None:
            raise ValueError("record has no value")
        schema, value = codec.decode(raw, store=store)
        expected = BY_NAME[topic].schema if topic in BY_NAME else None
        if expected is not None and schema != expected:
            raise ValueError(f"topic {topic} carries {expected}, found {schema}")
        time_us = to_us(value["occurred_at"])
    except Exception as exc:  # undecodable: it goes as soon as it heads its queue, to the dead letters
        return Fetched(topic, partition, offset, key, raw, timestamp_ms, UNKNOWN_TIME, rank, error=str(exc))
    return Fetched(topic, partition, offset, key, raw, timestamp_ms, time_us, rank, schema, value)


class BatchResult:
    """Outputs (topic, key, value, headers) and state records (key → value, None deletes) of one batch."""

    __slots__ = ("outputs", "state", "applied")

    def __init__(self) -> None:
        self.applied = 0
        """Input records taken (applied, dead-lettered or dropped as already applied)."""
        self.outputs: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]] = []
        self.state: dict[bytes, bytes | None] = {}


class PersonLogic:
    """Pure batch logic of the person processor over :class:`TaskState` s."""

    def __init__(self, policies: Sequence[Policy], timeline: PolicyTimeline, *, metrics: Any = None,
                 partitions: int = PARTITIONS) -> None:
        self.policies = list(policies)
        self.timeline = timeline
        self.metrics = metrics
        self.partitions = partitions
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._store = codec.default_store()
        self._policy_memo: dict[tuple[str | None, date], Policy | None] = {}
        self._new_year_memo: tuple[datetime, datetime] | None = None
        self._fallbacks_seen: set[tuple[str, date]] = set()

    @property
    def schema_store(self) -> codec.SchemaStore:
        """The schema store the logic encodes with (the shell decodes with it too)."""
        return self._store

    def new_task(self, partition: int, backend: Backend | None = None) -> TaskState:
        return TaskState(partition, self.timeline, backend)

    def restore_task(self, partition: int, records: Iterable[tuple[bytes, bytes | None]],
                     backend: Backend | None = None) -> TaskState:
        return TaskState.restore(partition, self.timeline, records, backend)

    def restorer(self, partition: int, backend: Backend | None = None) -> Restorer:
        """Feed a task's state records in log order; ``finish()`` gives the task (see :class:`Restorer`)."""
        return Restorer(partition, self.timeline, backend)

    # -- batches -----------------------------------------------------------------------------------

    def process(self, task: TaskState, records: Iterable[Fetched], now: float,
                fire_limit: int | None = None) -> BatchResult:
        """Apply ``records`` (in merge order) to ``task``; return outputs and state changes.

        ``records`` may be a generator that consults the task between records (the merge's re-sent check):
        each record is applied before the next is taken. With ``fire_limit`` at most that many subjects are
        judged at a due instant per batch: a firing left unfinished (by :meth:`tick` or by a record that takes
        the clock into a new year, :meth:`_fired_ahead`) goes on first, and no record is applied until it is
        done — the record that started it waits in ``task.held``.
        """
        result = BatchResult()
        offsets = task.offsets
        engine = task.engine
        budget = [fire_limit]
        try:
            if engine.firing is not None:
                self._emit(task, engine.advance_to(engine.firing[2], limit=budget[0]), None, result, {})
                task.task_dirty = True
                if engine.firing is not None:
                    result.state = task.flush()
                    return result
            held, task.held = task.held, None
            for r in itertools.chain([held] if held is not None else [], records):
                if r.offset < offsets.get(r.topic, 0):
                    continue  # already applied (a seek went back): never apply twice
                if fire_limit is not None and not self._fired_ahead(task, r, budget, result):
                    task.held = r  # applied once the new year is judged, in the next batches
                    task.task_dirty = True
                    break
                offsets[r.topic] = r.offset + 1
                task.task_dirty = True
                result.applied += 1
                self._one(task, r, now, result)
            result.state = task.flush()
        finally:
            self._publish_metrics()
        return result

    def tick(self, task: TaskState, now: float, fire_limit: int | None = None) -> BatchResult:
        """Advance the task's clock to the wall clock (§8.3: only while it is caught up; the shell checks).

        With ``fire_limit``, at most that many subjects are judged in this batch; :meth:`process` goes on with
        the rest before it takes a record. 1 January judges every person a task holds: a province's task
        would otherwise hold millions of changed persons in memory and in one transaction.
        """
        result = BatchResult()
        wall = datetime.fromtimestamp(now, SHANGHAI)
        engine = task.engine
        try:
            # A record waiting for a firing comes first: moving the clock past it would apply it late.
            waiting = task.held is not None or task.held_key is not None
            if not waiting and engine.clock is not None and (wall > engine.clock or engine.firing is not None):
                self._emit(task, engine.advance_to(wall, limit=fire_limit), None, result, {})
                task.task_dirty = True
            result.state = task.flush()
        finally:
            self._publish_metrics()
        return result

    def open_referrals(self, tasks: Iterable[TaskState]) -> Counter[tuple[str, str]]:
        """Referrals not yet final, by department and age at each task's clock (for the gauge)."""
        total: Counter[tuple[str, str]] = Counter()
        for task in tasks:
            engine = task.engine
            if engine.clock is None:
                continue
            routes = self.timeline.lookup(engine.clock.astimezone(SHANGHAI).date())[0].routes
            total.update(task.open_referrals(routes))
        return total

    def referral_departments(self) -> list[str]:
        """Every department a referral of the home region can be routed to, over all its policy periods."""
        return sorted({r.department for p in self.timeline.home_policies for r in p.routes})

    def take_fallbacks(self) -> dict[str, int]:
        """Per region, dates for which its nearest policy stood in (§8.4) since the last call."""
        new: dict[str, int] = {}
        for region, day in self.timeline.fallbacks:
            if (region, day) not in self._fallbacks_seen:
                self._fallbacks_seen.add((region, day))
                new[region] = new.get(region, 0) + 1
        return new

    def policy_days_left(self, today: date | None = None) -> tuple[str, int]:
        """(region, days until the home policy in force today ends; negative: days since the nearest ended)."""
        today = today or date.today()
        policy, stood_in = self.timeline.lookup(today)
        if policy.effective_to is None:
            return policy.region, 36_500
        return policy.region, (policy.effective_to - today).days

    # -- one record ----------------------------------------------------------------------------------

    def _subject(self, r: Fetched) -> str | None:
        v = r.value
        if v is None:
            return None
        subject = v.get("facility_code") if r.topic == FACILITIES else v.get("person_token")
        return subject if isinstance(subject, str) and subject else None

    def identify(self, r: Fetched) -> bytes | None:
        """The §8.2 identity of a record (cached on it); None when it is not a well-formed input of its task."""
        if r.ident is None:
            subject = self._subject(r)
            if subject is None or partition_for(subject.encode(), self.partitions) != r.partition:
                return None
            r.ident = digest(subject, str(r.value.get("event_id", "")))  # type: ignore[union-attr]
        return r.ident

    def drop_duplicate(self, task: TaskState, r: Fetched) -> bool:
        """§8.2: consume ``r`` if it is a re-sent input (its id was applied for its subject); say whether it was.

        The merge calls this for each record heading its queue, so re-sent copies never take part in the
        comparison (:meth:`hub.processors.merge.PartitionGroup.drain`).
        """
        ident = self.identify(r)
        if ident is None or task.held_key == (r.topic, r.offset) or not task.recent.is_duplicate(ident, task.clock_us):
            return False
        if r.offset >= task.offsets.get(r.topic, 0):
            task.offsets[r.topic] = r.offset + 1
            task.task_dirty = True
        self._counts["inputs_duplicate", (("topic", r.topic),)] += 1
        return True

    def _one(self, task: TaskState, r: Fetched, now: float, result: BatchResult) -> None:
        if r.error is not None or r.value is None:
            self._dead(task, r, "undecodable", r.error or "no value", result)
            return
        v = r.value
        subject = self._subject(r)
        if subject is None:
            self._dead(task, r, "invalid_input", "the record names no subject (person_token / facility_code)",
                       result)
            return
        if r.topic not in _FREE_SUBJECT_TOPICS and TOKEN_PATTERN.match(subject) is None:
            # The edge validates this too; a writer that bypasses it must not put a raw identifier in the state.
            self._dead(task, r, "invalid_input", "person_token is not a pseudonymous token (p_ + 32 hex, "
                       "hub.identity.person_token)", result)
            return
        ident = self.identify(r)
        if ident is None:
            self._dead(task, r, "misrouted", f"the record's subject hashes to partition "
                       f"{partition_for(subject.encode(), self.partitions)}, not {r.partition}: its key must be "
                       "its subject (policy-spec §8.1), or its state would be split across tasks", result)
            return
        if task.held_key == (r.topic, r.offset):
            task.held_key = None  # its re-sent check was made before 1 January's firing moved the clock
        elif task.recent.is_duplicate(ident, task.clock_us):
            self._counts["inputs_duplicate", (("topic", r.topic),)] += 1
            return  # §8.2: a re-sent input changes nothing, not even the clock
        task.recent.add(r.topic, ident, r.time_us)
        hospital_of: dict[str, str] = {}
        try:
            if r.topic == DISCHARGES:
                self._settle(task, r, v, now, result)
                return
            inp = monitor_input(r.topic, v)
            if inp is None:
                self._dead(task, r, "unknown_topic", f"the person processor does not read {r.topic}", result)
                return
            if r.topic == "health.admissions.v1":
                hospital_of[v["admission_id"]] = v["hospital_code"]
            if r.topic == "insurance.enrollments.v1" and v.get("insured_region"):
                # §8.4: the insured region of *that year*, as the latest enrolment record for it names it
                entry = task.ledger(v["person_token"])
                if entry.regions.get(v["year"]) != v["insured_region"]:
                    entry.regions[v["year"]] = v["insured_region"]
                    task.ledger_changed(v["person_token"])
            outs = task.engine.apply(inp)
        except (HubError, ValueError, KeyError) as exc:  # refused input (e.g. a category its source does not own)
            self._dead(task, r, "invalid_input", f"{type(exc).__name__}: {exc}", result)
            return
        self._emit(task, outs, r, result, hospital_of)

    def _fired_ahead(self, task: TaskState, r: Fetched, budget: list[int | None], result: BatchResult) -> bool:
        """Before a record that takes the clock into a new year: judge 1 January's subjects within ``budget``.

        Only a record the engine will apply moves the clock (§5.1; a refused or re-sent one changes nothing), so
        this looks ahead without changing anything — the checks of :meth:`_one`, and a discharge on a copy of
        its person's ledger — and advances the clock to the record's time exactly as its ``apply`` would, at
        most ``budget`` subjects now. False: the firing is paused, the record waits for the next batch (where
        its re-sent check is not made again: it was made before the clock moved, as for every record).
        """
        clock = task.engine.clock
        v = r.value
        if clock is None or v is None or r.error is not None:
            return True
        at = v.get("occurred_at")
        if not isinstance(at, datetime) or at < self._next_new_year(clock):
            return True
        if task.held_key != (r.topic, r.offset) and not self._reaches_engine(task, r):
            return True
        task.held_key = (r.topic, r.offset)
        self._emit(task, task.engine.advance_to(at.astimezone(SHANGHAI), limit=budget[0]), None, result, {})
        return task.engine.firing is None

    def _next_new_year(self, clock: datetime) -> datetime:
        """1 January after ``clock`` (Shanghai): asked before every record, so the year of the last answer is
        remembered as its (start, end) and a clock inside it costs two comparisons."""
        memo = self._new_year_memo
        if memo is None or not memo[0] <= clock < memo[1]:
            year = clock.astimezone(SHANGHAI).year
            memo = self._new_year_memo = (year_start(year), year_start(year + 1))
        return memo[1]

    def _reaches_engine(self, task: TaskState, r: Fetched) -> bool:
        """Whether :meth:`_one` would hand ``r`` to the engine (it changes nothing to find out)."""
        v = r.value
        subject = self._subject(r)
        if v is None or subject is None or self.identify(r) is None:
            return False
        if r.topic not in _FREE_SUBJECT_TOPICS and TOKEN_PATTERN.match(subject) is None:
            return False
        if task.recent.is_duplicate(r.ident, task.clock_us):  # type: ignore[arg-type]
            return False
        try:
            if r.topic == DISCHARGES:
                entry = task.ledgers.get(v["person_token"]) or LedgerEntry()
                outcome = self._ledger_outcome(task, v, entry, copy.deepcopy(entry.ledger))[2]
                return outcome.error is None and outcome.changed
            return monitor_input(r.topic, v) is not None
        except (HubError, ValueError, KeyError):
            return False

    def _policy(self, region: str | None, day: date) -> Policy | None:
        """``select_policy`` memoised: its answer depends on the (fixed) policy list, region and day only."""
        key = (region, day)
        memo = self._policy_memo
        if key not in memo:
            if len(memo) >= 100_000:
                memo.clear()
            memo[key] = select_policy(self.policies, region, day)
        return memo[key]

    def _ledger_outcome(self, task: TaskState, v: dict[str, Any], entry: LedgerEntry,
                        ledger: SettlementLedger) -> tuple[Discharge | Reversal, str | None, LedgerOutcome]:
        """The discharge ``v`` applied to ``ledger`` (the person's own, or a copy to look ahead)."""
        person = v["person_token"]
        hospital = v.get("hospital_code") or None
        item = discharge_item(v)
        ps = task.engine.persons.get(person)
        region = None if isinstance(item, Reversal) else entry.regions.get(item.year)
        facts = PersonFacts(
            categories=ps.C if ps else frozenset(),
            enrolled_years=frozenset(y for y in (ps.enrolment if ps else {}) if ps and ps.enrolled(y)),
            insured_region=region,
        )
        # §2/§8.4: the policy of the insured region (参保地) of the discharge's year. Unknown region → no
        # policy: guessing a pooling region would pay out under another region's rules.
        policy = None if isinstance(item, Reversal) or region is None else self._policy(region, item.day)
        # A discharge id is the hospital's own numbering (住院号): scoped to it, so another hospital can neither
        # take the id nor reverse the settlement (issue 16); the sender is the edge's authenticated hospital.
        return item, region, ledger.apply(policy, facts, item, hospital=hospital)

    def _settle(self, task: TaskState, r: Fetched, v: dict[str, Any], now: float, result: BatchResult) -> None:
        person = v["person_token"]
        hospital = v.get("hospital_code") or None
        entry = task.ledger(person)
        engine = task.engine
        item, region, outcome = self._ledger_outcome(task, v, entry, entry.ledger)
        if outcome.error is not None:
            detail = outcome.detail
            if outcome.error == "no_policy" and region is None:
                detail += (f"; the person's insured region (参保地) for {item.year} is unknown: "  # type: ignore[union-attr]
                           "no enrolment record of that year names it")
            self._dead(task, r, outcome.error, detail, result)
            return
        assert outcome.result is not None
        res = outcome.result
        if outcome.conflict:
            self._dead(task, r, "conflicting_redelivery", outcome.detail, result)
        # A redelivery returns the original settlement: the same record as first emitted, so the
        # event id always names one value (the hospital, time and date of the first delivery).
        scoped = f"{hospital or ''}/{res.discharge_id}"
        mkey = scoped + (":reversal" if res.reverses else "")
        if outcome.changed or mkey not in entry.meta:
            at = v["occurred_at"].astimezone(SHANGHAI)
            day = item.day if not isinstance(item, Reversal) else at.date()
            entry.meta[mkey] = [hospital or "", at.isoformat(), day.isoformat()]
            task.ledger_changed(person)
        _, at_text, day_text = entry.meta[mkey]
        at, day = datetime.fromisoformat(at_text), date.fromisoformat(day_text)
        rec = settlement_record(person, res, hospital, at, day)
        self._out(task, r, result, "hub.settlements.v1", person, "hub.outputs.Settlement", rec)
        if self.metrics is not None:
            kind = ("reversal" if res.reverses else "settled") if outcome.changed else "redelivery"
            latency = now - v["occurred_at"].timestamp()  # from event time, as the metric's help says
            self.metrics.record_settlement(res.policy, kind, {
                "basic": res.basic_fen, "critical": res.critical_fen, "assistance": res.assistance_fen,
                "top_up": res.top_up_fen, "patient": res.patient_fen}, latency)
        if outcome.changed:
            task.ledger_changed(person)
            outs = engine.apply(SettlementInput(at, person, scoped, res.year, res.patient_fen,
                                                scoped if res.reverses else None))
            self._emit(task, outs, r, result, {})

    # -- outputs -------------------------------------------------------------------------------------

    def _emit(self, task: TaskState, outs: list[Output], r: Fetched | None, result: BatchResult,
              hospital_of: dict[str, str]) -> None:
        for out in outs:
            if isinstance(out, InputRefused):
                if r is not None:
                    self._dead(task, r, out.reason, out.detail, result)
                continue
            region = self.timeline.lookup(out.at.astimezone(SHANGHAI).date())[0].region
            rec = output_record(out, region, hospital_of)
            if rec is None:
                continue
            topic, key, value = rec
            self._out(task, r, result, topic, key, BY_NAME[topic].schema, value)
            self._count(out, region)

    def _count(self, out: Output, region: str) -> None:
        if self.metrics is None:
            return
        counts = self._counts
        if isinstance(out, FlagEvent):
            counts["risk_flags", (("flag", out.flag), ("state", out.state), ("region", region))] += 1
        elif isinstance(out, Escalation):
            counts["referral_escalations", (("department", out.department),)] += 1
        elif isinstance(out, MismatchEvent):
            counts["mismatches", (("kind", out.kind), ("state", out.state))] += 1
        elif hasattr(out, "waived"):
            counts["deposit_decisions", (("reason", out.reason),)] += 1

    def _out(self, task: TaskState, r: Fetched | None, result: BatchResult, topic: str, key: str, schema: str,
             value: dict[str, Any]) -> None:
        data = codec.encode(schema, value, store=self._store, validate=False)
        if len(data) + len(key) > MAX_OUTPUT_BYTES and r is not None:
            self._dead(task, r, "output_too_large", f"the {topic} record for this input is {len(data)} bytes; "
                       f"the limit is {MAX_OUTPUT_BYTES} (Kafka's max.message.bytes)", result)
            return
        result.outputs.append((topic, key.encode(), data, None))
        if self.metrics is not None:
            self._counts["events_produced", (("topic", topic),)] += 1

    def _publish_metrics(self) -> None:
        """Add the batch's counts to the metrics: one ``labels().inc(n)`` per series, not per output."""
        if self.metrics is not None:
            for (attr, labels), n in self._counts.items():
                metric = getattr(self.metrics, attr, None)
                if metric is not None:
                    metric.labels(**dict(labels)).inc(n)
        self._counts.clear()

    def _dead(self, task: TaskState, r: Fetched, reason: str, detail: str, result: BatchResult) -> None:
        """A dead letter whose id and value depend on the input only (§8.5); its offset goes in a header."""
        log.debug("dead letter from %s[%d]@%d: %s", r.topic, r.partition, r.offset, reason)
        decodable = r.value is not None
        if decodable:
            at = r.value["occurred_at"]  # type: ignore[index]
            failed = task.engine.clock or at
            offset = None  # a re-sent copy sits at another offset; the id and value must not change
        else:
            at = failed = datetime.fromtimestamp((r.timestamp_ms or 0) / 1000, UTC)
            offset = r.offset  # no event id: the record's place in the log is its identity
        key, value = dead_letter(r.raw or b"", SOURCE, reason, detail, topic=r.topic, partition=r.partition,
                                 offset=offset, key=r.key, at=at, failed_at=failed, store=self._store)
        headers = [("hub-source-offset", str(r.offset).encode())]
        result.outputs.append((DEAD_LETTERS, key, value, headers))
        if self.metrics is not None:
            self._counts["dead_letters", (("source", SOURCE), ("reason", reason))] += 1
            self._counts["events_produced", (("topic", DEAD_LETTERS),)] += 1
