"""Processor throughput (issue 18, item 1(a)): a backlog of simulated-province events through the hub worker,
side by side with the floors and a peer on the same broker and the same records.

Why this benchmark exists: the requirement is per *worker process*, end to end (consume, decode, merge, rules,
state, outputs, commit). A rate alone hides where the time goes and whether the outputs are right, so the rows
of one run are, over the *same* encoded records (:mod:`workload`):

``pure logic``
    ``hub replay``'s own code in this process (:class:`hub.processors.replay.Replay`: decode, §8.1 merge over
    whole lists, :class:`~hub.processors.person.PersonLogic`), no broker — the rules + codec alone.
``aiokafka floor``, ``faust floor``, ``Quix Streams``
    :mod:`floors`: the client's ceiling, the framework's ceiling, and what a user might pick instead.
``hub worker``
    One real worker (:func:`hub.runtime.spawn_worker`, ``HUB_WALL_CLOCK=0``) over the pre-produced inputs.
``hub workers (two)``
    Two worker processes started together in one group (one app id), sharing the four tasks (partitions), over
    the same records: what a second process buys on this machine, as ``× one worker`` (the broker and this
    script share the same cores; the notes give each process's CPU). ``--workers 1`` leaves it out.

Every row that writes outputs has them compared by event id with ``hub replay``'s on the same records
(:mod:`reference`) before its rate is printed; a row whose outputs differ prints no figure.

How the worker rows are timed (start-up excluded): the workers' Prometheus endpoints are polled every 0.1 s until
the first count, then every 0.5 s (a scrape costs the worker CPU). The clock starts at the first poll where
``hub_events_consumed_total`` (summed over the workers) > 0 and stops when the group's *committed* lag on every
input topic is 0
(:func:`hub.runtime.group_lag`, polled every 0.25 s once every event was counted); "to last consumed" is in the
notes. The notes give CPU from /proc: the worker as a share of one core, its event-loop thread in µs per event
(its critical path, and the figure that does not depend on how much CPU other processes leave), the broker's.

With two workers the clock includes what sharing costs: the group's rebalance when the second member joins
(a task that moves is restored from its state topic by its new owner) and any task a worker waits for; the
count summed over both endpoints may exceed the events (a moved task's records are fetched again).

Run: ``.venv/bin/python benchmarks/processor_throughput.py [--events 100000] [--mix realistic] [--workers 1,2]``.
Everything it starts (broker, workers) is stopped before it returns, also on Ctrl-C or a timeout.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from floors import COLUMNS as FLOOR_COLUMNS
from floors import aiokafka_floor, faust_floor, quix_row, ratios
from harness import BenchError, Row, Table, command_line, cpu_seconds, row, say
from reference import Outputs, compare, end_offsets, live_outputs, replay_reference
from workload import MIXES, Workload, build_workload, produce

from hub.topics import INPUT_TOPICS, OUTPUT_TOPICS

COLUMNS = [*FLOOR_COLUMNS, ("ratio_one", "× one worker")]

# ------------------------------------------------------------------------------------------ pure logic


def bench_logic(workload: Workload, profile_out: Path | None = None) -> Row:
    """``hub replay``'s code over the workload in this process: decode, merge, rules (CPU per event)."""
    from hub.processors import build_logic
    from hub.processors.replay import Replay

    with row("pure logic (hub replay's code in process: decode, merge, PersonLogic)") as r:
        replay = Replay(build_logic(metrics=None))
        quiet = logging.getLogger("hub.processors.person")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # a dead letter logs a warning; the terminal is not what we measure

        def work() -> None:
            for topic, key, value in workload.records:
                replay.produce(topic, key, value)
            replay.run()

        try:
            started, cpu0 = time.perf_counter(), time.process_time()
            (_pyinstrument(profile_out) if profile_out is not None else lambda fn: fn())(work)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
        finally:
            quiet.setLevel(level)
        n = workload.n
        r.figures.update({"events": n, "seconds": seconds, "rate": n / seconds, "cpu_us": cpu / n * 1e6})
        dead = sum(1 for o in replay.outputs if o["topic"] == "hub.dead-letters.v1")
        r.note = (f"{len(replay.outputs) / n:.2f} outputs per event, {dead:,} dead letters"
                  + (" (under pyinstrument: slower)" if profile_out is not None else ""))
    return r


def _pyinstrument(out: Path) -> Callable[[Callable[[], Any]], Any]:
    """A profiler hook writing pyinstrument's text and HTML reports next to ``out`` (bench extra)."""
    try:
        from pyinstrument import Profiler
    except ImportError as exc:
        raise SystemExit("--profile needs pyinstrument: .venv/bin/pip install -e '.[bench]'") from exc

    def run(fn: Callable[[], Any]) -> None:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        try:
            fn()
        finally:
            profiler.stop()
            out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
            out.with_suffix(".html").write_text(profiler.output_html())
            say(f"pyinstrument report: {out} (+ .html)")

    return run


# ------------------------------------------------------------------------------------------ workers


def _consumed(url: str) -> float | None:
    """Sum of hub_events_consumed_total from a Prometheus text endpoint (None: not serving yet)."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("hub_events_consumed_total{"))


def _total(values: Sequence[float | None]) -> float | None:
    """The sum of per-process figures, or None when one of them is unknown (a process gone)."""
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _tail(log_files: Sequence[Path]) -> str:
    """The workers' logs' last errors (the logs themselves are deleted with the benchmark's temp dir)."""
    parts = []
    for log_file in log_files:
        if not log_file.exists():
            continue
        lines = log_file.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln][-8:]
        parts.append("\n".join([f"[{log_file.name}]", *errors, "…", *lines[-15:]]))
    return "\n".join(parts)


def measure_consumer(r: Row, procs: Sequence[subprocess.Popen[bytes]], bootstrap: str, group: str,
                     metrics_ports: Sequence[int], n: int, timeout: float, broker_pid: int | None,
                     log_files: Sequence[Path]) -> None:
    """Time the workers of ``group`` from their first consumed batch to committed lag 0 (module doc) into ``r``."""
    from hub.runtime import group_lag

    urls = [f"http://127.0.0.1:{port}/metrics" for port in metrics_ports]
    deadline = time.monotonic() + timeout
    t_first = t_consumed = None
    cpu_first = broker_first = main_first = None
    startup = 0.0

    def consumed() -> float:
        return sum(_consumed(url) or 0.0 for url in urls)

    def cpu() -> list[float | None]:
        return [cpu_seconds(p.pid) for p in procs]

    def main_threads() -> float | None:
        return _total([cpu_seconds(p.pid, p.pid) for p in procs])

    def check() -> None:
        for proc in procs:
            if proc.poll() is not None:
                raise BenchError(f"{r.name}: worker pid {proc.pid} exited with {proc.returncode}; "
                                 f"log:\n{_tail(log_files)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{r.name}: not done within {timeout:.0f} s ({consumed()} of {n} events "
                             f"consumed); log:\n{_tail(log_files)}")

    started = time.monotonic()
    while t_consumed is None:
        check()
        count = consumed()
        now = time.perf_counter()
        if count > 0 and t_first is None:
            t_first, cpu_first, broker_first, main_first = now, cpu(), cpu_seconds(broker_pid), main_threads()
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
    seconds = time.perf_counter() - t_first
    cpu_end, broker_end, main_end = cpu(), cpu_seconds(broker_pid), main_threads()
    r.figures.update({"events": n, "seconds": seconds, "rate": n / seconds})
    r.extra.update({"to_last_consumed_s": t_consumed - t_first, "startup_s": startup, "workers": len(procs)})
    consumed_s = t_consumed - t_first
    notes = [(f"{n / consumed_s:,.0f}/s to last consumed" if consumed_s > 0 else "all consumed by the first scrape")
             + f"; start-up {startup:.1f} s excluded"]
    if cpu_first is not None and None not in cpu_first and None not in cpu_end:
        each = [b - a for a, b in zip(cpu_first, cpu_end, strict=True)]  # type: ignore[operator]
        r.extra["worker_cpu_s"] = sum(each)
        r.figures["cpu_us"] = r.extra["worker_cpu_s"] / n * 1e6
        notes.append(f"worker {each[0] / seconds:.0%} of a core" if len(each) == 1 else
                     "workers " + " + ".join(f"{c / seconds:.0%}" for c in each) + " of a core")
    if main_first is not None and main_end is not None:
        r.extra["main_thread_us_per_event"] = (main_end - main_first) / n * 1e6
        notes.append(f"event-loop thread{'s' if len(procs) > 1 else ''} "
                     f"{r.extra['main_thread_us_per_event']:.0f} µs/event")
    if broker_first is not None and broker_end is not None:
        r.extra["broker_cpu_s"] = broker_end - broker_first
        notes.append(f"broker {r.extra['broker_cpu_s'] / n * 1e6:.0f} µs/event, "
                     f"{r.extra['broker_cpu_s'] / seconds:.0%} of a core")
    r.note = "; ".join(notes)


WORKER_NAMES = {1: "hub worker", 2: "hub workers (two)"}


def bench_worker(bootstrap: str, n: int, reference: Outputs, timeout: float, broker_pid: int | None, tmp: Path,
                 run: int, env: dict[str, str], workers: int = 1) -> Row:
    """``workers`` hub workers in one group (its own app id: its own group and state) over every input, started
    together; outputs checked against ``hub replay``."""
    from hub.broker import free_port
    from hub.runtime import spawn_worker, stop_process

    app_id = f"bench-hub-{run}" if workers == 1 else f"bench-hub-{run}-x{workers}"
    name = WORKER_NAMES.get(workers, f"hub workers ({workers})")
    with row(f"{name} (run {run})") as r:
        ports = [free_port() for _ in range(workers)]
        logs = [tmp / f"{app_id}-{i}.log" for i in range(workers)]
        since = end_offsets(bootstrap, OUTPUT_TOPICS)  # outputs of earlier runs are not this run's
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(workers):
                data = tmp / f"{app_id}-{i}"
                data.mkdir()
                procs.append(spawn_worker(bootstrap, data_dir=data, metrics_port=ports[i], app_id=app_id,
                                          log_file=logs[i], extra_env={"HUB_WALL_CLOCK": "0", **env}))
            measure_consumer(r, procs, bootstrap, app_id, ports, n, timeout, broker_pid, logs)
            if workers > 1:  # read before the stop: a worker stopping first hands its tasks to the other
                r.note += "; " + _assignments(logs)
        finally:
            for proc in procs:
                stop_process(proc)
        ok, verdict = compare(reference, live_outputs(bootstrap, OUTPUT_TOPICS, since=since))
        r.check = verdict
        if not ok:
            r.withhold(verdict)
    return r


def _assignments(log_files: Sequence[Path]) -> str:
    """The tasks each worker ended with and how many assignments it went through (the group's rebalances), from
    the lines ``person stream: tasks [...]`` of its log."""
    parts = []
    for i, log_file in enumerate(log_files, 1):
        lines = [ln for ln in log_file.read_text(errors="replace").splitlines() if "person stream: tasks" in ln] \
            if log_file.exists() else []
        last = lines[-1].rsplit("tasks", 1)[1].strip() if lines else "?"
        parts.append(f"worker {i} tasks {last} after {len(lines)} assignment(s)")
    return ", ".join(parts)


def worker_ratios(rows: Sequence[Row]) -> None:
    """Fill ``ratio_one`` of each multi-worker row: its rate ÷ the one-worker rate of the same run (else run 1)."""
    one = {r.name.rsplit("(run ", 1)[1]: r.figures.get("rate") for r in rows
           if r.name.startswith(WORKER_NAMES[1] + " (run") and r.ok}
    for r in rows:
        if r.ok and r.figures.get("rate") and r.extra.get("workers", 1) > 1:
            base = one.get(r.name.rsplit("(run ", 1)[1]) or next(iter(one.values()), None)
            if base:
                r.figures["ratio_one"] = r.figures["rate"] / base


# ------------------------------------------------------------------------------------------ main


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="input records to pre-produce (default 100000)")
    ap.add_argument("--mix", choices=sorted(MIXES), default="realistic")
    ap.add_argument("--persons", type=int, default=None, help="simulated persons (default: per mix, see workload)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1, help="hub worker runs (each its own group)")
    ap.add_argument("--workers", default="1,2", metavar="N,N",
                    help="worker processes per group, one row each per run (default 1,2: one worker, then two "
                         "sharing the partitions; 1 = one worker only)")
    ap.add_argument("--batch", type=int, default=2000, help="batch of the faust floor and of the Quix merge")
    ap.add_argument("--skip", action="append", default=[], choices=["aiokafka", "faust", "quix", "logic", "worker"],
                    help="leave a measurement out (repeatable)")
    ap.add_argument("--logic-only", action="store_true", help="no broker: only the pure-logic measurement")
    ap.add_argument("--profile", type=Path, default=None,
                    help="write a pyinstrument report of the pure-logic run here (bench extra)")
    ap.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the hub worker, e.g. HUB_BATCH_MAX=4000 (repeatable)")
    ap.add_argument("--phase-timeout", type=float, default=1800.0, help="seconds before a row is abandoned")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        ap.error(f"--workers takes counts separated by commas, e.g. 1,2; found {args.workers!r}")
    if not args.workers or min(args.workers) < 1:
        ap.error(f"--workers needs at least one count ≥ 1; found {args.workers!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    env = dict(kv.split("=", 1) for kv in args.worker_env)
    skip = set(args.skip) | ({"aiokafka", "faust", "quix", "worker"} if args.logic_only else set())
    say(f"building {args.events:,} {args.mix} events …")
    workload = build_workload(args.events, args.mix, args.seed, args.persons)
    say(f"  {workload.describe()} in {workload.build_seconds:.1f} s")
    table = Table(f"Processor throughput — {workload.n:,} events, mix `{workload.mix}`", command_line(argv), COLUMNS)
    table.notes.append("workload: " + workload.describe())
    if env:
        table.notes.append(f"worker environment: {env}")
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout` must unwind through the finally blocks
    try:
        if "logic" not in skip:
            say("pure logic …")
            table.add(bench_logic(workload, args.profile))
        if {"aiokafka", "faust", "quix", "worker"} - skip:
            _broker_rows(args, workload, skip, env, table)
        ratios(table.rows)
        worker_ratios(table.rows)
    finally:
        print(table.markdown())
        table.write_json(args.json)
    return 0 if all(r.ok for r in table.rows) else 1


def _broker_rows(args: argparse.Namespace, workload: Workload, skip: set[str], env: dict[str, str],
                 table: Table) -> None:
    """Broker, inputs, reference; then floors, peer and workers, each appended to ``table`` when measured."""
    from hub.broker import EmbeddedBroker, ensure_topics

    with tempfile.TemporaryDirectory(prefix="bench-proc-") as tmpdir, EmbeddedBroker() as broker:
        tmp = Path(tmpdir)
        ensure_topics(broker.bootstrap)
        say(f"broker {broker.bootstrap} (pid {broker.pid}); producing …")
        seconds = produce(broker.bootstrap, workload)
        table.notes.append(f"inputs pre-produced with kafka-python (acks=all): {workload.n / seconds:,.0f} records/s")
        reference: Outputs = {}
        if {"quix", "worker"} - skip:
            say("reference: hub replay …")
            reference, ref_seconds = replay_reference(workload.write_lines(tmp / "inputs.jsonl"))
            table.notes.append(f"reference: `hub replay` on the same records: {len(reference):,} outputs in "
                               f"{ref_seconds:.1f} s (its own process, start-up included)")
        if "aiokafka" not in skip:
            say("aiokafka floor …")
            table.add(aiokafka_floor(broker.bootstrap, workload.n, args.phase_timeout))
        if "faust" not in skip:
            say("faust floor …")
            table.add(faust_floor(broker.bootstrap, workload.n, tmp, args.phase_timeout, args.batch))
        if "quix" not in skip:
            say("Quix Streams …")
            table.add(quix_row(broker.bootstrap, workload.n, reference, tmp, timeout=args.phase_timeout,
                               batch=args.batch))
        if "worker" not in skip:
            for run in range(1, args.runs + 1):
                for workers in args.workers:
                    say(f"hub worker{'s' if workers > 1 else ''} ×{workers}, run {run} …")
                    table.add(bench_worker(broker.bootstrap, workload.n, reference, args.phase_timeout, broker.pid,
                                           tmp, run, env, workers))


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
