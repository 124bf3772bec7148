"""webhook sink against a real aiohttp receiver that fails and recovers."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import pytest

from connectors.sdk import testkit
from connectors.sinks.webhook import WebhookSink
from hub.timeutil import SHANGHAI
from tests.connectors.receiver import Receiver

pytestmark = pytest.mark.integration
SECRET = "whsec_" + base64.b64encode(b"civil-affairs-inbox-test-secret!").decode()
T0 = datetime(2024, 3, 5, 9, 0, tzinfo=SHANGHAI)


def referrals(kind: str, persons: int, per_person: int) -> list[dict[str, object]]:
    """ReferralChanged events for civil affairs: per person, states in lifecycle order."""
    out = []
    states = ["open", "acknowledged", "accepted", "completed"]
    for p in range(persons):
        for i in range(per_person):
            out.append({
                "event_id": f"{kind}-{p}-{i}", "occurred_at": T0 + timedelta(minutes=i), "kind": "referral",
                "referral_id": f"high_medical_burden:p_{p}:2024#1/civil_affairs/{kind}", "flag_id": "f",
                "subject": f"p_{kind}_{p}", "subject_kind": "person", "department": "civil_affairs",
                "referral_type": kind, "state": states[i % 4], "due": T0 + timedelta(days=7),
            })
    return out


def sink_for(url: str, kind: str, **extra: object) -> WebhookSink:
    return testkit.build(WebhookSink, {
        "name": testkit.unique_name("inbox"), "connector": "webhook", "topics": ["hub.referrals.v1"],
        "url": url, "secret": SECRET, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05,
        "filter": {"referral_type": [kind]}, **extra,
    })


def test_deliveries_survive_500s_signed_once_each_in_order_per_person(kafka_bootstrap: str) -> None:
    kind = testkit.unique_name("medical_assistance")
    events = referrals(kind, persons=3, per_person=4)
    testkit.produce(kafka_bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged", events, key_field="subject")
    attempts: dict[str, int] = {}

    def flaky(n: int, body: dict) -> int:
        """Each event fails twice, then succeeds — deterministic, whatever the interleaving of persons
        (a global "2 of 3 requests fail" can starve one person past max_attempts under load)."""
        key = body["data"]["referral_id"] + body["data"]["state"]
        attempts[key] = attempts.get(key, 0) + 1
        return 500 if attempts[key] <= 2 else 200

    with Receiver(SECRET, answer=flaky) as rx:
        sink = sink_for(rx.url, kind)
        stats = testkit.run_sink(sink, kafka_bootstrap)
    assert stats.dead_lettered == 0 and stats.delivered == 12
    assert rx.bad_signatures == 0
    assert sorted(d.webhook_id for d in rx.delivered) == sorted(e["event_id"] for e in events)
    assert all(d.webhook_id == d.idempotency_key for d in rx.delivered)
    assert rx.requests > 12  # retried
    for p in range(3):
        seen = [d.body["data"]["state"] for d in rx.delivered if d.body["data"]["subject"] == f"p_{kind}_{p}"]
        assert seen == ["open", "acknowledged", "accepted", "completed"]
    first = rx.delivered[0].body
    assert first["type"] == "hub.outputs.ReferralChanged" and first["data"]["due"].endswith("+08:00")


def test_receiver_down_for_one_person_dead_letters_after_the_last_attempt(kafka_bootstrap: str) -> None:
    kind = testkit.unique_name("temporary_assistance")
    events = referrals(kind, persons=2, per_person=2)
    testkit.produce(kafka_bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged", events, key_field="subject")
    broken = f"p_{kind}_0"
    with Receiver(SECRET, answer=lambda n, body: 503 if body["data"]["subject"] == broken else 200) as rx:
        sink = sink_for(rx.url, kind, max_attempts=3)
        stats = testkit.run_sink(sink, kafka_bootstrap)
        assert rx.requests == 3 + 2  # three attempts for the first event of the broken person, then none
    assert [d.body["data"]["subject"] for d in rx.delivered] == [f"p_{kind}_1"] * 2
    letters = testkit.dead_letters(kafka_bootstrap, sink.config.name)
    assert sorted(d["reason"] for d in letters) == ["blocked_by_earlier_failure", "delivery_failed"]
    assert all(d["topic"] == "hub.referrals.v1" and d["original_encrypted"] is False for d in letters)
    assert stats.dead_lettered == 2


def test_a_refused_event_is_dead_lettered_without_retry(kafka_bootstrap: str) -> None:
    kind = testkit.unique_name("charity")
    testkit.produce(kafka_bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged",
                    referrals(kind, 1, 1), key_field="subject")
    with Receiver(SECRET, answer=lambda n, body: 422) as rx:
        sink = sink_for(rx.url, kind)
        testkit.run_sink(sink, kafka_bootstrap)
        assert rx.requests == 1
    assert [d["reason"] for d in testkit.dead_letters(kafka_bootstrap, sink.config.name)] == ["delivery_refused"]


def test_a_restarted_sink_does_not_deliver_again(kafka_bootstrap: str) -> None:
    kind = testkit.unique_name("premium_subsidy")
    testkit.produce(kafka_bootstrap, "hub.referrals.v1", "hub.outputs.ReferralChanged",
                    referrals(kind, 1, 2), key_field="subject")
    with Receiver(SECRET) as rx:
        sink = sink_for(rx.url, kind)
        testkit.run_sink(sink, kafka_bootstrap)
        again = testkit.build(WebhookSink, sink.config)
        assert testkit.run_sink(again, kafka_bootstrap).delivered == 0
        assert rx.requests == 2
