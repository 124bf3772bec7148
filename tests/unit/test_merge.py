"""policy-spec §8.1: the live merge (fed fetch by fetch) gives the offline reference order on any backlog.

``PartitionGroup.drain`` is what the worker runs: queues filled by fetches of any size, in any
interleaving of topics, a topic holding the merge while it is empty and not caught up.
``reference_merge`` is what ``hub replay`` runs: whole lists. They are written apart; on the same
backlog they must yield the same sequence, including where event times go backwards within a
topic-partition and where re-sent inputs sit in the queues.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.processors.merge import UNKNOWN_TIME, Fetched, PartitionGroup
from hub.processors.replay import reference_merge
from hub.topics import INPUT_TOPICS, MERGE_RANK


def rec(topic: str, offset: int, time_us: int, ident: bytes | None = None) -> Fetched:
    return Fetched(topic, 0, offset, b"k", b"v", None, time_us, MERGE_RANK[topic], ident=ident)


@st.composite
def backlogs(draw: st.DrawFn) -> dict[str, list[Fetched]]:
    topics = draw(st.lists(st.sampled_from(INPUT_TOPICS), min_size=1, max_size=5, unique=True))
    out: dict[str, list[Fetched]] = {}
    for topic in topics:
        times = draw(st.lists(st.one_of(st.integers(0, 40), st.just(UNKNOWN_TIME)), max_size=25))
        idents = draw(st.lists(st.sampled_from([None, b"a", b"b", b"c", b"d"]), min_size=len(times),
                               max_size=len(times)))
        out[topic] = [rec(topic, i, t, d) for i, (t, d) in enumerate(zip(times, idents, strict=True))]
    return out


class Applied:
    """A stand-in for the task state: an ident is a re-sent input once a record with it was applied."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.dropped: list[tuple[str, int]] = []

    def skip(self, r: Fetched) -> bool:
        if r.ident is not None and r.ident in self.seen:
            self.dropped.append((r.topic, r.offset))
            return True
        return False

    def apply(self, r: Fetched) -> tuple[str, int]:
        if r.ident is not None:
            self.seen.add(r.ident)
        return r.topic, r.offset


def reference(backlog: dict[str, list[Fetched]]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    state = Applied()
    lists = [list(v) for _, v in sorted(backlog.items())]
    order = [state.apply(r) for r in reference_merge(lists, state.skip)]
    return order, sorted(state.dropped)


def live(backlog: dict[str, list[Fetched]], seed: int, limit: int) -> tuple[list[tuple[str, int]], list]:
    """Feed the records in random fetch chunks, topics interleaved at random; drain after every fetch."""
    rng = random.Random(seed)
    group = PartitionGroup(INPUT_TOPICS)
    for t in INPUT_TOPICS:
        group.mark(t, not backlog.get(t))  # a topic with no records at all is caught up from the start
    pending = {t: [Fetched(**{f: getattr(r, f) for f in r.__slots__}) for r in v] for t, v in backlog.items()}
    state = Applied()
    order: list[tuple[str, int]] = []
    while any(pending.values()):
        t = rng.choice([t for t, v in pending.items() if v])
        n = rng.randint(1, 6)
        group.add(pending[t][:n])
        del pending[t][:n]
        group.mark(t, not pending[t])
        order += [state.apply(r) for r in group.drain(limit, state.skip)]
    while group.buffered():
        got = [state.apply(r) for r in group.drain(limit, state.skip)]
        assert got or not group.buffered(), "the merge holds although everything is fetched"
        order += got
    return order, sorted(state.dropped)


@settings(max_examples=400, deadline=None)
@given(backlogs(), st.integers(0, 2**32), st.sampled_from([1, 2, 3, 7, 1000]))
def test_the_live_merge_gives_the_reference_order_whatever_the_fetches(backlog, seed, limit) -> None:
    assert live(backlog, seed, limit) == reference(backlog)


def test_an_empty_topic_that_is_not_caught_up_holds_the_merge() -> None:
    group = PartitionGroup(INPUT_TOPICS)
    for t in INPUT_TOPICS:
        group.mark(t, True)
    enrol, disch = "insurance.enrollments.v1", "health.discharges.v1"
    group.add([rec(disch, 0, 20)])
    group.mark(enrol, False)  # the enrolment topic has records the consumer has not fetched yet
    assert list(group.drain(10, lambda r: False)) == []
    group.add([rec(enrol, 0, 10)])
    group.mark(enrol, True)
    assert [(r.topic, r.time_us) for r in group.drain(10, lambda r: False)] == [(enrol, 10), (disch, 20)]


def test_ties_go_by_topic_rank_then_offset() -> None:
    group = PartitionGroup(INPUT_TOPICS)
    for t in INPUT_TOPICS:
        group.mark(t, True)
    group.add([rec("department.referral-updates.v1", 0, 5), rec("health.discharges.v1", 3, 5),
               rec("revitalization.poverty-status.v1", 9, 5), rec("health.discharges.v1", 4, 5)])
    assert [(r.topic, r.offset) for r in group.drain(10, lambda r: False)] == [
        ("revitalization.poverty-status.v1", 9), ("health.discharges.v1", 3), ("health.discharges.v1", 4),
        ("department.referral-updates.v1", 0)]


def test_a_late_record_stays_behind_the_record_before_it_in_its_partition() -> None:
    group = PartitionGroup(INPUT_TOPICS)
    for t in INPUT_TOPICS:
        group.mark(t, True)
    a, b = "health.diagnoses.v1", "health.family-doctor.v1"
    group.add([rec(a, 0, 30), rec(a, 1, 1), rec(b, 0, 20)])
    assert [(r.topic, r.offset) for r in group.drain(10, lambda r: False)] == [(b, 0), (a, 0), (a, 1)]


def test_a_re_sent_input_at_a_head_never_takes_part_in_the_comparison() -> None:
    """X: [copy(t=7), x(t=3)], Y: [y(t=5)]: without the copy x goes first, so it must with it too."""
    x, y = "health.diagnoses.v1", "health.family-doctor.v1"
    state = Applied()
    state.seen.add(b"dup")
    group = PartitionGroup(INPUT_TOPICS)
    for t in INPUT_TOPICS:
        group.mark(t, True)
    group.add([rec(x, 0, 7, b"dup"), rec(x, 1, 3), rec(y, 0, 5)])
    assert [(r.topic, r.offset) for r in group.drain(10, state.skip)] == [(x, 1), (y, 0)]
    assert state.dropped == [(x, 0)]
