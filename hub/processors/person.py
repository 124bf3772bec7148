"""The person processor: settlement (§3), deposit waiver (§4), risk, referrals, reconciliation (§5–6).

Why one processor and not three agents: every rule here reads the same person state, and §5.1
says arrival order decides. Three agents on three consumer streams would see the same person's
events in different orders; one pass over a partition's records in order gives the stream the
exact semantics of ``hub settle`` and ``hub monitor``, which run the same functions. The modules
``settlement``, ``risk`` and ``referral`` of this package name the parts; this class drives them.

State, in one changelog-backed table keyed per partition:

* ``p:<person_token>`` — the monitoring person state (JSON of ``PersonState``),
* ``f:<facility_code>`` — facility state,
* ``l:<person_token>`` — the settlement ledger and insured region,
* ``e:engine`` — the partition's event-time clock.

The engine's due-time index is rebuilt from the subject states when a partition is (re)assigned.
Every output carries a deterministic ``event_id``, so a redelivered batch re-emits identical records
that consumers drop by id; every state change is idempotent (ids settled/admitted are remembered).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import count
from typing import Any

from hub import codec
from hub.deadletter import dead_letter
from hub.errors import HubError
from hub.policy.loader import select_policy
from hub.policy.model import Policy
from hub.policy.monitor.engine import MonitorEngine
from hub.policy.monitor.inputs import SettlementInput
from hub.policy.monitor.outputs import Escalation, FlagEvent, InputRefused, MismatchEvent, Output
from hub.policy.monitor.state import FacilityState, PersonState
from hub.policy.settlement import PersonFacts, Reversal, SettlementLedger
from hub.processors.convert import discharge_item, monitor_input, output_record, settlement_record
from hub.processors.shell import BatchResult, InRecord, OutRecord, PartitionState
from hub.timeutil import SHANGHAI
from hub.topics import BY_NAME, DEAD_LETTERS

log = logging.getLogger(__name__)

ENGINE_KEY = b"e:engine"
DISCHARGES = "health.discharges.v1"


class _Tracked(dict):  # type: ignore[type-arg]
    """A dict that remembers which keys were written (the engine writes back every touched subject)."""

    def __init__(self) -> None:
        super().__init__()
        self.dirty: set[str] = set()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.dirty.add(key)


class PersonLogic:
    """Pure batch logic (see :class:`hub.processors.shell.BatchLogic`) for the person processor."""

    def __init__(self, policies: Sequence[Policy], monitor_policy: Policy, *, metrics: Any = None,
                 wall_clock: bool = True) -> None:
        self.policies = list(policies)
        self.monitor_policy = monitor_policy
        self.metrics = metrics
        self.wall_clock = wall_clock
        self.persons: _Tracked = _Tracked()
        self.facilities: _Tracked = _Tracked()
        self.engine = MonitorEngine(monitor_policy, self.persons, self.facilities)
        self.ledgers: dict[str, dict[str, Any]] = {}
        self.partition_of: dict[tuple[str, str], int] = {}
        self.partitions: set[int] = set()
        self.clock_dirty: set[int] = set()
        # Hot-path bookkeeping (see _flush and _publish_metrics): which ledgers changed in this batch, so a
        # flush does not scan every ledger the worker holds; metric increments summed per batch, because a
        # prometheus ``labels(...).inc()`` takes a lock and a dict lookup per call.
        self._dirty_ledgers: set[str] = set()
        self._ledger_seq = count()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._store = codec.default_store()

    # -- partitions --------------------------------------------------------------------------

    def assign(self, partitions: Iterable[int], state: PartitionState) -> None:
        """Load the subjects of newly assigned partitions; forget those of revoked ones."""
        wanted = set(partitions)
        if wanted == self.partitions:
            return
        for p in self.partitions - wanted:
            for (ns, subject), part in list(self.partition_of.items()):
                if part == p:
                    (self.persons if ns == "p" else self.facilities).pop(subject, None)
                    if ns == "p":
                        self.ledgers.pop(subject, None)
                        self._dirty_ledgers.discard(subject)
                    del self.partition_of[(ns, subject)]
        clock = self.engine.clock
        for p in wanted - self.partitions:
            for key in state.keys(p):
                raw = state.get(p, key)
                if raw is None:
                    continue
                if key == ENGINE_KEY:
                    c = json.loads(raw).get("clock")
                    if c is not None:
                        t = datetime.fromisoformat(c)
                        clock = t if clock is None or t > clock else clock
                    continue
                ns, _, subject = key.decode().partition(":")
                if ns == "p":
                    dict.__setitem__(self.persons, subject, PersonState.from_dict(json.loads(raw)))
                elif ns == "f":
                    dict.__setitem__(self.facilities, subject, FacilityState.from_dict(json.loads(raw)))
                else:
                    continue
                self.partition_of[(ns, subject)] = p
        self.partitions = wanted
        self.engine.clock = clock
        self.engine.rebuild_due_index()

    # -- batches -----------------------------------------------------------------------------

    def process(self, records: Sequence[InRecord], state: PartitionState, now: float) -> BatchResult:
        self._store = codec.default_store()  # once per batch, not per record (it reads the environment)
        self.assign(self.partitions | {r.partition for r in records}, state)
        result = BatchResult()
        ordered = sorted(range(len(records)), key=lambda i: (records[i].timestamp or 0.0, i))
        try:
            for i in ordered:
                self._one(records[i], state, now, result)
            self._flush(result)
        finally:
            self._publish_metrics()
        return result

    def tick(self, partitions: Iterable[int], state: PartitionState, now: float) -> BatchResult:
        """Advance the clock with the wall clock so escalations fire on a quiet day (live only)."""
        result = BatchResult()
        if not self.wall_clock or self.engine.clock is None:
            return result
        self._store = codec.default_store()
        self.assign(partitions, state)
        wall = datetime.fromtimestamp(now, SHANGHAI)
        try:
            if wall > self.engine.clock:
                self._emit(self.engine.advance_to(wall), None, result, {})
                self.clock_dirty |= self.partitions
            self._flush(result)
        finally:
            self._publish_metrics()
        return result

    def _one(self, r: InRecord, state: PartitionState, now: float, result: BatchResult) -> None:
        try:
            if r.value is None:
                raise ValueError("record has no value")
            schema, value = codec.decode(r.value, store=self._store)
            expected = BY_NAME[r.topic].schema if r.topic in BY_NAME else None
            if expected is not None and schema != expected:
                raise ValueError(f"topic {r.topic} carries {expected}, found {schema}")
        except Exception as exc:  # undecodable input: dead letter with the original bytes
            self._dead(r, "undecodable", str(exc), result)
            return
        hospital_of: dict[str, str] = {}
        try:
            if r.topic == DISCHARGES:
                self._settle(r, value, state, now, result)
                return
            inp = monitor_input(r.topic, value)
            if inp is None:
                self._dead(r, "unknown_topic", f"the person processor does not read {r.topic}", result)
                return
            if r.topic == "health.admissions.v1":
                hospital_of[value["admission_id"]] = value["hospital_code"]
            if r.topic == "insurance.enrollments.v1" and value.get("insured_region"):
                entry = self._ledger(value["person_token"], state, r.partition)
                if entry.get("region") != value["insured_region"]:
                    entry["region"] = value["insured_region"]
                    self._mark_dirty(person=value["person_token"], entry=entry)
            if r.topic != "department.referral-updates.v1":  # routed by referral id, not by key
                self._note_subject(r)
            outs = self.engine.apply(inp)
        except (HubError, ValueError, KeyError) as exc:  # refused input (e.g. a category its source does not own)
            self._dead(r, "invalid_input", f"{type(exc).__name__}: {exc}", result)
            return
        self.clock_dirty.add(r.partition)
        self._emit(outs, r, result, hospital_of)

    def _note_subject(self, r: InRecord) -> None:
        if r.key is None:
            return
        ns = "f" if r.topic == "health.facilities.v1" else "p"
        self.partition_of[(ns, r.key.decode())] = r.partition

    def _ledger(self, person: str, state: PartitionState, partition: int) -> dict[str, Any]:
        entry = self.ledgers.get(person)
        if entry is None:
            raw = state.get(partition, b"l:" + person.encode())
            if raw:
                data = json.loads(raw)
                entry = {"ledger": SettlementLedger.from_dict(data["ledger"]), "region": data.get("region"),
                         "dirty": False, "partition": partition}
            else:
                entry = {"ledger": SettlementLedger(), "dirty": False, "partition": partition}
            entry["seq"] = next(self._ledger_seq)  # flush order = the order ledgers were loaded
            self.ledgers[person] = entry
        return entry

    def _mark_dirty(self, person: str, entry: dict[str, Any]) -> None:
        entry["dirty"] = True
        self._dirty_ledgers.add(person)

    def _settle(self, r: InRecord, v: dict[str, Any], state: PartitionState, now: float,
                result: BatchResult) -> None:
        person = v["person_token"]
        self._note_subject(r)
        entry = self._ledger(person, state, r.partition)
        ps = self.persons.get(person)
        region = entry.get("region")
        item = discharge_item(v)
        facts = PersonFacts(
            categories=ps.C if ps else frozenset(),
            enrolled_years=frozenset(y for y in (ps.enrolment if ps else {}) if ps and ps.enrolled(y)),
            insured_region=region,
        )
        policy = None if isinstance(item, Reversal) else select_policy(self.policies, region, item.day)
        outcome = entry["ledger"].apply(policy, facts, item)
        if outcome.error is not None:
            self._dead(r, outcome.error, outcome.detail, result)
            return
        assert outcome.result is not None
        res = outcome.result
        if outcome.conflict:
            self._dead(r, "conflicting_redelivery", outcome.detail, result)
        at = v["occurred_at"].astimezone(SHANGHAI)
        day = (item.day if not isinstance(item, Reversal) else at.date())
        rec = settlement_record(person, res, v.get("hospital_code", ""), at, day)
        self._out(result, "hub.settlements.v1", person, "hub.outputs.Settlement", rec)
        if self.metrics is not None:
            kind = "new" if outcome.changed else "redelivery"
            kind = ("reversal" if res.reverses else "settled") if kind == "new" else "redelivery"
            latency = now - r.timestamp if r.timestamp else None
            self.metrics.record_settlement(res.policy, kind, {
                "basic": res.basic_fen, "critical": res.critical_fen, "assistance": res.assistance_fen,
                "top_up": res.top_up_fen, "patient": res.patient_fen}, latency)
        if outcome.changed:
            self._mark_dirty(person, entry)
            self.clock_dirty.add(r.partition)
            outs = self.engine.apply(SettlementInput(at, person, res.discharge_id, res.year, res.patient_fen,
                                                     res.reverses))
            self._emit(outs, r, result, {})

    # -- outputs -----------------------------------------------------------------------------

    def _emit(self, outs: list[Output], r: InRecord | None, result: BatchResult,
              hospital_of: dict[str, str]) -> None:
        region = self.monitor_policy.region
        for out in outs:
            if isinstance(out, InputRefused):
                if r is not None:
                    self._dead(r, out.reason, out.detail, result)
                continue
            rec = output_record(out, region, hospital_of)
            if rec is None:
                continue
            topic, key, value = rec
            self._out(result, topic, key, BY_NAME[topic].schema, value)
            self._count(out)

    def _count(self, out: Output) -> None:
        if self.metrics is None:
            return
        counts = self._counts
        if isinstance(out, FlagEvent):
            counts["risk_flags", (("flag", out.flag), ("state", out.state),
                                  ("region", self.monitor_policy.region))] += 1
        elif isinstance(out, Escalation):
            counts["referral_escalations", (("department", out.department),)] += 1
        elif isinstance(out, MismatchEvent):
            counts["mismatches", (("kind", out.kind), ("state", out.state))] += 1
        elif hasattr(out, "waived"):
            counts["deposit_decisions", (("reason", out.reason),)] += 1

    def _out(self, result: BatchResult, topic: str, key: str, schema: str, value: dict[str, Any]) -> None:
        result.outputs.append(OutRecord(topic, key.encode(), codec.encode(schema, value, store=self._store)))
        if self.metrics is not None:
            self._counts["events_produced", (("topic", topic),)] += 1

    def _publish_metrics(self) -> None:
        """Add the batch's counts to the metrics: one ``labels().inc(n)`` per series, not per output."""
        if self.metrics is not None:
            for (attr, labels), n in self._counts.items():
                getattr(self.metrics, attr).labels(**dict(labels)).inc(n)
        self._counts.clear()

    def _dead(self, r: InRecord, reason: str, detail: str, result: BatchResult) -> None:
        log.warning("dead letter from %s[%d]@%d: %s", r.topic, r.partition, r.offset, reason)
        key, value = dead_letter(r.value or b"", "person-processor", reason, detail, topic=r.topic,
                                 partition=r.partition, offset=r.offset, key=r.key)
        result.outputs.append(OutRecord(DEAD_LETTERS, key, value))
        if self.metrics is not None:
            self.metrics.dead_letters.labels(source="person-processor", reason=reason).inc()

    def _flush(self, result: BatchResult) -> None:
        """Write back each changed subject once, and the clock of each touched partition."""
        for ns, store in (("p", self.persons), ("f", self.facilities)):
            for subject in store.dirty:
                part = self.partition_of.get((ns, subject))
                if part is None:
                    log.error("no partition known for %s:%s; state not persisted", ns, subject)
                    continue
                result.state[(part, f"{ns}:{subject}".encode())] = json.dumps(store[subject].to_dict()).encode()
            store.dirty.clear()
        ledgers = self.ledgers
        for person in sorted(self._dirty_ledgers, key=lambda p: ledgers[p]["seq"]):
            entry = ledgers[person]
            data = {"ledger": entry["ledger"].to_dict(), "region": entry.get("region")}
            result.state[(entry["partition"], b"l:" + person.encode())] = json.dumps(data).encode()
            entry["dirty"] = False
        self._dirty_ledgers.clear()
        if self.engine.clock is not None:
            clock = json.dumps(self.engine.state_dict()).encode()
            for p in self.clock_dirty:
                result.state[(p, ENGINE_KEY)] = clock
        self.clock_dirty.clear()

