"""Generated hostile input against every edge format and every input topic: 0 crashes, 0 stalls, every reject
a dead letter with a reason, and no valid ID number in any text that leaves the process.

``HOSTILE_CASES`` cases per format (300 here; ``make hostile`` runs 10,000 and prints the counts that
RELIABILITY.md records). Real parts: the session's embedded broker, the real runner, real files, real
PostgreSQL, a real HTTP server, a real processor worker on a broker of its own.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.sdk import testkit
from connectors.sdk.runner import RunStats
from connectors.sources.file_drop import FileDropSource
from hub.identity import find_id_numbers
from tests.hostile.cases import (
    CASES,
    TOPIC_CASES,
    csv_files,
    expected_items,
    http_bodies,
    sql_rows,
    topic_records,
    xlsx_files,
)
from tests.hostile.conftest import EXAMPLES, ingest, post

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
KNOWN_REASONS = {"invalid_id_number", "invalid_input", "missing_field", "schema_mismatch", "unreadable_file",
                 "record_too_large", "request_too_large", "forbidden_sender"}


def report(fmt: str, **counts: Any) -> None:
    """One line per format for RELIABILITY.md (printed with -s; make hostile shows it)."""
    print(f"\nHOSTILE {fmt}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


def check_letters(letters: list[dict[str, Any]], stats: RunStats) -> Counter[str]:
    """Every reject is a dead letter with a known reason and a detail that holds no ID number."""
    assert len(letters) == stats.rejected
    reasons = Counter(d["reason"] for d in letters)
    assert set(reasons) <= KNOWN_REASONS, reasons
    for d in letters:
        assert d["detail"] and d["original_encrypted"]
        assert find_id_numbers(d["detail"]) == [], d["detail"][:300]
    return reasons


def roster_source(inbox: Path, name: str) -> FileDropSource:
    mapping = yaml.safe_load((EXAMPLES / "civil_affairs_roster.yaml").read_text())["mapping"]
    return testkit.build(FileDropSource, {"name": name, "connector": "file_drop", "department": "civil_affairs",
                                          "topic": "civil-affairs.assistance-status.v1", "inbox": str(inbox),
                                          "patterns": ["*.csv", "*.xlsx"], "settle_seconds": 0,
                                          "batch_size": 2000, "mapping": mapping})


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_files_of_hostile_rows(kafka_bootstrap: str, tmp_path: Path, fmt: str) -> None:
    rng = random.Random(f"hostile-{fmt}")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = list((csv_files if fmt == "csv" else xlsx_files)(rng, CASES))
    for name, data, _rows in files:
        (inbox / name).write_bytes(data)
    name = testkit.unique_name(f"fuzz-{fmt}")
    started = time.monotonic()
    stats = testkit.run_source(roster_source(inbox, name), kafka_bootstrap)
    elapsed = time.monotonic() - started
    letters = testkit.dead_letters(kafka_bootstrap, name)
    reasons = check_letters(letters, stats)
    assert not [p for p in inbox.iterdir() if p.is_file()], "every file is moved aside, none left to crash a poll"
    unreadable = {json.loads(_open(d))["file"] for d in letters if d["reason"] == "unreadable_file"}
    # Every data row of a readable file is one event or one reject; an unreadable file is one reject.
    readable = [rows for name, _data, rows in files if name not in unreadable]
    assert None not in readable, [n for n, _d, r in files if r is None and n not in unreadable]
    assert stats.produced + stats.rejected == sum(expected_items(r) for r in readable) + len(unreadable)
    assert {"one_10MB_row.csv"} & unreadable == set()  # a 10 MB row is that row's reject, not the file's
    assert {"far_cell.xlsx", "zip_bomb.xlsx", "random.xlsx", "not_a_zip.xlsx", "truncated.xlsx"} - unreadable == set() \
        if fmt == "xlsx" else True
    produced = testkit.read_topic(kafka_bootstrap, "civil-affairs.assistance-status.v1", timeout_s=120)
    for r in produced:
        assert find_id_numbers(json.dumps(r.value, default=str)) == [] and r.key and r.key.startswith("p_")
    report(fmt, files=len(files), rows=CASES, produced=stats.produced, rejected=stats.rejected,
           reasons=dict(reasons), seconds=round(elapsed, 1))


def _open(letter: dict[str, Any]) -> bytes:
    from hub.deadletter import decrypt_original

    return decrypt_original(letter, testkit.TEST_EDGE_KEY)


@pytest.mark.postgres
def test_sql_rows_of_hostile_values(kafka_bootstrap: str, pg_url: str) -> None:
    from sqlalchemy import create_engine, text

    from connectors.sources.sql_poll import SqlPollSource

    rows = sql_rows(random.Random("hostile-sql"), CASES)
    with create_engine(pg_url).begin() as c:
        c.execute(text("CREATE TABLE enrol (rid int PRIMARY KEY, certno text, insu_year text, stas text, region text, "
                       "rescue text, updt_time timestamp DEFAULT '2024-01-02 08:00')"))
        c.execute(text("INSERT INTO enrol (rid, certno, insu_year, stas, region, rescue) "
                       "VALUES (:rid, :certno, :insu_year, :stas, :region, :rescue)"), rows)
    mapping = yaml.safe_load((EXAMPLES / "insurance_enrolment.yaml").read_text())["mapping"]
    mapping["fields"]["subsidy_category"]["column"] = "rescue"
    mapping["fields"]["insured_region"]["column"] = "region"
    mapping["fields"]["enrolled"]["column"] = "stas"
    name = testkit.unique_name("fuzz-sql")
    src = testkit.build(SqlPollSource, {"name": name, "connector": "sql_poll", "department": "insurance",
                                        "topic": "insurance.enrollments.v1", "url": pg_url, "table": "enrol",
                                        "cursor_column": "updt_time", "key_column": "rid", "batch_size": 1000,
                                        "mapping": mapping})
    started = time.monotonic()
    stats = testkit.run_source(src, kafka_bootstrap)
    reasons = check_letters(testkit.dead_letters(kafka_bootstrap, name), stats)
    assert stats.produced + stats.rejected == len(rows)
    report("sql", rows=len(rows), produced=stats.produced, rejected=stats.rejected, reasons=dict(reasons),
           seconds=round(time.monotonic() - started, 1))


def test_http_bodies(kafka_bootstrap: str) -> None:
    bodies = list(http_bodies(random.Random("hostile-http"), CASES))
    with ingest(kafka_bootstrap, "referral_updates.yaml", answer_timeout_seconds=60) as src:
        url = f"http://127.0.0.1:{src.port}/v1/events"
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda b: post(url, b, "dev-token-civil-affairs", timeout=120), bodies))
        elapsed = time.monotonic() - started
        letters = testkit.dead_letters(kafka_bootstrap, src.config.name)
    statuses = Counter(s for s, _ in answers)
    assert set(statuses) <= {202, 207, 403, 413, 422}, statuses  # never a 500, never a hang (503)
    for _status, text in answers:
        assert "Traceback" not in text and find_id_numbers(text) == []
    for d in letters:
        assert d["reason"] in KNOWN_REASONS and d["detail"] and d["original_encrypted"]
        assert find_id_numbers(d["detail"]) == []
    refused = sum(1 for s, _ in answers if s in (403, 413, 422))
    assert len(letters) >= refused  # each refused body (or item of one) is a dead letter
    report("http", bodies=len(bodies), statuses=dict(statuses), dead_letters=len(letters),
           seconds=round(elapsed, 1))


def test_hostile_records_on_every_input_topic_reach_the_dead_letters_and_stall_nothing(tmp_path: Path) -> None:
    """Bytes no edge would write, put straight on the input topics: the processor dead-letters each one it
    cannot decode, keeps running, and still decides the next valid admission."""
    from kafka import KafkaProducer

    from hub import codec
    from hub.broker import EmbeddedBroker, ensure_topics
    from hub.runtime import encode_input, output_counts, spawn_worker, stop_process
    from hub.topics import INPUT_TOPICS

    person = "p_" + "1" * 32
    at = "2024-03-01T09:00:00+08:00"
    samples = {
        "revitalization.poverty-status.v1": {"person_token": person, "categories": ["monitored"],
                                             "household_income_fen": None, "region_code": "532503"},
        "civil-affairs.assistance-status.v1": {"person_token": person, "categories": [], "region_code": "532503"},
        "insurance.enrollments.v1": {"person_token": person, "year": 2024, "enrolled": True,
                                     "subsidy_category": None, "insured_region": "532503"},
        "health.admissions.v1": {"person_token": person, "admission_id": "A0", "hospital_code": "H1",
                                 "hospital_level": "L2", "in_county": True, "declared_categories": [],
                                 "admitted_at": at},
        "health.discharges.v1": {"person_token": person, "discharge_id": "D0", "discharged_at": at, "level": "L2",
                                 "in_county": True, "referred": False, "total_fen": 100, "out_of_policy_fen": 0,
                                 "hospital_code": "H1", "reverses": None},
        "health.diagnoses.v1": {"person_token": person, "icd10": "I10"},
        "health.family-doctor.v1": {"person_token": person, "kind": "followup", "active": None},
        "health.facilities.v1": {"facility_code": "VC-1", "kind": "village_clinic", "licensed_doctors": 1,
                                 "region_code": "532503"},
        "health.payment-defaults.v1": {"person_token": person, "hospital_code": "H1", "defaulted": False},
        "department.referral-updates.v1": {"person_token": person, "referral_id": "uninsured:" + person
                                           + ":2024#1/insurance/enrollment", "status": "acknowledged", "reason": None,
                                           "amount_fen": None, "department": "insurance"},
    }
    assert set(samples) == set(INPUT_TOPICS)
    rng = random.Random("hostile-topics")
    per_topic = TOPIC_CASES
    sent: Counter[str] = Counter()
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        worker = spawn_worker(broker.bootstrap, data_dir=tmp_path, log_file=tmp_path / "worker.log",
                              extra_env={"HUB_WALL_CLOCK": "0"})
        try:
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
            for topic, value in samples.items():
                _, valid = encode_input(topic, {"event_id": "sample", "occurred_at": at, **value})
                assert codec.decode(valid)
                for kind, data in topic_records(rng, 0, valid, per_topic):
                    producer.send(topic, key=rng.choice([b"", person.encode(), rng.randbytes(8)]), value=data)
                    sent[kind] += 1
            sentinel = {"event_id": "sentinel", "occurred_at": "2024-03-02T09:00:00+08:00",
                        **samples["health.admissions.v1"], "admission_id": "A-SENTINEL"}
            key, data = encode_input("health.admissions.v1", sentinel)
            producer.send("health.admissions.v1", key=key, value=data)
            producer.flush()
            producer.close()
            undecodable = sum(n for kind, n in sent.items() if kind != "bad_utf8")
            deadline = time.monotonic() + 120 + sum(sent.values()) / 100
            while True:  # every undecodable record dead-lettered, and the valid admission after them decided
                counts = output_counts(broker.bootstrap, ["hub.deposit-decisions.v1", "hub.dead-letters.v1"])
                if counts["hub.deposit-decisions.v1"] >= 1 and counts["hub.dead-letters.v1"] >= undecodable:
                    break
                assert worker.poll() is None, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, f"the worker stalled on hostile records: {counts}"
                time.sleep(0.5)
            assert worker.poll() is None
            letters = [r.value for r in testkit.read_topic(broker.bootstrap, "hub.dead-letters.v1", timeout_s=300)]
        finally:
            stop_process(worker)
    reasons = Counter(d["reason"] for d in letters)
    assert reasons["undecodable"] >= undecodable
    for d in letters:
        assert find_id_numbers(d["detail"]) == []
    report("topics", records=sum(sent.values()), kinds=dict(sent), dead_letters=dict(reasons))


def test_an_encrypted_dead_letter_original_is_never_a_rejected_row_in_clear(kafka_bootstrap: str,
                                                                              tmp_path: Path) -> None:
    """Rejects carry the row (it may hold an ID number and a name) only encrypted."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    number = "11010519491231002X"
    rows = "身份证号码,审批日期,救助类别,行政区划代码\n" + f"{number},2024-03-04,低保户,530102\n"
    (inbox / "r.csv").write_bytes(rows.encode("gbk"))
    name = testkit.unique_name("clear")
    stats = testkit.run_source(roster_source(inbox, name), kafka_bootstrap)
    letters = testkit.dead_letters(kafka_bootstrap, name)
    assert stats.rejected == 1 and number.encode() not in letters[0]["original"]
    assert number.encode() in _open(letters[0])
