"""`hub up` as a newcomer runs it: the pipeline is visible within a minute, Ctrl-C stops everything.

Issue 9 (item 8) and issue 3 (item 5): broker and metrics addresses on lines of their own, a live
progress line, settlements flowing with `hub_settlements_total` and the latency histogram on the
metrics endpoint, and nothing left running after Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_hub_up_shows_settlements_flowing_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = dict(os.environ, HUB_DATA_DIR=str(tmp_path / "data"), HUB_METRICS_PORT="0", HUB_API_PORT="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "up", "--persons", "1000", "--rate", "400"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )
    lines: list[str] = []
    try:
        metrics_url = None
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while metrics_url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.match(r"metrics: (http://\S+/metrics)$", line.strip())
            if m:
                metrics_url = m.group(1)
        assert any(re.match(r"broker: 127\.0\.0\.1:\d+$", x.strip()) for x in lines), lines
        assert metrics_url, lines
        children = psutil.Process(proc.pid).children(recursive=True)
        text = ""
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(metrics_url, timeout=2).read().decode()
            except OSError:
                text = ""
            if (_metric(text, "hub_settlements_total") > 0 and _metric(text, "hub_settlement_latency_seconds_count") > 0
                    and _metric(text, "hub_referrals_open") > 0 and _metric(text, "hub_risk_flags_total") > 0):
                break
            time.sleep(1)
        assert _metric(text, 'hub_settlements_total{kind="settled"') > 0, "no settlement within a minute"
        assert _metric(text, "hub_settlement_latency_seconds_count") > 0
        assert _metric(text, 'hub_settlement_amount_fen_total{fund="basic"}') > 0
        assert _metric(text, "hub_events_consumed_total") > 0
        # issue 4: flags by type and region, open referrals by department and age
        assert _metric(text, "hub_risk_flags_total") > 0
        assert _metric(text, "hub_referrals_open") > 0, "the open-referral gauge is never set"
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "stopped." in output
    assert re.search(r"in [\d,]+ +settlements [\d,]+", output), output
    time.sleep(1)
    leftovers = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not leftovers, f"still running after Ctrl-C: {[c.cmdline() for c in leftovers]}"


# -- issue 15: health you can see, a clean stop, no orphans ---------------------------------------------------


class HubUp:
    """``hub up`` as a child process (its own session, as a terminal would start it), output collected."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        env = dict(os.environ, HUB_DATA_DIR=str(tmp_path / "data"), HUB_METRICS_PORT="0", HUB_API_PORT="0")
        self.proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "up", "--persons", "500", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None and not re.search(pattern, "\n".join(self.lines[after:])):
                break
            time.sleep(0.2)
        raise AssertionError(f"no line /{pattern}/ within {timeout:.0f} s; output:\n" + "\n".join(self.lines[-40:]))

    def part(self, name: str) -> psutil.Process:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            if name in " ".join(child.cmdline()):
                return child
        raise AssertionError(f"no child process {name!r} of hub up")

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _alive(processes: list[psutil.Process]) -> list[str]:
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(" ".join(p.cmdline())[:100])
        except psutil.NoSuchProcess:
            pass
    return out


def _gone_within(processes: list[psutil.Process], seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(processes)


def test_a_killed_worker_is_restarted_and_a_dead_broker_is_shown_and_sigterm_still_stops_everything(
        tmp_path: Path) -> None:
    """Items 3 and 4: kill -9 of the worker → ``hub up`` says so, restarts it, the progress line shows the
    restart and the lag; kill -9 of the broker → shown FAILED; with the broker gone and the worker wedged
    (SIGSTOP), SIGTERM still stops every part, in order, within 15 s."""
    hub = HubUp(tmp_path)
    try:
        hub.wait_for(r"simulator live", 120)
        first = hub.part("hub.worker")
        children = hub.children()
        mark = len(hub.lines)
        first.kill()
        hub.wait_for(r"^worker: killed by SIGKILL; restarting in 1 s", 15, after=mark)
        hub.wait_for(r"^worker: restarted \(pid \d+, restart 1\)$", 15, after=mark)
        assert hub.part("hub.worker").pid != first.pid
        status = hub.wait_for(r"worker running \(1 restart\(s\)\) · api running · simulator live .* · lag [\d,]+ ",
                              30, after=mark)
        assert re.search(r"in [\d,]+ +settlements [\d,]+", status), status
        mark = len(hub.lines)
        hub.part("noida-db").kill()
        hub.wait_for(r"^broker: FAILED, killed by SIGKILL\. .*make reset", 15, after=mark)
        hub.wait_for(r"broker FAILED · ", 15, after=mark)
        time.sleep(3)  # the worker and the simulator are now waiting on a broker that is gone
        children = list({p.pid: p for p in children + hub.children()}.values())
        hub.part("hub.worker").suspend()  # SIGSTOP: a worker wedged for good, deaf to SIGTERM (only SIGKILL works)
        started = time.monotonic()
        hub.proc.send_signal(signal.SIGTERM)
        code = hub.proc.wait(30)
        took = time.monotonic() - started
        assert took < 15.0, f"stopping took {took:.1f} s\n" + "\n".join(hub.lines[-15:])
        assert code == 1 and hub.lines[-1] == "stopped. (broker had FAILED)", hub.lines[-15:]
        order = [line.split(":")[0] for line in hub.lines if re.match(r"^(simulator|api|worker|broker): (stopped|did "
                                                                             r"not stop|already)", line)]
        assert order == ["simulator", "api", "worker", "broker"], hub.lines[-10:]
        assert not _gone_within(children, 2.0)
    finally:
        hub.kill()


def test_kill_9_of_hub_up_leaves_no_process_behind(tmp_path: Path) -> None:
    """Item 5: every child of ``hub up`` — broker, worker, simulator — dies with it, even on kill -9."""
    hub = HubUp(tmp_path)
    try:
        hub.wait_for(r"simulator (catching up|live)", 120)
        children = hub.children()
        assert {"noida-db", "hub.worker", "hub.feed"} <= {
            next((n for n in ("noida-db", "hub.worker", "hub.feed") if n in " ".join(c.cmdline())), "")
            for c in children}
    finally:
        hub.kill()
    assert not _gone_within(children, 10.0)


def _last_inputs(lines: list[str]) -> int:
    found = [int(m.group(1).replace(",", "")) for line in lines for m in re.finditer(r"\bin ([\d,]+) ", line)]
    assert found, "no progress line:\n" + "\n".join(lines[-20:])
    return found[-1]


def test_a_second_hub_up_on_the_same_data_continues_the_county(tmp_path: Path) -> None:
    """``make run`` twice: the second run resumes the simulated county where the first stopped (same seed,
    same persons), instead of enrolling a second county on top of the first (inputs doubling)."""
    def run(seconds: int, expect: str) -> int:
        """One ``hub up --duration`` to its end (exit 0, ``expect`` seen): the last input count it showed."""
        up = HubUp(tmp_path, "--duration", str(seconds))
        try:
            up.wait_for(expect, 60)
            assert up.proc.wait(60) == 0, "\n".join(up.lines[-20:])
        finally:
            up.kill()
        return _last_inputs(up.lines)

    before = run(45, r"simulator live")
    saved = (tmp_path / "data" / "simulator.json").read_text()
    after = run(25, r"continuing the county of the last run")
    assert before < after < before * 1.3, (before, after)  # a second county would have doubled the inputs
    assert '"seed"' in saved and saved.split('"resume_after"')[0] in (tmp_path / "data" / "simulator.json").read_text()
