"""Re-sent inputs, recognised by ``event_id`` with bounded memory (policy-spec §8.2).

Connectors and HTTP clients deliver at least once: after a crash they send the uncommitted batch
again, with the same ``event_id`` s, at new offsets. Re-applying such an input would not be harmless —
a follow-up re-sent later is applied *at the clock* and would suppress a due ``followup_overdue``; a
re-sent status re-judges every rule. So a task remembers the ids it applied, per subject, and drops an
input whose ``(subject, event_id)`` it has seen: no output, no state change, the clock does not move.

What is remembered (the spec's floor, exactly): every id among the last 10,000 inputs applied from
the same topic-partition, and every id whose event time is at most 30 days before the task's clock.
An id outside *both* windows is treated as forgotten *whether or not it is still in memory*, so the
answer never depends on when memory happened to be freed (batch sizes, restarts): only on the inputs.

Memory and durability: ids are kept as 16-byte digests of ``subject \\0 event_id`` in segments, one
segment per topic and flush; a flush returns the new segments as state records (``r:<topic>:<seq>``,
binary) and tombstones for segments whose ids are all forgotten. A restored task reads the segments
back, so recognition survives a crash.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.processors.store import Backend

__all__ = ["RecentIds", "StoredIds", "WINDOW_INPUTS", "WINDOW_US", "SEGMENT_PREFIX", "digest"]

WINDOW_INPUTS = 10_000
WINDOW_US = 30 * 86_400 * 1_000_000
SEGMENT_PREFIX = b"r:"
BODY_NS = "s"
"""The store namespace of flushed segments' bodies (``RecentIds(bodies=…)``), keyed by the segment's key."""
_ENTRY = struct.Struct(">16sqq")  # digest, sequence number in its topic-partition, event time (µs)


def digest(subject: str, event_id: str) -> bytes:
    """The remembered form of ``(subject, event_id)``: 16 bytes, collisions negligible."""
    return hashlib.blake2b(subject.encode() + b"\0" + event_id.encode(), digest_size=16).digest()


_TIME_BITS = 56
_TIME_OFFSET = 1 << 55
_SEQ_BITS = 48


def _packed(topic_no: int, seq: int, time_us: int) -> int:
    """One int per remembered id (topic, sequence number, event time): a tuple of three costs ≈3× more."""
    return (((topic_no << _SEQ_BITS) | seq) << _TIME_BITS) | (time_us + _TIME_OFFSET)


def _unpacked(v: int) -> tuple[int, int, int]:
    time_us = (v & ((1 << _TIME_BITS) - 1)) - _TIME_OFFSET
    rest = v >> _TIME_BITS
    return rest >> _SEQ_BITS, rest & ((1 << _SEQ_BITS) - 1), time_us


@dataclass(slots=True)
class _Segment:
    topic: str
    first_seq: int
    entries: bytearray = field(default_factory=bytearray)  # packed _ENTRY records
    last_seq: int = -1
    max_time: int = -(2**62)
    stored: bool = False  # the body is in the backend (namespace ``s``), not in ``entries``

    def key(self) -> bytes:
        return SEGMENT_PREFIX + f"{self.topic}:{self.first_seq}".encode()


class StoredIds(MutableMapping[bytes, int]):
    """The remembered ids in a task's store backend (``HUB_STORE=rocksdb://``), not in memory.

    A province's roster pushed in one day is millions of ids to remember for 30 days: on RocksDB they cost
    disk, not memory. (The backend is rebuilt from the state topic at every restore, as the subjects are.)
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def __getitem__(self, key: bytes) -> int:
        raw = self.backend.get("r", key.hex())
        if raw is None:
            raise KeyError(key)
        return int.from_bytes(raw, "big")

    def __setitem__(self, key: bytes, value: int) -> None:
        self.backend.put("r", key.hex(), value.to_bytes(15, "big"))

    def __delitem__(self, key: bytes) -> None:
        self.backend.delete("r", key.hex())

    def __iter__(self) -> Iterator[bytes]:
        return (bytes.fromhex(k) for k in self.backend.keys("r"))

    def __len__(self) -> int:
        return self.backend.count("r")


class RecentIds:
    """The ids one task applied recently, per input topic (this task's partition of it)."""

    def __init__(self, seen: MutableMapping[bytes, int] | None = None, bodies: Backend | None = None) -> None:
        self.seen: MutableMapping[bytes, int] = {} if seen is None else seen
        """digest -> packed (topic number, seq, event time µs): a dict, or :class:`StoredIds`."""
        self.bodies = bodies
        """A store backend keeping the bodies of flushed segments (RocksDB: 32 bytes per id off the heap), or
        None to keep them in memory. Only a segment's range and times stay in memory either way."""
        self.counts: dict[str, int] = {}  # inputs applied from each topic (sequence numbers given out)
        self._topics: list[str] = []
        self._topic_no: dict[str, int] = {}
        self._segments: dict[str, deque[_Segment]] = {}
        self._open: dict[str, _Segment] = {}

    def __len__(self) -> int:
        return len(self.seen)

    def _no(self, topic: str) -> int:
        no = self._topic_no.get(topic)
        if no is None:
            no = self._topic_no[topic] = len(self._topics)
            self._topics.append(topic)
        return no

    def _forgotten(self, topic: str, seq: int, time_us: int, clock_us: int) -> bool:
        return self.counts.get(topic, 0) - seq > WINDOW_INPUTS and time_us < clock_us - WINDOW_US

    def is_duplicate(self, key: bytes, clock_us: int) -> bool:
        """Whether ``key`` was applied before and is still remembered at ``clock_us``."""
        entry = self.seen.get(key)
        if entry is None:
            return False
        no, seq, time_us = _unpacked(entry)
        return not self._forgotten(self._topics[no], seq, time_us, clock_us)

    def add(self, topic: str, key: bytes, time_us: int) -> None:
        """Remember an applied input of ``topic`` (call after :meth:`is_duplicate` said no)."""
        seq = self.counts.get(topic, 0)
        self.counts[topic] = seq + 1
        self.seen[key] = _packed(self._no(topic), seq, time_us)
        seg = self._open.get(topic)
        if seg is None:
            seg = self._open[topic] = _Segment(topic, seq)
        seg.entries += _ENTRY.pack(key, seq, time_us)
        seg.last_seq = seq
        seg.max_time = max(seg.max_time, time_us)

    def flush(self, clock_us: int | None) -> dict[bytes, bytes | None]:
        """State records: the segments opened since the last flush, and tombstones of forgotten ones."""
        out: dict[bytes, bytes | None] = {}
        for topic, seg in self._open.items():
            body = out[seg.key()] = bytes(seg.entries)
            if self.bodies is not None:
                self.bodies.put(BODY_NS, seg.key().decode(), body)
                seg.entries, seg.stored = bytearray(), True
            self._segments.setdefault(topic, deque()).append(seg)
        self._open.clear()
        if clock_us is not None:
            for segments in self._segments.values():
                while len(segments) > 1 and self._forgotten(segments[0].topic, segments[0].last_seq,
                                                            segments[0].max_time, clock_us):
                    seg = segments.popleft()
                    no = self._no(seg.topic)
                    for key, seq, t in _ENTRY.iter_unpack(self._body(seg)):
                        if self.seen.get(key) == _packed(no, seq, t):
                            del self.seen[key]
                    if seg.stored:
                        self.bodies.delete(BODY_NS, seg.key().decode())
                    out[seg.key()] = None
        return out

    def _body(self, seg: _Segment) -> bytes | bytearray:
        if not seg.stored:
            return seg.entries
        body = self.bodies.get(BODY_NS, seg.key().decode())
        return b"" if body is None else body

    def restore(self, key: bytes, value: bytes) -> None:
        """Read back one segment record (any order; call :meth:`restored` once all are read).

        With ``bodies``, the body is expected there already (the restore streams segments into the backend,
        so a partition's millions of ids never sit in memory at once).
        """
        topic, _, first = key[len(SEGMENT_PREFIX):].decode().rpartition(":")
        seg = _Segment(topic, int(first))
        if self.bodies is None:
            seg.entries = bytearray(value)
        else:
            seg.stored = True
        for _, seq, t in _ENTRY.iter_unpack(value):
            seg.last_seq = max(seg.last_seq, seq)
            seg.max_time = max(seg.max_time, t)
        self._segments.setdefault(topic, deque()).append(seg)

    def restored(self, counts: dict[str, int], clock_us: int | None = None) -> None:
        """Finish a restore: order segments, rebuild the index, set the per-topic counts.

        An id can sit in two segments: applied, forgotten (both windows passed), applied again — from another
        topic, perhaps — before its first segment was dropped. The live index holds the later entry; a
        restore must too, or the id would look forgotten. Forgetting never reverses (counts and the clock
        only grow), so the later entry is the one not forgotten at the task's ``clock_us``; within a topic,
        the one with the higher sequence number.
        """
        self.counts = dict(counts)
        for topic, segments in self._segments.items():
            ordered = sorted(segments, key=lambda s: s.first_seq)
            self._segments[topic] = deque(ordered)
            if ordered:
                self.counts[topic] = max(self.counts.get(topic, 0), ordered[-1].last_seq + 1)
        self.seen.clear()
        for topic, segments in self._segments.items():
            no = self._no(topic)
            for seg in segments:
                for k, seq, t in _ENTRY.iter_unpack(self._body(seg)):
                    entry = self.seen.get(k)
                    if entry is not None:
                        other, other_seq, other_t = _unpacked(entry)
                        if other == no and other_seq > seq:
                            continue  # a later application from the same topic is already there
                        if other != no and clock_us is not None and not self._forgotten(
                                self._topics[other], other_seq, other_t, clock_us):
                            continue  # the other topic's entry is the one still remembered: the later one
                    self.seen[k] = _packed(no, seq, t)
