"""``make bench``: every benchmark of the hub, one after the other, with moderate defaults.

Why one script: the figures in BENCHMARKS.md come from these commands, and a reader should be able to
rerun all of them with one command that finishes in a few minutes on a 2-core machine. Each benchmark
is its own process (its own broker and workers, stopped when it ends) and prints its own markdown; this
script only runs them in order, passes ``--json`` so the raw figures land in one folder, and reports
which ones failed. A missing optional benchmark (``counter_api_latency.py``) is skipped, not an error.

    .venv/bin/python benchmarks/run_all.py [--quick] [--out DIR]

``--quick`` shrinks every run (for a smoke test of the benchmarks themselves, not for figures).
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

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    """One benchmark run: a script in benchmarks/ and its arguments (full and ``--quick``)."""

    name: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    timeout: float


BENCHES: tuple[Bench, ...] = (
    # 50,000 events per mix: long enough for a steady rate (≈20–40 s of worker time), short enough for make.
    Bench("processor-realistic", "processor_throughput.py", ("--events", "50000", "--mix", "realistic"),
          ("--events", "5000", "--mix", "realistic"), 900),
    Bench("processor-discharge-heavy", "processor_throughput.py",
          ("--events", "50000", "--mix", "discharge-heavy", "--skip", "aiokafka", "--skip", "faust"),
          ("--events", "5000", "--mix", "discharge-heavy", "--skip", "aiokafka", "--skip", "faust"), 900),
    Bench("counter-api-latency", "counter_api_latency.py", ("--rates", "20,100", "--seconds", "30"),
          ("--rates", "20", "--seconds", "5"), 900),
)


def run(bench: Bench, out: Path, quick: bool) -> tuple[str, float]:
    """Run one benchmark with a hard timeout; its stdout (markdown) and stderr go to this terminal."""
    script = HERE / bench.script
    if not script.exists():
        return "skipped (not present)", 0.0
    cmd = [sys.executable, str(script), *(bench.quick_args if quick else bench.args),
           "--json", str(out / f"{bench.name}.json")]
    print(f"\n## {bench.name}\n\n`{' '.join(cmd[1:])}`\n", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(cmd)
    try:
        code = proc.wait(timeout=bench.timeout)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
        # SIGTERM first: a benchmark stops its own broker and workers on it (SIGKILL would leave that to
        # their death signals)
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
    ap.add_argument("--quick", action="store_true", help="tiny runs: checks the benchmarks work, figures mean little")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "hub-bench",
                    help="folder for the JSON results (default: $TMPDIR/hub-bench)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = [(b.name, *run(b, args.out, args.quick)) for b in BENCHES]
    print("\n## Summary\n\n| benchmark | result | seconds |\n|---|---|---:|")
    for name, status, seconds in results:
        print(f"| {name} | {status} | {seconds:.0f} |")
    print(f"\nJSON results in {args.out}/; copy the tables you keep into BENCHMARKS.md with the date and load.")
    return 0 if all(status.startswith(("ok", "skipped")) for _, status, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
