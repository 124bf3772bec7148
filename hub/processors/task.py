"""The state of one task (partition *p* of every input topic), and how it is saved and restored.

Why one object per task: policy-spec §8 makes a task the unit of order — its own merge, its own
clock, its own remembered ids — and the unit of recovery. Everything a task needs to go on after a
crash is in its own partition of one compacted state topic (``<app id>-person-state``), written in
the same Kafka transaction as the outputs it goes with, so a restored task is exactly the state
after some whole batch, never half of one:

* ``p:<person_token>`` — the monitoring person state (§5.1; JSON of ``PersonState``),
* ``f:<facility_code>`` — a facility's state,
* ``l:<person_token>`` — the settlement ledger (§3), the insured region of each year (§8.4) and what
  the first settlement of each discharge was stamped with,
* ``t:task`` — the task's clock, the next input offset of each topic (what has been applied), and
  the count of inputs taken from each topic (for §8.2's window),
* ``r:<topic>:<seq>`` — segments of recently applied input ids (§8.2, :mod:`hub.processors.dedupe`).

The engine's due-time index is not saved: it is rebuilt from the subjects on restore.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.policy.monitor.engine import MonitorEngine
from hub.policy.monitor.state import FacilityState, PersonState
from hub.policy.settlement import SettlementLedger
from hub.policy.timeline import PolicyTimeline
from hub.processors.dedupe import SEGMENT_PREFIX, RecentIds

__all__ = ["LedgerEntry", "TaskState", "TASK_KEY", "STATE_VERSION", "to_us"]

TASK_KEY = b"t:task"
STATE_VERSION = 2
_NO_TIME_US = -(2**62)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(t: datetime | None) -> int:
    """A time as µs since the epoch (the merge and the id window compare integers)."""
    if t is None:
        return _NO_TIME_US
    return (t - _EPOCH) // _US


class _Tracked(dict):  # type: ignore[type-arg]
    """A dict that remembers which keys were written (the engine writes back every touched subject)."""

    def __init__(self) -> None:
        super().__init__()
        self.dirty: set[str] = set()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.dirty.add(key)

    def load(self, key: str, value: Any) -> None:
        """Put a restored value without marking it written."""
        dict.__setitem__(self, key, value)


@dataclass(slots=True)
class LedgerEntry:
    """One person's settlement side: the §3 ledger, the insured region per year, first stamps."""

    ledger: SettlementLedger = field(default_factory=SettlementLedger)
    regions: dict[int, str] = field(default_factory=dict)
    meta: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps({"ledger": self.ledger.to_dict(), "regions": {str(y): r for y, r in self.regions.items()},
                           "meta": self.meta}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LedgerEntry:
        data = json.loads(raw)
        return cls(SettlementLedger.from_dict(data["ledger"]), {int(y): r for y, r in data["regions"].items()},
                   data.get("meta", {}))


class TaskState:
    """Subjects, ledgers, clock, applied offsets and recent ids of one task, with change tracking."""

    def __init__(self, partition: int, timeline: PolicyTimeline, clock: str | None = None,
                 persons: _Tracked | None = None, facilities: _Tracked | None = None) -> None:
        self.partition = partition
        self.persons = persons if persons is not None else _Tracked()
        self.facilities = facilities if facilities is not None else _Tracked()
        self.engine = MonitorEngine(timeline, self.persons, self.facilities, {"clock": clock})
        self.ledgers: dict[str, LedgerEntry] = {}
        self.dirty_ledgers: set[str] = set()
        self.offsets: dict[str, int] = {}
        """Next offset to apply, per input topic (this task's partition): everything before is applied."""
        self.recent = RecentIds()
        self.task_dirty = False

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
        self.dirty_ledgers.add(person)

    def flush(self) -> dict[bytes, bytes | None]:
        """The state records of everything changed since the last flush (key → value, None deletes)."""
        out: dict[bytes, bytes | None] = {}
        for prefix, store in (("p:", self.persons), ("f:", self.facilities)):
            for subject in store.dirty:
                out[(prefix + subject).encode()] = json.dumps(store[subject].to_dict(),
                                                              separators=(",", ":")).encode()
            store.dirty.clear()
        for person in sorted(self.dirty_ledgers):
            out[b"l:" + person.encode()] = self.ledgers[person].to_json()
        self.dirty_ledgers.clear()
        out.update(self.recent.flush(self.clock_us if self.engine.clock is not None else None))
        if self.task_dirty or out:
            out[TASK_KEY] = json.dumps({
                "v": STATE_VERSION, "clock": None if self.engine.clock is None else self.engine.clock.isoformat(),
                "offsets": self.offsets, "counts": self.recent.counts}, separators=(",", ":")).encode()
            self.task_dirty = False
        return out

    @classmethod
    def restore(cls, partition: int, timeline: PolicyTimeline,
                records: Iterable[tuple[bytes, bytes]]) -> TaskState:
        """A task from the latest value of every key of its state partition (tombstones already applied)."""
        persons, facilities = _Tracked(), _Tracked()
        ledgers: dict[str, LedgerEntry] = {}
        recent = RecentIds()
        task: dict[str, Any] = {}
        for key, value in records:
            if key == TASK_KEY:
                task = json.loads(value)
                if task.get("v") != STATE_VERSION:
                    raise ValueError(f"state of partition {partition} has version {task.get('v')}, this worker "
                                     f"reads {STATE_VERSION}: reset the state topic and reprocess the inputs")
            elif key.startswith(SEGMENT_PREFIX):
                recent.restore(key, value)
            else:
                ns, _, subject = key.decode().partition(":")
                if ns == "p":
                    persons.load(subject, PersonState.from_dict(json.loads(value)))
                elif ns == "f":
                    facilities.load(subject, FacilityState.from_dict(json.loads(value)))
                elif ns == "l":
                    ledgers[subject] = LedgerEntry.from_json(value)
        state = cls(partition, timeline, task.get("clock"), persons, facilities)
        state.ledgers = ledgers
        state.offsets = {t: int(o) for t, o in task.get("offsets", {}).items()}
        recent.restored({t: int(n) for t, n in task.get("counts", {}).items()})
        state.recent = recent
        return state

    def summary(self) -> str:
        clock = self.engine.clock.isoformat() if self.engine.clock else None
        return (f"{len(self.persons)} person(s), {len(self.facilities)} facility(ies), {len(self.ledgers)} ledger(s), "
                f"{len(self.recent)} recent id(s), clock {clock}")
