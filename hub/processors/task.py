"""The state of one task (partition *p* of every input topic), and how it is saved and restored.

Why one object per task: policy-spec §8 makes a task the unit of order — its own merge, its own
clock, its own remembered ids — and the unit of recovery. Everything a task needs to go on after a
crash is in its own partition of one compacted state topic (``<app id>-person-state``), written in
the same Kafka transaction as the outputs it goes with, so a restored task is exactly the state
after some whole batch, never half of one:

* ``p:<person_token>`` — the monitoring person state (§5.1; JSON of ``PersonState``, deflated as every
  subject and ledger value is),
* ``f:<facility_code>`` — a facility's state,
* ``l:<person_token>`` — the settlement ledger (§3), the insured region of each year (§8.4) and what
  the first settlement of each discharge was stamped with,
* ``x:<person|facility>:<subject>`` — the subject's pending due times and open referrals, so that a restore
  rebuilds the due-time index and the open-referral gauge without decoding every subject,
* ``t:task`` — the task's clock, the next input offset of each topic (what has been applied), and
  the count of inputs taken from each topic (for §8.2's window),
* ``r:<topic>:<seq>`` — segments of recently applied input ids (§8.2, :mod:`hub.processors.dedupe`).

Subjects and ledgers live serialized in a :mod:`hub.processors.store` backend (memory or RocksDB) and are
decoded on access; a restore copies the state topic's bytes into the backend without decoding them.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.metrics import age_bucket
from hub.policy.model import Route
from hub.policy.monitor.due import SpillingDueIndex
from hub.policy.monitor.engine import FACILITY, PERSON, MonitorEngine
from hub.policy.monitor.state import FacilityState, PersonState, SubjectState
from hub.policy.settlement import SettlementLedger
from hub.policy.timeline import PolicyTimeline
from hub.processors.dedupe import BODY_NS, SEGMENT_PREFIX, RecentIds, StoredIds
from hub.processors.merge import Fetched
from hub.processors.store import Backend, BackendMap, MemoryBackend, RocksBackend, SubjectStore

__all__ = ["LedgerEntry", "TaskState", "TASK_KEY", "STATE_VERSION", "to_us"]

TASK_KEY = b"t:task"
INDEX_PREFIX = b"x:"
STATE_VERSION = 3
_NO_TIME_US = -(2**62)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(t: datetime | None) -> int:
    """A time as µs since the epoch (the merge and the id window compare integers)."""
    if t is None:
        return _NO_TIME_US
    return (t - _EPOCH) // _US


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _pack(obj: Any) -> bytes:
    """A subject or ledger as stored and as the state topic carries it: JSON, deflated.

    Why deflate (level 1, ≈10 µs): it halves what a task holds per person (≈740 → ≈310 bytes for a person's
    monitoring state) and what the state topic carries, for a few µs per write and per decode.
    """
    return zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 1)


def _unpack(raw: bytes) -> Any:
    return json.loads(zlib.decompress(raw))


def _person(raw: bytes) -> PersonState:
    return PersonState.from_dict(_unpack(raw))


def _facility(raw: bytes) -> FacilityState:
    return FacilityState.from_dict(_unpack(raw))


def _subject_bytes(state: SubjectState) -> bytes:
    return _pack(state.to_dict())


@dataclass(slots=True)
class LedgerEntry:
    """One person's settlement side: the §3 ledger, the insured region per year, first stamps."""

    ledger: SettlementLedger = field(default_factory=SettlementLedger)
    regions: dict[int, str] = field(default_factory=dict)
    meta: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return _pack({"ledger": self.ledger.to_dict(), "regions": {str(y): r for y, r in self.regions.items()},
                      "meta": self.meta})

    @classmethod
    def from_json(cls, raw: bytes) -> LedgerEntry:
        data = _unpack(raw)
        return cls(SettlementLedger.from_dict(data["ledger"]), {int(y): r for y, r in data["regions"].items()},
                   data.get("meta", {}))


def _on_disk(backend: Backend) -> bool:
    """Whether the task's indexes belong in its backend too (RocksDB), not in memory."""
    return isinstance(backend, RocksBackend)


def _recent_ids(backend: Backend) -> RecentIds:
    """Recent ids and their segments in memory, or in the backend when it is on disk (RocksDB)."""
    if _on_disk(backend):
        return RecentIds(StoredIds(backend), bodies=backend)
    return RecentIds()


def _index_map(backend: Backend) -> MutableMapping[str, bytes]:
    """The ``x:`` index of a task: a dict, or the backend's namespace ``x`` when it is on disk."""
    return BackendMap(backend, "x") if _on_disk(backend) else {}


class TaskState:
    """Subjects, ledgers, clock, applied offsets and recent ids of one task, with change tracking."""

    def __init__(self, partition: int, timeline: PolicyTimeline, backend: Backend | None = None,
                 clock: str | None = None, index: MutableMapping[str, bytes] | None = None,
                 firing: dict[str, Any] | None = None) -> None:
        self.partition = partition
        self.backend = backend if backend is not None else MemoryBackend()
        on_disk = _on_disk(self.backend)
        self.persons: SubjectStore[PersonState] = SubjectStore(self.backend, "p", _person, _subject_bytes)
        self.facilities: SubjectStore[FacilityState] = SubjectStore(self.backend, "f", _facility, _subject_bytes)
        self.ledgers: SubjectStore[LedgerEntry] = SubjectStore(self.backend, "l", LedgerEntry.from_json,
                                                               LedgerEntry.to_json)
        if index is None:
            index = _index_map(self.backend)
        elif not isinstance(index, BackendMap):
            index = dict(index)
        self.index: MutableMapping[str, bytes] = index
        """``<ns>:<subject>`` → its ``x:`` record (pending due times, open referrals), for subjects that have one
        (in memory, or in RocksDB with the subjects: a province's chronic patients all have one)."""
        self._open: Counter[tuple[str, ...]] = Counter()
        """Open referrals by (department, flag, type, due): the gauge's source, a department's queue. Counted,
        not listed per subject: on 1 January a province's every uninsured person gets one, at one instant."""
        for v in self.index.values():
            self._open.update(tuple(ref) for ref in json.loads(v)["open"])
        self.engine = MonitorEngine(timeline, self.persons, self.facilities, {"clock": clock, "firing": firing},
                                    due_index=self._due_entries(),
                                    due=SpillingDueIndex(self.backend) if on_disk else None)
        self.offsets: dict[str, int] = {}
        """Next offset to apply, per input topic (this task's partition): everything before is applied."""
        self.recent = _recent_ids(self.backend)
        self.task_dirty = False
        self.held: Fetched | None = None
        """A record taken from the merge but not applied: it takes the clock into a new year whose 1 January
        is being judged over several batches (``PersonLogic.process``); it is applied first once that is done."""
        self.held_key: tuple[str, int] | None = None
        """(topic, offset) of that record, saved with the task: its re-sent check was made before the firing
        moved the clock, and is not made again (after a restore it is fetched again from that offset)."""

    # -- reading and writing state ----------------------------------------------------------------

    @property
    def clock_us(self) -> int:
        return to_us(self.engine.clock)

    def ledger(self, person: str) -> LedgerEntry:
        entry = self.ledgers.get(person)
        if entry is None:
            entry = self.ledgers[person] = LedgerEntry()
        return entry

    def ledger_changed(self, person: str) -> None:
        self.ledgers[person] = self.ledgers[person]

    def _due_entries(self) -> Iterator[tuple[datetime, str, str]]:
        """The saved due times, one at a time: on RocksDB they go straight back to disk, never all in memory."""
        for key, raw in self.index.items():
            ns, _, subject = key.partition(":")
            for t in json.loads(raw)["due"]:
                yield datetime.fromisoformat(t), ns, subject

    def _index_record(self, state: SubjectState) -> bytes | None:
        due = sorted({t.isoformat() for t in self.engine.due_times(state)})
        open_refs = sorted([r.department, r.flag_id.split(":", 1)[0], r.type, r.due.isoformat()]
                           for r in state.referrals.values() if not r.final)
        return _dumps({"due": due, "open": open_refs}) if due or open_refs else None

    def flush(self) -> dict[bytes, bytes | None]:
        """The state records of everything changed since the last flush (key → value, None deletes)."""
        out: dict[bytes, bytes | None] = {}
        for ns, store in ((PERSON, self.persons), (FACILITY, self.facilities)):
            for subject in store.dirty:  # indexed while they are still decoded
                key = f"{ns}:{subject}"
                record = self._index_record(store.decoded(subject))
                old = self.index.get(key)
                if record != old:
                    out[INDEX_PREFIX + key.encode()] = record
                    if old is not None:
                        for ref in json.loads(old)["open"]:
                            ref = tuple(ref)
                            self._open[ref] -= 1
                            if self._open[ref] <= 0:
                                del self._open[ref]
                    if record is None:
                        self.index.pop(key, None)
                    else:
                        self.index[key] = record
                        self._open.update(tuple(ref) for ref in json.loads(record)["open"])
            for subject, raw in store.flush().items():
                out[f"{store.ns}:{subject}".encode()] = raw
        for person, raw in self.ledgers.flush().items():
            out[b"l:" + person.encode()] = raw
        out.update(self.recent.flush(self.clock_us if self.engine.clock is not None else None))
        if self.task_dirty or out:
            out[TASK_KEY] = _dumps({  # the engine's clock, and where a paused firing stands (if one is)
                "v": STATE_VERSION, **self.engine.state_dict(), "offsets": self.offsets, "counts": self.recent.counts,
                **({"held": list(self.held_key)} if self.held_key else {})})
            self.task_dirty = False
        return out

    @classmethod
    def restore(cls, partition: int, timeline: PolicyTimeline, records: Iterable[tuple[bytes, bytes | None]],
                backend: Backend | None = None) -> TaskState:
        """A task from its state partition's records in log order (``None`` values are tombstones)."""
        restorer = Restorer(partition, timeline, backend)
        for key, value in records:
            restorer.add(key, value)
        return restorer.finish()

    def open_referrals(self, routes: Iterable[Route]) -> Counter[tuple[str, str]]:
        """``{(department, age bucket): n}`` of referrals not yet final, aged at the task's clock.

        A referral's age is ``clock − (due − sla_days)``: its due time and the routing table's SLA give
        when it was opened. Read from the index, so it costs the open referrals, not the persons.
        """
        counts: Counter[tuple[str, str]] = Counter()
        clock = self.engine.clock
        if clock is None:
            return counts
        sla = {(r.flag, r.department, r.type): timedelta(days=r.sla_days) for r in routes}
        for (department, flag, type_, due), n in self._open.items():
            opened = datetime.fromisoformat(due) - sla.get((flag, department, type_), timedelta(0))
            counts[(department, age_bucket(clock - opened))] += n
        return counts

    def close(self) -> None:
        self.backend.close()

    def summary(self) -> str:
        clock = self.engine.clock.isoformat() if self.engine.clock else None
        text = (f"{len(self.persons)} person(s), {len(self.facilities)} facility(ies), {len(self.ledgers)} ledger(s), "
                f"{len(self.recent)} recent id(s), {len(self.index)} with due times or open referrals, clock {clock}")
        firing = self.engine.firing
        if firing is not None:
            text += (f"; in the middle of judging the subjects due at {firing[0].isoformat()}: goes on from where "
                     "it stopped before any record is applied")
        return text


class Restorer:
    """Rebuilds a :class:`TaskState` from its state partition, record by record in log order.

    Subjects and ledgers go into the backend as the bytes they are (a tombstone deletes): nothing is decoded
    but the index, so a restore costs about a dict or RocksDB write per record, and memory holds no copy of
    the partition (it is streamed in, not collected first).
    """

    def __init__(self, partition: int, timeline: PolicyTimeline, backend: Backend | None = None) -> None:
        self.partition = partition
        self.timeline = timeline
        self.backend = backend if backend is not None else MemoryBackend()
        self.index = _index_map(self.backend)
        self.segments: dict[bytes, bytes] = {}
        """Segment records in memory; on disk they go to the backend as they come (``BODY_NS``)."""
        self.on_disk = _on_disk(self.backend)
        self.task: dict[str, Any] = {}
        self.records = 0

    def add(self, key: bytes, value: bytes | None) -> None:
        self.records += 1
        if key == TASK_KEY:
            if value is not None:
                self.task = json.loads(value)
                if self.task.get("v") != STATE_VERSION:
                    raise ValueError(f"state of partition {self.partition} has version {self.task.get('v')}, this "
                                     f"worker reads {STATE_VERSION}: reset the state topic and reprocess the inputs")
        elif key.startswith(SEGMENT_PREFIX):
            if self.on_disk:
                if value is None:
                    self.backend.delete(BODY_NS, key.decode())
                else:
                    self.backend.put(BODY_NS, key.decode(), value)
            elif value is None:
                self.segments.pop(key, None)
            else:
                self.segments[key] = value
        elif key.startswith(INDEX_PREFIX):
            name = key[len(INDEX_PREFIX):].decode()
            if value is None:
                self.index.pop(name, None)
            else:
                self.index[name] = value
        else:
            ns, _, subject = key.decode().partition(":")
            if ns in ("p", "f", "l"):
                if value is None:
                    self.backend.delete(ns, subject)
                else:
                    self.backend.put(ns, subject, value)

    def finish(self) -> TaskState:
        state = TaskState(self.partition, self.timeline, self.backend, self.task.get("clock"), self.index,
                          self.task.get("firing"))
        state.offsets = {t: int(o) for t, o in self.task.get("offsets", {}).items()}
        if self.task.get("held"):
            topic, offset = self.task["held"]
            state.held_key = (topic, int(offset))
        recent = _recent_ids(self.backend)
        if self.on_disk:
            for name in list(self.backend.keys(BODY_NS)):
                body = self.backend.get(BODY_NS, name)
                if body is not None:
                    recent.restore(name.encode(), body)
        for key, value in self.segments.items():
            recent.restore(key, value)
        recent.restored({t: int(n) for t, n in self.task.get("counts", {}).items()},
                        state.clock_us if state.engine.clock is not None else None)
        state.recent = recent
        return state
