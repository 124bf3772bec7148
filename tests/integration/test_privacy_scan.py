"""``hub privacy scan``: clean after the example connectors ran; finds one planted leak of each kind.

A broker of its own (the session broker holds other tests' deliberate leaks), the example department
feeds read by their real connectors, the daily referral export and the audit log written by real sinks.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from connectors.examples.make_samples import civil_rows, synthetic_id, write_samples
from connectors.sdk import testkit
from hub.broker import EmbeddedBroker, ensure_topics
from hub.privacy import Scanner, scan_command
from hub.timeutil import SHANGHAI
from tests.hostile.servers import Server

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "connectors" / "examples"
T0 = datetime(2024, 3, 5, 9, 0, tzinfo=SHANGHAI)


def run_examples(bootstrap: str, tmp: Path) -> None:
    write_samples(tmp)
    for feed in ("civil_affairs_roster.yaml", "revitalization_roster.yaml", "family_doctor.yaml"):
        shutil.copy(EXAMPLES / feed, tmp / feed)
        src = testkit.from_yaml(tmp / feed, name=testkit.unique_name(feed.split(".")[0].replace("_", "-")),
                                settle_seconds=0)
        assert testkit.run_source(src, bootstrap).produced > 0
    referral = {"event_id": "r-1", "occurred_at": T0, "kind": "referral",
                "referral_id": "uninsured:" + testkit.token(synthetic_id(11)) + ":2024#1/civil_affairs/premium_subsidy",
                "flag_id": "f", "subject": testkit.token(synthetic_id(11)), "subject_kind": "person",
                "department": "civil_affairs", "referral_type": "premium_subsidy", "state": "open",
                "due": T0 + timedelta(days=15)}
    testkit.produce(bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged", [referral], key_field="subject")
    shutil.copy(EXAMPLES / "referral_export.yaml", tmp / "export.yaml")
    testkit.run_sink(testkit.from_yaml(tmp / "export.yaml", name=testkit.unique_name("export")), bootstrap)
    shutil.copy(EXAMPLES / "audit_log.yaml", tmp / "audit.yaml")
    testkit.run_sink(testkit.from_yaml(tmp / "audit.yaml", name=testkit.unique_name("audit")), bootstrap)


def scan(bootstrap: str, tmp: Path, urls: list[str]) -> tuple[int, str, Scanner]:
    out = io.StringIO()
    code = scan_command(bootstrap=bootstrap, files=[tmp / "exports", tmp / "audit", tmp / "worker.log"], urls=urls,
                        rosters=[tmp / "samples"], out=out)
    scanner = Scanner()
    for p in (tmp / "samples").rglob("*"):
        if p.suffix in (".csv", ".xlsx"):
            scanner.learn_roster(p)
    return code, out.getvalue(), scanner


def test_clean_after_the_examples_and_each_planted_leak_found(tmp_path: Path) -> None:
    name, number = civil_rows()[0][1], synthetic_id(11)  # 周桂兰 and her ID number, from the civil-affairs roster
    with EmbeddedBroker() as broker, Server() as metrics:
        ensure_topics(broker.bootstrap)
        run_examples(broker.bootstrap, tmp_path)
        (tmp_path / "worker.log").write_text("INFO worker started\n", encoding="utf-8")
        code, report, scanner = scan(broker.bootstrap, tmp_path, [metrics.url + "/metrics"])
        assert name in scanner.names and number in scanner.numbers  # the rosters were learnt
        assert code == 0, report
        assert "findings: id_number 0, name 0, unkeyed_id 0" in report

        # One leak of each kind, where each could happen:
        testkit.produce(broker.bootstrap, "health.diagnoses.v1", "hub.health.DiagnosisRecorded", [{  # a topic
            "event_id": "leak-1", "occurred_at": T0, "person_token": "p_" + "2" * 32,
            "icd10": f"{number[:6]}-{number[6:14]}-{number[14:]}"}])
        with (tmp_path / "worker.log").open("a", encoding="utf-8") as log:  # a log line with a roster name
            log.write(f"WARNING could not match {name}\n")
        unkeyed = "p_" + hashlib.sha256(number.encode()).hexdigest()[:32]  # a token made without a key
        (tmp_path / "exports" / "extra.csv").write_text(f"subject\n{unkeyed}\n", encoding="utf-8")

        async def leaky(_request: web.Request) -> web.Response:  # a metric labelled with an ID number
            return web.Response(text=f'hub_thing_total{{person="{number}"}} 1\n')

        metrics.handler = leaky
        code, report, _ = scan(broker.bootstrap, tmp_path, [metrics.url + "/metrics"])
    assert code == 1
    assert "findings: id_number 2, name 1, unkeyed_id 1" in report, report
    assert "topic health.diagnoses.v1" in report and "worker.log:2" in report and "extra.csv:2" in report
    assert "/metrics:1" in report
    assert number not in report and name not in report  # the report masks what it found
