"""Issue 17, item 5: under ``hub up``, every shipped dashboard panel and every alert's signal returns data.

The parts are real: ``hub up`` (embedded broker, worker, simulator), a ``hub api`` process and a
``hub connector run`` process (an example connector on its sample files) against the same broker — each
serving /metrics as deploy/ runs them — and Debian's Prometheus scraping all three every second with the
generated alert rules loaded. A malformed discharge is sent to the counter API, so a rejected request shows.
Each panel query (Grafana variables as "All" = ``.*``, ``$__rate_interval`` = 1m) and each alert's signal
(deploy/prometheus/generate.py: the expression without its threshold) must return at least one series.
Queries that return nothing are listed together with the metrics they read, so the failure says which
metric nobody sets.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
RUN_SECONDS = 90.0
"""How long the hub may take to show every flow; measured: every query that has a metric behind it had data
within 9 s of Prometheus starting (2 cores shared with other test runs)."""


def _alert_signals() -> dict[str, tuple[str, ...]]:
    sys.path[:0] = [str(ROOT / "deploy"), str(ROOT / "deploy/prometheus")]
    try:
        return importlib.import_module("generate").alert_signals()  # type: ignore[no-any-return]
    finally:
        del sys.path[:2]


def _panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL as Prometheus runs it) of every panel target."""
    out = []
    for d in DASHBOARDS:
        dash = json.loads(d.read_text(encoding="utf-8"))
        for p in dash["panels"]:
            for t in p.get("targets", []):
                expr = t["expr"].replace("$__rate_interval", "1m")
                out.append((d.stem, p["title"], re.sub(r"\$\w+", ".*", expr)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        pytest.fail(f"`{name}` not found: install Debian's `prometheus` package (make system-deps)")
    return found


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        exc.close()
        try:
            return json.loads(text)
        except ValueError:
            return {"status": "unreachable", "error": text}
    except OSError as exc:
        return {"status": "unreachable", "error": str(exc)}


def _has_data(answer: dict) -> bool:
    return answer.get("status") == "success" and bool(answer["data"]["result"])


class _Proc:
    """A child process whose stdout lines are read until a pattern shows up."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log_path = log
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        pytest.fail(f"{self.proc.args[:4]} never printed {pattern!r}: {''.join(self.lines)[-3000:]}")

    def wait_until_metric(self, address: str, prefix: str, timeout: float) -> None:
        """Until the process's /metrics has a sample line starting with ``prefix``; fail if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rest = self.proc.stdout.read() if self.proc.stdout else ""
                output = "".join(self.lines) + rest
                pytest.fail(f"{self.proc.args[:4]} exited ({self.proc.returncode}): {output[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
                    if any(line.startswith(prefix) for line in resp.read().decode().splitlines()):
                        return
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"{self.proc.args[:4]}: no {prefix}…}} sample on its /metrics after {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        rest = self.proc.stdout.read() if self.proc.stdout else ""
        self.log_path.write_text("".join(self.lines) + rest, encoding="utf-8")
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``hub up`` + ``hub api`` + one connector, scraped by a real Prometheus; yields Prometheus's URL."""
    from connectors.examples.make_samples import write_samples

    tmp = tmp_path_factory.mktemp("observability")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    procs: list[_Proc] = []
    prometheus = None
    try:
        up = _Proc([sys.executable, "-m", "hub.cli", "up", "--persons", "1000", "--rate", "400"],
                   {**base_env, "HUB_DATA_DIR": str(tmp / "data"), "HUB_METRICS_PORT": "0", "HUB_API_PORT": "0"},
                   ROOT, tmp / "hub-up.log")
        procs.append(up)
        bootstrap = up.wait_for(r"^broker: (\S+)$", 90).group(1)
        worker_metrics = up.wait_for(r"^metrics: http://(\S+)/metrics$", 30).group(1)
        # outside the embedded broker the edge refuses development or weak secrets (hub.keys): real-looking ones
        edge = {**base_env, "HUB_BROKER": f"kafka://{bootstrap}", "HUB_METRICS_PORT": "0", "HUB_API_PORT": "0",
                "HUB_PSEUDONYM_KEY": "observability-test-pseudonym-key-40-chars",
                "HUB_EDGE_KEY": base64.b64encode(b"observability-test-edge-key-32-b").decode(),
                "HUB_API_TOKENS": '{"H532503001": "observability-test-api-token-0123456789"}'}

        api = _Proc([sys.executable, "-m", "hub.cli", "api", "--port", "0"], edge, tmp, tmp / "hub-api.log")
        procs.append(api)
        api_metrics = api.wait_for(r"^metrics: http://(\S+)/metrics$", 60).group(1)
        api_url = api.wait_for(r"(http://127\.0\.0\.1:\d+)", 60).group(1)

        write_samples(tmp)
        text = (ROOT / "connectors/examples/family_doctor.yaml").read_text(encoding="utf-8")
        (tmp / "family_doctor.yaml").write_text(text.replace("settle_seconds: 2", "settle_seconds: 0"),
                                                encoding="utf-8")
        connector = _Proc([sys.executable, "-m", "hub.cli", "connector", "run", str(tmp / "family_doctor.yaml")],
                          edge, tmp, tmp / "connector.log")
        procs.append(connector)
        connector_metrics = connector.wait_for(r"^metrics: http://(\S+)/metrics$", 60).group(1)
        # the sample files hold deliberately bad rows: the connector's dead letters are the dead-letter
        # panels' data, so the connector must be running and have rejected them (a refused start once
        # left those panels empty, or filled by chance by the worker's own dead letters)
        connector.wait_until_metric(connector_metrics, "hub_dead_letters_total{", 120)

        # a counter request the API refuses (no ID number): the counter API's outcome series shows
        req = urllib.request.Request(f"{api_url}/v1/discharges", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer observability-test-api-token-0123456789"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 422
        refused.value.close()

        port = _free_port()
        shutil.copy(ROOT / "deploy/prometheus/alerts.yml", tmp / "alerts.yml")
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": ["alerts.yml"],
                  "scrape_configs": [{"job_name": "hub", "static_configs": [
                      {"targets": [worker_metrics, api_metrics, connector_metrics]}]}]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        log = (tmp / "prometheus.log").open("wb")
        prometheus = subprocess.Popen(
            [_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or prometheus.poll() is not None:
                pytest.fail(f"Prometheus did not become ready: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        if prometheus is not None:
            prometheus.send_signal(signal.SIGTERM)
            try:
                prometheus.wait(15)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(5)
        for p in reversed(procs):
            p.stop()


def _names(expr: str) -> list[str]:
    return sorted(set(re.findall(r"\b((?:hub|process)_[a-z_]+|up)\b", expr)))


def test_every_panel_and_every_alert_signal_returns_data_under_hub_up(stack: str) -> None:
    queries = [(f"panel {d}: {title}", expr) for d, title, expr in _panel_queries()]
    queries += [(f"alert {alert}", expr) for alert, signals in _alert_signals().items() for expr in signals]
    assert len(queries) > 60
    for _label, expr in queries:  # every query is valid PromQL to the real server
        answer = _query(stack, expr)
        assert answer.get("status") in ("success", "unreachable"), (expr, answer)

    started = time.monotonic()
    deadline = started + RUN_SECONDS
    missing = queries
    last_found = 0.0
    while missing and time.monotonic() < deadline:
        time.sleep(3)
        still = [(label, expr) for label, expr in missing if not _has_data(_query(stack, expr))]
        if len(still) < len(missing):
            last_found = time.monotonic() - started
        missing = still
    report = "\n".join(f"- {label}: {expr.splitlines()[0][:140]}…  reads {', '.join(_names(expr))}"
                       for label, expr in missing)
    unset = sorted({n for _, expr in missing for n in _names(expr)})
    assert not missing, (f"{len(missing)} of {len(queries)} queries return no data after {RUN_SECONDS:.0f} s of "
                         f"hub up (the others had data within {last_found:.0f} s; metrics involved: "
                         f"{', '.join(unset)}):\n{report}")
