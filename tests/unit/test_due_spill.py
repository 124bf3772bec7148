"""A task on RocksDB keeps its indexes on disk and still gives exactly ``hub replay``'s outputs.

On ``rocksdb://`` a task keeps the due times after a horizon, its ``x:`` index and the bodies of its
recent-id segments in RocksDB, not in memory (issue 18: 10 M persons within 4 GB). Two checks:

* the spilling due index against a model (a plain set: the next time is its minimum after the clock, an
  instant pops every entry at it), on a real RocksDB, for any sequence of pushes and firings;
* a simulated county through RocksDB tasks with a spill window of minutes and a restore from the state
  records every few batches, against ``hub replay`` (memory, never restored): the same outputs, byte for
  byte, in the same order.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.policy.monitor import due as due_module
from hub.policy.monitor.due import SPILL_NS, SpillingDueIndex
from hub.processors import build_logic
from hub.processors.partitioning import partition_for
from hub.processors.person import decode_input
from hub.processors.replay import Replay, reference_merge
from hub.processors.store import RocksBackend
from hub.runtime import encode_input
from hub.simulate import Province, to_replay_lines
from hub.topics import INPUT_TOPICS, PARTITIONS

T0 = datetime(2025, 3, 1, 8, tzinfo=UTC)

ops = st.lists(st.one_of(
    st.tuples(st.just("push"), st.integers(0, 12), st.sampled_from(["person", "facility"]),
              st.sampled_from(["a", "b", "c d"])),
    st.tuples(st.just("fire"), st.integers(0, 6)),
), max_size=60)


@settings(max_examples=100, deadline=None)
@given(ops=ops, window=st.integers(1, 12), max_entries=st.integers(1, 4))
def test_the_spilling_index_fires_what_a_plain_set_would(tmp_path_factory: pytest.TempPathFactory, ops: list,
                                                         window: int, max_entries: int) -> None:
    store = RocksBackend(tmp_path_factory.mktemp("due") / "db")
    index = SpillingDueIndex(store, timedelta(minutes=window), max_entries)
    model: set[tuple[datetime, str, str]] = set()
    clock = T0
    try:
        for op in ops:
            if op[0] == "push":
                t = T0 + timedelta(minutes=op[1])
                if t > clock:  # the engine only indexes times after its clock
                    index.push((t, op[2], op[3]))
                    model.add((t, op[2], op[3]))
            else:  # the engine's advance_to: fire every instant up to the target, in order
                target = clock + timedelta(minutes=op[1])
                while True:
                    expected = min((e[0] for e in model if e[0] > clock), default=None)
                    assert index.next_after(clock) == expected
                    if expected is None or expected > target:
                        break
                    fired = {(e[1], e[2]) for e in model if e[0] == expected}
                    model -= {e for e in model if e[0] == expected}
                    assert index.pop_at(expected) == fired
                    clock = expected
                clock = max(clock, target)
                model = {e for e in model if e[0] > clock}
        assert len(index) >= len({e for e in model if e[0] > clock})
    finally:
        store.close()


def test_a_spilled_entry_keeps_its_exact_time_and_an_instant_fires_whole(tmp_path: Path) -> None:
    store = RocksBackend(tmp_path / "db")
    index = SpillingDueIndex(store, timedelta(seconds=1), max_entries=1)
    t = T0 + timedelta(days=30, microseconds=7)
    try:
        for subject in ("x", "y", "z"):  # one instant, three subjects: more than max_entries
            index.push((t, "person", subject))
        index.push((t + timedelta(microseconds=1), "person", "later"))
        assert store.count(SPILL_NS) == 4 and index.in_memory == 0
        assert index.next_after(T0) == t and index.refills == 0  # known without reading anything back
        assert index.pop_at(t) == {("person", "x"), ("person", "y"), ("person", "z")}
        assert index.in_memory == 0 and store.count(SPILL_NS) == 1  # max_entries: "later" stayed on disk
        assert index.next_after(t) == t + timedelta(microseconds=1)
        assert index.pop_at(t + timedelta(microseconds=1)) == {("person", "later")}
        assert index.refills == 2 and len(index) == 0
    finally:
        store.close()


def _county(persons: int, events: int) -> list[tuple[str, bytes, bytes]]:
    """A simulated county's inputs as the connectors write them (topic, key, Avro value), with one record in
    ten re-sent 200 records later (a connector's uncommitted batch sent again): across the restores, §8.2's
    remembered ids must come back from RocksDB for these to be dropped."""
    records = []
    for line in to_replay_lines(Province(seed=5, persons=persons).events(events)):
        obj = json.loads(line)
        if obj["topic"] in INPUT_TOPICS:
            key, value = encode_input(obj["topic"], obj["value"])
            records.append((obj["topic"], key, value))
    out = []
    for i, rec in enumerate(records):
        out.append(rec)
        if i >= 200 and i % 10 == 0:
            out.append(records[i - 200])
    return out


def _through_rocksdb_tasks(records: list, tmp: Path, batch: int, restore_every: int) -> list[tuple]:
    """The records through RocksDB tasks, each restored from its state records every ``restore_every`` batches."""
    logic = build_logic()
    per_task: dict[int, dict[str, list]] = {}
    offsets: dict[tuple[str, int], int] = {}
    for n, (topic, key, value) in enumerate(records):
        p = partition_for(key, PARTITIONS)
        o = offsets[(topic, p)] = offsets.get((topic, p), -1) + 1
        per_task.setdefault(p, {}).setdefault(topic, []).append(decode_input(topic, p, o, key, value, n))
    outputs: list[tuple] = []
    dbs = itertools.count()
    spilled = refills = 0
    for p in sorted(per_task):
        holder = {"task": logic.new_task(p, RocksBackend(tmp / f"db{next(dbs)}"))}
        log: list[tuple[bytes, bytes | None]] = []
        lists = [recs for _, recs in sorted(per_task[p].items())]
        merged = reference_merge(lists, lambda r, h=holder: logic.drop_duplicate(h["task"], r))
        for n in itertools.count(1):
            result = logic.process(holder["task"], itertools.islice(merged, batch), time.time())
            outputs += [(t, k, v) for t, k, v, _ in result.outputs]
            log += result.state.items()
            engine_due = holder["task"].engine.due
            spilled = max(spilled, engine_due.store.count(SPILL_NS))
            refills += engine_due.refills
            if result.applied == 0:
                break
            if n % restore_every == 0:
                holder["task"].close()
                holder["task"] = logic.restore_task(p, log, RocksBackend(tmp / f"db{next(dbs)}"))
        holder["task"].close()
    assert spilled and refills, "no due time was spilled and read back: the test would prove nothing"
    return outputs


def test_rocksdb_tasks_spilling_and_restored_give_hub_replays_outputs(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(due_module, "SPILL_WINDOW", timedelta(hours=6))
    monkeypatch.setattr(due_module, "SPILL_MAX_ENTRIES", 3)
    records = _county(persons=300, events=4000)
    reference = Replay(build_logic())
    for topic, key, value in records:
        reference.produce(topic, key, value)
    reference.run()
    expected = [(r["topic"], r["key"], r["value"]) for r in reference.outputs]
    kinds = {t for t, _, _ in expected}
    assert any("escalation" in t or "referral" in t for t in kinds), kinds  # due times fired
    got = _through_rocksdb_tasks(records, tmp_path, batch=50, restore_every=3)
    assert got == expected
