"""A real Prometheus scrapes the hub exporter; promtool accepts the generated config and rules.

Why real: the text format, the metric names the dashboards and alerts use, and the PromQL in the
generated files are only proven by the program that will read them in production. Debian's
``prometheus`` package provides the server and promtool; ``make test`` installs it. Missing
binaries FAIL this test (a skipped monitoring test is a monitoring gap nobody sees).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from hub.metrics import Metrics, start_exporter, stop_exporter

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROM_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
ALERTMANAGER = ROOT / "deploy" / "prometheus" / "alertmanager.yml"


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        pytest.fail(
            f"`{name}` not found on PATH or in /usr/bin: install Debian's `prometheus` and "
            f"`prometheus-alertmanager` packages — `make test` installs them (make system-deps)."
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # 400 = bad PromQL: return the body so the test can say why
        body = json.load(exc)
        exc.close()
        return body


@pytest.fixture()
def exporter() -> Iterator[tuple[Metrics, int]]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, version="test")
    metrics.events_consumed.labels(topic="health.discharges.v1").inc(7)
    metrics.record_settlement("532503", "settled", {"basic": 123_400, "patient": 5_000}, latency_seconds=0.03)
    metrics.dead_letters.labels(source="hub replay", reason="invalid_input").inc(2)
    metrics.set_consumer_lag("health-relief-hub", {("health.admissions.v1", 0): 42})
    server, port = start_exporter("127.0.0.1", 0, registry)
    try:
        yield metrics, port
    finally:
        stop_exporter(server)


@pytest.fixture()
def prometheus(tmp_path: Path, exporter: tuple[Metrics, int]) -> Iterator[str]:
    binary = _binary("prometheus")
    _, hub_port = exporter
    prom_port = _free_port()
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "hub", "static_configs": [{"targets": [f"127.0.0.1:{hub_port}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{prom_port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _wait_for(base: str, expr: str, want: float, deadline_s: float = 30.0) -> dict:
    deadline = time.monotonic() + deadline_s
    last: dict = {}
    while time.monotonic() < deadline:
        try:
            last = _query(base, expr)
        except OSError:  # not listening yet
            last = {}
        if last.get("status") == "success" and last["data"]["result"]:
            value = float(last["data"]["result"][0]["value"][1])
            if value == want:
                return last
        time.sleep(0.5)
    pytest.fail(f"Prometheus never returned {want} for {expr!r} within {deadline_s}s; last answer: {last}")


def test_real_prometheus_scrapes_the_exporter(prometheus: str, exporter: tuple[Metrics, int]) -> None:
    metrics, _ = exporter
    _wait_for(prometheus, 'hub_events_consumed_total{topic="health.discharges.v1"}', 7.0)
    _wait_for(prometheus, 'hub_settlements_total{region="532503",kind="settled"}', 1.0)
    _wait_for(prometheus, 'hub_settlement_amount_fen_total{fund="basic"}', 123_400.0)
    _wait_for(prometheus, "hub_settlement_latency_seconds_count", 1.0)
    _wait_for(prometheus, 'up{job="hub"}', 1.0)
    metrics.events_consumed.labels(topic="health.discharges.v1").inc(3)  # a later scrape sees the change
    _wait_for(prometheus, 'hub_events_consumed_total{topic="health.discharges.v1"}', 10.0)


def test_every_generated_query_is_valid_promql_on_the_real_server(prometheus: str) -> None:
    """Dashboard panels and alert expressions are accepted by Prometheus itself (not just by a regex)."""
    _wait_for(prometheus, 'up{job="hub"}', 1.0)
    exprs = [re.sub(r"\$\w+", ".*", t["expr"].replace("$__rate_interval", "1m"))
             for d in DASHBOARDS for p in json.loads(d.read_text(encoding="utf-8"))["panels"]
             for t in p.get("targets", [])]
    exprs += [r["expr"] for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]
    assert exprs
    for expr in exprs:
        answer = _query(prometheus, expr)
        assert answer.get("status") == "success", f"{expr!r}: {answer}"
    # the rules were loaded by the server from the generated file
    with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=5) as resp:
        loaded = {r["name"] for g in json.load(resp)["data"]["groups"] for r in g["rules"]}
    assert loaded == {r["alert"] for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
                      for r in g["rules"]}


def test_promtool_check_rules() -> None:
    promtool = _binary("promtool")
    res = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_check_config() -> None:
    promtool = _binary("promtool")
    res = subprocess.run([promtool, "check", "config", str(PROM_CONFIG)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    """Alertmanager is wired (compose and k8s use this file); Debian's prometheus-alertmanager gives amtool."""
    amtool = _binary("amtool")
    res = subprocess.run([amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_alert_unit_tests() -> None:
    """The alerts fire (and stay quiet) on the series they are meant for: deploy/prometheus/alerts.test.yml."""
    promtool = _binary("promtool")
    tests = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
    res = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
