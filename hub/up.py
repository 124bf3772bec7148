"""``hub up``: the whole hub on one machine — the demo, development and test default — and its supervisor.

Start order matters: broker → topics (all of them, before any worker: an auto-created topic gets one
partition and the worker refuses it) → conformance probe → worker (a process) → counter API (a thread)
→ simulator (a process, :mod:`hub.feed`).

While it runs, ``hub up`` supervises (issue 15; :mod:`hub.supervise`):

* a worker or simulator that exits is restarted with backoff and the restart is printed; one that keeps
  failing is shown FAILED with its last log line and retried every 30 s. The embedded broker is not
  restarted: a noida-db that died may have lost partitions (broker-notes.md), so ``hub up`` shows it
  FAILED and says how to reset;
* the progress line shows each part's state, the worker's group lag and the outputs so far
  (:mod:`hub.progress`), and how far behind the simulator is while it catches up;
* every child dies with ``hub up``, even on ``kill -9`` (process groups and parent-death signals).

Ctrl-C (SIGINT) or SIGTERM stops the parts in reverse order — simulator, API, worker, broker — each with a
share of :data:`STOP_SECONDS`, then SIGKILL: a stop never waits on a broker that is gone or a batch that
cannot complete. What the worker had not committed is applied again at the next start (policy-spec §8.2).
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TextIO

from hub.config import Settings
from hub.progress import PROGRESS_TOPICS, Observer, Reading, Screen, counts_text
from hub.supervise import Part, death_signal_preexec, describe_exit
from hub.timeutil import SHANGHAI

__all__ = ["PROGRESS_TOPICS", "STOP_SECONDS", "run_up"]

log = logging.getLogger("hub.up")

STOP_SECONDS = 14.0
"""Ctrl-C to the last part stopped, at most (the issue asks for 15 s; one is kept for the exit itself)."""
SIMULATOR_HISTORY = timedelta(days=1)
"""The simulated province starts this long before today: its roster and enrolments are then in the past."""
DATA_WARN_BYTES = 500_000_000
"""The embedded broker's data file size from which ``hub up`` warns at start (loading and saving get slow)."""
BUSY_HISTORY = timedelta(hours=1)
"""…and its busy admissions an hour before now, so ``hub up`` catches up in well under a minute."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _pick_port(host: str, wanted: int) -> int:
    if wanted and _port_free(host, wanted):
        return wanted
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Stop(Exception):
    """SIGTERM: stop as on Ctrl-C."""


@dataclass
class SimulatorStatus:
    """What the simulator process last reported (its JSON status lines), kept across its restarts.

    With ``path`` (``<data dir>/simulator.json``) the county's identity — seed, first day, busy-from, persons —
    and how far it got are also kept across runs of ``hub up`` on the same data: the next run continues the
    same county from there instead of enrolling a second one on top (``make reset`` starts afresh).
    """

    latest: dict[str, Any] = field(default_factory=dict)
    resume_after: str | None = None
    received: float = 0.0
    path: Path | None = None
    county: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, county: dict[str, Any]) -> SimulatorStatus:
        """The saved county when it was made with the same ``persons``; else ``county`` (a new one)."""
        try:
            saved = json.loads(path.read_text("utf-8"))
            if saved.get("county", {}).get("persons") == county.get("persons"):
                return cls(resume_after=saved.get("resume_after"), path=path, county=saved["county"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # none yet, or unreadable: a new county
        status = cls(path=path, county=county)
        status.save()
        return status

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"county": self.county, "resume_after": self.resume_after}), "utf-8")
            tmp.replace(self.path)
        except OSError as exc:  # a full disk must not stop the demo; the next run then starts a new county
            log.warning("simulator: cannot save %s: %s", self.path, exc)

    def read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            try:
                status = json.loads(raw)
            except ValueError:
                continue
            self.latest, self.received = status, time.monotonic()
            if status.get("at") and status["at"] != self.resume_after:
                self.resume_after = status["at"]
                self.save()

    def text(self) -> str:
        s = self.latest
        if not s:
            return "starting"
        silent = time.monotonic() - self.received
        if silent > 5.0:  # it reports every second: a stuck simulator (a broker that is gone) says so
            return f"not reporting for {silent:.0f} s"
        if s.get("live"):
            return "live" + (f" (at {s['at'][:19].replace('T', ' ')})" if s.get("at") else "")
        behind = int(s.get("behind_s") or 0)
        hours, minutes, seconds = behind // 3600, behind % 3600 // 60, behind % 60
        ago = f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"
        return f"catching up ({ago} behind)"


def run_up(settings: Settings, *, simulate: bool, persons: int, rate: float, reset: bool, duration: float,
           busy_per_minute: float = 10.0, out: TextIO = sys.stdout) -> int:
    """Start every part, supervise them until Ctrl-C/SIGTERM or ``duration`` seconds, stop them in order.

    Returns 0 after a clean stop, 1 when a part was FAILED at the end, 2/3 when the broker could not be set
    up or lacks what the hub needs.
    """
    from hub.broker import broker_data_dir, connect, ensure_topics, remove_data_dir
    from hub.doctor import run_probe
    from hub.errors import BrokerError, PolicyError
    from hub.identity import warn_if_dev_key

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    # The Kafka clients of hub up itself (progress reading, counter API) log every failed reconnect; what a
    # person needs — the broker is gone, the API is unhealthy — is on the progress line instead.
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    warn_if_dev_key(settings, log)
    try:
        policy_warnings = _policy_warnings()
    except PolicyError as exc:
        sys.stderr.write(f"hub up: the policy files do not load: {exc}\n")
        return 2
    for warning in policy_warnings:
        log.warning("!!! policy: %s !!!", warning)
    data_dir = Path(settings.data_dir)
    if reset and settings.broker == "embedded":
        import shutil

        remove_data_dir(broker_data_dir(settings))
        shutil.rmtree(data_dir / "worker", ignore_errors=True)  # worker state belongs to the old broker
        out.write(f"reset: removed {broker_data_dir(settings)} and {data_dir / 'worker'}\n")
    data_dir.mkdir(parents=True, exist_ok=True)
    if settings.broker == "embedded":
        _warn_if_data_is_large(broker_data_dir(settings) / "kafka.json")

    def on_sigterm(signum: int, _frame: Any) -> None:
        raise _Stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    # Explicitly: a process started by a non-interactive shell in the background inherits SIGINT ignored (and
    # Python then installs no KeyboardInterrupt), so a script's or a test's SIGINT would do nothing at all.
    signal.signal(signal.SIGINT, on_sigterm)
    parts: list[Part] = []
    api: Any = None
    observer: Observer | None = None
    handle: Any = None
    screen = Screen(out)
    try:
        handle = connect(settings)
        try:
            ensure_topics(handle.bootstrap, data_dir=broker_data_dir(settings) if handle.embedded else None)
        except BrokerError as exc:
            sys.stderr.write(f"hub up: {exc}\n")
            return 2
        checks = run_probe(handle.bootstrap)
        failed = [c for c in checks if c.required and not c.ok]
        if failed:
            from hub.doctor import render

            sys.stderr.write(render(checks) + "\nhub up: the broker lacks what the hub relies on.\n")
            return 3
        if handle.embedded is not None:
            # noida-db never evicts a member whose worker was killed with kill -9; the restarted
            # worker would then wait for partitions for ever. One worker per embedded hub: evict.
            from hub.broker import evict_group_members

            evict_group_members(handle.bootstrap, settings.app_id)
        out.write(f"broker: {handle.bootstrap}\n")
        metrics_port = _pick_port(settings.metrics_host, settings.metrics_port)
        worker = _worker_part(settings, handle.bootstrap, data_dir, metrics_port)
        parts.append(worker)
        worker.start()
        out.write(f"metrics: http://{settings.metrics_host}:{metrics_port}/metrics\n")
        from hub.api import ApiThread

        api = ApiThread(handle.bootstrap, settings.metrics_host, _pick_port(settings.metrics_host, settings.api_port))
        api_url = api.start()
        out.write(f"api: {api_url}\n")
        sim_status = SimulatorStatus()
        if simulate:
            sim_status = SimulatorStatus.load(data_dir / "simulator.json", _new_county(persons))
            if sim_status.resume_after:
                out.write(f"simulator: continuing the county of the last run (seed {sim_status.county['seed']}) "
                          f"after {sim_status.resume_after}\n")
            simulator = _simulator_part(handle.bootstrap, data_dir, sim_status, persons=persons, rate=rate,
                                        busy_per_minute=busy_per_minute)
            parts.append(simulator)
            simulator.start()
        out.write(f"worker log: {data_dir / 'worker.log'} · Ctrl-C stops everything\n")
        out.flush()
        observer = Observer(handle.bootstrap, settings.app_id, api_url).start()
        _supervise(screen, handle, parts, observer, sim_status, policy_warnings, duration)
    except (KeyboardInterrupt, _Stop):
        screen.event(f"stopping… (at most {STOP_SECONDS:.0f} s)")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stop is bounded; a second Ctrl-C must not cut it short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        failed_parts = [p.name for p in parts if p.state == "failed"]
        if handle is not None and handle.embedded is not None and not handle.embedded.running:
            failed_parts.append("broker")
        _stop_all(screen, parts, api, observer, handle)
        screen.close()
    out.write("stopped." + (f" ({', '.join(failed_parts)} had FAILED)" if failed_parts else "") + "\n")
    out.flush()
    return 1 if failed_parts else 0


def _warn_if_data_is_large(data_file: Path) -> None:
    """A loud warning when the embedded broker's data file is large (README, Troubleshooting: why it grows).

    noida-db keeps its whole store in one JSON file, loads it at start and writes it at stop: ≈1 s per
    100 MB here. Above ≈1 GB the save no longer fits the share of the 15-s stop the broker gets, and a
    broker killed mid-save can lose data (broker-notes.md).
    """
    try:
        size = data_file.stat().st_size
    except OSError:
        return
    if size >= DATA_WARN_BYTES:
        log.warning("!!! the embedded broker's data is %.1f GB (%s): it takes about %.0f s to load and to save, "
                    "and it grows while hub up runs (the worker's state topic is never compacted on noida-db). "
                    "`make reset` (or `hub up --reset`) starts afresh. !!!", size / 1e9, data_file, size / 1e8)


def _policy_warnings() -> list[str]:
    """The home region's policy expiry warnings (hub.processors.policy_expiry_warnings), with today's date."""
    from hub.processors import policy_expiry_warnings

    return policy_expiry_warnings(datetime.now(SHANGHAI).date())


@functools.lru_cache(maxsize=4)
def _policy_note(today: date) -> str:
    """``POLICY ends 2026-12-31 (25 d)`` or ``NO POLICY in force today``: short, for the progress line."""
    from hub.policy.timeline import PolicyTimeline
    from hub.processors import home_region, load_policies

    policy = PolicyTimeline(load_policies(), home_region()).in_force(today)
    if policy is None:
        return f"NO POLICY of {home_region()} in force today"
    if policy.effective_to is None:
        return ""
    return f"POLICY ends {policy.effective_to} ({(policy.effective_to - today).days} d)"


def _worker_part(settings: Settings, bootstrap: str, data_dir: Path, metrics_port: int) -> Part:
    from hub.runtime import spawn_worker

    log_file = data_dir / "worker.log"

    def spawn() -> subprocess.Popen[bytes]:
        # The wall clock drives the rules' clock as in production (§8.3: escalations fall due on a quiet day).
        # The simulator follows it too once it has caught up; during its catch-up (half a minute) a record older
        # than a task's clock is applied at the clock (§5.1), as a late delivery from a department would be.
        return spawn_worker(bootstrap, data_dir=data_dir, metrics_port=metrics_port, app_id=settings.app_id,
                            store=settings.store, log_file=log_file, death_signal=signal.SIGKILL)

    return Part("worker", spawn, log=log_file)


def _new_county(persons: int) -> dict[str, Any]:
    """A new simulated county: starts ``SIMULATOR_HISTORY`` back, busy admissions from ``BUSY_HISTORY`` back."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {"persons": persons, "seed": int(time.time()),
            "start": (now.astimezone(SHANGHAI).date() - SIMULATOR_HISTORY).isoformat(),
            "busy_from": (now - BUSY_HISTORY).astimezone(SHANGHAI).isoformat()}


def _simulator_part(bootstrap: str, data_dir: Path, status: SimulatorStatus, *, persons: int, rate: float,
                    busy_per_minute: float) -> Part:
    import os

    log_file = data_dir / "simulator.log"
    county = status.county
    seed, start, busy_from = county["seed"], county["start"], county["busy_from"]
    env = {**os.environ, "HUB_BROKER": "kafka://" + bootstrap}

    def spawn() -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "hub.feed", "--persons", str(persons), "--rate", str(rate), "--seed", str(seed),
               "--start", start, "--busy-per-minute", str(busy_per_minute), "--busy-from", busy_from]
        if status.resume_after:
            cmd += ["--resume-after", status.resume_after]
        with log_file.open("ab") as err:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                    preexec_fn=death_signal_preexec(signal.SIGKILL))  # noqa: PLW1509
        assert proc.stdout is not None
        threading.Thread(target=status.read, args=(proc.stdout,), name="simulator-status", daemon=True).start()
        return proc

    return Part("simulator", spawn, log=log_file)


def _supervise(screen: Screen, handle: Any, parts: list[Part], observer: Observer, sim_status: SimulatorStatus,
               policy_warnings: list[str], duration: float) -> None:
    """The main loop: restart what exited, tell what happened, draw the status; until ``duration`` is over."""
    started = time.monotonic()
    next_draw = started
    broker_told = False
    while duration <= 0 or time.monotonic() - started < duration:
        for part in parts:
            for line in part.poll():
                screen.event(line)
        broker = handle.embedded
        if broker is not None and not broker.running and not broker_told:
            broker_told = True
            screen.event(f"broker: FAILED, {_broker_reason(broker)}. hub up does not restart it (a noida-db that "
                         f"died may have lost partitions): press Ctrl-C, then `make reset` (or `hub up --reset`)")
        now = time.monotonic()
        if now >= next_draw:
            screen.status(_status_lines(now - started, handle, parts, observer.reading, sim_status, policy_warnings))
            next_draw = now + screen.every
        time.sleep(0.1)


def _broker_reason(broker: Any) -> str:
    code = broker.returncode
    tail = list(broker.stderr_lines)[-1:] if broker.stderr_lines else []
    what = describe_exit(code) if code is not None else "it exited"
    return what + (f": {tail[0]}" if tail else "")


def _status_lines(elapsed: float, handle: Any, parts: list[Part], reading: Reading, sim: SimulatorStatus,
                  policy_warnings: list[str]) -> list[str]:
    broker = "running"
    if handle.embedded is not None and not handle.embedded.running:
        broker = "FAILED"
    elif reading.error:
        broker = f"unreachable for {time.monotonic() - reading.at:.0f} s ({reading.error})" if reading.at else \
            f"unreachable ({reading.error})"
    states = [f"broker {broker}"]
    for part in parts:
        text = part.status()
        if part.name == "simulator" and part.state == "running":
            text = sim.text()
        states.append(f"{part.name} {text}")
        if part.name == "worker":
            states.append(f"api {reading.api}")
    if not any(p.name == "simulator" for p in parts):
        states.append("simulator off")
    lag = "—" if reading.lag is None else f"{reading.lag:,}"
    stale = f" (as of {time.monotonic() - reading.at:.0f} s ago)" if reading.error and reading.at else ""
    head = f"{elapsed:6.0f}s  " + " · ".join(states) + f" · lag {lag}{stale}"
    if policy_warnings:
        head += " · " + _policy_note(datetime.now(SHANGHAI).date())
    return [head, f"{'':8}{counts_text(reading)}{stale}"]


def _stop_all(screen: Screen, parts: list[Part], api: Any, observer: Observer | None, handle: Any) -> None:
    """Simulator, API, worker, broker — in that order, all within STOP_SECONDS, whatever state each is in."""
    deadline = time.monotonic() + STOP_SECONDS

    def left() -> float:
        return deadline - time.monotonic()

    by_name = {p.name: p for p in parts}
    if observer is not None:
        observer.stop(timeout=0.5)
    if "simulator" in by_name:
        screen.event(f"simulator: {by_name['simulator'].stop(min(3.0, max(left(), 0.5)))}")
    if api is not None:
        t0 = time.monotonic()
        api.stop(timeout=min(1.0, max(left() - 8.0, 0.2)))  # a daemon thread: never waited for beyond this
        screen.event(f"api: stopped in {time.monotonic() - t0:.1f} s")
    if "worker" in by_name:
        screen.event(f"worker: {by_name['worker'].stop(max(min(left() - 3.0, 10.0), 1.0))}")
    if handle is not None and handle.embedded is not None:
        t0 = time.monotonic()
        handle.embedded.stop_timeout = max(left(), 1.0)
        handle.close()
        screen.event(f"broker: stopped in {time.monotonic() - t0:.1f} s")
