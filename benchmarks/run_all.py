"""``make bench``: every benchmark of the hub, one after the other, one table each.

Why one script: the figures in BENCHMARKS.md come from these commands, and a reader should be able to rerun all
of them with one command. Each benchmark is its own process (its own broker and workers, stopped when it ends)
and prints its own table (benchmarks/harness.py: the command, the machine, and per row the load average at
start and end and the date; every row that writes outputs checked against ``hub replay`` or the reference
values first). This script runs them in order, keeps each one's JSON and table in ``--out``, writes all tables
to ``--out/results.md`` and reports which failed.

    .venv/bin/python benchmarks/run_all.py [--quick | --issue] [--only NAME] [--out DIR]

``--quick`` shrinks every run (a smoke test of the benchmarks themselves, not figures); ``--issue`` runs the
sizes issue 18 asks for (1 M backlog events, 1 M-row rosters), which take most of an hour on 2 cores. The
machine is shared: look at the load columns before comparing figures, and rerun a row whose load was high.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import loadavg, machine, now

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    """One benchmark: a script in benchmarks/ and its arguments per size."""

    name: str
    script: str
    default: tuple[str, ...]
    quick: tuple[str, ...]
    issue: tuple[str, ...]
    timeout: float
    json: bool = True
    """Whether the script takes ``--json PATH`` (every benchmark on the shared harness does)."""


BENCHES: tuple[Bench, ...] = (
    # floors, Quix Streams and the worker on the same records (item 1(a) and item 2)
    Bench("processor", "processor_throughput.py", ("--events", "100000"), ("--events", "5000"),
          ("--events", "1000000"), 7200),
    # live end-to-end latency, event produced → output consumed (item 1(b))
    Bench("live", "live_latency.py", ("--rates", "50,500,2000", "--seconds", "30"),
          ("--rates", "50,500,2000", "--seconds", "3", "--warmup", "1"), ("--rates", "50,500,2000", "--seconds", "60"),
          1800),
    # the hospital cashier's wait (item 1(c))
    Bench("counter-api", "counter_api_latency.py", ("--rates", "20,100", "--seconds", "30"),
          ("--rates", "20", "--seconds", "5", "--idle-seconds", "3"), ("--rates", "20,100", "--seconds", "60"), 1800),
    # a province's monthly roster through file_drop (item 1(d))
    Bench("roster", "roster_load.py", ("--rows", "1000000"), ("--rows", "20000"), ("--rows", "1000000"), 3600),
    # the worker's state per person (item 1(e); the lead's script: RocksDB for 10 M persons is run by hand,
    # `benchmarks/state_size.py --persons 10000000 --store rocksdb://`)
    Bench("state-size", "state_size.py", ("--persons", "200000"), ("--persons", "20000"),
          ("--persons", "1000000", "--store", "memory://"), 3600, json=False),
)


def run(bench: Bench, out: Path, size: str) -> tuple[str, float]:
    """Run one benchmark with a hard timeout; its table goes to this terminal and to ``out``."""
    args = {"quick": bench.quick, "issue": bench.issue}.get(size, bench.default)
    cmd = [sys.executable, str(HERE / bench.script), *args]
    if bench.json:
        cmd += ["--json", str(out / f"{bench.name}.json")]
    print(f"\n## {bench.name}\n\n`{' '.join(cmd[1:])}`\n", flush=True)
    started = time.monotonic()
    with open(out / f"{bench.name}.md", "wb") as table:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
                table.write(line)
            code = proc.wait(timeout=max(bench.timeout - (time.monotonic() - started), 1))
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            # SIGTERM first: a benchmark stops its own broker and workers on it
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if isinstance(exc, KeyboardInterrupt):
                raise
            return f"timed out after {bench.timeout:.0f} s", time.monotonic() - started
    return ("ok" if code == 0 else f"failed (exit {code})"), time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny runs: checks the benchmarks work, figures mean little")
    size.add_argument("--issue", action="store_true", help="the sizes issue 18 asks for (long)")
    ap.add_argument("--only", action="append", choices=[b.name for b in BENCHES], default=None,
                    help="run only this benchmark (repeatable)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "hub-bench",
                    help="folder for the tables and JSON results (default: $TMPDIR/hub-bench)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    which = "quick" if args.quick else "issue" if args.issue else "default"
    started, load = now(), loadavg()
    results = [(b.name, *run(b, args.out, which)) for b in BENCHES if args.only is None or b.name in args.only]
    summary = ["## Summary", "", f"- machine: {machine().text()}", f"- started {started} (load {load}), ended "
               f"{now()} (load {loadavg()}); sizes: {which}", "", "| benchmark | result | seconds |", "|---|---|---:|",
               *(f"| {name} | {status} | {seconds:.0f} |" for name, status, seconds in results)]
    print("\n" + "\n".join(summary))
    tables = [(args.out / f"{name}.md").read_text(encoding="utf-8", errors="replace") for name, _, _ in results
              if (args.out / f"{name}.md").exists()]
    (args.out / "results.md").write_text("\n".join([*tables, *summary]) + "\n", encoding="utf-8")
    print(f"\nTables and JSON in {args.out}/ (all tables: {args.out / 'results.md'}); copy what you keep into "
          "BENCHMARKS.md with its date and load.")
    return 0 if all(status == "ok" for _, status, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
