"""The hospital counter API (医院窗口) end to end: a cashier's request goes through the real pipeline.

Why a broker and a worker of this module's own: the answer is the person processor's output record
(request/reply through the topics, not a side computation), so the test needs the real thing, and the
processor's event-time clock is shared by every person it serves: other tests' events on the session
broker would move it. Every event here takes its ``occurred_at`` from :func:`at`, which only moves
forward. The API runs in aiohttp's test server inside ``asyncio.run`` (no pytest-asyncio), and once in
its :class:`~hub.api.ApiThread` over real HTTP, as ``hub up`` runs it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaProducer

from connectors.examples.make_samples import synthetic_id
from hub.api import ApiThread, CounterBridge, create_api, parse_request
from hub.broker import EmbeddedBroker, ensure_topics
from hub.deadletter import dead_letter
from hub.identity import person_token
from hub.policy.loader import load_policies, select_policy
from hub.policy.settlement import Discharge, PersonFacts, Ytd, settle_discharge, settlement_event_id
from hub.runtime import encode_input, output_counts, spawn_worker, stop_process
from hub.timeutil import SHANGHAI

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REGIONS = Path(__file__).resolve().parents[2] / "hub" / "policy" / "regions"
T = TypeVar("T")
_minutes = itertools.count()
_BASE = datetime(2024, 3, 1, 9, 0, tzinfo=SHANGHAI)
KEY = "counter-api-test-pseudonym-key-0123456789"
HOSPITAL = "H532503001"
TOKENS = {HOSPITAL: "counter-api-test-token-of-H532503001-0123456789"}
AUTH = {"Authorization": f"Bearer {TOKENS[HOSPITAL]}"}
_IDS: dict[str, str] = {}


def id_of(name: str) -> str:
    """A synthetic, valid ID number per test person (what the cashier types in)."""
    return _IDS.setdefault(name, synthetic_id(len(_IDS) + 101, region="532503"))


def tok(name: str) -> str:
    """The person token the API (and so the pipeline) gives that person."""
    return person_token(id_of(name), KEY)


def at() -> str:
    """The next event time: the processor's clock never goes back (§5.1), so every event moves it on."""
    return (_BASE + timedelta(minutes=next(_minutes))).isoformat()


@dataclass
class Pipeline:
    bootstrap: str
    worker: subprocess.Popen[bytes]
    log: Path

    def produce(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Inputs as a department connector would send them (keyed by person_token, Avro)."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        try:
            for topic, value in records:
                key, data = encode_input(topic, value)
                producer.send(topic, key=key, value=data)
            producer.flush()
        finally:
            producer.close()

    def enrol(self, name: str, *, categories: tuple[str, ...] = ("poverty_alleviated",), year: int = 2024,
              region: str = "532503") -> None:
        """脱贫人口 status from revitalization and 参保 for ``year`` from insurance."""
        person = tok(name)
        self.produce([
            ("revitalization.poverty-status.v1", {
                "event_id": f"status:{person}", "occurred_at": at(), "person_token": person,
                "categories": list(categories), "household_income_fen": None, "region_code": region}),
            ("insurance.enrollments.v1", {
                "event_id": f"enrol:{person}:{year}", "occurred_at": at(), "person_token": person, "year": year,
                "enrolled": True, "subsidy_category": None, "insured_region": region}),
        ])

    def worker_log(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """A private broker with the catalogue's topics and one worker, ready (it has decided an admission)."""
    tmp = tmp_path_factory.mktemp("counter-api")
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        worker = spawn_worker(broker.bootstrap, data_dir=tmp, log_file=tmp / "worker.log",
                              extra_env={"HUB_WALL_CLOCK": "0"})
        try:
            pipe = Pipeline(broker.bootstrap, worker, tmp / "worker.log")
            pipe.enrol("warmup")
            warmup = admission("warmup", "a0", event_id="warmup:a0", occurred_at=at())
            warmup = {**{k: v for k, v in warmup.items() if k != "id_number"}, "person_token": tok("warmup")}
            pipe.produce([("health.admissions.v1", warmup)])
            deadline = time.monotonic() + 120
            while output_counts(broker.bootstrap, ["hub.deposit-decisions.v1"])["hub.deposit-decisions.v1"] < 1:
                if worker.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the worker did not decide the warm-up admission: {pipe.worker_log()}")
                time.sleep(0.3)
            yield pipe
        finally:
            stop_process(worker)


def admission(name: str, admission_id: str, **extra: Any) -> dict[str, Any]:
    """What a cashier posts: an AdmissionRegistered's JSON form with id_number, without event_id."""
    body = {"id_number": id_of(name), "admission_id": admission_id, "hospital_code": HOSPITAL,
            "hospital_level": "L2", "in_county": True, "declared_categories": [], "admitted_at": "2024-05-01"
            "T08:30:00+08:00"}
    return {**body, **extra}


def discharge(name: str, discharge_id: str, **extra: Any) -> dict[str, Any]:
    """What a cashier posts: a DischargeSettlementRequested's JSON form with id_number, without event_id."""
    body = {"id_number": id_of(name), "discharge_id": discharge_id, "discharged_at": "2024-05-10T10:00:00+08:00",
            "level": "L2", "in_county": True, "referred": False, "total_fen": 1_234_500,
            "out_of_policy_fen": 100_000, "hospital_code": HOSPITAL}
    return {**body, **extra}


def with_api(bootstrap: str, scenario: Callable[[TestClient[Any, Any]], Awaitable[T]], *,
             wait_seconds: float = 30.0, idle_pause_seconds: float = 2.0) -> T:
    """Run ``scenario`` against a fresh API (aiohttp test server) on this test's own event loop."""

    async def main() -> T:
        app = create_api(bootstrap, wait_seconds=wait_seconds, idle_pause_seconds=idle_pause_seconds,
                         tokens=TOKENS, pseudonym_key=KEY)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


async def post(client: TestClient[Any, Any], path: str, body: Any,
               auth: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.post(path, data=raw, headers={"Content-Type": "application/json", **(AUTH if auth is None
                                                                                            else auth)})
    text = await resp.text()
    return resp.status, json.loads(text), text


def expected_settlement(body: dict[str, Any], categories: set[str], years: set[int], region: str) -> dict[str, int]:
    """What the pure §3 code computes for the same inputs (first discharge of the year: zero YTD)."""
    d = Discharge(discharge_id=body["discharge_id"], discharged_at=datetime.fromisoformat(body["discharged_at"]),
                  level=body["level"], in_county=body["in_county"], referred=body["referred"],
                  total_fen=body["total_fen"], out_of_policy_fen=body["out_of_policy_fen"])
    policy = select_policy(load_policies(REGIONS), region, d.day)
    assert policy is not None
    r = settle_discharge(policy, PersonFacts(frozenset(categories), frozenset(years), region), d, Ytd())
    return {"basic_fen": r.basic_fen, "critical_fen": r.critical_fen, "assistance_fen": r.assistance_fen,
            "top_up_fen": r.top_up_fen, "patient_fen": r.patient_fen, "total_fen": r.total_fen,
            "actual_ratio_bp": r.actual_ratio_bp}


AMOUNTS = ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen", "total_fen")


# ---------------------------------------------------------------- §4 deposit waiver at admission


def test_an_admission_answers_with_the_deposit_decision_and_its_reason(pipeline: Pipeline) -> None:
    pipeline.enrol("p_test1")
    pipeline.produce([("revitalization.poverty-status.v1", {  # a status but no enrolment: not_enrolled
        "event_id": "status:p_test1b", "occurred_at": at(), "person_token": tok("p_test1b"),
        "categories": ["poverty_alleviated"], "household_income_fen": None, "region_code": "532503"})])

    async def scenario(client: TestClient[Any, Any]) -> None:
        status, body, _ = await post(client, "/v1/admissions", admission("p_test1", "a1", occurred_at=at()))
        assert status == 200, body
        assert body["status"] == "done" and body["kind"] == "admission" and body["id"] == "a1"
        decision = body["result"]
        assert (decision["waived"], decision["reason"]) == (True, "waived")
        assert decision["event_id"] == f"deposit_decision:{tok('p_test1')}:a1"
        assert "person_token" not in decision  # the hospital knows its patient; the token is not for it
        assert decision["admission_id"] == "a1" and decision["hospital_code"] == "H532503001"

        status, body, _ = await post(client, "/v1/admissions", admission("p_test1b", "a2", occurred_at=at()))
        assert status == 200, body
        assert (body["result"]["waived"], body["result"]["reason"]) == (False, "not_enrolled")

        # §4: a redelivered admission gets no second decision; the API answers from what it saw.
        status, again, _ = await post(client, "/v1/admissions", admission("p_test1", "a1", occurred_at=at()))
        assert status == 200 and again["result"] == decision
        resp = await client.get("/v1/status/admission/a1", headers=AUTH)
        assert resp.status == 200 and (await resp.json())["result"] == decision

    with_api(pipeline.bootstrap, scenario)


# ---------------------------------------------------------------- §3 settlement at discharge


def test_a_discharge_answers_with_the_settlement_hub_policy_computes(pipeline: Pipeline) -> None:
    pipeline.enrol("p_test2")
    body_in = discharge("p_test2", "d1", occurred_at=at())
    expected = expected_settlement(body_in, {"poverty_alleviated"}, {2024}, "532503")
    assert expected["basic_fen"] > 0 and expected["patient_fen"] < expected["total_fen"]  # a real case

    async def scenario(client: TestClient[Any, Any]) -> None:
        status, body, _ = await post(client, "/v1/discharges", body_in)
        assert status == 200, body
        settlement = body["result"]
        assert {k: settlement[k] for k in expected} == expected
        assert settlement["event_id"] == settlement_event_id(tok("p_test2"), "d1", hospital=settlement["hospital_code"])
        assert (settlement["year"], settlement["policy_region"], settlement["reverses"]) == (2024, "532503", None)
        assert body["status_url"] == "/v1/status/discharge/d1"

        # §3 idempotence: the same discharge again returns the original settlement, state unchanged.
        status, again, _ = await post(client, "/v1/discharges", {**body_in, "occurred_at": at()})
        assert status == 200 and {k: again["result"][k] for k in expected} == expected

        # §3 reversal (冲正): every amount negated, actual_ratio_bp kept, reverses set.
        reversal = discharge("p_test2", "d1-r", reverses="d1", occurred_at=at())
        status, body, _ = await post(client, "/v1/discharges", reversal)
        assert status == 200, body
        assert body["kind"] == "reversal" and body["result"]["reverses"] == "d1"
        assert {k: body["result"][k] for k in AMOUNTS} == {k: -expected[k] for k in AMOUNTS}
        assert body["result"]["actual_ratio_bp"] == expected["actual_ratio_bp"]

        # Reversing twice changes nothing and is reported: a conflict with the ledger.
        status, body, _ = await post(client, "/v1/discharges", {**reversal, "discharge_id": "d1-r2"})
        assert status == 409, body
        assert (body["status"], body["error"]) == ("rejected", "already_reversed")

    with_api(pipeline.bootstrap, scenario)


# ---------------------------------------------------------------- requests the pipeline never sees


def test_a_malformed_body_answers_422_with_field_errors_and_reaches_no_topic(pipeline: Pipeline) -> None:
    id_number = "11010519491231002X"
    before = output_counts(pipeline.bootstrap, ["health.discharges.v1", "health.admissions.v1"])

    async def scenario(client: TestClient[Any, Any]) -> None:
        bad = discharge("p_test3", "d3", level="L9", total_fen="12", in_county="yes")
        del bad["referred"]
        status, body, _ = await post(client, "/v1/discharges", bad)
        assert status == 422 and body["error"] == "invalid_input"
        fields = {e["field"] for e in body["errors"]}
        assert {"level", "total_fen", "in_county", "referred"} <= fields, body
        assert all(e["problem"] for e in body["errors"])

        status, body, _ = await post(client, "/v1/discharges", discharge("p_test3", "d3", out_of_policy_fen=2_000_000))
        assert status == 422 and "must not exceed total_fen" in body["errors"][0]["problem"]

        status, body, text = await post(client, "/v1/admissions", {**admission("p_test3", "a3"),
                                                                   "id_number": id_number[:17] + "0", "surname": "张"})
        assert status == 422
        assert {e["field"] for e in body["errors"]} == {"id_number", "<unknown field>"}
        assert id_number[:17] not in text and "张" not in text and "surname" not in text  # never echo what was sent

        for raw, problem in ((b"{not json", "not JSON"), (b"[1, 2]", "expected a JSON object")):
            status, body, _ = await post(client, "/v1/admissions", raw)
            assert status == 422 and problem in body["errors"][0]["problem"]
        status, body, _ = await post(client, "/v1/admissions", {**admission("p_test3", "a3"), "event_id": "x"})
        assert status == 422 and body["errors"][0]["field"] == "event_id"

    with_api(pipeline.bootstrap, scenario)
    assert output_counts(pipeline.bootstrap, ["health.discharges.v1", "health.admissions.v1"]) == before


# ---------------------------------------------------------------- bounded wait


def test_a_wait_that_runs_out_answers_202_and_the_status_url_answers_200_later(pipeline: Pipeline) -> None:
    pipeline.enrol("p_test4")
    body_in = discharge("p_test4", "d4", total_fen=5_000_000, out_of_policy_fen=0, occurred_at=at())
    expected = expected_settlement(body_in, {"poverty_alleviated"}, {2024}, "532503")

    async def scenario(client: TestClient[Any, Any]) -> dict[str, Any]:
        resp = await client.post("/v1/discharges", json=body_in, headers=AUTH)
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        assert body["status"] == "pending" and resp.headers["Location"] == body["status_url"]
        assert body["status_url"] == "/v1/status/discharge/d4"
        deadline = time.monotonic() + 60
        while True:
            poll = await client.get(body["status_url"], headers=AUTH)
            if poll.status == 200:
                return await poll.json()
            assert poll.status == 202 and (await poll.json())["status"] == "pending"
            assert time.monotonic() < deadline, "the settlement never arrived"
            await asyncio.sleep(0.2)

    done = with_api(pipeline.bootstrap, scenario, wait_seconds=0.001)
    assert done["status"] == "done" and {k: done["result"][k] for k in expected} == expected

    async def unknown(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/v1/status/discharge/d0", headers=AUTH)).status == 404
        assert (await client.get("/v1/status/invoice/d4", headers=AUTH)).status == 404
        health = await client.get("/healthz")
        assert health.status == 200 and (await health.json())["status"] == "ok"

    with_api(pipeline.bootstrap, unknown)


# ---------------------------------------------------------------- dead-lettered inputs


def test_a_no_policy_discharge_answers_with_the_reason_from_the_dead_letter(pipeline: Pipeline) -> None:
    pipeline.enrol("p_test5", region="110101")  # insured in Beijing: no bundled policy covers it (§2)

    async def scenario(client: TestClient[Any, Any]) -> None:
        status, body, _ = await post(client, "/v1/discharges", discharge("p_test5", "d5", occurred_at=at()))
        assert status == 422, body
        assert (body["status"], body["error"]) == ("rejected", "no_policy")
        assert "d5" in body["detail"] and body["dead_letter_id"].startswith("dl_")
        resp = await client.get(body["status_url"], headers=AUTH)
        assert resp.status == 422 and (await resp.json())["error"] == "no_policy"

        # A reversal of an id the ledger never settled: reported, nothing changes.
        status, body, _ = await post(client, "/v1/discharges",
                                     discharge("p_test5", "d5-r", reverses="d-unknown", occurred_at=at()))
        assert status == 409 and body["error"] == "unknown_discharge"

    with_api(pipeline.bootstrap, scenario)


# ---------------------------------------------------------------- an idle API


def test_an_idle_api_pauses_its_tail_and_still_answers_the_next_request(pipeline: Pipeline) -> None:
    """noida-db answers empty fetches at once, so an idle tail would spin; it pauses, and the next request
    must still find its answer (the tail seeks to the end before the input is produced)."""
    pipeline.enrol("p_test7")

    async def scenario(client: TestClient[Any, Any]) -> None:
        for n in range(2):
            deadline = time.monotonic() + 20
            while (await (await client.get("/healthz")).json())["tail"] != "paused":
                assert time.monotonic() < deadline, "the idle tail never paused"
                await asyncio.sleep(0.1)
            status, body, _ = await post(client, "/v1/admissions", admission("p_test7", f"a7-{n}", occurred_at=at()))
            assert status == 200 and body["result"]["reason"] == "waived", body

    with_api(pipeline.bootstrap, scenario, idle_pause_seconds=0.3)


# ---------------------------------------------------------------- as `hub up` serves it


def test_the_api_thread_serves_real_http_as_hub_up_runs_it(pipeline: Pipeline) -> None:
    pipeline.enrol("p_test6", categories=("monitored",))
    body_in = discharge("p_test6", "d6", discharged_at="2024-06-01T12:00:00+08:00", occurred_at=at())
    expected = expected_settlement(body_in, {"monitored"}, {2024}, "532503")
    with ApiThread(pipeline.bootstrap, port=0, wait_seconds=30.0, tokens=TOKENS, pseudonym_key=KEY) as api:
        assert api.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(api.url + "/healthz", timeout=10) as resp:
            assert resp.status == 200
        req = urllib.request.Request(api.url + "/v1/discharges", data=json.dumps(body_in).encode(),
                                     headers={"Content-Type": "application/json", **AUTH}, method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = json.loads(resp.read())
    assert body["status"] == "done" and {k: body["result"][k] for k in expected} == expected
    assert body["result"]["discharge_date"] == date(2024, 6, 1).isoformat()


def test_a_dead_letter_read_before_the_producer_acknowledgement_still_answers_its_request() -> None:
    """No broker: the race cannot be forced through one. The processor can dead-letter an input and the
    API's tail can read that dead letter before the producer's acknowledgement (which names the input's
    offset) has been handled; the bridge keeps it and matches it once the offset is known."""

    async def scenario() -> tuple[int, dict[str, Any]]:
        bridge = CounterBridge("127.0.0.1:9", wait_seconds=1.0)
        req = parse_request("discharge", json.dumps(discharge("p_race", "d7")).encode(), datetime.now(SHANGHAI),
                            hospital=HOSPITAL, pseudonym_key=KEY)
        pending = bridge._register(req)
        _key, value = dead_letter(req.value, "person-processor", "no_policy", "no policy covers discharge 'd7'",
                                  topic="health.discharges.v1", partition=2, offset=41, key=req.key)
        bridge._on_record("hub.dead-letters.v1", value)
        assert not pending.future.done()
        bridge._located(pending, ("health.discharges.v1", 2, 41))
        answer = await asyncio.wait_for(pending.future, 1)
        assert bridge.status("discharge", "d7", HOSPITAL) == answer  # remembered for the status URL
        assert bridge.status("discharge", "d7", "H-OTHER").status == 404  # and only for the hospital that posted
        return answer.status, answer.body

    status, body = asyncio.run(scenario())
    assert status == 422 and (body["error"], body["id"]) == ("no_policy", "d7")
