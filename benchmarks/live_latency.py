"""Live end-to-end latency (issue 18, item 1(b)): a department's event produced → the hub's output consumed.

Why this measure: downstream departments read the hub's outputs (settlements, deposit decisions, risk flags,
referrals, mismatches) as they come; what they wait is the whole path — the department's record reaching the
broker, the worker noticing it, merging it (policy-spec §8.1), applying the rules and committing its
transaction, and a ``read_committed`` consumer getting the output. At 500 events/s the target is p99 < 250 ms.

What it does: starts its own embedded broker and the catalogue's topics; produces the simulated province's
registration day (rosters, enrolments, contracts: what persons need before their admissions count) as a backlog,
then starts one ``hub worker`` and waits until it has applied it; then, for each rate, produces the province's
following events **open loop** at that steady rate for ``--seconds``, each with its event time set to the
moment it is due (benchmarks/live_feed.py: no event is produced before its event time, event times increase,
as a live feed's do), while a ``read_committed`` consumer of every output topic, in a process of its own as a
department's is, records when each output arrives. A short warm-up at the lowest rate comes first and is not
reported; between rates the worker drains what is left.

Which input caused an output: every output carries the event time of the input it was applied at (the task's
clock, policy-spec §5.1), and every input of a run has its own event time to the microsecond, so the time
names the input; for settlements (their ``discharge_id``), deposit decisions (``admission_id``) and dead
letters (``topic``) the link is checked against the input's own fields. Outputs the rules emit when a due time
passes (an escalation, an overdue follow-up) carry that due time and are not linked: with months of the
simulation compressed into minutes none comes during a run, and the table's notes count any that did.

Latency, per input that caused outputs (all of an input's outputs are in one transaction): from the moment
the input was *due* (so a stalled producer cannot hide queueing) to its last output consumed. Split by the
records' own timestamps (producer create time, the same clock):

``→ input``    due → the input record's timestamp: this benchmark's producer falling behind its schedule;
``worker``     the input record → the output record's timestamp: the producer's linger (``--linger-ms``) and the
               broker's write, the worker noticing the input (its fetch, its idle pause), decoding, merging,
               the rules, up to appending the output;
``→ consumed`` the output record → consumed: the worker's transaction commit and the consumer's fetch
               (empty fetches held ``--read-pace``, as the counter API's tail does against noida-db).

Keeping up: ``lag at end`` is the inputs the worker had not yet committed when the feed stopped (its group
offsets, committed with its transactions at most a second apart while it is busy), ``drain`` the seconds until
it had committed every one; the worker kept up with a rate when that took at most 2 s. A rate the worker
cannot keep up with still gets its figures, which then measure the queue.

Correctness before figures: after the run every input produced (registration day, warm-up, rates) goes, in
production order, to ``hub replay`` (benchmarks/reference.py), and the outputs on the topics must equal the
replay's by event id; otherwise no row prints a figure. The worker runs on event time (``HUB_WALL_CLOCK=0``, as
``hub replay`` does) unless ``--wall-clock``: a live deployment's clock ticks move a task's clock between inputs,
and an input that arrives after such a tick is applied at the clock — outputs ``hub replay`` cannot reproduce.

Order. The outputs equal ``hub replay``'s only if the worker applies each task's inputs in event-time order
across its topics: a worker caught up on a topic-partition does not wait for it (policy-spec §8.1), so an input
that comes after a newer one of another topic was applied is applied late, at the task's clock, and its outputs
carry the clock's time instead of its own. Two things break that order in a live run:

* the feed: its inputs must reach the broker in event-time order. One producer without linger keeps it (aiokafka
  has one request in flight per broker, each carrying every record sent before it; its batches here are too
  large to fill within a round trip, since a full batch's successor would wait for the next request behind newer
  records of other partitions). A linger does not — each partition's batch leaves when its own linger ends: with
  ``--linger-ms 5``, 9 of 15,970 outputs differed (deposit decisions dated at the clock), as several connectors
  producing at once would cause too. The registration day is produced before the worker starts, since produced
  at full speed while the worker reads it, its batches fill and arrive out of order (a backlog is merged whole).
* the worker: aiokafka leaves a partition whose fetched records have waited unconsumed longer than its
  ``prefetch_backoff`` (0.1 s) out of the fetches that follow, so the end offset the worker knows for it ages
  while newer records of the task's other partitions keep arriving; once the waiting records are consumed the
  worker's caught-up test (position ≥ that stale end offset) lets the merge apply the newer inputs first
  (benchmarks/probes/stale_end_offset.py shows the stale end offset in a few seconds, without the worker). It
  shows when the worker's loop stalls for more than 0.1 s (a load spike, a long batch): in about one quick run
  in five on this shared machine, 1–12 deposit decisions 14–150 ms late, also with a feed sending each task's
  inputs one at a time after the broker's acknowledgement of the previous one. Such a run prints no figure;
  its notes say which inputs were applied late and by how much (the JSON keeps the differences and the figures).

    .venv/bin/python benchmarks/live_latency.py --rates 50,500,2000 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import (
    BenchError,
    Row,
    Table,
    command_line,
    cpu_seconds,
    die_with_parent,
    percentile,
    say,
    spy,
    stop_spy,
    summarize_stacks,
    whatif_env,
)
from live_feed import FeedEvent, Retimer, at_us, persons_for, province_feed
from reference import compare, end_offsets, live_outputs, replay_reference
from workload import MIXES

from hub.topics import BY_NAME, INPUT_TOPICS, OUTPUT_TOPICS

COLUMNS = [("rate", "events/s"), ("achieved", "produced/s"), ("inputs", "inputs"), ("linked", "inputs → outputs"),
           ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
           ("in_p50", "→ input p50"), ("worker_p50", "worker p50"), ("read_p50", "→ consumed p50"),
           ("worker_cpu_pct", "worker CPU %"), ("broker_cpu_pct", "broker CPU %"), ("lag_end", "lag at end"),
           ("drain_s", "drain s"), ("kept_up", "kept up")]
KEPT_UP_DRAIN_S = 2.0
"""A rate is kept up when the worker's backlog at the feed's stop is gone within this long (commits of group
offsets ride with the worker's transactions at most a second apart, and lag is polled every 0.25 s)."""
LINK_FIELDS = {"hub.settlements.v1": "discharge_id", "hub.deposit-decisions.v1": "admission_id",
               "hub.dead-letters.v1": "topic"}
"""Outputs that name their input: (output topic → the field whose value is the input's own)."""


# ------------------------------------------------------------------------------------------ the feed


@dataclass
class Sent:
    """One input as produced (wall-clock seconds; ``timestamp_ms`` is its record's timestamp)."""

    phase: str
    topic: str
    value: dict[str, Any]
    due: float
    timestamp_ms: int


@dataclass
class Phase:
    """One rate (or the warm-up): what was produced when, and what the processes used meanwhile."""

    name: str
    rate: float
    seconds: float
    inputs: int = 0
    """Inputs it produces: rate × seconds."""
    first_due: float = 0.0
    ended: float = 0.0
    """Wall time the last input was sent (handed to its producer)."""
    lag_end: int | None = None
    """Inputs not yet committed by the worker's group when the feed stopped."""
    drain_s: float | None = None
    batches: tuple[float, float] | None = None
    """(batches, inputs in them) the worker applied while the feed ran."""
    cpu: dict[str, float | None] = field(default_factory=dict)
    row: Row | None = None


Prepared = tuple[dict[str, Any], bytes, bytes]
"""An input ready to send: its retimed value (for ``hub replay``), its key, its Avro value."""


class Producer:
    """The live feed's producer: retimes each event to its due time, encodes it, sends it once due (one aiokafka
    producer, acks=all, no linger by default: order, module docstring).

    Every input is kept (:class:`Sent`): its value feeds ``hub replay`` after the run and its due time the
    latency. An input is retimed and encoded *before* the wait for its due time, so the send itself is all that
    follows it; sends are awaited in bulk (:meth:`flush`), as a department's producer does.
    """

    def __init__(self, bootstrap: str, sent: list[Sent], linger_ms: int) -> None:
        self.bootstrap = bootstrap
        self.sent = sent
        self.linger_ms = linger_ms
        self.retimer = Retimer()
        self.client: Any = None
        self._futures: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        from hub.clients import aiokafka_options

        # Batches far larger than a request round trip's worth of records: a full batch would leave its newer
        # successor for the next request, behind other partitions' newer records (order, module docstring).
        self.client = AIOKafkaProducer(bootstrap_servers=self.bootstrap.split(","), acks="all",
                                       linger_ms=self.linger_ms, max_batch_size=512 * 1024, **aiokafka_options())
        await self.client.start()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.stop()

    def prepare(self, ev: FeedEvent, due_us: int) -> Prepared:
        """(retimed value, key, Avro value) of ``ev`` due at ``due_us``."""
        from hub.runtime import encode_input

        value = self.retimer.retime(ev, due_us)
        key, data = encode_input(ev.topic, value)
        return value, key, data

    async def send(self, topic: str, prepared: Prepared, due_us: int, phase: str) -> float:
        """Hand one input to the producer, stamped now; returns that moment (wall clock)."""
        value, key, data = prepared
        now = time.time()
        self._futures.append(await self.client.send(topic, data, key=key, timestamp_ms=int(now * 1000)))
        self.sent.append(Sent(phase, topic, value, due_us / 1e6, int(now * 1000)))
        return now

    async def flush(self) -> None:
        """Wait until every input handed over so far is acknowledged (raises the first that failed)."""
        futures, self._futures = self._futures, []
        await asyncio.gather(*futures)

    async def backlog(self, events: Sequence[FeedEvent], span_s: float = 50.0) -> None:
        """Produce ``events`` at once, dated over the ``span_s`` seconds that end 10 s ago (a backlog)."""
        end_us = int((time.time() - 10.0) * 1e6)
        step = max(1, int(span_s * 1e6) // max(len(events), 1))
        first = end_us - step * len(events)
        for j, ev in enumerate(events):
            due_us = first + j * step
            await self.send(ev.topic, self.prepare(ev, due_us), due_us, "registration day")
            if j % 500 == 0:
                await asyncio.sleep(0)
        await self.flush()

    async def steady(self, phase: Phase, events: Iterator[FeedEvent]) -> None:
        """Open loop: input *i* is due ``i / rate`` seconds after the start and dated then; sent once due."""
        wall0, perf0 = time.time(), time.perf_counter()
        start = perf0 + 0.05
        phase.first_due = wall0 + (start - perf0)
        for i in range(phase.inputs):
            ev = next(events)
            due = start + i / phase.rate
            due_us = math.floor((wall0 + (due - perf0)) * 1e6)
            prepared = self.prepare(ev, due_us)
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i % 50 == 0:
                await asyncio.sleep(0)  # behind schedule: still let the producer's sender run
            phase.ended = await self.send(ev.topic, prepared, due_us, phase.name)
        await self.flush()


# ------------------------------------------------------------------------------------------ the tail


@dataclass
class Arrival:
    """One output record as the downstream consumer got it."""

    at: float
    topic: str
    timestamp_ms: int
    value: bytes


class Tail:
    """A downstream department's consumer of every output topic (read_committed) from ``since``, in a process
    of its own, as a department's is: the feed's work in this process cannot delay its reading, and its CPU is
    measured apart. It keeps each record's arrival time and hands them all over when stopped."""

    def __init__(self, bootstrap: str, pace: float, since: dict[tuple[str, int], int], out: Path) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads and an event loop
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self.out = out
        self.process = ctx.Process(target=_tail_main, args=(bootstrap, pace, since, str(out), self._ready, self._stop),
                                   name="bench-live-tail", daemon=True)

    async def start(self, timeout: float = 120.0) -> None:
        self.process.start()
        if not await asyncio.to_thread(self._ready.wait, timeout):
            self.process.terminate()
            raise BenchError(f"the output consumer did not start within {timeout:.0f} s")

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def stop(self, timeout: float = 60.0) -> list[Arrival]:
        """Stop reading; the arrivals (raises when the consumer failed)."""
        import pickle

        self._stop.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            raise BenchError(f"the output consumer did not stop within {timeout:.0f} s")
        if self.process.exitcode != 0 or not self.out.exists():
            raise BenchError(f"the output consumer failed (exit {self.process.exitcode})")
        with self.out.open("rb") as fh:
            return [Arrival(*a) for a in pickle.load(fh)]


def _tail_main(bootstrap: str, pace: float, since: dict[tuple[str, int], int], out: str, ready: Any,
               stop: Any) -> None:
    """The consumer process: read until ``stop``, then write (at, topic, timestamp, value) tuples to ``out``."""
    import pickle

    die_with_parent()
    arrivals = asyncio.run(_tail(bootstrap, pace, since, ready, stop))
    with open(out, "wb") as fh:
        pickle.dump(arrivals, fh)


async def _tail(bootstrap: str, pace: float, since: dict[tuple[str, int], int], ready: Any, stop: Any
                ) -> list[tuple[float, str, int, bytes]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from hub.clients import aiokafka_options

    try:  # hub.clients since the worker paces its own fetches with it; hub.api before
        from hub.clients import pace_empty_fetches  # type: ignore[attr-defined]
    except ImportError:
        from hub.api import pace_empty_fetches

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                                isolation_level="read_committed", group_id=None,
                                max_partition_fetch_bytes=8 * 1024 * 1024, **aiokafka_options())
    await consumer.start()
    arrivals: list[tuple[float, str, int, bytes]] = []
    try:
        if pace > 0:
            pace_empty_fetches(consumer, pace)
        tps = [TopicPartition(t, p) for t in OUTPUT_TOPICS for p in range(BY_NAME[t].partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, since.get((tp.topic, tp.partition), 0))
        ready.set()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=20_000)
            now = time.time()
            for tp, msgs in batch.items():
                arrivals += [(now, tp.topic, m.timestamp, m.value) for m in msgs]
    finally:
        await consumer.stop()
    return arrivals


# ------------------------------------------------------------------------------------------ linking


@dataclass
class Linked:
    """An input's outputs as consumed: the last arrival, the last output record's timestamp, the topics."""

    arrived: float
    output_ms: int
    topics: Counter[str] = field(default_factory=Counter)


@dataclass
class Links:
    """Outputs joined to the inputs that caused them (module docstring)."""

    by_input: dict[int, Linked]
    unlinked: Counter[str]
    disagree: int
    duplicates: int


def link(arrivals: Sequence[Arrival], sent: Sequence[Sent]) -> Links:
    """Join every consumed output to its input by event time; check the id where the output names one."""
    from hub import codec

    by_time = {at_us(datetime.fromisoformat(s.value["occurred_at"])): i for i, s in enumerate(sent)}
    by_input: dict[int, Linked] = {}
    unlinked: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    disagree = duplicates = 0
    for a in arrivals:
        _, value = codec.decode(a.value)
        ident = (a.topic, str(value.get("event_id")))
        if ident in seen:
            duplicates += 1
            continue
        seen.add(ident)
        i = by_time.get(at_us(value["occurred_at"]))
        if i is None:
            unlinked[a.topic] += 1
            continue
        name = LINK_FIELDS.get(a.topic)
        if name is not None and value.get(name) != sent[i].value.get(name, sent[i].topic):
            disagree += 1
        got = by_input.setdefault(i, Linked(a.at, a.timestamp_ms))
        got.arrived, got.output_ms = max(got.arrived, a.at), max(got.output_ms, a.timestamp_ms)
        got.topics[a.topic] += 1
    return Links(by_input, unlinked, disagree, duplicates)


# ------------------------------------------------------------------------------------------ figures


def _ms(values: Sequence[float], q: float) -> float | None:
    return round(percentile(values, q) * 1000, 1) + 0.0 if values else None  # + 0.0: never "-0.0"


def timeline(phase: Phase, sent: Sequence[Sent], links: Links, mine: Sequence[int]) -> list[dict[str, Any]]:
    """Per second of the rate: inputs due, those with outputs, their median and worst latency (ms), and the
    inputs due by topic — where a tail comes from (the JSON keeps it; the table does not print it)."""
    seconds: dict[int, dict[str, Any]] = {}
    for i in mine:
        s = sent[i]
        sec = seconds.setdefault(int(s.due - phase.first_due), {"inputs": Counter(), "latency": []})
        sec["inputs"][s.topic.split(".")[1]] += 1
        got = links.by_input.get(i)
        if got is not None:
            sec["latency"].append(got.arrived - s.due)
    return [{"second": k, "inputs": sum(v["inputs"].values()), "linked": len(v["latency"]),
             "p50_ms": _ms(v["latency"], 50), "max_ms": _ms(v["latency"], 100), "by_topic": dict(v["inputs"])}
            for k, v in sorted(seconds.items())]


def figures(phase: Phase, sent: Sequence[Sent], links: Links) -> tuple[dict[str, Any], str]:
    """The row of one rate: latency percentiles, their split, keeping up; and its note."""
    mine = [i for i, s in enumerate(sent) if s.phase == phase.name]
    latency: list[float] = []
    parts: dict[str, list[float]] = {"in": [], "worker": [], "read": []}
    topics: Counter[str] = Counter()
    for i in mine:
        got = links.by_input.get(i)
        if got is None:
            continue
        s = sent[i]
        latency.append(got.arrived - s.due)
        parts["in"].append(s.timestamp_ms / 1000 - s.due)
        parts["worker"].append((got.output_ms - s.timestamp_ms) / 1000)
        parts["read"].append(got.arrived - got.output_ms / 1000)
        topics.update(got.topics)
    produced_s = max(phase.ended - phase.first_due, 1e-9)
    out: dict[str, Any] = {
        "rate": phase.rate, "seconds": phase.seconds, "inputs": phase.inputs,
        "achieved": max(phase.inputs - 1, 1) / produced_s,  # the first input is due at 0, the last at (n − 1) / rate
        "linked": len(latency), "p50_ms": _ms(latency, 50), "p95_ms": _ms(latency, 95), "p99_ms": _ms(latency, 99),
        "max_ms": round(max(latency) * 1000, 1) if latency else None,
        "lag_end": phase.lag_end, "drain_s": phase.drain_s,
        "kept_up": phase.drain_s is not None and phase.drain_s <= KEPT_UP_DRAIN_S, "outputs": dict(topics),
    }
    for name, values in parts.items():
        out[f"{name}_p50"], out[f"{name}_p99"] = _ms(values, 50), _ms(values, 99)
    cpu = phase.cpu
    for who in ("worker", "broker", "bench", "tail"):
        out[f"{who}_cpu_pct"] = cpu.get(who)
    if cpu.get("worker") is not None:
        out["worker_cpu_us"] = round(cpu["worker"] * 1e4 / phase.rate)  # % of a core → µs of CPU per input
    if phase.batches is not None and phase.batches[0]:
        out["batches_per_s"] = round(phase.batches[0] / produced_s, 1)
        out["inputs_per_batch"] = round(phase.batches[1] / phase.batches[0], 1)
    short = ", ".join(f"{t.split('.')[1]} {n:,}" for t, n in topics.most_common())
    note = (f"p99 of the parts: → input {out['in_p99']} ms, worker {out['worker_p99']} ms, → consumed "
            f"{out['read_p99']} ms; outputs {short or 'none'}; worker CPU {out.get('worker_cpu_us')} µs per input, "
            f"{out.get('batches_per_s')} batches/s of {out.get('inputs_per_batch')} inputs (one transaction each); "
            f"CPU % of a core: feed {cpu.get('bench')}, output consumer {cpu.get('tail')}")
    if not out["kept_up"]:
        note = (f"NOT KEPT UP: {phase.lag_end} inputs behind when the feed stopped, drained in {phase.drain_s} s; "
                + note)
    return out, note


# ------------------------------------------------------------------------------------------ the run


async def lag(bootstrap: str, group: str) -> int | None:
    """The group's committed lag on every input (None before its first commit), off the event loop."""
    from hub.runtime import group_lag

    return await asyncio.to_thread(group_lag, bootstrap, group, INPUT_TOPICS)


async def wait_applied(bootstrap: str, group: str, worker: Any, timeout: float) -> float:
    """Seconds until the group's committed lag on every input is 0 (the worker applied everything)."""
    started = time.monotonic()
    while True:
        if worker.poll() is not None:
            raise BenchError(f"the worker exited with {worker.returncode}")
        left = await lag(bootstrap, group)
        if left == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise BenchError(f"the worker did not apply every input within {timeout:.0f} s (lag {left})")
        await asyncio.sleep(0.25)


def batches(url: str) -> tuple[float, float] | None:
    """(batches, inputs in them) the worker has applied so far (``hub_batch_size`` count and sum; a batch is one
    task's records taken at once, committed as one transaction); None when its metrics do not answer."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found = {line.split(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith(("hub_batch_size_count ", "hub_batch_size_sum "))}
    return found.get("hub_batch_size_count", 0.0), found.get("hub_batch_size_sum", 0.0)


def _cpu(pids: dict[str, int | None]) -> dict[str, float | None]:
    cpu: dict[str, float | None] = {who: cpu_seconds(pid) for who, pid in pids.items()}
    cpu["bench"] = time.process_time()
    return cpu


def _cpu_pct(before: dict[str, float | None], after: dict[str, float | None], seconds: float
             ) -> dict[str, float | None]:
    return {who: round(100 * (after[who] - b) / seconds, 1) if b is not None and after[who] is not None else None
            for who, b in before.items()}


async def drive(args: argparse.Namespace, bootstrap: str, group: str, start_worker: Callable[[], tuple[Any, str]],
                broker_pid: int | None, sent: list[Sent], table: Table, tmp: Path,
                samplers: list[subprocess.Popen[bytes] | None]
                ) -> tuple[list[Phase], list[Arrival], dict[tuple[str, int], int]]:
    """Registration day, the worker, the tail, the warm-up, each rate; returns the phases, the arrivals, the
    outputs' start offsets.

    The registration day is produced *before* the worker starts: a backlog is merged whole (policy-spec §8.1),
    whereas a worker consuming it while it is being produced at full speed would apply records from
    partitions whose batches arrived first (see the module docstring on order). ``--profile`` samples the worker
    from the warm-up on (into ``samplers``), so the profile is of live work, not of the backlog."""
    phases = [Phase("warm-up", min(args.rates), args.warmup)] if args.warmup > 0 else []
    phases += [Phase(f"{rate:g} events/s", rate, args.seconds) for rate in args.rates]
    for phase in phases:
        phase.inputs = max(1, round(phase.rate * phase.seconds))
    live_events = sum(phase.inputs for phase in phases)
    persons = args.persons or persons_for(live_events, args.mix)
    say(f"simulating {persons:,} persons …")
    registration, feed = province_feed(args.mix, persons, args.seed)
    events = iter(list(itertools.islice(feed, live_events)))  # simulated before the clock runs
    table.notes.append(f"province: {persons:,} simulated persons (mix `{args.mix}`, seed {args.seed}); registration "
                       f"day {len(registration):,} records loaded first as a backlog, then {live_events:,} live")
    producer = Producer(bootstrap, sent, args.linger_ms)
    await producer.start()
    tail: Tail | None = None
    try:
        say(f"registration day: {len(registration):,} records …")
        await producer.backlog(registration)
        worker, metrics_url = start_worker()
        applied = await wait_applied(bootstrap, group, worker, args.phase_timeout)
        table.notes.append(f"registration day applied by the worker {applied:.1f} s after it started (start-up "
                           "included)")
        since = await asyncio.to_thread(end_offsets, bootstrap, OUTPUT_TOPICS)
        tail = Tail(bootstrap, args.read_pace, since, tmp / "arrivals.pickle")
        await tail.start()
        pids = {"worker": worker.pid, "broker": broker_pid, "tail": tail.pid}
        if args.profile is not None:
            samplers.append(spy(worker.pid, args.profile / "worker.raw"))
        for phase in phases:
            say(f"{phase.name} for {phase.seconds:g} s …")
            phase.row = Row(phase.name).begin()
            before, applied_before = _cpu(pids), await asyncio.to_thread(batches, metrics_url)
            await producer.steady(phase, events)
            phase.cpu = _cpu_pct(before, _cpu(pids), max(phase.ended - phase.first_due, 1e-9))
            applied_after = await asyncio.to_thread(batches, metrics_url)
            if applied_before is not None and applied_after is not None:
                phase.batches = (applied_after[0] - applied_before[0], applied_after[1] - applied_before[1])
            phase.lag_end = await lag(bootstrap, group)
            await wait_applied(bootstrap, group, worker, args.drain_timeout)
            phase.drain_s = round(time.time() - phase.ended, 2)
            phase.row.end()
            say(f"  produced {phase.inputs:,}; worker CPU {phase.cpu['worker']} %; drained in {phase.drain_s} s")
            await asyncio.sleep(1.0)  # the tail gets the last outputs; a quiet gap between rates
        arrivals, tail = tail.stop(), None
        return phases, arrivals, since
    finally:
        if tail is not None:
            with contextlib.suppress(BenchError):
                tail.stop(5.0)
        await producer.stop()


@dataclass
class Verdict:
    """The check against ``hub replay``: equal?, the verdict, and what differed (for the JSON)."""

    ok: bool
    text: str
    outputs: int
    differences: list[dict[str, Any]] = field(default_factory=list)
    late: str = ""
    """When outputs carry a later time than the replay's: which inputs were applied late, and by how much."""


def check(bootstrap: str, sent: Sequence[Sent], tmp: Path) -> Verdict:
    """The worker's outputs against ``hub replay`` on every input produced, in production order."""
    from hub.processors.partitioning import partition_for
    from hub.runtime import record_key
    from hub.topics import PARTITIONS

    lines = tmp / "inputs.jsonl"
    with lines.open("w", encoding="utf-8") as fh:
        for s in sent:
            fh.write(json.dumps({"topic": s.topic, "value": s.value}, ensure_ascii=False) + "\n")
    reference, _ = replay_reference(lines)
    live = live_outputs(bootstrap, OUTPUT_TOPICS)
    ok, text = compare(reference, live)
    verdict = Verdict(ok, text, len(live))
    if ok:
        return verdict
    by_time = {s.value["occurred_at"]: s for s in sent}
    late: Counter[str] = Counter()
    worst = 0.0
    for key in sorted(k for k in set(reference) & set(live) if reference[k] != live[k]):
        ref, got = json.loads(reference[key]), json.loads(live[key])
        entry: dict[str, Any] = {"output": list(key), "reference": ref, "live": got}
        cause = by_time.get(ref.get("occurred_at", ""))
        if cause is not None and got.get("occurred_at", "") > ref["occurred_at"]:
            ms = (datetime.fromisoformat(got["occurred_at"]) - datetime.fromisoformat(ref["occurred_at"]))
            entry["applied_late_ms"] = round(ms.total_seconds() * 1000, 1)
            worst = max(worst, entry["applied_late_ms"])
            late[f"{cause.topic}[{partition_for(record_key(cause.topic, cause.value), PARTITIONS)}]"] += 1
        if len(verdict.differences) < 50:
            verdict.differences.append(entry)
    if late:
        verdict.late = (f"{sum(late.values())} differing outputs carry a later time than the replay's: their inputs "
                        f"were applied late, at the task's clock, by up to {worst:.0f} ms (inputs: {dict(late)})")
    return verdict


def worker_log_notes(log_file: Path) -> str:
    """The worker's warnings and errors during the run, counted, with the first few (empty when none)."""
    if not log_file.exists():
        return ""
    lines = [ln for ln in log_file.read_text(errors="replace").splitlines()
             if any(level in ln for level in (" WARNING ", " ERROR ", " CRITICAL "))]
    if not lines:
        return ""
    return f"worker log: {len(lines)} warning/error line(s); first: " + " | ".join(ln[:200] for ln in lines[:3])


def measure(args: argparse.Namespace, table: Table, tmp: Path) -> None:
    """Broker, worker; the feed and the tail (:func:`drive`); the check; one row per rate."""
    from hub.broker import EmbeddedBroker, ensure_topics, free_port
    from hub.runtime import spawn_worker, stop_process

    group = "bench-live"
    whatif, note = whatif_env(args.worker_option, args.worker_pace)
    if note:
        table.notes.append(note)
    env = {"HUB_WALL_CLOCK": "1" if args.wall_clock else "0", **whatif}
    sent: list[Sent] = []
    workers: list[subprocess.Popen[bytes]] = []
    samplers: list[subprocess.Popen[bytes] | None] = []
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)

        def start_worker() -> tuple[subprocess.Popen[bytes], str]:
            port = free_port()
            workers.append(spawn_worker(broker.bootstrap, data_dir=tmp, app_id=group, log_file=tmp / "worker.log",
                                        metrics_port=port, extra_env=env))
            return workers[-1], f"http://127.0.0.1:{port}/metrics"

        try:
            phases, arrivals, since = asyncio.run(drive(args, broker.bootstrap, group, start_worker, broker.pid,
                                                        sent, table, tmp, samplers))
            for sampler in samplers:
                stop_spy(sampler)
            say("linking outputs to inputs; checking against hub replay …")
            links = link(arrivals, sent)
            verdict = check(broker.bootstrap, sent, tmp)
            after = len(live_outputs(broker.bootstrap, OUTPUT_TOPICS, since=since))
        except BaseException:
            if (tmp / "worker.log").exists():
                sys.stderr.write((tmp / "worker.log").read_text(errors="replace")[-3000:] + "\n")
            raise
        finally:
            for sampler in samplers:
                stop_spy(sampler)
            for worker in workers:
                stop_process(worker)
    if args.profile is not None and (args.profile / "worker.raw").exists():
        (args.profile / "worker.txt").write_text(summarize_stacks(args.profile / "worker.raw") + "\n")
        say(f"profile: {args.profile / 'worker.txt'}")
    if verdict.late:
        table.notes.append(verdict.late)
    log_note = worker_log_notes(tmp / "worker.log")
    if log_note:
        table.notes.append(log_note)
    if not verdict.ok and args.json is not None and (tmp / "worker.log").exists():
        kept = args.json.with_suffix(".worker.log")
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes((tmp / "worker.log").read_bytes())
        table.notes.append(f"the worker's log is kept in {kept} (outputs differed)")
    linked = sum(sum(v.topics.values()) for v in links.by_input.values())
    table.notes.append(f"linking: the tail consumed {len(arrivals) - links.duplicates:,} of the {after:,} outputs "
                       f"written after the registration day ({links.duplicates} twice); {linked:,} linked to "
                       f"{len(links.by_input):,} inputs by event time; not linked: {dict(links.unlinked) or 'none'}; "
                       f"links contradicted by the output's own id field: {links.disagree}")
    for phase in phases:
        if phase.name == "warm-up" or phase.row is None:
            continue
        r = phase.row
        r.figures, r.note = figures(phase, sent, links)
        r.extra["timeline"] = timeline(phase, sent, links, [i for i, s in enumerate(sent) if s.phase == phase.name])
        r.check = verdict.text
        if not verdict.ok:
            r.withhold(verdict.text)
            if not table.rows:  # the differences once, with the first row
                r.extra["differences"] = verdict.differences
        table.add(r)


# ------------------------------------------------------------------------------------------ main


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="50,500,2000", help="comma-separated input rates, events per second")
    ap.add_argument("--seconds", type=float, default=30.0, help="duration of each rate (1–600)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds at the lowest rate first, not reported")
    ap.add_argument("--mix", choices=sorted(MIXES), default="realistic")
    ap.add_argument("--persons", type=int, default=None,
                    help="simulated persons (default: enough for about a simulated year of live events)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--linger-ms", type=int, default=0,
                    help="the feed's producer linger (default 0; more lets inputs reach the broker out of "
                         "event-time order, module docstring)")
    ap.add_argument("--read-pace", type=float, default=0.005, metavar="SECONDS",
                    help="the output consumer holds an empty fetch this long (as the counter API's tail; 0: spin)")
    ap.add_argument("--wall-clock", action="store_true",
                    help="run the worker with its wall clock (HUB_WALL_CLOCK=1): as deployed, but outputs may then "
                         "differ from hub replay's (module docstring)")
    ap.add_argument("--worker-option", action="append", default=[], metavar="NAME=VALUE",
                    help="what-if: a StreamOptions field of the worker, e.g. idle_pause=0.005 (repeatable)")
    ap.add_argument("--worker-pace", type=float, default=0.0, metavar="SECONDS",
                    help="what-if: the worker holds empty fetch responses this long (as the counter API does)")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the worker during the rates; report here")
    ap.add_argument("--phase-timeout", type=float, default=600.0, help="seconds for the registration day")
    ap.add_argument("--drain-timeout", type=float, default=600.0, help="seconds a rate's backlog may take to drain")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        ap.error(f"--rates takes numbers separated by commas, e.g. 50,500,2000; found {args.rates!r}")
    if not args.rates or min(args.rates) <= 0:
        ap.error("--rates needs at least one rate > 0")
    if not 1.0 <= args.seconds <= 600.0:
        ap.error(f"--seconds must be between 1 and 600; found {args.seconds:g}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    table = Table("Live latency — event produced → output consumed", command_line(argv), COLUMNS)
    table.notes.append("open loop: each input dated and due at its moment of the steady rate; latency per input "
                       "that caused outputs, from its due time to its last output consumed (read_committed); parts "
                       "from the records' timestamps (module docstring)")
    clock = "wall clock (HUB_WALL_CLOCK=1)" if args.wall_clock else "event time (HUB_WALL_CLOCK=0), as hub replay"
    table.notes.append(f"worker clock: {clock}; the feed's producer lingers {args.linger_ms} ms (inside *worker*: a "
                       f"record is stamped when sent); the output consumer holds empty fetches "
                       f"{args.read_pace * 1000:g} ms (inside *→ consumed*)")
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout` must unwind through the finally blocks
    try:
        with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
            measure(args, table, Path(tmp))
    finally:
        print(table.markdown())
        table.write_json(args.json)
    return 0 if table.rows and all(r.ok for r in table.rows) else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
