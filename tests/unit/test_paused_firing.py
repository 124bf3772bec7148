"""1 January in pieces: a stream task judges a paused instant's subjects over several transactions.

At 1 January every person a task has seen is judged at one instant (policy-spec §5.1). A worker with a
province's persons cannot hold them all, changed, in one batch, so an advance — the wall clock's, or the one
a record taking the clock into a new year makes — judges at most ``fire_limit`` subjects per batch and the
next batches go on before any record is taken, across restores too. What must hold: the outputs and the
final state are exactly those of one uninterrupted advance (the reference here: the same task logic without
a limit, as ``hub replay`` runs it), including the records that wait for the firing (applied after it, at
the clock the advance was asked to reach) and a refused record dated in the new year (no advance at all).
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.processors import build_logic
from hub.processors.dedupe import SEGMENT_PREFIX
from hub.processors.partitioning import partition_for
from hub.processors.person import decode_input
from hub.processors.referral import open_referral_counts
from hub.processors.replay import reference_merge
from hub.processors.store import MemoryBackend, RocksBackend
from hub.runtime import encode_input
from hub.simulate import Province, to_replay_lines
from hub.timeutil import SHANGHAI
from hub.topics import INPUT_TOPICS, PARTITIONS

NEW_YEAR = datetime(2026, 1, 1, tzinfo=SHANGHAI)
WALL = NEW_YEAR + timedelta(days=5)  # the tick's target: 1 January and five days of due times after it
NOW = 1_700_000_000.0  # the processing time handed to the logic (settlement latency metrics only)


def _county() -> dict[int, tuple[dict[str, list], dict[str, list]]]:
    """Per task, the inputs before the new year and those from it on (decoded, offsets continuous).

    The simulated county enrols everyone for the next year before it begins; here about half miss the new
    year's enrolment, so 1 January raises flags and referrals for them — outputs that pieces must not lose."""
    logic = build_logic()
    before: dict[int, dict[str, list]] = {}
    after: dict[int, dict[str, list]] = {}
    offsets: dict[tuple[str, int], int] = {}
    reversal: dict | None = None
    person_of: dict[int, str] = {}

    def add(n: int, topic: str, v: dict, side: dict[int, dict[str, list]]) -> None:
        key, value = encode_input(topic, v)
        p = partition_for(key, PARTITIONS)
        o = offsets[(topic, p)] = offsets.get((topic, p), -1) + 1
        side.setdefault(p, {}).setdefault(topic, []).append(
            decode_input(topic, p, o, key, value, n, logic.schema_store))
        if v.get("person_token"):
            person_of.setdefault(p, v["person_token"])

    for n, line in enumerate(to_replay_lines(Province(seed=5, persons=300).events(3200))):
        obj = json.loads(line)
        topic, v = obj["topic"], obj["value"]
        if topic not in INPUT_TOPICS:
            continue
        if topic == "health.discharges.v1" and reversal is None:
            reversal = v  # a discharge's fields, to make a reversal of
        missed = v.get("year") == NEW_YEAR.year and int(v["person_token"][-1], 16) % 2
        if topic == "insurance.enrollments.v1" and missed:
            continue  # about half the county not enrolled for the new year: judged uninsured at 1 January
        new_year = datetime.fromisoformat(v["occurred_at"]) >= NEW_YEAR
        if new_year and not after:
            # Each task's first record of the new year: a reversal of a discharge nobody settled. Refused before
            # the engine sees it, it must not move the clock — nor start judging 1 January (its dead letter
            # carries the clock it failed at); the records after it are applied in the old year's evening.
            assert reversal is not None
            for p in sorted(person_of):
                at = (NEW_YEAR + timedelta(hours=9)).isoformat()
                add(n, "health.discharges.v1", dict(reversal, event_id=f"unknown-reversal-{p}", occurred_at=at,
                                                    person_token=person_of[p], reverses="NO-SUCH-DISCHARGE"), before)
        add(n, topic, v, after if new_year else before)
    return {p: (before.get(p, {}), after.get(p, {})) for p in range(PARTITIONS)}


def _lists(by_topic: dict[str, list]) -> list[list]:
    return [recs for _, recs in sorted(by_topic.items())]


def _reference(logic: Any, p: int, before: dict, after: dict) -> tuple[list, dict]:
    """One uninterrupted pass: the records before the new year, the wall clock's advance, the rest."""
    task = logic.new_task(p, MemoryBackend())
    outputs: list = []
    state: dict = {}
    for step in ("before", "tick", "after"):
        if step == "tick":
            result = logic.tick(task, WALL.timestamp())
        else:
            lists = _lists(before if step == "before" else after)
            result = logic.process(task, reference_merge(lists, lambda r: logic.drop_duplicate(task, r)), NOW)
        outputs += [(t, k, v) for t, k, v, _ in result.outputs]
        state.update(result.state)
    assert task.engine.firing is None
    return outputs, state


def _in_pieces(logic: Any, p: int, before: dict, after: dict, backend: Any, limit: int,
               restore_every: int) -> tuple[list, dict, int, int]:
    """The same with the advance limited to ``limit`` subjects a batch, batches of 20 records, and the task
    restored from its state records every ``restore_every`` batches. Returns outputs, state, paused batches and
    batches that ended with a record waiting for the firing (a record took the clock into a new year)."""
    holder = {"task": logic.new_task(p, backend())}
    outputs: list = []
    log: list[tuple[bytes, bytes | None]] = []
    paused = waiting = 0
    batches = itertools.count(1)

    def commit(result: Any) -> None:
        nonlocal paused, waiting
        outputs.extend((t, k, v) for t, k, v, _ in result.outputs)
        log.extend(result.state.items())
        paused += holder["task"].engine.firing is not None
        waiting += holder["task"].held is not None
        if next(batches) % restore_every == 0:  # a crash after this batch's transaction
            held = holder["task"].held
            holder["task"].close()
            holder["task"] = logic.restore_task(p, log, backend())
            holder["task"].held = held  # what a worker fetches again first: it was not applied

    for by_topic in (before, after):
        merged = reference_merge(_lists(by_topic), lambda r: logic.drop_duplicate(holder["task"], r))
        while True:
            result = logic.process(holder["task"], itertools.islice(merged, 20), NOW, fire_limit=limit)
            commit(result)
            if result.applied == 0 and holder["task"].held is None and holder["task"].engine.firing is None:
                break
        if by_topic is before:
            commit(logic.tick(holder["task"], WALL.timestamp(), fire_limit=limit))
    holder["task"].close()
    return outputs, dict(log), paused, waiting


def _without_segments(state: dict[bytes, bytes | None]) -> dict[bytes, bytes | None]:
    """The state's last values, tombstones as absence (a key written and deleted between two flushes of one
    run need not appear at all in another's)."""
    return {k: v for k, v in state.items() if not k.startswith(SEGMENT_PREFIX) and v is not None}


def _remembered(logic: Any, p: int, state: dict[bytes, bytes | None]) -> dict[bytes, int]:
    task = logic.restore_task(p, [(k, v) for k, v in state.items() if v is not None], MemoryBackend())
    return dict(task.recent.seen)


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_a_new_year_judged_in_pieces_and_restored_gives_one_advances_outputs(store: str, tmp_path: Path) -> None:
    logic = build_logic()
    dbs = itertools.count()

    def backend() -> Any:
        return MemoryBackend() if store == "memory" else RocksBackend(tmp_path / f"db{next(dbs)}")

    county = _county()
    total_paused = total_waiting = 0
    flags = 0
    for p, (before, after) in county.items():
        expected, expected_state = _reference(logic, p, before, after)
        got, state, paused, waiting = _in_pieces(logic, p, before, after, backend, limit=7, restore_every=2)
        total_waiting += waiting
        # By value, not by position: a discharge that crosses into the new year is settled before the engine
        # applies it, so one advance puts its settlement before the new year's outputs, the pieces after them
        # (§8.5 compares outputs by event id; their order across a batch is no part of the contract).
        assert sorted(got) == sorted(expected), f"task {p}: the outputs differ"
        # Recent-id segments follow batch boundaries (one per flush): compare the ids they remember instead.
        assert _without_segments(state) == _without_segments(expected_state), f"task {p}: the final state differs"
        assert _remembered(logic, p, state) == _remembered(logic, p, expected_state)
        total_paused += paused
        year = str(NEW_YEAR.year).encode()
        flags += sum(1 for t, _, v in expected if "flag" in t and b"uninsured" in v and year in v)
    assert total_paused >= 8, "the new year was not judged in pieces: the test would prove nothing"
    assert total_waiting >= 4, "no record waited for a firing in pieces: the records' path was not taken"
    assert flags, "nobody was judged uninsured at the new year: the firing did nothing to compare"


def _gauge_through(logic: Any, p: int, before: dict, after: dict, backend: Any) -> int:
    """One task through the county with a new year in pieces, restored every third batch; after every
    batch the gauge is compared with the count over the subjects. Returns the open referrals compared."""
    holder = {"task": logic.new_task(p, backend())}
    log: list[tuple[bytes, bytes | None]] = []
    batches = itertools.count(1)
    checked = 0

    def check(result: Any) -> None:
        nonlocal checked
        log.extend(result.state.items())
        task = holder["task"]
        clock = task.engine.clock
        routes = logic.timeline.lookup(clock.astimezone(SHANGHAI).date())[0].routes
        subjects = itertools.chain((task.persons[k] for k in task.persons),
                                   (task.facilities[k] for k in task.facilities))  # a clinic's flag refers too
        want = open_referral_counts(subjects, routes, clock)
        assert dict(task.open_referrals(routes)) == dict(want), clock
        checked += sum(want.values())
        if next(batches) % 3 == 0:
            held = holder["task"].held
            task.close()
            holder["task"] = logic.restore_task(p, log, backend())
            holder["task"].held = held  # what a worker fetches again first: it was not applied

    for by_topic in (before, after):
        merged = reference_merge(_lists(by_topic), lambda r: logic.drop_duplicate(holder["task"], r))
        while True:
            result = logic.process(holder["task"], itertools.islice(merged, 15), NOW, fire_limit=5)
            check(result)
            if result.applied == 0 and holder["task"].held is None and holder["task"].engine.firing is None:
                break
        if by_topic is before:
            check(logic.tick(holder["task"], WALL.timestamp(), fire_limit=5))
    holder["task"].close()
    return checked


def test_the_open_referral_gauge_counts_what_the_persons_hold(tmp_path: Path) -> None:
    """The gauge is kept as counts beside the index (a province's 1 January would otherwise hold a list per
    person): after every batch, and across restores, it must equal the count over the subjects' own states."""
    logic = build_logic()
    dbs = itertools.count()

    def backend() -> Any:
        return RocksBackend(tmp_path / f"db{next(dbs)}")

    checked = sum(_gauge_through(logic, p, before, after, backend) for p, (before, after) in _county().items())
    assert checked, "no referral was ever open: the gauge was compared on nothing"


def test_a_wall_clock_tick_never_overtakes_a_record_waiting_for_the_firing() -> None:
    """A worker ticks whenever it is idle; a record waiting for 1 January's pieces must still come first."""
    logic = build_logic()
    p, (before, _after) = next((p, sides) for p, sides in sorted(_county().items()) if sides[0])
    expected, _ = _reference(logic, p, before, {})
    task = logic.new_task(p, MemoryBackend())
    merged = reference_merge(_lists(before), lambda r: logic.drop_duplicate(task, r))
    outputs: list = []
    ticked_while_waiting = 0
    while True:
        result = logic.process(task, itertools.islice(merged, 20), NOW, fire_limit=1)
        outputs += [(t, k, v) for t, k, v, _ in result.outputs]
        if task.held is not None:  # idle as far as the merge knows: the wall clock ticks
            ticked_while_waiting += 1
            outputs += [(t, k, v) for t, k, v, _ in logic.tick(task, WALL.timestamp(), fire_limit=1).outputs]
        elif result.applied == 0 and task.engine.firing is None:
            break
    outputs += [(t, k, v) for t, k, v, _ in logic.tick(task, WALL.timestamp()).outputs]
    assert ticked_while_waiting, "no record waited for a firing: the test would prove nothing"
    assert sorted(outputs) == sorted(expected)
