"""A connector killed with ``kill -9`` mid-file resumes where it stopped: nothing lost, re-sends harmless."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer

from connectors.sdk import testkit
from connectors.sdk.offsets import OffsetStore
from tests.connectors.conftest import make_id

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
ROWS = 1500
BATCH = 50

SLOW_RUN = """
import sys, time
from connectors.sources.file_drop import FileDropSource
_map = FileDropSource.map_row
def slow(self, row, *, where=""):
    time.sleep(0.003)  # a slow department file, so the test can kill it mid-way
    return _map(self, row, where=where)
FileDropSource.map_row = slow
from connectors.cli import connector_run
sys.exit(connector_run(sys.argv[1], sys.argv[2], sys.stdout, sys.stderr, once=True))
"""


def people() -> list[str]:
    start = date(1950, 1, 1)
    return [make_id("530102", (start + timedelta(days=i // 900)).strftime("%Y%m%d"), i % 900) for i in range(ROWS)]


def write_inbox(tmp_path: Path, name: str) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    lines = ["身份证号码,人员类别,行政区划代码,变更日期"]
    lines += [f"{n},脱贫人口,530102,2024-03-01" for n in people()]
    (inbox / "big.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = {
        "name": name, "connector": "file_drop", "department": "revitalization",
        "topic": "revitalization.poverty-status.v1", "inbox": "inbox", "settle_seconds": 0, "batch_size": BATCH,
        "mapping": {"natural_key": ["身份证号码"], "fields": {
            "person_token": {"column": "身份证号码", "type": "id_number"},
            "categories": {"column": "人员类别", "type": "categories", "values": {"脱贫人口": "poverty_alleviated"}},
            "region_code": {"column": "行政区划代码"},
            "occurred_at": {"column": "变更日期", "type": "datetime"}}},
    }
    path = tmp_path / "feed.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def committed_row(bootstrap: str, name: str) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        offsets = OffsetStore(bootstrap, name, producer).load()
    finally:
        producer.close()
    return max((int(p.get("row", 0)) for p in offsets.values()), default=0)


def test_kill_9_mid_file_then_restart_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    name = testkit.unique_name("kill9")
    config = write_inbox(tmp_path, name)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HUB_PSEUDONYM_KEY": testkit.TEST_PSEUDONYM_KEY,
           "HUB_EDGE_KEY": base64.b64encode(testkit.TEST_EDGE_KEY).decode()}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(config), kafka_bootstrap], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while committed_row(kafka_bootstrap, name) < 300:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the connector committed nothing within 60 s"
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    at_kill = committed_row(kafka_bootstrap, name)
    assert 300 <= at_kill < ROWS + 1, "killed too late to prove anything"
    assert (tmp_path / "inbox" / "big.csv").exists()  # not moved: the file was not finished

    restarted = testkit.from_yaml(config)
    stats = testkit.run_source(restarted, kafka_bootstrap)
    assert stats.produced <= ROWS + 1 - at_kill  # resumed after the committed row, not from the start

    tokens = {testkit.token(n) for n in people()}
    mine = [r for r in testkit.read_topic(kafka_bootstrap, "revitalization.poverty-status.v1") if r.key in tokens]
    assert {r.key for r in mine} == tokens  # nothing lost
    assert len({r.value["event_id"] for r in mine}) == ROWS  # re-sent rows carry the same event id
    assert len(mine) - ROWS <= 2 * BATCH  # at most the uncommitted batches were sent twice
    assert not (tmp_path / "inbox" / "big.csv").exists()
    assert committed_row(kafka_bootstrap, name) == ROWS + 1
