"""hub.supervise with real child processes: restart with backoff, FAILED with the last log line, bounded stop,
and the parent-death signal (issue 15, items 3–5). The clock of a Part is injected so backoff is checked
without sleeping through it; the processes, exits and signals are real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from hub.supervise import (
    BACKOFF_CAP,
    FAILED_AFTER,
    HEALTHY_AFTER,
    Part,
    death_signal_preexec,
    describe_exit,
    last_log_line,
    terminate,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _python(code: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=death_signal_preexec(signal.SIGKILL))  # noqa: PLW1509
    finally:
        if log is not None:
            out.close()


def _wait_exit(part: Part) -> None:
    assert part.proc is not None
    part.proc.wait(10)


def test_a_part_that_exits_is_restarted_with_growing_backoff_and_said_so(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    clock = Clock()
    part = Part("worker", lambda: _python("print('ERROR kafka: MessageSizeTooLargeError'); raise SystemExit(70)",
                                          log), log=log, clock=clock)
    part.start()
    first_pid = part.pid
    _wait_exit(part)
    lines = part.poll()
    assert lines and "exit code 70" in lines[0] and "MessageSizeTooLargeError" in lines[0], lines
    assert "restarting in 1 s" in lines[0]
    assert part.state == "restarting" and "next try in 1 s" in part.status()
    assert part.poll() == []  # not due yet
    clock.now += 1.0
    lines = part.poll()
    assert lines == [f"worker: restarted (pid {part.pid}, restart 1)"] and part.pid != first_pid
    _wait_exit(part)
    assert "restarting in 2 s" in part.poll()[0]  # backoff doubles while it keeps failing at once


def test_a_part_that_keeps_failing_is_shown_failed_with_its_last_log_line_and_retried(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    clock = Clock()
    part = Part("worker", lambda: _python("print('INFO starting'); print('CRITICAL person stream: giving up (boom)');"
                                          " print('INFO Closing event loop'); raise SystemExit(70)", log),
                log=log, clock=clock)
    part.start()
    for n in range(FAILED_AFTER):
        _wait_exit(part)
        lines = part.poll()
        if n < FAILED_AFTER - 1:
            clock.now += 60.0 if n else 1.0
            part.poll()  # the restart
    assert part.state == "failed", part.status()
    assert "FAILED" in lines[0] and "giving up (boom)" in lines[0], lines  # the error line, not the last line
    assert part.status().startswith("FAILED (next try in")
    assert "CRITICAL person stream: giving up (boom)" in part.status()
    clock.now += BACKOFF_CAP
    assert "restarted" in part.poll()[0]  # still retried: a broker that comes back, the demo recovers


def test_a_run_longer_than_healthy_after_resets_the_backoff(tmp_path: Path) -> None:
    clock = Clock()
    part = Part("simulator", lambda: _python("raise SystemExit(1)"), clock=clock)
    part.start()
    _wait_exit(part)
    part.poll()
    clock.now += 1.0
    part.poll()
    clock.now += HEALTHY_AFTER + 1  # this run lasted long enough
    _wait_exit(part)
    assert "restarting in 1 s" in part.poll()[0]


def test_killed_by_a_signal_is_said_so(tmp_path: Path) -> None:
    part = Part("worker", lambda: _python("import time; time.sleep(60)"), log=tmp_path / "none.log")
    part.start()
    assert part.proc is not None
    part.proc.kill()
    _wait_exit(part)
    assert part.poll()[0].startswith("worker: killed by SIGKILL; restarting in 1 s")
    part.stop(1.0)


def test_stop_is_bounded_even_when_the_child_ignores_sigterm() -> None:
    proc = _python("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True);"
                   " time.sleep(60)")
    time.sleep(0.5)
    started = time.monotonic()
    how = terminate(proc, 1.0)
    assert time.monotonic() - started < 4.0
    assert how == "did not stop within 1.0 s: killed" and proc.returncode == -signal.SIGKILL


def test_a_stopped_part_is_not_restarted() -> None:
    clock = Clock()
    part = Part("simulator", lambda: _python("import time; time.sleep(60)"), clock=clock)
    part.start()
    assert part.stop(5.0).startswith("stopped in")
    clock.now += 100
    assert part.poll() == [] and part.state == "stopped"


def test_children_die_with_their_parent_even_on_kill_9(tmp_path: Path) -> None:
    """A middle process starts a child with death_signal_preexec and is then killed with SIGKILL: the kernel
    kills the child too (PR_SET_PDEATHSIG), and the child was in its own process group (a terminal's
    Ctrl-C reaches only the parent, which stops the parts in order)."""
    pid_file = tmp_path / "child.pid"
    middle = subprocess.Popen([sys.executable, "-c", f"""
import signal, subprocess, sys, time
from hub.supervise import death_signal_preexec
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         preexec_fn=death_signal_preexec(signal.SIGKILL))
open({str(pid_file)!r}, "w").write(str(child.pid))
time.sleep(120)
"""])
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = psutil.Process(int(pid_file.read_text()))
        assert os.getpgid(child.pid) == child.pid != os.getpgid(middle.pid)
        middle.kill()
        middle.wait(5)
        child.wait(5)  # gone (psutil.TimeoutExpired otherwise); not our child any more, so no exit code
    finally:
        if middle.poll() is None:
            middle.kill()


def test_last_log_line_prefers_the_error_and_reads_only_this_run(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("ERROR an old run's error\n")
    offset = log.stat().st_size
    with log.open("a") as fh:
        fh.write("INFO started\nERROR task 2: commit failed (KafkaTimeoutError)\nINFO Closing event loop\n\n")
    assert last_log_line(log, offset) == "ERROR task 2: commit failed (KafkaTimeoutError)"
    assert last_log_line(tmp_path / "missing.log") == ""
    log.write_text("INFO only this\n")
    assert last_log_line(log) == "INFO only this" and last_log_line(log, errors_only=True) == ""
    assert describe_exit(-9) == "killed by SIGKILL" and describe_exit(3) == "exit code 3"
