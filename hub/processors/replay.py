"""``hub replay``: the reference run of policy-spec §8 — inputs in, every output the stream must give.

§8.5 defines the live stream's outputs as those of ``hub replay`` on the same records, and "``hub replay``
applies 8.1–8.4 to its file as if each line had been produced, in line order, to its topic". So this is
that, literally and offline, with no broker and no worker in between:

1. each line is encoded as its topic's Avro record (what a producer would send; a line that cannot be
   is rejected to the dead letters, its bytes encrypted with the edge key, as at any edge), keyed by its
   subject and placed on ``murmur2(key) mod partitions`` at the next offset of that topic-partition;
2. per task (partition *p* of every input topic), the topic-partitions are merged by event time over whole
   lists (:func:`reference_merge`) — written apart from the live worker's incremental
   :class:`~hub.processors.merge.PartitionGroup`, which must agree with it on any backlog;
3. the merged records go through the same pure rule code as the live worker
   (:class:`~hub.processors.person.PersonLogic`, which also drops re-sent ids, §8.2), on event time only.

Because nothing here depends on fetches, batches or timing, a replay is reproducible to the byte (edge
dead letters aside: their encryption nonce is random) and takes seconds, not a broker's start-up.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from hub.processors.merge import Fetched
from hub.processors.partitioning import partition_for
from hub.processors.person import BatchResult, PersonLogic, decode_input
from hub.topics import DEAD_LETTERS, INPUT_TOPICS, PARTITIONS

__all__ = ["Replay", "replay_file"]

BATCH = 5_000
"""Records per ``process`` call: the rules give the same outputs for any batching; this bounds memory."""


def reference_merge(lists: list[list[Fetched]], skip: Callable[[Fetched], bool]) -> Iterator[Fetched]:
    """§8.1 over complete topic-partitions: the smallest (event time, topic rank, offset) head next.

    A head that ``skip`` finds to be a re-sent input (§8.2) is dropped before any comparison; heads are
    examined again when a record with the same identity was just yielded (and applied by the caller).
    """
    idx = [0] * len(lists)

    def head(i: int) -> Fetched | None:
        lst = lists[i]
        while idx[i] < len(lst) and skip(lst[idx[i]]):
            idx[i] += 1
        return lst[idx[i]] if idx[i] < len(lst) else None

    heads = [head(i) for i in range(len(lists))]
    while True:
        live = [(h.time_us, h.rank, h.offset, i) for i, h in enumerate(heads) if h is not None]
        if not live:
            return
        i = min(live)[3]
        rec = heads[i]
        assert rec is not None
        idx[i] += 1
        yield rec
        heads[i] = head(i)
        for j, h in enumerate(heads):
            if h is not None and rec.ident is not None and h.ident == rec.ident and skip(h):
                idx[j] += 1
                heads[j] = head(j)


class Replay:
    """Places produced records on topic-partitions and runs every task; collects the outputs in order."""

    def __init__(self, logic: PersonLogic, partitions: int = PARTITIONS, batch: int = BATCH) -> None:
        self.logic = logic
        self.partitions = partitions
        self.batch = batch
        self._offsets: dict[tuple[str, int], int] = defaultdict(int)
        self._inputs: dict[int, dict[str, list[Fetched]]] = defaultdict(lambda: defaultdict(list))
        self.outputs: list[dict[str, Any]] = []
        self._base_ms = int(time.time() * 1000)
        self._n = 0

    def _place(self, topic: str, key: bytes | None) -> tuple[int, int]:
        partition = partition_for(key, self.partitions) if key is not None else 0
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] = offset + 1
        return partition, offset

    def produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        """One record, as a producer would append it (input topics go to the tasks, others to the dump)."""
        self._n += 1
        partition, offset = self._place(topic, key)
        if topic in INPUT_TOPICS:
            self._inputs[partition][topic].append(
                decode_input(topic, partition, offset, key, value, self._base_ms + self._n))
        else:
            self._dump(topic, partition, offset, key, value)

    def run(self, until: datetime | None = None) -> None:
        """Merge and apply every task's inputs (tasks are independent; their order does not matter).

        ``until``: then advance every task's clock there in one step, as a caught-up worker's wall clock does
        (§8.3) — the reference for a worker that judges a large instant over several transactions.
        """
        for partition in sorted(self._inputs):
            task = self.logic.new_task(partition)
            lists = [recs for _, recs in sorted(self._inputs[partition].items())]
            merged = reference_merge(lists, lambda r, t=task: self.logic.drop_duplicate(t, r))
            while True:  # batches only bound the state kept between flushes; outputs do not depend on them
                result = self.logic.process(task, itertools.islice(merged, self.batch), time.time())
                self._collect(result)
                if result.applied == 0:
                    break
            if until is not None:
                self._collect(self.logic.tick(task, until.timestamp()))
        self._inputs.clear()

    def _collect(self, result: BatchResult) -> None:
        for topic, key, value, _headers in result.outputs:
            partition, offset = self._place(topic, key)
            self._dump(topic, partition, offset, key, value)

    def _dump(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes) -> None:
        self.outputs.append({"topic": topic, "partition": partition, "offset": offset, "key": key, "value": value})


def replay_file(inputs: Path, dump: Path, *, err: TextIO = sys.stderr, until: datetime | None = None) -> int:
    """``hub replay IN --dump OUT``: every output record of the pipeline for ``inputs``, as JSON lines."""
    from hub import codec
    from hub.config import get_settings
    from hub.deadletter import dead_letter
    from hub.processors import build_logic
    from hub.processors.convert import json_safe
    from hub.runtime import encode_input, read_replay_lines

    replay = Replay(build_logic(metrics=None))
    edge_key = get_settings().edge_key
    sent = 0
    for n, raw, topic, value in read_replay_lines(inputs):
        try:
            if topic is None:
                raise ValueError(value)
            key, data = encode_input(topic, value)
        except Exception as exc:  # any malformed line: dead letter with its bytes (encrypted) and reason
            err.write(f"line {n}: rejected ({exc})\n")
            dl_key, dl_value = dead_letter(raw, "hub replay", "invalid_input", f"line {n}: {exc}", topic=topic,
                                           encrypt_with=edge_key)
            replay.produce(DEAD_LETTERS, dl_key, dl_value)
            continue
        replay.produce(topic, key, data)
        sent += 1
    err.write(f"replay: {sent} input record(s); applying policy-spec §8 …\n")
    replay.run(until)
    rows = sorted(replay.outputs, key=lambda r: (r["topic"], r["partition"], r["offset"]))
    with dump.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(dump_row(row, codec, json_safe), ensure_ascii=False, sort_keys=True) + "\n")
    err.write(f"replay: {len(rows)} output record(s) written to {dump}\n")
    return 0


def dump_row(row: dict[str, Any], codec: Any, json_safe: Any) -> dict[str, Any]:
    """The JSON form of one output record, as ``hub replay --dump`` and the live tests write it."""
    try:
        schema, value = codec.decode(row["value"])
        value = json_safe(value)
    except Exception as exc:
        schema, value = "undecodable", {"error": str(exc)}
    key = row["key"]
    return {"topic": row["topic"], "partition": row["partition"], "offset": row["offset"],
            "key": key.decode() if key else None, "schema": schema, "value": value}


def iter_dump(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a dump file."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def by_event_id(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """``{(topic, event_id): value JSON}``; raises when one id carries two values (§8.5)."""
    out: dict[tuple[str, str], str] = {}
    for row in rows:
        value = json.dumps(row["value"], sort_keys=True, ensure_ascii=False)
        k = (row["topic"], str(row["value"].get("event_id")))
        if out.setdefault(k, value) != value:
            raise AssertionError(f"{k} written with two values:\n  {out[k]}\n  {value}")
    return out
