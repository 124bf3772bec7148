"""policy-spec §8.2: re-sent inputs are recognised within the spec's two windows, across restarts.

The windows: every id among the last 10,000 inputs of its topic-partition, and every id whose event
time is at most 30 days before the clock. Checked against a model that keeps everything and applies
the spec's sentence literally; memory is freed (segments tombstoned) without ever changing an answer,
and a task restored from its flushed segments answers as the one that wrote them.
"""

from __future__ import annotations

from collections.abc import Callable
from unittest.mock import patch

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.processors import dedupe
from hub.processors.dedupe import WINDOW_INPUTS, WINDOW_US, RecentIds, StoredIds, digest
from hub.processors.store import MemoryBackend

DAY = 86_400 * 1_000_000
T0 = 1_700_000_000 * 1_000_000


class Model:
    """Every applied input, and the spec's sentence."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, bytes, int, int]] = []  # topic, key, seq, time
        self.counts: dict[str, int] = {}

    def add(self, topic: str, key: bytes, time_us: int) -> None:
        seq = self.counts.get(topic, 0)
        self.counts[topic] = seq + 1
        self.applied.append((topic, key, seq, time_us))

    def must_recognise(self, key: bytes, clock: int) -> bool:
        return any(k == key and (self.counts[t] - s <= dedupe.WINDOW_INPUTS or time >= clock - WINDOW_US)
                   for t, k, s, time in self.applied)


def restored(ids: RecentIds, flushed: dict[bytes, bytes | None], clock_us: int | None = None) -> RecentIds:
    copy = RecentIds(StoredIds(MemoryBackend()) if isinstance(ids.seen, StoredIds) else None)
    for key, value in flushed.items():
        if value is not None:
            copy.restore(key, value)
    copy.restored(dict(ids.counts), clock_us)
    return copy


@settings(max_examples=60, deadline=None)
# found by Hypothesis: e2 applied from b, forgotten, applied again from a; a restore must keep a's entry
@example(ops=[("a", 0, 0)] * 10 + [("a", 0, 31), ("b", 2, 0), ("b", 1, 0)] + [("b", n, 0) for n in range(3, 9)]
         + [("a", 2, 0)], flush_every=2)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 40), st.integers(0, 90)), max_size=400),
       st.integers(1, 50))
def test_recognition_follows_the_two_windows_and_survives_a_restore(ops, flush_every) -> None:
    """A count window of 7 stands in for 10,000 (the same arithmetic), so forgetting happens here."""
    with patch.object(dedupe, "WINDOW_INPUTS", 7):
        check_windows(ops, flush_every, lambda: RecentIds())
        check_windows(ops, flush_every, lambda: RecentIds(StoredIds(MemoryBackend())))  # as on RocksDB


def check_windows(ops: list[tuple[str, int, int]], flush_every: int, make: Callable[[], RecentIds]) -> None:
    ids, model = make(), Model()
    store: dict[bytes, bytes | None] = {}
    clock = T0
    for i, (topic, n, day) in enumerate(ops):
        t = T0 + day * DAY
        clock = max(clock, t)
        key = digest("p_1", f"e{n}")
        # what the spec requires is recognised; what it allows to forget may be forgotten only then
        if model.must_recognise(key, clock):
            assert ids.is_duplicate(key, clock)
        if not ids.is_duplicate(key, clock):
            ids.add(topic, key, t)
            model.add(topic, key, t)
        if i % flush_every == 0:
            for k, v in ids.flush(clock).items():
                if v is None:
                    store.pop(k, None)
                else:
                    store[k] = v
    for k, v in ids.flush(clock).items():
        store[k] = v
    copy = restored(ids, {k: v for k, v in store.items() if v is not None}, clock)
    for n in range(41):
        key = digest("p_1", f"e{n}")
        assert copy.is_duplicate(key, clock) == ids.is_duplicate(key, clock)


def test_an_id_is_forgotten_only_outside_both_windows() -> None:
    ids = RecentIds()
    old = digest("p_1", "old")
    ids.add("t", old, T0)
    for i in range(WINDOW_INPUTS - 1):
        ids.add("t", digest("p_1", f"n{i}"), T0)
    assert ids.is_duplicate(old, T0 + 31 * DAY)  # it is the oldest of the last 10,000 inputs
    ids.add("t", digest("p_1", "one more"), T0)
    assert ids.is_duplicate(old, T0 + 30 * DAY)  # outside the count window, inside 30 days
    assert not ids.is_duplicate(old, T0 + 30 * DAY + 1)  # outside both
    flushed = ids.flush(T0 + 31 * DAY)
    assert len(ids) == WINDOW_INPUTS + 1  # one segment: nothing can be freed while its newest ids are remembered
    assert all(v is not None for v in flushed.values())


def test_segments_whose_ids_are_all_forgotten_are_deleted_from_the_state() -> None:
    ids = RecentIds()
    ids.add("t", digest("p_1", "old"), T0)
    first = ids.flush(T0)
    for i in range(WINDOW_INPUTS + 5):
        ids.add("t", digest("p_1", f"n{i}"), T0 + 40 * DAY)
    out = ids.flush(T0 + 40 * DAY)
    (old_key,) = first
    assert out[old_key] is None
    assert not ids.is_duplicate(digest("p_1", "old"), T0 + 40 * DAY)
