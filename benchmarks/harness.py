"""What every benchmark of the hub shares: the machine, its load, the date, the command — and one table writer.

Why one module: a figure measured on this 2-core machine means nothing without the machine it ran on, the
load other processes put on it while it ran, when, and the command that reproduces it. Each benchmark used
to carry its own copy of these helpers, each printing its own kind of table; now every benchmark builds a
:class:`Table` of :class:`Row` s, and every row records its own load average at start and end and its date
(rows of one table run minutes apart, and the load of a shared machine changes in between).

A row that compares outputs (``check``) and finds them different from the reference is *withheld*
(:meth:`Row.withhold`): its figures are kept in the JSON for diagnosis but the table prints none, because a
rate counts only for correct outputs.

Profiles: :func:`spy` samples a child process (worker, API, connector) with py-spy while it is measured, and
:func:`summarize_stacks` turns the samples into the functions most on CPU — the profiles BENCHMARKS.md cites.

Nothing here imports the hub: benchmarks run it against any checkout.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["BenchError", "Machine", "Row", "Table", "busy_processes", "command_line", "cpu_seconds", "die_with_parent",
           "fmt", "loadavg", "machine", "now", "percentile", "row", "rss_mb", "say", "spy", "stop_spy",
           "summarize_stacks", "whatif_env"]


class BenchError(RuntimeError):
    """A measurement could not be made (timeout, a child that died); the message says which and why."""


# ------------------------------------------------------------------------------------------ facts


@dataclass(frozen=True)
class Machine:
    """What a reader needs to compare two runs."""

    nproc: int
    cpu: str
    memory_gb: float
    python: str
    kernel: str
    git: str

    def text(self) -> str:
        return (f"{self.nproc} CPUs ({self.cpu}), {self.memory_gb:.0f} GB, Python {self.python}, "
                f"Linux {self.kernel}; code: git {self.git}")


@functools.cache
def machine() -> Machine:
    """nproc, CPU model, memory, Python, kernel and the code measured (a ``-dirty`` tree had uncommitted changes)."""
    model, mem_kb = "unknown", 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return Machine(len(os.sched_getaffinity(0)), model, mem_kb / 1024 / 1024, platform.python_version(),
                   platform.release(), rev)


def loadavg() -> tuple[float, float, float]:
    """The 1/5/15-minute load averages (runnable processes; on 2 cores anything above 2 queues)."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def now() -> str:
    """Local time with its offset, to the second."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def command_line(argv: Sequence[str] | None = None, script: str | None = None) -> str:
    """The command that reproduces a run, from the checkout's root: ``.venv/bin/python benchmarks/x.py …``."""
    args = list(sys.argv if argv is None else [script or sys.argv[0], *argv])
    path = Path(args[0]).resolve()
    with contextlib.suppress(ValueError):
        args[0] = str(path.relative_to(ROOT))
    return shlex.join([".venv/bin/python", *args])


def cpu_seconds(pid: int | None, thread: int | None = None) -> float | None:
    """utime + stime of a process (or one of its threads) so far, from /proc; None when gone."""
    if pid is None:
        return None
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a process in MB (VmRSS), None when gone."""
    if pid is None:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a value that really occurred)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def busy_processes(limit: int = 5) -> list[str]:
    """The processes using most CPU right now (other engineers' tests share this machine)."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,etime,args", "--sort=-pcpu"], capture_output=True,
                             text=True, timeout=5).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    me = str(os.getpid())
    return [line[:120] for line in out[1:] if line.split()[0] != me][:limit]


def die_with_parent() -> None:
    """``preexec_fn`` of every child a benchmark starts: own process group, SIGTERM when the benchmark dies
    (even by ``kill -9``), so no broker, worker or API outlives it."""
    import ctypes

    os.setpgrp()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def whatif_env(options: Sequence[str], pace: float) -> tuple[dict[str, str], str]:
    """Environment that starts a worker with its live shell's tunables changed (benchmarks/whatif/), and the
    note saying so; ``({}, "")`` when nothing is changed.

    ``options``: ``NAME=VALUE`` fields of ``hub.processors.stream.StreamOptions`` (e.g. ``idle_pause=0.005``);
    ``pace``: seconds the worker's consumers hold an empty fetch response. Why a what-if and not a change: the
    worker is not the benchmarks' to change; this says how much a tunable costs before someone changes it.
    """
    joined = ",".join(options)
    if not joined and not pace:
        return {}, ""
    path = os.pathsep.join(p for p in (str(ROOT / "benchmarks" / "whatif"), os.environ.get("PYTHONPATH")) if p)
    env = {"BENCH_STREAM_OPTIONS": joined, "BENCH_PACE_FETCHES": str(pace), "PYTHONPATH": path}
    return env, (f"what-if: the worker ran with live-shell options `{joined or 'as shipped'}` and empty fetches held "
                 f"{pace * 1000:g} ms (benchmarks/whatif/sitecustomize.py)")


def say(msg: str) -> None:
    """Progress goes to stderr; stdout is the table."""
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ rows and tables


@dataclass
class Row:
    """One measured line of a table, with its own load and date (rows of one table run minutes apart)."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    check: str = ""
    """What the outputs were compared with, and the verdict (empty: this row produces no outputs)."""
    ok: bool = True
    """False when the check failed: the figures are withheld from the table."""
    command: str = ""
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    started: str = ""
    ended: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def begin(self) -> Row:
        self.load_start, self.started = loadavg(), now()
        return self

    def end(self) -> Row:
        self.load_end, self.ended = loadavg(), now()
        return self

    def withhold(self, why: str) -> None:
        """The outputs were wrong (or not checked): keep the figures for diagnosis, print none."""
        self.ok = False
        self.check = why


@contextlib.contextmanager
def row(name: str, command: str = "") -> Iterator[Row]:
    """``with row("aiokafka floor") as r: … r.figures["events/s"] = …``: load and date recorded around it.

    A :class:`BenchError` inside marks the row failed (its message becomes the check) and is not raised:
    one failed measurement must not hide the others of the table.
    """
    r = Row(name, command=command).begin()
    try:
        yield r
    except BenchError as exc:
        r.withhold(f"FAILED: {exc}")
        say(f"{name}: FAILED: {exc}")
    finally:
        r.end()


def fmt(value: Any) -> str:
    """A figure as the tables print it: thousands separators, 3 significant digits at most after the point."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


@dataclass
class Table:
    """One benchmark's result: a title, the command, the machine, columns of figures, rows, notes."""

    title: str
    command: str
    columns: list[tuple[str, str]]
    """(figure key, column header) in print order; a row without a figure prints —."""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: str = field(default_factory=now)
    busy: list[str] = field(default_factory=busy_processes)

    def add(self, r: Row) -> Row:
        if not r.command:
            r.command = self.command
        self.rows.append(r)
        return r

    def markdown(self) -> str:
        m = machine()
        heads = ["measurement", *(h for _, h in self.columns), "check", "notes", "load 1-min start → end", "date"]
        lines = [f"### {self.title}", "", f"- command: `{self.command}`", f"- machine: {m.text()}",
                 f"- started: {self.started}", ""]
        lines.append("| " + " | ".join(heads) + " |")
        lines.append("|---|" + "---:|" * len(self.columns) + "---|---|---|---|")
        for r in self.rows:
            cells = [fmt(r.figures.get(k)) if r.ok else "—" for k, _ in self.columns]
            date = r.started.replace("T", " ")[:16]
            lines.append("| " + " | ".join([r.name, *cells, r.check or "", r.note,
                                            f"{r.load_start[0]:.2f} → {r.load_end[0]:.2f}", date]) + " |")
        if self.notes:
            lines += ["", *(f"- {n}" for n in self.notes)]
        if self.busy:
            lines += ["", "Busiest processes at the start (other work on this machine adds noise):", "", "```",
                      *self.busy, "```"]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "command": self.command, "machine": asdict(machine()), "started": self.started,
                "columns": self.columns, "notes": self.notes, "busy": self.busy,
                "rows": [asdict(r) for r in self.rows]}

    def write_json(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False, default=str) + "\n")


# ------------------------------------------------------------------------------------------ profiles


def spy(pid: int, out: Path, rate: int = 200) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` with py-spy (collapsed stacks) until it exits or :func:`stop_spy`; None without py-spy.

    Why py-spy: it attaches to a running child (worker, API, connector) without changing its code, so the
    profile is of the very process the benchmark measures. ``--nonblocking``: the target is not paused.
    """
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        say("py-spy is not installed (pip install -e '.[bench]'): no profile")
        return None
    return subprocess.Popen([str(exe), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
                             "--nonblocking", "--nolineno", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)  # noqa: PLW1509


def stop_spy(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    """Stop a :func:`spy` (SIGINT: py-spy writes its file and exits)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def summarize_stacks(raw: Path, top: int = 25, idle: Sequence[str] = ("select", "poll", "epoll", "wait", "sleep")
                     ) -> str:
    """The functions most often on CPU (self) and on the stack (total) in a py-spy raw file, as text.

    A sample whose innermost frame is a wait in the event loop (``select``/``poll``) counts as idle and is left
    out of the shares, so the percentages are of the time the process was busy.
    """
    import collections

    self_time: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    busy = 0
    idle_n = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        leaf = frames[-1].split(" (", 1)[0].rsplit(".", 1)[-1]
        if leaf in idle:
            idle_n += n
            continue
        busy += n
        self_time[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    if not busy:
        return "no busy samples"
    lines = [f"{busy} busy samples, {idle_n} idle", "", "self %  function"]
    lines += [f"{c / busy:6.1%}  {f}" for f, c in self_time.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{c / busy:6.1%}  {f}" for f, c in total.most_common(top)]
    return "\n".join(lines)
