"""Side by side on the same broker and the same records: what the hub worker's rate should be compared with.

Why these three rows (issue 18, item 2): a worker's events/s means little alone. Next to it:

``aiokafka floor``
    An ``AIOKafkaConsumer.getmany`` loop over the ten input topics, no decoding, no group: what the client
    and the broker deliver at all — the ceiling of any consumer in Python here.
``faust floor``
    A real faust app (faust's own Kafka consumer, a consumer group, an agent) whose agent only takes batches
    (``stream.take_events``) and counts them: the framework's own per-event cost, the ceiling of a processor
    written as faust agents. (The hub's worker switches faust's consumer off and drives aiokafka itself:
    :mod:`hub.processors.stream`.)
``Quix Streams``
    What a user might pick instead: a Quix Streams application (confluent-kafka underneath) running the
    *same* §8.1 merge (:class:`hub.processors.merge.PartitionGroup`) and the hub's own pure rule code
    (:class:`hub.processors.person.PersonLogic`), writing the outputs and the state changes to its own topics
    (``bench-quix.<topic>``, ``bench-quix.person-state``). Its outputs are compared with ``hub replay``'s by
    event id before its rate is reported, as the worker's are.

How Quix Streams runs the merge, and what it cannot do: its dataframe API calls a function per message, in
Kafka *record-timestamp* order across the topics of one partition number (its own ``PartitionBufferGroup``),
whereas §8.1 orders by *event* time, then topic rank, then offset. So the function only queues each record
in the task's :class:`PartitionGroup` and applies what the merge releases, in batches of up to ``--batch`` (it
tries only when the arriving record's topic was holding the merge back, and after at least a quarter of a batch
has arrived, so that an empty attempt per message does not count against Quix).
The dataframe API exposes no consumer positions, so "caught up" (§8.1: a topic-partition whose queue is empty
holds the merge until the consumer reached its end) is taken from the end offsets read before the run: right
for a pre-produced backlog, which is what this measures, not for a live stream. Quix's state stores are scoped
to the current message's key, while the merge applies buffered records of other persons; the task state
therefore lives in the function's closure (:class:`hub.processors.task.TaskState`, as in the worker), and its
changes are produced to a topic, not restored from it.

Each function returns a :class:`harness.Row`; ``python benchmarks/floors.py`` runs all three on a fresh
embedded broker and prints one table. The faust and Quix rows run in child processes (their own CPU is
measured from /proc, start-up excluded: the clock starts at the first record handed to user code).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    ROOT,
    BenchError,
    Row,
    Table,
    command_line,
    die_with_parent,
    row,
    say,
    spy,
    stop_spy,
    summarize_stacks,
)
from reference import Outputs, compare, live_outputs, replay_reference
from workload import MIXES, Workload, build_workload, produce

QUIX_PREFIX = "bench-quix."
QUIX_STATE = QUIX_PREFIX + "person-state"
CHILD_FLAG = "--child"

__all__ = ["aiokafka_floor", "faust_floor", "quix_row", "QUIX_PREFIX", "COLUMNS"]

COLUMNS = [("events", "events"), ("seconds", "seconds"), ("rate", "events/s"), ("cpu_us", "CPU µs/event"),
           ("ratio", "× faust floor")]
"""The columns of the side-by-side table (the worker rows use the same keys)."""


def _figures(r: Row, n: int, seconds: float, cpu: float | None) -> None:
    r.figures.update({"events": n, "seconds": seconds, "rate": n / seconds if seconds > 0 else None,
                      "cpu_us": cpu / n * 1e6 if cpu is not None and n else None})


def ratios(rows: Sequence[Row], base: str = "faust floor") -> None:
    """Fill ``ratio`` (rate ÷ the faust floor's rate in the same run), the comparison that holds under load."""
    floor = next((r.figures.get("rate") for r in rows if r.name.startswith(base) and r.ok), None)
    for r in rows:
        if floor and r.ok and r.figures.get("rate"):
            r.figures["ratio"] = r.figures["rate"] / floor


# ------------------------------------------------------------------------------------------ aiokafka


async def _getmany(bootstrap: str, n: int, timeout: float) -> tuple[int, float, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from hub.clients import aiokafka_options
    from hub.topics import INPUT_TOPICS, PARTITIONS

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None, **aiokafka_options())
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in INPUT_TOPICS for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count, started, cpu0 = 0, time.perf_counter(), time.process_time()
        deadline = started + timeout
        while count < n:
            if time.perf_counter() > deadline:
                raise BenchError(f"aiokafka floor: {count} of {n} records in {timeout:.0f} s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            count += sum(len(msgs) for msgs in batch.values())
        return count, time.perf_counter() - started, time.process_time() - cpu0
    finally:
        await consumer.stop()


def aiokafka_floor(bootstrap: str, n: int, timeout: float = 600.0) -> Row:
    """Read the ``n`` inputs once with a bare ``getmany`` loop, in this process (its CPU per event too)."""
    with row("aiokafka floor (getmany, no processing)") as r:
        count, seconds, cpu = asyncio.run(_getmany(bootstrap, n, timeout))
        _figures(r, count, seconds, cpu)
        r.note = "in the benchmark's process; no group, no decoding"
    return r


# ------------------------------------------------------------------------------------------ children


def _spawn_child(kind: str, spec: dict[str, Any], log_file: Path) -> subprocess.Popen[bytes]:
    with open(log_file, "ab") as out:
        return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, kind, json.dumps(spec)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT), env=dict(os.environ),
                                preexec_fn=die_with_parent)  # noqa: PLW1509


def _wait_result(proc: subprocess.Popen[bytes], result: Path, log_file: Path, timeout: float,
                 what: str, profile: Path | None = None) -> dict[str, Any]:
    """Wait for the child's result file (written once it is done), then stop the child.

    ``profile``: sample the child with py-spy meanwhile; the summary goes to ``<profile>.txt``.
    """
    from hub.runtime import stop_process

    deadline = time.monotonic() + timeout
    sampler = spy(proc.pid, profile) if profile is not None else None
    try:
        while not result.exists():
            if proc.poll() is not None:
                tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
                raise BenchError(f"{what}: the child exited with {proc.returncode} before it was done:\n{tail}")
            if time.monotonic() > deadline:
                raise BenchError(f"{what}: not done within {timeout:.0f} s")
            time.sleep(0.1)
        time.sleep(0.05)  # written with a rename, but give the writer a moment to close
        data: dict[str, Any] = json.loads(result.read_text())
        return data
    finally:
        stop_spy(sampler)
        if profile is not None and profile.exists():
            profile.with_suffix(".txt").write_text(summarize_stacks(profile) + "\n")
            say(f"{what}: profile {profile.with_suffix('.txt')}")
        stop_process(proc, timeout=20)


def _write_result(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    Path(tmp).write_text(json.dumps(data))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ faust


FAUST_APP_ID = "bench-faust-floor"


def _faust_child(spec: dict[str, Any]) -> None:
    """A real faust app (its own consumer and group) whose agent only takes batches and counts them."""
    import faust
    from faust.worker import Worker

    from hub.topics import INPUT_TOPICS

    n, result = int(spec["n"]), spec["result"]
    app = faust.App(spec.get("app_id", FAUST_APP_ID), broker=",".join(f"kafka://{hp}" for hp in
                                                                     spec["bootstrap"].split(",")),
                    store="memory://", datadir=spec["data_dir"], web_enabled=False, web_port=int(spec["web_port"]),
                    topic_partitions=int(spec["partitions"]), consumer_auto_offset_reset="earliest")
    channel = app.topic(*INPUT_TOPICS, key_type=bytes, value_type=bytes, key_serializer="raw",
                        value_serializer="raw")
    marks: dict[str, float] = {}
    count = 0

    @app.agent(channel, name="faust-floor")
    async def floor(stream: Any) -> None:
        nonlocal count
        async for events in stream.take_events(int(spec["batch"]), within=0.2):
            if not marks:
                marks.update(t0=time.perf_counter(), cpu0=time.process_time(), n0=0)
            count += len(events)
            if count >= n and "t1" not in marks:
                marks.update(t1=time.perf_counter(), cpu1=time.process_time())
                _write_result(result, {"count": count, "seconds": marks["t1"] - marks["t0"],
                                       "cpu": marks["cpu1"] - marks["cpu0"], "pid": os.getpid()})
                os.kill(os.getpid(), signal.SIGTERM)

    # "info", as hub workers run: at "warn" faust keeps a terminal spinner that sets the root logger to DEBUG
    Worker(app, loglevel="info", quiet=True).execute_from_commandline()


def faust_floor(bootstrap: str, n: int, tmp: Path, timeout: float = 900.0, batch: int = 2000,
                profile: Path | None = None) -> Row:
    """The faust floor over the ``n`` inputs (a child process; its own consumer group)."""
    from hub.broker import free_port
    from hub.topics import PARTITIONS

    with row(f"faust floor (agent, take_events({batch}), no processing)") as r:
        result, log_file = tmp / "faust-floor.json", tmp / "faust-floor.log"
        spec = {"bootstrap": bootstrap, "n": n, "result": str(result), "data_dir": str(tmp / "faust-floor"),
                "web_port": free_port(), "partitions": PARTITIONS, "batch": batch}
        data = _wait_result(_spawn_child("faust", spec, log_file), result, log_file, timeout, "faust floor",
                            profile and profile / "faust-floor.raw")
        _figures(r, int(data["count"]), float(data["seconds"]), float(data["cpu"]))
        r.note = "its own process; start-up and group join excluded"
    return r


# ------------------------------------------------------------------------------------------ Quix Streams


def quix_topics() -> list[Any]:
    """The Quix row's own output topics (catalogue partitions; the state topic compacted)."""
    from hub.topics import OUTPUT_TOPICS, PARTITIONS, Topic

    return [*(Topic(QUIX_PREFIX + t, "", "as the catalogue's", "benchmark") for t in OUTPUT_TOPICS),
            Topic(QUIX_STATE, "", "state key", "benchmark", compacted=True, partitions=PARTITIONS, retention_ms=None)]


@dataclass
class _QuixTask:
    """One partition number's state, merge queues, the topics that held the merge at the last try, arrivals."""

    state: Any
    group: Any
    blocked: set[str]
    arrived: int = 0


def _quix_child(spec: dict[str, Any]) -> None:
    """Quix Streams running the §8.1 merge and PersonLogic (see the module docstring)."""
    from quixstreams import Application, message_context
    from quixstreams.models.serializers import Serializer

    from hub.processors import build_logic
    from hub.processors.merge import PartitionGroup
    from hub.processors.person import decode_input
    from hub.topics import INPUT_TOPICS

    class Raw(Serializer):  # type: ignore[misc]
        """An output is (topic, key, value bytes): the value is already Avro."""

        def __call__(self, value: Any, ctx: Any) -> bytes:
            return value[2]  # type: ignore[no-any-return]

    n, batch, result = int(spec["n"]), int(spec["batch"]), spec["result"]
    ends = {(t, int(p)): int(e) for t, p, e in spec["ends"]}
    logic = build_logic(metrics=None)
    store = logic.schema_store
    app = Application(broker_address=spec["bootstrap"], consumer_group=spec.get("group", "bench-quix"),
                      auto_offset_reset="earliest", state_dir=spec["state_dir"], loglevel="WARNING",
                      processing_guarantee=spec["guarantee"], use_changelog_topics=False, auto_create_topics=False,
                      producer_extra_config={"partitioner": "murmur2_random"})  # as the Java client and the hub
    outs = {t.removeprefix(QUIX_PREFIX): app.topic(t, key_serializer="bytes", value_serializer=Raw())
            for t in spec["out_topics"]}
    tasks: dict[int, _QuixTask] = {}
    marks: dict[str, float] = {}
    seen = 0

    def task(p: int) -> _QuixTask:
        if p not in tasks:
            group = PartitionGroup(INPUT_TOPICS)
            for t in INPUT_TOPICS:
                group.mark(t, ends.get((t, p), 0) == 0)
            tasks[p] = _QuixTask(logic.new_task(p), group, set(group.holding()))
        return tasks[p]

    def apply(value: bytes, key: bytes, timestamp: int, _headers: Any) -> list[tuple[str, bytes | None, bytes]]:
        nonlocal seen
        if not marks:
            marks.update(t0=time.perf_counter(), cpu0=time.process_time())
        ctx = message_context()
        topic, p, offset = ctx.topic, ctx.partition, ctx.offset
        t = task(p)
        group = t.group
        group.add((decode_input(topic, p, offset, key, value, timestamp, store),))
        last = offset + 1 >= ends.get((topic, p), 0)
        if last:
            group.mark(topic, True)
        seen += 1
        t.arrived += 1
        out: list[tuple[str, bytes | None, bytes]] = []
        # Try the merge only when this record may release it (its topic held it back), in batches of at least
        # a quarter of --batch as the worker's fetches give it, and at the end of a topic-partition.
        if last or (topic in t.blocked and t.arrived >= batch // 4):
            t.arrived = 0
            state = t.state
            while True:  # apply what the merge releases, a batch at a time
                res = logic.process(state, group.drain(batch, lambda r, s=state: logic.drop_duplicate(s, r)),
                                    time.time())
                out += [(name, k, v) for name, k, v, _h in res.outputs]
                out += [("person-state", k, v) for k, v in res.state.items() if v is not None]
                if res.applied < batch:
                    break
            t.blocked = set(group.holding())
        if seen >= n and all(q.group.idle() for q in tasks.values()):
            marks.update(t_last=time.perf_counter())
            app.stop()
        return out

    for t in INPUT_TOPICS:
        sdf = app.dataframe(app.topic(t, key_deserializer="bytes", value_deserializer="bytes"))
        sdf = sdf.apply(apply, metadata=True, expand=True)
        sdf.to_topic(lambda v, _k, _t, _h: outs[v[0]], key=lambda v: v[1])
    app.run()
    t1, cpu1 = time.perf_counter(), time.process_time()
    _write_result(result, {"count": seen, "seconds": t1 - marks["t0"], "to_last_applied": marks["t_last"] - marks["t0"],
                           "cpu": cpu1 - marks["cpu0"], "tasks": {p: q.state.summary() for p, q in tasks.items()}})


def end_offsets(bootstrap: str) -> list[tuple[str, int, int]]:
    """(topic, partition, end offset) of every input topic-partition."""
    from kafka import KafkaConsumer, TopicPartition

    from hub.clients import kafka_python_options
    from hub.topics import INPUT_TOPICS, PARTITIONS

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), **kafka_python_options())
    try:
        tps = [TopicPartition(t, p) for t in INPUT_TOPICS for p in range(PARTITIONS)]
        return [(tp.topic, tp.partition, e) for tp, e in consumer.end_offsets(tps).items()]
    finally:
        consumer.close()


def quix_row(bootstrap: str, n: int, reference: Outputs, tmp: Path, *, timeout: float = 1800.0, batch: int = 2000,
             guarantee: str = "exactly-once", profile: Path | None = None) -> Row:
    """Quix Streams over the ``n`` inputs (a child process), its outputs checked against ``reference``."""
    from hub.broker import ensure_topics

    with row(f"Quix Streams ({guarantee}): §8.1 merge + PersonLogic") as r:
        topics = quix_topics()
        ensure_topics(bootstrap, topics)
        result, log_file = tmp / "quix.json", tmp / "quix.log"
        spec = {"bootstrap": bootstrap, "n": n, "result": str(result), "state_dir": str(tmp / "quix-state"),
                "guarantee": guarantee, "batch": batch, "ends": end_offsets(bootstrap),
                "out_topics": [t.name for t in topics]}
        data = _wait_result(_spawn_child("quix", spec, log_file), result, log_file, timeout, "Quix Streams",
                            profile and profile / "quix.raw")
        _figures(r, int(data["count"]), float(data["seconds"]), float(data["cpu"]))
        r.extra.update(data)
        outputs = [t.name for t in topics if t.name != QUIX_STATE]
        live = live_outputs(bootstrap, outputs, {t: t.removeprefix(QUIX_PREFIX) for t in outputs})
        ok, verdict = compare(reference, live)
        r.check = verdict
        r.note = (f"its own process; start-up excluded; {data['to_last_applied']:.1f} s to the last input applied, "
                  "the rest is Quix's final checkpoint (flush, commit)")
        if not ok:
            r.withhold(verdict)
    return r


# ------------------------------------------------------------------------------------------ standalone


def run_side_by_side(workload: Workload, *, skip: set[str], batch: int, guarantee: str, timeout: float,
                     table: Table, profile: Path | None = None) -> None:
    """Broker, inputs, reference, then each selected row, appended to ``table`` as it is measured."""
    from hub.broker import EmbeddedBroker, ensure_topics

    with tempfile.TemporaryDirectory(prefix="bench-floors-") as tmpdir, EmbeddedBroker() as broker:
        tmp = Path(tmpdir)
        ensure_topics(broker.bootstrap)
        say(f"broker {broker.bootstrap}; producing {workload.n:,} inputs …")
        seconds = produce(broker.bootstrap, workload)
        table.notes.append(f"inputs pre-produced with kafka-python (acks=all) in {seconds:.1f} s "
                           f"({workload.n / seconds:,.0f} records/s)")
        reference: Outputs = {}
        if "quix" not in skip:
            say("reference: hub replay …")
            reference, ref_seconds = replay_reference(workload.write_lines(tmp / "inputs.jsonl"))
            table.notes.append(f"reference: `hub replay` on the same records gave {len(reference):,} outputs in "
                               f"{ref_seconds:.1f} s (its own process, start-up included)")
        if "aiokafka" not in skip:
            say("aiokafka floor …")
            table.add(aiokafka_floor(broker.bootstrap, workload.n, timeout))
        if "faust" not in skip:
            say("faust floor …")
            table.add(faust_floor(broker.bootstrap, workload.n, tmp, timeout, batch, profile))
        if "quix" not in skip:
            say("Quix Streams …")
            table.add(quix_row(broker.bootstrap, workload.n, reference, tmp, timeout=timeout, batch=batch,
                               guarantee=guarantee, profile=profile))
        ratios(table.rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--mix", choices=sorted(MIXES), default="realistic")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=2000, help="records per batch (faust take_events, Quix merge)")
    ap.add_argument("--quix-guarantee", choices=["exactly-once", "at-least-once"], default="exactly-once")
    ap.add_argument("--skip", action="append", default=[], choices=["aiokafka", "faust", "quix"])
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds before a row is abandoned")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the faust and Quix children; reports here")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    say(f"building {args.events:,} {args.mix} events …")
    workload = build_workload(args.events, args.mix, args.seed)
    table = Table(f"Floors and a peer — {workload.n:,} events, mix `{workload.mix}`", command_line(argv), COLUMNS)
    table.notes.append("workload: " + workload.describe())
    try:
        run_side_by_side(workload, skip=set(args.skip), batch=args.batch, guarantee=args.quix_guarantee,
                         timeout=args.timeout, table=table, profile=args.profile)
    finally:
        print(table.markdown())
        table.write_json(args.json)
    return 0 if all(r.ok for r in table.rows) else 1


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == CHILD_FLAG:
        {"faust": _faust_child, "quix": _quix_child}[sys.argv[2]](json.loads(sys.argv[3]))
        raise SystemExit(0)
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
    raise SystemExit(130)
