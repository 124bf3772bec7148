"""The engine's index of pending due times: which subject to judge next, and when (policy-spec §5.1).

Entries are ``(time, namespace, subject)``. Duplicates are dropped, and stale entries (a due time that
has since moved or gone) are harmless: the engine judges nothing at them. They are never removed early,
only popped when their time comes — so the index holds about one entry per subject that ever had a due
time, stale or not.

:class:`DueHeap` keeps them all in memory (``hub monitor``, ``HUB_STORE=memory://``). That is ≈250 bytes
per entry, which for a province's 10 M persons is gigabytes; :class:`SpillingDueIndex` (``rocksdb://``)
keeps in memory only the entries up to a *horizon* and the rest in the task's RocksDB under time-ordered
keys, reading the next window in when the heap runs dry. Both fire the same entries at the same instants:
the heap holds every entry at or before the horizon and the store only later ones, so the heap's head is
always the earliest entry of all.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["DueHeap", "SpillingDueIndex", "Entry", "SPILL_NS", "SPILL_WINDOW", "SPILL_MAX_ENTRIES"]

Entry = tuple[datetime, str, str]
"""(due time, namespace, subject)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

SPILL_NS = "d"
"""The store namespace of spilled entries: keys ``<µs, 20 digits> <namespace> <subject>`` sort by time."""
SPILL_WINDOW = timedelta(days=1)
"""How much event time the heap takes in at a time: a day of a province's due times is ≈1 % of its persons."""
SPILL_MAX_ENTRIES = 100_000
"""At most this many entries per window read back (a roster pushed in one day puts its follow-ups on one day)."""


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


class SpillStore(Protocol):
    """What :class:`SpillingDueIndex` needs of a task's store (``hub.processors.store.RocksBackend``)."""

    def get(self, ns: str, key: str) -> bytes | None: ...

    def put(self, ns: str, key: str, value: bytes) -> None: ...

    def delete(self, ns: str, key: str) -> None: ...

    def keys(self, ns: str) -> Iterator[str]: ...

    def count(self, ns: str) -> int: ...


class DueHeap:
    """Every pending entry in memory: a heap ordered by time, and a set against duplicates."""

    def __init__(self) -> None:
        # (µs key, time, namespace, subject): the integer first, so the heap compares in C; the time breaks
        # ties at full precision. ``_pending`` holds (time, namespace, subject).
        self._heap: list[tuple[int, datetime, str, str]] = []
        self._pending: set[Entry] = set()

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def in_memory(self) -> int:
        """Entries in the heap (a spilling index keeps the rest in its store)."""
        return len(self._heap)

    def push(self, entry: Entry) -> None:
        """Add an entry (a duplicate of a pending one is dropped)."""
        if entry not in self._pending:
            self._pending.add(entry)
            heapq.heappush(self._heap, (_us(entry[0]), entry[0], entry[1], entry[2]))

    def next_after(self, now: datetime) -> datetime | None:
        """The earliest pending time after ``now`` (entries at or before it are dropped: never fire the past)."""
        heap = self._heap
        while heap and heap[0][1] <= now:
            self._pending.discard(heapq.heappop(heap)[1:])
        return heap[0][1] if heap else None

    def pop_at(self, t: datetime) -> set[tuple[str, str]]:
        """Remove and return the ``(namespace, subject)`` of every entry at exactly ``t``."""
        due: set[tuple[str, str]] = set()
        heap = self._heap
        while heap and heap[0][1] == t:
            entry = heapq.heappop(heap)[1:]
            self._pending.discard(entry)
            due.add((entry[1], entry[2]))
        return due

    def clear(self) -> None:
        self._heap, self._pending = [], set()


class SpillingDueIndex(DueHeap):
    """Entries after the horizon in ``store`` (namespace ``d``), the rest in the heap.

    Invariant: the heap holds every entry at or before ``horizon_us``, the store only entries after it. The
    earliest spilled entry is known without reading the store (cached, kept on push), so asking for the next
    time costs no I/O. Entries come back only when the clock reaches the earliest of them: then the next
    ``window`` after it (at most ``max_entries``, plus the rest of the last instant: an instant fires whole)
    moves into the heap and the horizon moves there. Memory is thus the due times of about a day after the
    clock, however many persons have one later.
    """

    def __init__(self, store: SpillStore, window: timedelta | None = None, max_entries: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.window_us = (SPILL_WINDOW if window is None else window) // _MICROSECOND
        self.max_entries = SPILL_MAX_ENTRIES if max_entries is None else max_entries
        self.horizon_us = -1  # nothing read back yet: only times before 1970 would stay in memory
        self._first: tuple[int, datetime] | None = None
        self._first_known = False
        self.refills = 0
        """Windows read back from the store (tests prove the spilled path ran)."""

    def __len__(self) -> int:
        return len(self._heap) + self.store.count(SPILL_NS)

    def push(self, entry: Entry) -> None:
        us = _us(entry[0])
        if us <= self.horizon_us:
            super().push(entry)
            return
        # the same key for the same entry: a duplicate overwrites itself
        self.store.put(SPILL_NS, f"{us:020d} {entry[1]} {entry[2]}", entry[0].isoformat().encode())
        if self._first_known and (self._first is None or us < self._first[0]):
            self._first = (us, entry[0])

    def _first_spilled(self) -> tuple[int, datetime] | None:
        """(µs, time) of the earliest spilled entry, read from the store only after a refill."""
        if not self._first_known:
            self._first = None
            for key in self.store.keys(SPILL_NS):
                raw = self.store.get(SPILL_NS, key)
                if raw is not None:
                    self._first = (int(key[:20]), datetime.fromisoformat(raw.decode()))
                    break
            self._first_known = True
        return self._first

    def next_after(self, now: datetime) -> datetime | None:
        first = self._first_spilled()
        while first is not None and first[1] <= now:  # cannot happen (pushes are after the clock): drop them
            self._refill(_us(now))
            first = self._first_spilled()
        t = super().next_after(now)
        if first is not None and (t is None or first[1] < t):
            return first[1]
        return t

    def pop_at(self, t: datetime) -> set[tuple[str, str]]:
        first = self._first_spilled()
        if first is not None and first[0] <= _us(t):
            self._refill(_us(t))
        return super().pop_at(t)

    def _refill(self, at_us: int) -> None:
        """Move every spilled entry up to ``at_us`` into the heap, and the window after it (bounded)."""
        taken: list[tuple[str, int]] = []
        limit = max(self.horizon_us, at_us + self.window_us)
        for key in self.store.keys(SPILL_NS):
            us = int(key[:20])
            if us > limit:
                break
            if len(taken) >= self.max_entries and us > taken[-1][1] >= at_us:
                limit = taken[-1][1]
                break
            taken.append((key, us))
        self.horizon_us = max(self.horizon_us, limit)
        self.refills += 1
        for key, _ in taken:
            raw = self.store.get(SPILL_NS, key)
            self.store.delete(SPILL_NS, key)
            if raw is not None:
                _, ns, subject = key.split(" ", 2)
                super().push((datetime.fromisoformat(raw.decode()), ns, subject))
        self._first_known = False

    def clear(self) -> None:
        super().clear()
        for key in list(self.store.keys(SPILL_NS)):
            self.store.delete(SPILL_NS, key)
        self.horizon_us = -1
        self._first, self._first_known = None, True
