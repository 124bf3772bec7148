"""http_ingest: a department POSTs JSON; 202 once on the hub, 422 with field errors, 401/403 by token."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.examples.make_samples import mistyped, synthetic_id
from connectors.sdk import testkit
from connectors.sdk.runner import SourceRunner
from connectors.sources.http_ingest import HttpIngestSource

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "connectors" / "examples"


@pytest.fixture
def ingest(kafka_bootstrap: str) -> Iterator[HttpIngestSource]:
    """The referral-updates example on a free port, run by a real runner in a thread."""
    src = testkit.from_yaml(EXAMPLES / "referral_updates.yaml", name=testkit.unique_name("updates"), port=0)
    stop = threading.Event()
    runner = SourceRunner(src, kafka_bootstrap, metrics=testkit.metrics(), stop=stop)
    t = threading.Thread(target=runner.run, daemon=True)
    t.start()
    for _ in range(100):
        if getattr(src, "port", None):
            break
        stop.wait(0.1)
    yield src
    stop.set()
    t.join(20)
    assert not t.is_alive()


def post(src: HttpIngestSource, body: Any, token: str | None = "dev-token-civil-affairs") -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"http://127.0.0.1:{src.port}/v1/events", data=json.dumps(body).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def update(**over: Any) -> dict[str, Any]:
    return {"id_number": synthetic_id(31),
            "referral_id": "high_medical_burden:p_x:2024#1/civil_affairs/medical_assistance",
            "status": "completed", "amount_fen": 250000, "department": "civil_affairs",
            "occurred_at": "2024-03-09T10:00:00+08:00", **over}


def test_a_valid_update_is_on_the_hub_before_the_202(kafka_bootstrap: str, ingest: HttpIngestSource) -> None:
    status, body = post(ingest, update())
    assert status == 202
    on_hub = [r for r in testkit.read_topic(kafka_bootstrap, "department.referral-updates.v1")
              if r.value["event_id"] == body["event_id"]]
    assert len(on_hub) == 1 and on_hub[0].key == testkit.token(synthetic_id(31))
    assert synthetic_id(31) not in repr(on_hub[0].value)
    again_status, again = post(ingest, update())  # a retried POST is the same event
    assert (again_status, again["event_id"]) == (202, body["event_id"])


def test_an_invalid_body_gets_422_with_field_errors_and_a_dead_letter(kafka_bootstrap: str,
                                                                     ingest: HttpIngestSource) -> None:
    status, body = post(ingest, update(status="rejected", amount_fen=-5, reason=None))
    assert status == 422
    fields = {e["field"] for e in body["errors"]}
    assert "amount_fen" in fields
    status, body = post(ingest, update(id_number=mistyped(synthetic_id(32))))
    assert status == 422 and body["errors"][0]["field"] == "id_number"
    assert mistyped(synthetic_id(32)) not in json.dumps(body)
    letters = testkit.dead_letters(kafka_bootstrap, ingest.config.name)
    assert sorted(d["reason"] for d in letters) == ["invalid_id_number", "invalid_input"]
    assert all(d["original_encrypted"] for d in letters)


def test_tokens_are_per_department(ingest: HttpIngestSource) -> None:
    assert post(ingest, update(), token=None)[0] == 401
    assert post(ingest, update(), token="guess")[0] == 401
    status, body = post(ingest, update(), token="dev-token-health")  # health cannot answer for civil affairs
    assert status == 403 and body["errors"][0]["field"] == "department"
