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
