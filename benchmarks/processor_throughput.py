"""Processor throughput: can one worker process sustain ≥ 2,000 events/s on this machine?

Why this benchmark exists: the requirement is per *worker process*, end to end (consume, decode, rules,
state, changelog, outputs, commit), and broker-notes.md shows that a naive faust agent runs at
≈400–600 events/s here. A number for the rules alone would hide where the time goes, so four
measurements run over the *same* encoded records and are printed side by side:

``aiokafka floor``
    An ``AIOKafkaConsumer.getmany`` loop over the input topics with no processing: what the client
    and the broker can deliver at all.
``faust floor``
    A faust agent built by :func:`hub.app.create_app` (same settings as the hub) that takes events with
    ``stream.take_events`` and does nothing: the framework's own per-event cost, the ceiling of any
    faust processor here.
``pure logic``
    :class:`hub.processors.person.PersonLogic` in this process, no broker: Avro decode, settlement
    ledger, monitor engine, Avro encode of outputs and JSON of the changed state — the rules + codec.
``hub worker``
    One real worker (:func:`hub.runtime.spawn_worker`, ``HUB_WALL_CLOCK=0``) over the pre-produced
    inputs, writing state, changelog and outputs.

How the worker rows are timed (start-up excluded): the worker's Prometheus endpoint is polled every
0.1 s until the first count, then every 0.5 s (a scrape costs the worker CPU). The clock starts at the
first poll where ``hub_events_consumed_total`` > 0 (the first batch was handed to the agent: faust
start-up, group join and table recovery are over). It stops when the consumer group's *committed* lag
on every input topic is 0 (:func:`hub.runtime.group_lag`, polled every 0.25 s once every event was
counted), so the rate includes faust's commit interval (2.8 s by default) and is conservative for
short runs; "to last consumed" (the counter reaching N) is shown too. The notes give CPU from /proc:
the worker process and the broker as a share of one core, and the worker's event-loop thread in µs
of CPU per event — its critical path, and the figure that does not depend on how much CPU other
processes on the machine leave to the benchmark.

Workloads (``--mix``), from :class:`hub.simulate.Province` (start 2025-01-01, the year the bundled
policies cover; the stream ends with the 1 December enrolment campaign):

``realistic``
    Every event the simulator emits for a county of 0.4·N persons (≈ one simulated year): roster,
    enrolments (two campaigns), contracts, chronic diagnoses, admissions, discharges (incl. reversals),
    follow-ups, payment defaults, facility staffing. Discharges are ≈7 %.
``discharge-heavy``
    The hospital-cashier path: 0.2·N persons at 4 admissions per person-year, keeping rosters,
    enrolments, discharges and payment defaults (admissions, diagnoses and family-doctor events
    dropped). Discharges are ≈70 %.

Run: ``.venv/bin/python benchmarks/processor_throughput.py [--events 100000] [--mix realistic]``.
Everything it starts (broker, workers) is stopped before it returns, also on Ctrl-C or a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
try:  # installed (make installs the checkout editable), or on PYTHONPATH: to measure another tree
    import hub  # noqa: F401
except ImportError:  # `python benchmarks/processor_throughput.py` from a bare checkout
    sys.path.insert(0, str(ROOT))

from hub.topics import INPUT_TOPICS, PARTITIONS  # noqa: E402

FLOOR_APP_ID = "bench-faust-floor"
FLOOR_WORKER_FLAG = "--faust-floor-worker"

DISCHARGE_HEAVY_DROPPED = frozenset({"health.admissions.v1", "health.diagnoses.v1", "health.family-doctor.v1"})


@dataclass(frozen=True)
class Mix:
    """A workload: persons per requested event, admission rate, topics left out."""

    name: str
    persons_per_event: float
    rate: float
    dropped: frozenset[str] = frozenset()


MIXES: dict[str, Mix] = {
    "realistic": Mix("realistic", 0.4, 0.18),
    "discharge-heavy": Mix("discharge-heavy", 0.2, 4.0, DISCHARGE_HEAVY_DROPPED),
}


@dataclass
class Workload:
    """The encoded input records of one run, in simulator order, and what they are made of."""

    mix: str
    persons: int
    seed: int
    records: list[tuple[str, bytes, bytes]]  # (topic, key, Avro value)
    composition: dict[str, int]
    last_event: str
    build_seconds: float
    base_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    """Record timestamp of input i is ``base_ms + i`` (arrival order = simulator order), as ``hub replay``
    does. Wall-clock based on purpose: the input topics' retention (7 days to 1 year) applies to record
    timestamps, and records stamped with their simulated 2025 dates would be invisible to consumers."""

    @property
    def n(self) -> int:
        return len(self.records)

    def composition_text(self) -> str:
        return ", ".join(f"{t.split('.')[1]} {c / self.n:.1%}" for t, c in
                         sorted(self.composition.items(), key=lambda kv: -kv[1]))


@dataclass
class Phase:
    """One measured row of the result table."""

    name: str
    events: int
    seconds: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


class BenchError(RuntimeError):
    """A phase could not be measured (timeout, a worker that died); the message says which."""


# ------------------------------------------------------------------------------------------ workload


def build_workload(n: int, mix: Mix, seed: int = 7, persons: int | None = None) -> Workload:
    """Simulate and encode ``n`` input records exactly as ``hub replay`` would (hub.runtime.encode_input)."""
    from hub.runtime import encode_input
    from hub.simulate import Province

    started = time.perf_counter()
    persons = persons or max(200, round(n * mix.persons_per_event))
    province = Province(seed, persons, start=date(2025, 1, 1), rate=mix.rate)
    records: list[tuple[str, bytes, bytes]] = []
    counts: collections.Counter[str] = collections.Counter()
    last = ""
    for ev in province.events(None):
        if ev.topic in mix.dropped:
            continue
        key, value = encode_input(ev.topic, ev.value)
        records.append((ev.topic, key, value))
        counts[ev.topic] += 1
        last = ev.value["occurred_at"]
        if len(records) >= n:
            break
    return Workload(mix.name, persons, seed, records, dict(counts), last, time.perf_counter() - started)


def partition_for(key: bytes, partitions: int = PARTITIONS) -> int:
    """The default (murmur2) partitioner of the Java client, kafka-python and aiokafka."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def produce(bootstrap: str, workload: Workload) -> Phase:
    """Pre-produce every input (timestamp = base + index, so batches keep simulator order)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=20,
                             batch_size=256 * 1024, max_request_size=4 * 1024 * 1024)
    started = time.perf_counter()
    try:
        for i, (topic, key, value) in enumerate(workload.records):
            producer.send(topic, key=key, value=value, timestamp_ms=workload.base_ms + i)
        producer.flush(timeout=300)
    finally:
        producer.close()
    return Phase("produce inputs (kafka-python, acks=all)", workload.n, time.perf_counter() - started)


# ------------------------------------------------------------------------------------------ floors


async def _getmany_loop(bootstrap: str, n: int, timeout: float) -> tuple[int, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in INPUT_TOPICS for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        count, started = 0, time.perf_counter()
        deadline = started + timeout
        while count < n:
            if time.perf_counter() > deadline:
                raise BenchError(f"aiokafka floor: {count} of {n} records in {timeout:.0f} s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for msgs in batch.values():
                count += len(msgs)
            if not batch and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                raise BenchError(f"aiokafka floor: at the end of every partition after {count} of {n} records "
                                 "(records invisible: retention, compaction?)")
        return count, time.perf_counter() - started
    finally:
        await consumer.stop()


def bench_aiokafka_floor(bootstrap: str, n: int, timeout: float) -> Phase:
    """Read every input once with a bare getmany loop (no decode, no group): the client's ceiling."""
    count, seconds = asyncio.run(_getmany_loop(bootstrap, n, timeout))
    return Phase("aiokafka floor (getmany, no processing)", count, seconds, "in this process")


def _faust_floor_worker(bootstrap: str, data_dir: str, metrics_port: int) -> None:
    """Child-process entry: the hub's faust app with a do-nothing batch agent (see module doc)."""
    import faust
    from faust.worker import Worker

    from hub.app import create_app
    from hub.metrics import METRICS, start_exporter
    from hub.processors import BATCH_MAX, BATCH_WITHIN, PERSON_INPUTS

    start_exporter("127.0.0.1", metrics_port)

    def register(app: faust.App, _ctx: Any) -> None:
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        channel = app.topic(*PERSON_INPUTS, **raw)

        @app.agent(channel, name="faust-floor")
        async def floor(stream: faust.StreamT) -> None:
            async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
                METRICS.events_consumed.labels(topic="all").inc(len(events))

    app, _ctx = create_app(bootstrap, app_id=FLOOR_APP_ID, data_dir=data_dir, register=register)
    # "info", as hub workers run: at "warn" faust keeps a terminal spinner that sets the root logger to DEBUG
    Worker(app, loglevel="info", quiet=True).execute_from_commandline()


def spawn_faust_floor(bootstrap: str, data_dir: Path, metrics_port: int, log_file: Path) -> subprocess.Popen[bytes]:
    from hub.runtime import _death_signal  # the same orphan protection as hub workers

    with open(log_file, "ab") as out:  # the child gets its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), FLOOR_WORKER_FLAG, bootstrap, str(data_dir),
             str(metrics_port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT), env=dict(os.environ),
            preexec_fn=_death_signal(),  # noqa: PLW1509
        )


# ------------------------------------------------------------------------------------------ pure logic


class _DictState:
    """A :class:`hub.processors.shell.PartitionState` over a dict, as the table store would hold it."""

    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = collections.defaultdict(dict)

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data[partition].get(key)

    def keys(self, partition: int) -> Iterable[bytes]:
        return list(self.data[partition])

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.data[partition].pop(key, None)
        else:
            self.data[partition][key] = value


def logic_records(workload: Workload) -> list[Any]:
    """The workload as the worker's InRecords: same partitions, offsets and timestamps."""
    from hub.processors.shell import InRecord

    offsets: collections.Counter[tuple[str, int]] = collections.Counter()
    out = []
    for i, (topic, key, value) in enumerate(workload.records):
        p = partition_for(key)
        out.append(InRecord(topic, p, offsets[(topic, p)], key, value, (workload.base_ms + i) / 1000))
        offsets[(topic, p)] += 1
    return out


def run_logic(records: Sequence[Any], batch: int, profile: Callable[[Callable[[], Any]], Any] | None = None,
              ) -> tuple[float, float, int, int, int]:
    """PersonLogic over ``records`` in batches of ``batch``.

    Returns (wall seconds, CPU seconds of this process, outputs, state writes, dead letters).

    Metrics go to a private registry (the worker counts into its own, so the cost is included).
    """
    from prometheus_client import CollectorRegistry

    from hub.metrics import Metrics
    from hub.processors import load_runtime_policies
    from hub.processors.person import PersonLogic
    from hub.topics import DEAD_LETTERS

    policies, monitor = load_runtime_policies()
    logic = PersonLogic(policies, monitor, metrics=Metrics(CollectorRegistry()), wall_clock=False)
    state = _DictState()
    totals = [0, 0, 0]
    now = time.time()

    def work() -> None:
        for i in range(0, len(records), batch):
            result = logic.process(records[i:i + batch], state, now)
            for (p, k), v in result.state.items():
                state.put(p, k, v)
            totals[0] += len(result.outputs)
            totals[1] += len(result.state)
            totals[2] += sum(1 for o in result.outputs if o.topic == DEAD_LETTERS)

    quiet = logging.getLogger("hub.processors.person")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # a dead letter logs a warning; the terminal is not what we measure
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        if profile is not None:
            profile(work)
        else:
            work()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        quiet.setLevel(level)
    return seconds, cpu, totals[0], totals[1], totals[2]


def bench_logic(workload: Workload, batch: int, profile_out: Path | None = None) -> Phase:
    records = logic_records(workload)
    profiler: Callable[[Callable[[], Any]], Any] | None = None
    if profile_out is not None:
        profiler = _pyinstrument(profile_out)
    seconds, cpu, outputs, writes, dead = run_logic(records, batch, profiler)
    note = f"{cpu / len(records) * 1e6:.0f} µs CPU/event; batches of {batch}; {outputs / len(records):.2f} " \
           f"outputs and {writes / len(records):.2f} state writes per event; {dead} dead letters"
    if profile_out is not None:
        note += " (under pyinstrument: slower)"
    return Phase("pure logic (PersonLogic.process, no broker)", len(records), seconds, note,
                 {"outputs": outputs, "state_writes": writes, "dead_letters": dead, "cpu_s": cpu})


def _pyinstrument(out: Path) -> Callable[[Callable[[], Any]], Any]:
    """A profiler hook writing pyinstrument's text and HTML reports next to ``out`` (optional dependency)."""
    try:
        from pyinstrument import Profiler
    except ImportError as exc:  # profiling is opt-in; the benchmark itself needs nothing extra
        raise SystemExit("--profile needs pyinstrument: .venv/bin/pip install pyinstrument") from exc

    def run(fn: Callable[[], Any]) -> None:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        try:
            fn()
        finally:
            profiler.stop()
            out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
            out.with_suffix(".html").write_text(profiler.output_html())
            print(f"pyinstrument report: {out} (+ .html)", file=sys.stderr)

    return run


# ------------------------------------------------------------------------------------------ workers


def _cpu_seconds(pid: int | None, thread: int | None = None) -> float | None:
    """utime + stime of a process (or of one of its threads) from /proc (None when gone or not Linux)."""
    if pid is None:
        return None
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _consumed(url: str) -> float | None:
    """Sum of hub_events_consumed_total from a Prometheus text endpoint (None: not serving yet)."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("hub_events_consumed_total{"))


def measure_consumer(name: str, proc: subprocess.Popen[bytes], bootstrap: str, group: str, metrics_port: int,
                     n: int, timeout: float, broker_pid: int | None, log_file: Path) -> Phase:
    """Time a worker from its first consumed batch to committed lag 0 (see the module doc)."""
    from hub.runtime import group_lag

    url = f"http://127.0.0.1:{metrics_port}/metrics"
    deadline = time.monotonic() + timeout
    t_first = t_consumed = None
    cpu_first = broker_first = main_first = None

    def tail() -> str:
        """The worker log's last errors (the log itself is deleted with the benchmark's temp dir)."""
        if not log_file.exists():
            return ""
        lines = log_file.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln][-8:]
        return "\n".join(errors + ["…"] + lines[-15:])

    def check() -> None:
        if proc.poll() is not None:
            raise BenchError(f"{name}: the worker exited with {proc.returncode}; log:\n{tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"{name}: not done within {timeout:.0f} s ({_consumed(url)} of {n} events "
                             f"consumed); log:\n{tail()}")

    started = time.monotonic()
    while t_consumed is None:
        check()
        count = _consumed(url) or 0.0
        now = time.perf_counter()
        if count > 0 and t_first is None:
            t_first, cpu_first, broker_first = now, _cpu_seconds(proc.pid), _cpu_seconds(broker_pid)
            main_first = _cpu_seconds(proc.pid, proc.pid)
            startup = time.monotonic() - started
        if count >= n:
            t_consumed = now
        else:  # fine-grained until the start is seen, then gentle: each scrape costs the worker CPU
            time.sleep(0.1 if t_first is None else 0.5)
    assert t_first is not None
    while True:
        check()
        if group_lag(bootstrap, group, INPUT_TOPICS) == 0:
            break
        time.sleep(0.25)
    t_done = time.perf_counter()
    cpu_end, broker_end = _cpu_seconds(proc.pid), _cpu_seconds(broker_pid)
    main_end = _cpu_seconds(proc.pid, proc.pid)
    seconds = t_done - t_first
    extra: dict[str, Any] = {"to_last_consumed_s": t_consumed - t_first, "startup_s": startup}
    note = f"{n / (t_consumed - t_first):,.0f}/s to last consumed; start-up {startup:.1f} s excluded"
    cpu_notes = []
    if cpu_first is not None and cpu_end is not None:
        extra["worker_cpu_s"] = cpu_end - cpu_first
        cpu_notes.append(f"worker {extra['worker_cpu_s'] / n * 1e6:.0f} µs "
                         f"({extra['worker_cpu_s'] / seconds:.0%} of a core)")
    if main_first is not None and main_end is not None:
        # the worker's event-loop thread is its critical path: its CPU per event does not depend on how
        # much CPU other processes leave us, unlike the wall-clock rate
        extra["main_thread_us_per_event"] = (main_end - main_first) / n * 1e6
        cpu_notes.append(f"of which event-loop thread {extra['main_thread_us_per_event']:.0f} µs")
    if broker_first is not None and broker_end is not None:
        extra["broker_cpu_s"] = broker_end - broker_first
        cpu_notes.append(f"broker {extra['broker_cpu_s'] / n * 1e6:.0f} µs")
    if cpu_notes:
        note += "; CPU per event: " + ", ".join(cpu_notes)
    return Phase(name, n, seconds, note, extra)


def _free_port() -> int:
    from hub.broker import free_port

    return free_port()


def bench_faust_floor(bootstrap: str, n: int, timeout: float, broker_pid: int | None, tmp: Path) -> Phase:
    port = _free_port()
    data = tmp / "faust-floor"
    data.mkdir()
    log_file = tmp / "faust-floor.log"
    proc = spawn_faust_floor(bootstrap, data, port, log_file)
    try:
        phase = measure_consumer("faust floor (take_events, no processing)", proc, bootstrap, FLOOR_APP_ID, port,
                                 n, timeout, broker_pid, log_file)
    finally:
        _stop(proc)
    return phase


def bench_worker(bootstrap: str, n: int, timeout: float, broker_pid: int | None, tmp: Path, run: int,
                 env: dict[str, str]) -> tuple[Phase, dict[str, int]]:
    """One hub worker over every input (its own app id, so its own group and changelog)."""
    from hub.runtime import output_counts, spawn_worker

    app_id = f"bench-hub-{run}"
    port = _free_port()
    data = tmp / app_id
    data.mkdir()
    log_file = tmp / f"{app_id}.log"
    before = output_counts(bootstrap)
    proc = spawn_worker(bootstrap, data_dir=data, metrics_port=port, app_id=app_id, log_file=log_file,
                        extra_env={"HUB_WALL_CLOCK": "0", **env})
    try:
        phase = measure_consumer(f"hub worker (run {run})", proc, bootstrap, app_id, port, n, timeout,
                                 broker_pid, log_file)
    finally:
        _stop(proc)
    after = output_counts(bootstrap)
    produced = {t: after[t] - before.get(t, 0) for t in after if after[t] - before.get(t, 0)}
    phase.extra["outputs"] = sum(produced.values())
    phase.extra["dead_letters"] = produced.get("hub.dead-letters.v1", 0)
    return phase, produced


def _stop(proc: subprocess.Popen[bytes]) -> None:
    from hub.runtime import stop_process

    stop_process(proc)


# ------------------------------------------------------------------------------------------ report


def machine() -> dict[str, Any]:
    """nproc, CPU model, Python and load: what a reader needs to compare two runs."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:  # the code measured: a dirty tree means uncommitted changes were part of it
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release(), "loadavg": [round(x, 2) for x in os.getloadavg()], "git": rev}


def busy_processes(limit: int = 5) -> list[str]:
    """The processes using most CPU right now (other engineers' tests share this machine)."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,etime,args", "--sort=-pcpu"], capture_output=True,
                             text=True, timeout=5).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    me = str(os.getpid())
    return [line[:110] for line in out[1:] if line.split()[0] != me][:limit]


def render(command: str, info: dict[str, Any], workload: Workload, phases: list[Phase], when: str,
           load_end: list[float], busy: list[str], failure: str | None = None) -> str:
    lines = [
        f"### Processor throughput — mix `{workload.mix}`, {workload.n:,} events",
        "",
        f"- command: `{command}`",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, Linux {info['kernel']}; "
        f"code: git {info['git']}",
        f"- date: {when}; load average (1/5/15 min) at start {info['loadavg']}, at end {load_end}",
        f"- workload: {workload.persons:,} simulated persons, seed {workload.seed}, events up to "
        f"{workload.last_event[:10]}: {workload.composition_text()}",
        "",
        "| measurement | events | seconds | events/s | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for p in phases:
        lines.append(f"| {p.name} | {p.events:,} | {p.seconds:.2f} | {p.rate:,.0f} | {p.note} |")
    if failure is not None:
        lines += ["", "**FAILED** — " + failure.split("\n", 1)[0], "", "```", *failure.split("\n")[1:], "```"]
    workers = [p.rate for p in phases if p.name.startswith("hub worker")]
    if workers:
        workers.sort()
        median = workers[len(workers) // 2]
        verdict = "meets" if median >= 2000 else "does NOT meet"
        lines += ["", f"Hub worker median: **{median:,.0f} events/s** — {verdict} the ≥ 2,000 events/s requirement."]
    if busy:
        lines += ["", "Busiest processes at start (other work on this machine adds noise):", "", "```",
                  *busy, "```"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ main


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="input records to pre-produce (default 100000)")
    ap.add_argument("--mix", choices=sorted(MIXES), default="realistic")
    ap.add_argument("--persons", type=int, default=None, help="simulated persons (default: per mix, see doc)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1, help="hub worker runs (each its own group); median reported")
    ap.add_argument("--batch", type=int, default=int(os.environ.get("HUB_BATCH_MAX", "2000")),
                    help="pure-logic batch size (the worker reads HUB_BATCH_MAX)")
    ap.add_argument("--skip", action="append", default=[], choices=["aiokafka", "faust", "logic", "worker"],
                    help="leave a measurement out (repeatable)")
    ap.add_argument("--logic-only", action="store_true", help="no broker: only the pure-logic measurement")
    ap.add_argument("--profile", type=Path, default=None,
                    help="write a pyinstrument report of the pure-logic run here (needs pyinstrument)")
    ap.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the hub worker, e.g. HUB_BATCH_MAX=4000 (repeatable)")
    ap.add_argument("--phase-timeout", type=float, default=600.0, help="seconds before a phase is abandoned")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    command = "python benchmarks/processor_throughput.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    info = machine()
    busy = busy_processes()
    when = datetime.now().astimezone().isoformat(timespec="seconds")
    env = dict(kv.split("=", 1) for kv in args.worker_env)
    skip = set(args.skip) | ({"aiokafka", "faust", "worker"} if args.logic_only else set())

    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 - progress to stderr
    say(f"building {args.events:,} {args.mix} events …")
    workload = build_workload(args.events, MIXES[args.mix], args.seed, args.persons)
    say(f"  {workload.n:,} records in {workload.build_seconds:.1f} s ({workload.composition_text()})")
    phases: list[Phase] = []
    outputs: dict[str, int] = {}
    failure: str | None = None
    try:
        outputs = _run_phases(args, workload, skip, env, phases, say)
    except BenchError as exc:  # keep what was measured; the failure is part of the result
        failure = str(exc)
        say(f"benchmark failed: {failure}")
    load_end = [round(x, 2) for x in os.getloadavg()]
    print(render(command, info, workload, phases, when, load_end, busy, failure))
    if args.json is not None:
        args.json.write_text(json.dumps({
            "command": command, "machine": info, "date": when, "load_end": load_end, "busy": busy,
            "workload": {k: v for k, v in asdict(workload).items() if k != "records"},
            "worker_env": env, "worker_outputs": outputs, "failure": failure,
            "phases": [{**asdict(p), "rate": p.rate} for p in phases],
        }, indent=2, ensure_ascii=False))
    return 0 if failure is None else 1


def _run_phases(args: argparse.Namespace, workload: Workload, skip: set[str], env: dict[str, str],
                phases: list[Phase], say: Callable[[str], None]) -> dict[str, int]:
    """Run the selected measurements, appending each to ``phases`` as soon as it is done."""
    outputs: dict[str, int] = {}
    if "logic" not in skip:
        say("pure logic …")
        phases.append(bench_logic(workload, args.batch, args.profile))
        say(f"  {phases[-1].rate:,.0f} events/s")
    if {"aiokafka", "faust", "worker"} - skip:
        from hub.broker import EmbeddedBroker, ensure_topics

        # SIGTERM (e.g. `timeout`) must unwind through the finally blocks that stop the children.
        signal.signal(signal.SIGTERM, _interrupt)
        with tempfile.TemporaryDirectory(prefix="bench-proc-") as tmpdir, EmbeddedBroker() as broker:
            tmp = Path(tmpdir)
            ensure_topics(broker.bootstrap)
            say(f"broker {broker.bootstrap} (pid {broker.pid}); producing …")
            phases.insert(0, produce(broker.bootstrap, workload))
            say(f"  {phases[0].rate:,.0f} records/s")
            if "aiokafka" not in skip:
                phases.append(bench_aiokafka_floor(broker.bootstrap, workload.n, args.phase_timeout))
                say(f"aiokafka floor: {phases[-1].rate:,.0f} events/s")
            if "faust" not in skip:
                say("faust floor …")
                phases.append(bench_faust_floor(broker.bootstrap, workload.n, args.phase_timeout, broker.pid, tmp))
                say(f"  {phases[-1].rate:,.0f} events/s")
            if "worker" not in skip:
                for run in range(1, args.runs + 1):
                    say(f"hub worker run {run} …")
                    phase, outputs = bench_worker(broker.bootstrap, workload.n, args.phase_timeout, broker.pid,
                                                  tmp, run, env)
                    phase.note += (f"; {phase.extra['outputs']:,} output records, of which "
                                   f"{phase.extra['dead_letters']:,} dead letters")
                    phases.append(phase)
                    say(f"  {phase.rate:,.0f} events/s ({phase.note})")
    return outputs


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == FLOOR_WORKER_FLAG:
        _faust_floor_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        raise SystemExit(0)
    raise SystemExit(main())
