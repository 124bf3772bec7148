"""Child processes of ``hub up``: started so they die with it, stopped in bounded time, restarted with backoff.

Why this module: ``hub up`` is the supervisor of the demo — the part systemd or Kubernetes plays in
production. A supervisor that waits without a bound, leaves a child behind, or lets a dead worker lie
unnoticed is the defect issue 15 describes (a Ctrl-C that hung for 90 s; a worker that outlived
``kill -9`` of ``hub up``; a crash loop nobody was told about). So every child of ``hub up`` is started
and watched the same way:

* **own process group**: a Ctrl-C in the terminal reaches ``hub up`` only, which then stops the parts in
  order (simulator, API, worker, broker), each with a deadline;
* **parent-death signal** (Linux ``prctl(PR_SET_PDEATHSIG)``): the kernel signals the child when ``hub up``
  dies, even by ``kill -9``. Workers and the simulator get SIGKILL: what they did not commit is redelivered
  and §8.2 of the policy spec makes that harmless, while an orderly stop against a broker that is dying
  at the same moment could only wait. (The broker gets SIGTERM, so it saves its data: hub/broker.py.)
  The signal is tied to the *thread* that forked, so parts are started and restarted from the main thread;
* **bounded stop** (:func:`terminate`): a polite signal, a wait until a deadline, then SIGKILL;
* **restart with backoff** (:class:`Part`): a part that exits while ``hub up`` runs is started again after
  1, 2, 4 … 30 s; after :data:`FAILED_AFTER` exits in a row, each within :data:`HEALTHY_AFTER` s of its
  start, it is shown *failed* with its last log line, and still retried every 30 s (a broker that comes
  back, a disk that was full: the demo recovers without anyone restarting it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["Part", "death_signal_preexec", "describe_exit", "last_log_line", "terminate"]

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0
HEALTHY_AFTER = 60.0
"""Seconds a part must run for its next exit to count as a new failure rather than one more in a row."""
FAILED_AFTER = 3
"""Exits in a row (each within HEALTHY_AFTER of its start) after which a part is shown failed."""
_PR_SET_PDEATHSIG = 1


def death_signal_preexec(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets its own process group and ``sig`` when this process (thread) dies.

    libc's ``prctl`` is looked up here, in the parent, so the child only calls it between fork and exec.
    If the parent died before ``prctl`` took effect, the child exits at once (nobody would signal it).
    """
    parent = os.getpid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl

    def preexec() -> None:
        os.setpgrp()
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def describe_exit(returncode: int) -> str:
    """``exit code 70`` or ``killed by SIGKILL``: what a person reads on the progress line."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def terminate(proc: subprocess.Popen[bytes], timeout: float, sig: int = signal.SIGTERM) -> str:
    """Stop ``proc``: ``sig``, wait at most ``timeout`` s, then SIGKILL. Returns how it ended (for the log)."""
    if proc.poll() is not None:
        return f"already gone ({describe_exit(proc.returncode)})"
    started = time.monotonic()
    try:
        proc.send_signal(sig)
        proc.wait(max(timeout, 0.0))
        return f"stopped in {time.monotonic() - started:.1f} s ({describe_exit(proc.returncode)})"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return f"did not stop within {timeout:.1f} s: killed"


def last_log_line(path: Path | None, since: int = 0, width: int = 160, errors_only: bool = False) -> str:
    """The line of ``path`` (from byte ``since`` on) that best says why a process ended.

    The last line that reads like an error (CRITICAL, ERROR, Traceback's last line, "…Error: …"), else the
    last non-empty line (unless ``errors_only``); shortened to ``width`` characters. Empty when there is none.
    """
    if path is None or not path.exists():
        return ""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        start = max(since, size - 64 * 1024)
        fh.seek(min(start, size))
        lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    markers = ("CRITICAL", "ERROR", "Error:", "Error(", "Exception:", "error:")
    errors = [ln for ln in lines if any(m in ln for m in markers)]
    if not errors and errors_only:
        return ""
    line = errors[-1] if errors else lines[-1]
    return line if len(line) <= width else line[: width - 1] + "…"


class Part:
    """One supervised child process of ``hub up`` (worker, simulator): its state, restarts and stop.

    ``spawn`` starts the process (use :func:`death_signal_preexec`); ``log`` is the file its output goes
    to, read for the last line when it exits. Call :meth:`poll` from the main thread regularly: it notices
    an exit, schedules the restart and performs it when due, and returns what happened as lines to print.
    """

    def __init__(self, name: str, spawn: Callable[[], subprocess.Popen[bytes]], *, log: Path | None = None,
                 restart: bool = True, stop_signal: int = signal.SIGTERM,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._spawn = spawn
        self.log = log
        self.restart = restart
        self.stop_signal = stop_signal
        self._clock = clock
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = "stopped"  # starting → running → restarting | failed | stopped
        self.reason = ""
        self.restarts = 0
        self.in_a_row = 0
        self.started_at = 0.0
        self.next_start: float | None = None
        self._log_offset = 0
        self._exit_seen = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start the process now (first start, or a restart that is due)."""
        self._log_offset = self.log.stat().st_size if self.log is not None and self.log.exists() else 0
        self.proc = self._spawn()
        self.started_at = self._clock()
        self.next_start = None
        self._exit_seen = False
        if self.state != "failed":
            self.state = "running"

    def poll(self) -> list[str]:
        """Notice an exit, restart when due; returns lines that tell a person what happened."""
        now = self._clock()
        if self.proc is not None and not self._exit_seen and self.proc.poll() is not None:
            return self._exited(now)
        if self.next_start is not None and now >= self.next_start:
            self.restarts += 1
            self.start()
            return [f"{self.name}: restarted (pid {self.pid}, restart {self.restarts})"]
        if self.state == "failed" and self.proc is not None and self.proc.poll() is None \
                and now - self.started_at >= HEALTHY_AFTER:
            self.state, self.in_a_row = "running", 0
            return [f"{self.name}: running again (up {HEALTHY_AFTER:.0f} s)"]
        return []

    def _exited(self, now: float) -> list[str]:
        assert self.proc is not None
        self._exit_seen = True
        ran = now - self.started_at
        self.in_a_row = self.in_a_row + 1 if ran < HEALTHY_AFTER else 1
        # Killed by a signal, the signal is the reason: its last log line is only worth showing if it is an error.
        line = last_log_line(self.log, self._log_offset, errors_only=self.proc.returncode < 0)
        self.reason = describe_exit(self.proc.returncode) + (f": {line}" if line else "")
        where = f" (log: {self.log})" if self.log is not None else ""
        if not self.restart:
            self.state = "failed"
            return [f"{self.name}: FAILED, {self.reason}{where}"]
        delay = min(BACKOFF_FIRST * 2 ** (self.in_a_row - 1), BACKOFF_CAP)
        self.next_start = now + delay
        if self.in_a_row >= FAILED_AFTER:
            self.state = "failed"
            return [f"{self.name}: FAILED {self.in_a_row} times in a row ({self.reason}); hub up retries every "
                    f"{BACKOFF_CAP:.0f} s{where}"]
        self.state = "restarting"
        return [f"{self.name}: {self.reason}; restarting in {delay:.0f} s{where}"]

    def status(self) -> str:
        """``running``, ``restarting in 2 s (exit code 70: …)`` or ``FAILED (…)``, for the progress line."""
        now = self._clock()
        wait = f"next try in {max(self.next_start - now, 0):.0f} s; " if self.next_start is not None else ""
        if self.state == "running":
            return "running" + (f" ({self.restarts} restart(s))" if self.restarts else "")
        if self.state == "restarting":
            return f"restarting ({wait}{self.reason})"
        if self.state == "failed":
            return f"FAILED ({wait}{self.reason})"
        return self.state

    def stop(self, timeout: float) -> str:
        """No more restarts; stop the process within ``timeout`` s (then SIGKILL). Returns how it ended."""
        self.next_start = None
        self.restart = False
        self.state = "stopped"
        self._exit_seen = True
        if self.proc is None:
            return "not running"
        return terminate(self.proc, timeout, self.stop_signal)
