"""Soak: run ``hub up`` for a given time and report whether it keeps running (issue 15, item 7).

Why: the demo once crashed after about two minutes and nobody was told. This runs the real command
(``python -m hub.cli up``, its own data dir and ports) and measures, once the simulator has caught up to the
present and a warm-up has passed:

* **worker restarts** — ``hub up``'s own lines (``worker: restarted …``), and CRITICAL/Traceback lines in
  the worker log;
* **settlements per minute** — records written to ``hub.settlements.v1`` in each whole minute, read back
  (read_committed, by record time): unlike a counter of the worker they survive a worker restart, and
  unlike end offsets they do not count transaction markers;
* **lag** — the worker's consumer-group lag over the input topics, every 5 s (max, last);
* **RSS** of every process of ``hub up`` (itself, broker, worker, simulator): the median of the first and of
  the last minute of the measured window (samples every 5 s), and the growth in %;
* **data kept** — records on each topic (end − start offset: what retention and compaction left) and the
  broker's data file after the stop;
* **the stop** — SIGINT, then how long until ``hub up`` exited and whether any of its processes was left.

    .venv/bin/python benchmarks/soak.py --minutes 30 [--warmup 120] [--json report.json]

Prints a markdown report (the figures of BENCHMARKS.md, "Soak") and exits 1 when a promise is broken:
a worker restart, a minute without settlements, a process left after the stop, a stop slower than 15 s.
RSS growth is reported, not judged here (the 30-minute run is judged by a person against < 10 %).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
STOP_LIMIT = 15.0
SAMPLE_SECONDS = 5.0


@dataclass
class Report:
    """Everything the soak measured; ``problems`` lists the promises that were broken."""

    command: str
    machine: str
    started: str
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    catch_up_seconds: float = 0.0
    warmup_seconds: float = 0.0
    minutes: float = 0.0
    worker_restarts: int = 0
    restart_lines: list[str] = field(default_factory=list)
    worker_log_crashes: list[str] = field(default_factory=list)
    settlements_per_minute: list[int] = field(default_factory=list)
    discharges_per_minute: list[int] = field(default_factory=list)
    lag_max: int | None = None
    lag_last: int | None = None
    rss_start_mb: dict[str, float] = field(default_factory=dict)
    rss_end_mb: dict[str, float] = field(default_factory=dict)
    rss_growth_pct: dict[str, float] = field(default_factory=dict)
    records_kept: dict[str, int] = field(default_factory=dict)
    records_per_minute: dict[str, float] = field(default_factory=dict)
    data_file_mb: float = 0.0
    stop_seconds: float = 0.0
    exit_code: int | None = None
    left_running: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class HubUp:
    """``hub up`` as a child process, its output lines collected by a thread."""

    def __init__(self, data_dir: Path, args: list[str]) -> None:
        env = dict(os.environ, HUB_DATA_DIR=str(data_dir), HUB_METRICS_PORT="0", HUB_API_PORT="0")
        self.cmd = [sys.executable, "-m", "hub.cli", "up", *args]
        self.data_dir = data_dir
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                found = re.search(pattern, line)
                if found:
                    return found
            seen = len(self.lines)
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"hub up never printed /{pattern}/ (exit {self.proc.poll()}); last lines:\n"
                           + "\n".join(self.lines[-30:]))

    def processes(self) -> dict[str, psutil.Process]:
        """``hub up``, broker, worker, simulator (by their command lines)."""
        found = {"hub up": psutil.Process(self.proc.pid)}
        for child in found["hub up"].children(recursive=True):
            try:
                cmdline = " ".join(child.cmdline())
            except psutil.Error:
                continue
            role = ("broker" if "noida-db" in cmdline else "worker" if "hub.worker" in cmdline
                    else "simulator" if "hub.feed" in cmdline else child.name())
            found[role] = child
        return found

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for role, proc in self.processes().items():
            with contextlib.suppress(psutil.Error):  # a process that just ended has no RSS
                out[role] = round(proc.memory_info().rss / 1e6, 1)
        return out


def _offsets(bootstrap: str, topics: list[str], spec: str) -> dict[Any, int]:
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient, OffsetSpec

    from hub.topics import BY_NAME, state_topic

    parts = {t: BY_NAME[t].partitions if t in BY_NAME else state_topic().partitions for t in topics}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="soak", request_timeout_ms=10000)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(parts[t])]
        which = OffsetSpec.LATEST if spec == "latest" else OffsetSpec.EARLIEST
        return {tp: o.offset for tp, o in admin.list_partition_offsets({tp: which for tp in tps}).items()}
    finally:
        admin.close()


def _per_minute(bootstrap: str, topic: str, since: dict[Any, int], start_ms: int, minutes: int) -> list[int]:
    """Records of ``topic`` (read_committed: no transaction marker, no aborted copy) produced in each whole
    minute from ``start_ms``, read from the offsets ``since``."""
    from kafka import KafkaConsumer

    counts = [0] * minutes
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed")
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        ends = consumer.end_offsets(list(since))
        while any(consumer.position(tp) < ends[tp] for tp in since):
            batch = consumer.poll(timeout_ms=1000, max_records=10_000)
            if not batch:
                break
            for msgs in batch.values():
                for m in msgs:
                    minute = (m.timestamp - start_ms) // 60_000
                    if 0 <= minute < minutes:
                        counts[minute] += 1
    finally:
        consumer.close()
    return counts


def _kept(bootstrap: str) -> dict[str, int]:
    """Records each topic holds now (end − start offsets: what retention and compaction left)."""
    from hub.topics import CATALOGUE, state_topic

    names = [t.name for t in CATALOGUE] + [state_topic().name]
    ends, starts = _offsets(bootstrap, names, "latest"), _offsets(bootstrap, names, "earliest")
    return {n: sum(ends[tp] - starts[tp] for tp in ends if tp.topic == n) for n in names}


def _lag(bootstrap: str) -> int | None:
    from hub.runtime import group_lag
    from hub.topics import APP_ID, INPUT_TOPICS

    return group_lag(bootstrap, APP_ID, INPUT_TOPICS)


def _median_rss(samples: list[dict[str, float]]) -> dict[str, float]:
    roles = {role for sample in samples for role in sample}
    out = {}
    for role in sorted(roles):
        values = sorted(sample[role] for sample in samples if role in sample)
        out[role] = values[len(values) // 2]
    return out


def soak(minutes: float, warmup: float, hub_args: list[str], data_dir: Path) -> Report:
    report = Report(command=" ".join(["python benchmarks/soak.py", *sys.argv[1:]]),
                    machine=f"{platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
                            f"Python {platform.python_version()}, Linux {platform.release()}",
                    started=datetime.now().astimezone().isoformat(timespec="seconds"), load_start=os.getloadavg())
    hub = HubUp(data_dir, hub_args)
    try:
        bootstrap = hub.wait_for(r"^broker: (\S+)$", 120).group(1)
        t0 = time.monotonic()
        hub.wait_for(r"simulator live", 300)
        report.catch_up_seconds = round(time.monotonic() - t0, 1)
        time.sleep(warmup)
        report.warmup_seconds = warmup
        kept_before = _kept(bootstrap)
        start = time.monotonic()
        start_ms = int(time.time() * 1000)
        settled_from = _offsets(bootstrap, ["hub.settlements.v1"], "latest")
        discharged_from = _offsets(bootstrap, ["health.discharges.v1"], "latest")
        lags: list[int] = []
        rss: list[tuple[float, dict[str, float]]] = [(0.0, hub.rss_mb())]
        next_minute = start + 60.0
        while time.monotonic() - start < minutes * 60.0:
            if hub.proc.poll() is not None:
                raise RuntimeError(f"hub up exited with {hub.proc.returncode} during the soak")
            time.sleep(min(SAMPLE_SECONDS, max(next_minute - time.monotonic(), 0.0)))
            rss.append((time.monotonic() - start, hub.rss_mb()))
            lag = _lag(bootstrap)
            if lag is not None:
                lags.append(lag)
            if time.monotonic() >= next_minute:
                next_minute += 60.0
        report.minutes = minutes
        # Medians of the first and the last minute: noida-db's RSS jumps for a few seconds while it saves its
        # data file (every few minutes), and one sample taken then would read as growth.
        report.rss_start_mb = _median_rss([r for t, r in rss if t <= 60.0])
        report.rss_end_mb = _median_rss([r for t, r in rss if t >= minutes * 60.0 - 60.0])
        report.settlements_per_minute = _per_minute(bootstrap, "hub.settlements.v1", settled_from, start_ms,
                                                    int(minutes))
        report.discharges_per_minute = _per_minute(bootstrap, "health.discharges.v1", discharged_from, start_ms,
                                                   int(minutes))
        report.lag_max = max(lags) if lags else None
        report.lag_last = lags[-1] if lags else None
        report.records_kept = _kept(bootstrap)
        report.records_per_minute = {n: round((report.records_kept[n] - kept_before.get(n, 0)) / minutes, 1)
                                     for n in report.records_kept}
    finally:
        processes = hub.processes() if hub.proc.poll() is None else {}
        t = time.monotonic()
        hub.proc.send_signal(signal.SIGINT)
        try:
            report.exit_code = hub.proc.wait(60)
        except subprocess.TimeoutExpired:
            hub.proc.kill()
            report.exit_code = hub.proc.wait(10)
        report.stop_seconds = round(time.monotonic() - t, 1)
        time.sleep(0.5)
        report.left_running = [f"{role} (pid {p.pid})" for role, p in processes.items()
                               if role != "hub up" and p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for p in processes.values():  # never leave anything behind, even when the stop failed
            if p.is_running():
                p.kill()
    report.load_end = os.getloadavg()
    report.restart_lines = [line for line in hub.lines if re.match(r"^(worker|simulator): (restarted|FAILED)", line)]
    report.worker_restarts = sum(1 for line in hub.lines if line.startswith("worker: restarted"))
    log = data_dir / "worker.log"
    if log.exists():
        report.worker_log_crashes = [line for line in log.read_text(errors="replace").splitlines()
                                     if " CRITICAL " in line or line.startswith("Traceback")][:10]
    data_file = data_dir / "broker" / "kafka.json"
    report.data_file_mb = round(data_file.stat().st_size / 1e6, 1) if data_file.exists() else 0.0
    report.rss_growth_pct = {role: round((report.rss_end_mb[role] / mb - 1) * 100, 1)
                             for role, mb in report.rss_start_mb.items() if role in report.rss_end_mb and mb}
    report.problems = _problems(report)
    return report


def _problems(r: Report) -> list[str]:
    problems = []
    if r.worker_restarts or r.restart_lines:
        problems.append(f"restarts: {r.restart_lines}")
    if r.worker_log_crashes:
        problems.append(f"crash lines in the worker log: {r.worker_log_crashes[:3]}")
    empty = [i + 1 for i, n in enumerate(r.settlements_per_minute) if n <= 0]
    if empty or not r.settlements_per_minute:
        problems.append(f"minutes without a settlement: {empty or 'no whole minute measured'}")
    if r.left_running:
        problems.append(f"left running after the stop: {r.left_running}")
    if r.stop_seconds > STOP_LIMIT:
        problems.append(f"the stop took {r.stop_seconds} s (> {STOP_LIMIT:.0f} s)")
    if r.exit_code != 0:
        problems.append(f"hub up exited with {r.exit_code}")
    return problems


def markdown(r: Report) -> str:
    per_minute = r.settlements_per_minute
    lines = [
        f"Command: `{r.command}`  ",
        f"Machine: {r.machine}; load average {' '.join(f'{x:.2f}' for x in r.load_start)} at the start, "
        f"{' '.join(f'{x:.2f}' for x in r.load_end)} at the end  ",
        f"Started: {r.started}; catch-up {r.catch_up_seconds} s, warm-up {r.warmup_seconds:.0f} s, "
        f"measured {r.minutes:g} min",
        "",
        "| what | figure |",
        "|---|---|",
        f"| worker restarts | {r.worker_restarts} |",
        f"| CRITICAL/Traceback lines in the worker log | {len(r.worker_log_crashes)} |",
        f"| settlements per minute (min / median / max) | {min(per_minute, default=0)} / "
        f"{sorted(per_minute)[len(per_minute) // 2] if per_minute else 0} / {max(per_minute, default=0)} |",
        f"| minutes without a settlement | {sum(1 for n in per_minute if n <= 0)} of {len(per_minute)} |",
        f"| worker group lag, max / last sample | {r.lag_max} / {r.lag_last} |",
        f"| stop after SIGINT | {r.stop_seconds} s, exit code {r.exit_code}, left running: "
        f"{', '.join(r.left_running) or 'nothing'} |",
        f"| broker data file after the stop | {r.data_file_mb} MB |",
        "",
        "| process | RSS at start (MB) | RSS at end (MB) | growth |",
        "|---|---:|---:|---:|",
    ]
    for role, mb in r.rss_start_mb.items():
        lines.append(f"| {role} | {mb} | {r.rss_end_mb.get(role, '—')} | {r.rss_growth_pct.get(role, '—')} % |")
    lines += ["", "| topic | offsets held at the end (records + transaction markers) | added per minute |",
              "|---|---:|---:|"]
    lines += [f"| {t} | {n:,} | {r.records_per_minute.get(t, 0):g} |"
              for t, n in sorted(r.records_kept.items(), key=lambda kv: -kv[1]) if n]
    lines += ["", f"Settlements in each minute: {per_minute}", "",
              f"Discharges produced in each minute: {r.discharges_per_minute}", "",
              "Verdict: " + ("every promise kept" if not r.problems else "; ".join(r.problems))]
    return "\n".join(lines)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # Started in the background (nohup … &), this process and so `hub up` would ignore SIGINT — and the stop
    # measured at the end is a SIGINT. A handler here is reset to the default in the child at exec; SIGTERM
    # to the soak stops `hub up` the same way (the `finally` of soak()).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="measured window, after catch-up and warm-up")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds after the catch-up before measuring")
    parser.add_argument("--persons", type=int, default=5000)
    parser.add_argument("--admissions-per-minute", type=float, default=10.0)
    parser.add_argument("--data-dir", type=Path, default=None, help="kept after the run (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON here too")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="hub-soak-"))
    hub_args = ["--persons", str(args.persons), "--admissions-per-minute", str(args.admissions_per_minute)]
    try:
        report = soak(args.minutes, args.warmup, hub_args, data_dir)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(markdown(report), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
