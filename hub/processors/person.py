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
* ``e:engine`` — the partition's event-time clock,
* ``o:<input topic>`` — the last offset of that topic (this partition) applied to the state.

The engine's due-time index is rebuilt from the subject states when a partition is (re)assigned.
Every output carries a deterministic ``event_id``, so a redelivered batch re-emits identical records
that consumers drop by id; every state change is idempotent (ids settled/admitted are remembered).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
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
from hub.processors.referral import open_referral_counts
from hub.processors.shell import BatchResult, InRecord, OutRecord, PartitionState
from hub.timeutil import SHANGHAI
from hub.topics import BY_NAME, DEAD_LETTERS

log = logging.getLogger(__name__)

ENGINE_KEY = b"e:engine"
OFFSET_PREFIX = b"o:"  # o:<input topic> -> last input offset applied to this partition's state
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
        # One engine — subject states and event-time clock — per partition: a partition's state is
        # then persisted consistently on its own (one changelog batch), so a restart after a crash
        # resumes each partition at its own clock, whatever the other partitions managed to save.
        self.engines: dict[int, MonitorEngine] = {}
        self.ledgers: dict[str, dict[str, Any]] = {}
        self.partitions: set[int] = set()
        self.clock_dirty: set[int] = set()
        # Hot-path bookkeeping (see _flush and _publish_metrics): which ledgers changed in this batch, so a
        # flush does not scan every ledger the worker holds; metric increments summed per batch, because a
        # prometheus ``labels(...).inc()`` takes a lock and a dict lookup per call.
        self._dirty_ledgers: set[str] = set()
        self._ledger_seq = count()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._store = codec.default_store()
        self._policy_memo: dict[tuple[str | None, date], Policy | None] = {}
        self.applied: dict[tuple[str, int], int] = {}  # (input topic, partition) -> last applied offset
        self._offsets_dirty: set[tuple[str, int]] = set()

    # -- partitions --------------------------------------------------------------------------

    def assign(self, partitions: Iterable[int], state: PartitionState) -> None:
        """Load the subjects of newly assigned partitions; forget those of revoked ones."""
        wanted = set(partitions)
        if wanted == self.partitions:
            return
        for p in self.partitions - wanted:
            self.engines.pop(p, None)
            for person in [k for k, e in self.ledgers.items() if e["partition"] == p]:
                del self.ledgers[person]
                self._dirty_ledgers.discard(person)
            for tp in [tp for tp in self.applied if tp[1] == p]:
                del self.applied[tp]
        for p in wanted - self.partitions:
            persons, facilities = _Tracked(), _Tracked()
            clock = None
            for key in state.keys(p):
                raw = state.get(p, key)
                if raw is None:
                    continue
                if key.startswith(OFFSET_PREFIX):
                    self.applied[(key[len(OFFSET_PREFIX):].decode(), p)] = int(raw)
                    continue
                if key == ENGINE_KEY:
                    clock = json.loads(raw)
                    continue
                ns, _, subject = key.decode().partition(":")
                if ns == "p":
                    dict.__setitem__(persons, subject, PersonState.from_dict(json.loads(raw)))
                elif ns == "f":
                    dict.__setitem__(facilities, subject, FacilityState.from_dict(json.loads(raw)))
            self.engines[p] = MonitorEngine(self.monitor_policy, persons, facilities, clock)
            log.info("partition %d: restored %d person(s), %d facility(ies), %d input offset(s), clock %s", p,
                     len(persons), len(facilities), sum(1 for tp in self.applied if tp[1] == p),
                     (clock or {}).get("clock"))
        self.partitions = wanted

    def open_referrals(self) -> Counter[tuple[str, str]]:
        """Referrals not yet final, by department and age at each partition's clock (for the gauge)."""
        total: Counter[tuple[str, str]] = Counter()
        for engine in self.engines.values():
            subjects = [*engine.persons.values(), *engine.facilities.values()]
            total.update(open_referral_counts(subjects, self.monitor_policy.routes, engine.clock))
        return total

    # -- batches -----------------------------------------------------------------------------

    def process(self, records: Sequence[InRecord], state: PartitionState, now: float) -> BatchResult:
        self._store = codec.default_store()  # once per batch, not per record (it reads the environment)
        self.assign(self.partitions | {r.partition for r in records}, state)
        result = BatchResult()
        # At-least-once delivery: a batch redelivered after a crash may hold records this state has
        # already applied. Re-applying them at a later clock would not be idempotent (§5.1 applies a
        # late input at the clock), so they are skipped by their offset, recorded with the state.
        applied = self.applied
        fresh = [r for r in records if r.offset > applied.get((r.topic, r.partition), -1)]
        fresh.sort(key=lambda r: r.timestamp or 0.0)  # stable: offset order within a topic-partition
        try:
            for r in fresh:
                self._one(r, state, now, result)
                applied[(r.topic, r.partition)] = r.offset
                self._offsets_dirty.add((r.topic, r.partition))
            self._flush(result)
        finally:
            self._publish_metrics()
        return result

    def tick(self, partitions: Iterable[int], state: PartitionState, now: float) -> BatchResult:
        """Advance the clock with the wall clock so escalations fire on a quiet day (live only)."""
        result = BatchResult()
        if not self.wall_clock:
            return result
        self._store = codec.default_store()
        self.assign(partitions, state)
        wall = datetime.fromtimestamp(now, SHANGHAI)
        try:
            for p, engine in self.engines.items():
                if engine.clock is not None and wall > engine.clock:
                    self._emit(engine.advance_to(wall), None, result, {})
                    self.clock_dirty.add(p)
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
            outs = self.engines[r.partition].apply(inp)
        except (HubError, ValueError, KeyError) as exc:  # refused input (e.g. a category its source does not own)
            self._dead(r, "invalid_input", f"{type(exc).__name__}: {exc}", result)
            return
        self.clock_dirty.add(r.partition)
        self._emit(outs, r, result, hospital_of)

    def _ledger(self, person: str, state: PartitionState, partition: int) -> dict[str, Any]:
        entry = self.ledgers.get(person)
        if entry is None:
            raw = state.get(partition, b"l:" + person.encode())
            if raw:
                data = json.loads(raw)
                entry = {"ledger": SettlementLedger.from_dict(data["ledger"]), "region": data.get("region"),
                         "meta": data.get("meta", {}), "dirty": False, "partition": partition}
            else:
                entry = {"ledger": SettlementLedger(), "dirty": False, "partition": partition}
            entry["seq"] = next(self._ledger_seq)  # flush order = the order ledgers were loaded
            self.ledgers[person] = entry
        return entry

    def _policy(self, region: str | None, day: date) -> Policy | None:
        """``select_policy`` memoised: its answer depends on the (fixed) policy list, region and day only."""
        key = (region, day)
        memo = self._policy_memo
        if key not in memo:
            if len(memo) >= 100_000:  # regions × days stays small; bound it anyway
                memo.clear()
            memo[key] = select_policy(self.policies, region, day)
        return memo[key]

    def _mark_dirty(self, person: str, entry: dict[str, Any]) -> None:
        entry["dirty"] = True
        self._dirty_ledgers.add(person)

    def _settle(self, r: InRecord, v: dict[str, Any], state: PartitionState, now: float,
                result: BatchResult) -> None:
        person = v["person_token"]
        entry = self._ledger(person, state, r.partition)
        engine = self.engines[r.partition]
        ps = engine.persons.get(person)
        region = entry.get("region")
        item = discharge_item(v)
        facts = PersonFacts(
            categories=ps.C if ps else frozenset(),
            enrolled_years=frozenset(y for y in (ps.enrolment if ps else {}) if ps and ps.enrolled(y)),
            insured_region=region,
        )
        # §2: the policy is chosen by the insured region (参保地). Unknown region (no enrolment record
        # names one) → no policy: guessing a pooling region would pay out under another region's rules.
        policy = None if isinstance(item, Reversal) or region is None else self._policy(region, item.day)
        outcome = entry["ledger"].apply(policy, facts, item)
        if outcome.error is not None:
            detail = outcome.detail
            if outcome.error == "no_policy" and region is None:
                detail += "; the person's insured region (参保地) is unknown: no enrolment record names it"
            self._dead(r, outcome.error, detail, result)
            return
        assert outcome.result is not None
        res = outcome.result
        if outcome.conflict:
            self._dead(r, "conflicting_redelivery", outcome.detail, result)
        # A redelivery returns the original settlement: the same record as first emitted, so the
        # event id always names one value (the hospital, time and date of the first delivery).
        meta = entry.setdefault("meta", {})
        mkey = res.discharge_id + (":reversal" if res.reverses else "")
        if outcome.changed or mkey not in meta:
            at = v["occurred_at"].astimezone(SHANGHAI)
            day = item.day if not isinstance(item, Reversal) else at.date()
            meta[mkey] = [v.get("hospital_code", ""), at.isoformat(), day.isoformat()]
        hospital, at_text, day_text = meta[mkey]
        at, day = datetime.fromisoformat(at_text), date.fromisoformat(day_text)
        rec = settlement_record(person, res, hospital, at, day)
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
            outs = engine.apply(SettlementInput(at, person, res.discharge_id, res.year, res.patient_fen,
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
        for p, engine in self.engines.items():
            for ns, store in (("p", engine.persons), ("f", engine.facilities)):
                for subject in store.dirty:  # type: ignore[attr-defined]
                    result.state[(p, f"{ns}:{subject}".encode())] = json.dumps(store[subject].to_dict()).encode()
                store.dirty.clear()  # type: ignore[attr-defined]
        ledgers = self.ledgers
        for person in sorted(self._dirty_ledgers, key=lambda p: ledgers[p]["seq"]):
            entry = ledgers[person]
            data = {"ledger": entry["ledger"].to_dict(), "region": entry.get("region"), "meta": entry.get("meta", {})}
            result.state[(entry["partition"], b"l:" + person.encode())] = json.dumps(data).encode()
            entry["dirty"] = False
        self._dirty_ledgers.clear()
        for p in self.clock_dirty:
            engine = self.engines[p]
            if engine.clock is not None:
                result.state[(p, ENGINE_KEY)] = json.dumps(engine.state_dict()).encode()
        self.clock_dirty.clear()
        for topic, p in self._offsets_dirty:
            result.state[(p, OFFSET_PREFIX + topic.encode())] = str(self.applied[(topic, p)]).encode()
        self._offsets_dirty.clear()

