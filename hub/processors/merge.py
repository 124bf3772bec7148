"""The merge by event time of one task's input topic-partitions (policy-spec §8.1).

Why the task merges for itself: one consumer over ten topics receives them in whatever order its
fetches return — a pre-produced backlog arrives topic by topic, not interleaved by time
(broker-notes.md) — so a discharge could be applied before the enrolment that names its insured
region. Kafka Streams solves the same problem with ``PartitionGroup``: one buffered queue per
topic-partition, and the record applied next is the smallest head by timestamp. This is that, with
the hub's own rules:

* the key is the event's ``occurred_at`` (never the Kafka record timestamp), then the topic's rank
  (:data:`hub.topics.MERGE_RANK`), then the offset;
* offset order within a topic-partition is never changed (a late record is applied after the one
  before it, at the clock, §5.1);
* a topic-partition whose queue is empty holds the whole merge back unless it is *caught up* (the
  consumer has reached its end offset): a backlog is merged whole, never raced; once a partition is
  caught up, the others go on without it;
* a re-sent input (§8.2: its id was applied already) is dropped as soon as it heads its queue, so it
  never takes part in the comparison: re-sent batches cannot change the order of the other records,
  even where a topic-partition's event times go backwards.

The shell decides "caught up" (it knows positions and end offsets) and calls :meth:`mark`; this
module is pure and deterministic, so it is tested without a broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hub.topics import MERGE_RANK

__all__ = ["Fetched", "PartitionGroup", "UNKNOWN_TIME"]

UNKNOWN_TIME = -(2**62)
"""Merge time of a record whose event time cannot be read (undecodable): it goes as soon as it is
at the head of its queue, so it neither holds nor reorders anything (it only becomes a dead letter)."""


@dataclass(slots=True)
class Fetched:
    """One consumed input record, decoded once when it is fetched.

    ``time_us`` is the event time in µs since the epoch (``UNKNOWN_TIME`` when undecodable);
    ``value`` the decoded Avro record and ``schema`` its full name, or ``error`` why decoding failed.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes | None
    timestamp_ms: int | None
    time_us: int
    rank: int
    schema: str | None = None
    value: dict[str, Any] | None = None
    error: str | None = None
    ident: bytes | None = None
    """§8.2 identity (digest of subject and event id), set by the rules; None: cannot be a re-sent input."""
    checked: bool = False
    """Already found not to be a re-sent input while heading its queue."""

    def merge_key(self) -> tuple[int, int, int]:
        return self.time_us, self.rank, self.offset


class PartitionGroup:
    """One task's inputs: a FIFO queue per topic, and the merge that pops them in §8.1 order."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.queues: dict[str, deque[Fetched]] = {t: deque() for t in topics}
        self.caught_up: dict[str, bool] = dict.fromkeys(self.queues, False)
        unknown = [t for t in self.queues if t not in MERGE_RANK]
        if unknown:
            raise ValueError(f"no merge rank for topic(s) {unknown} (hub.topics.MERGE_RANK)")

    def add(self, records: Iterable[Fetched]) -> None:
        """Append fetched records (each to its topic's queue, in offset order)."""
        for rec in records:
            self.queues[rec.topic].append(rec)

    def mark(self, topic: str, caught_up: bool) -> None:
        """Whether the consumer has reached the end offset of ``topic`` (this task's partition)."""
        self.caught_up[topic] = caught_up

    def buffered(self, topic: str | None = None) -> int:
        if topic is not None:
            return len(self.queues[topic])
        return sum(len(q) for q in self.queues.values())

    def holding(self) -> list[str]:
        """Topics that hold the merge back: nothing buffered and not yet caught up."""
        return [t for t, q in self.queues.items() if not q and not self.caught_up[t]]

    def idle(self) -> bool:
        """Nothing buffered and every topic caught up: the task has applied all there is."""
        return all(not q and self.caught_up[t] for t, q in self.queues.items())

    def clear(self) -> None:
        """Drop every buffered record (the task is suspended; its consumer positions are reset)."""
        for q in self.queues.values():
            q.clear()
        for t in self.caught_up:
            self.caught_up[t] = False

    def drain(self, limit: int, skip: Callable[[Fetched], bool]) -> Iterator[Fetched]:
        """Yield up to ``limit`` records in merge order; stop where an empty, not caught-up queue holds.

        ``skip(record)`` says whether a record heading its queue is a re-sent input (and consumes it if so).
        The caller applies each yielded record before asking for the next, so ``skip`` always sees the
        state after everything before it; a head is re-examined when a record with its identity was just
        yielded (the same id on two topics).
        """
        queues, caught_up = self.queues, self.caught_up
        n = 0
        while n < limit:
            best: deque[Fetched] | None = None
            best_key: tuple[int, int, int] | None = None
            for topic, q in queues.items():
                while q:
                    head = q[0]
                    if head.checked:
                        break
                    if not skip(head):
                        head.checked = True
                        break
                    q.popleft()
                if not q:
                    if not caught_up[topic]:
                        return  # its next record may be the smallest: wait for the fetch
                    continue
                key = (q[0].time_us, q[0].rank, q[0].offset)
                if best_key is None or key < best_key:
                    best, best_key = q, key
            if best is None:
                return
            rec = best.popleft()
            if rec.ident is not None:  # once it is applied, a head with the same id is a re-sent input
                for q in queues.values():
                    if q and q[0].ident == rec.ident:
                        q[0].checked = False
            n += 1
            yield rec
