"""hub.simulate: deterministic, realistic shares, every value a valid event of its topic, money in int fen."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime

import pytest

from hub.events import model_for_topic
from hub.identity import validate_id_number
from hub.simulate import Province, SimEvent, id_number_check, to_replay_lines
from hub.topics import BY_NAME

N_EVENTS = 6000


@pytest.fixture(scope="module")
def province() -> Province:
    return Province(seed=11, persons=1000)


@pytest.fixture(scope="module")
def events(province: Province) -> list[SimEvent]:
    return list(province.events(N_EVENTS))


def test_same_seed_same_events_and_ids() -> None:
    a = [(e.topic, e.key, e.value) for e in Province(seed=3, persons=300).events(1500)]
    b = [(e.topic, e.key, e.value) for e in Province(seed=3, persons=300).events(1500)]
    c = [(e.topic, e.key, e.value) for e in Province(seed=4, persons=300).events(1500)]
    assert a == b
    assert a != c


def test_events_can_be_iterated_twice(province: Province, events: list[SimEvent]) -> None:
    assert [e.value for e in province.events(500)] == [e.value for e in events[:500]]


def test_event_ids_unique(events: list[SimEvent]) -> None:
    ids = [e.value["event_id"] for e in events]
    assert len(ids) == len(set(ids))


def test_every_value_validates_against_its_model(events: list[SimEvent]) -> None:
    """JSON round trip first: the value must be valid in the JSON form `hub replay` reads."""
    for e in events:
        assert e.topic in BY_NAME
        model_for_topic(e.topic).model_validate_json(json.dumps(e.value))


def test_keys_are_person_tokens_or_facility_codes(events: list[SimEvent]) -> None:
    for e in events:
        want = e.value["facility_code"] if e.topic == "health.facilities.v1" else e.value["person_token"]
        assert e.key == want


def test_event_time_never_goes_backwards(events: list[SimEvent]) -> None:
    times = [datetime.fromisoformat(e.value["occurred_at"]) for e in events]
    assert times == sorted(times)


def test_money_is_int_fen(events: list[SimEvent]) -> None:
    for e in events:
        for k, v in e.value.items():
            if k.endswith("_fen") and v is not None:
                assert type(v) is int and v >= 0, (k, v)
    d = [e.value for e in events if e.topic == "health.discharges.v1" and not e.value["reverses"]]
    assert len(d) > 100
    shares = [x["out_of_policy_fen"] / x["total_fen"] for x in d]
    assert min(shares) >= 0.049 and max(shares) <= 0.2
    totals = sorted(x["total_fen"] for x in d)
    assert 100_000 < totals[len(totals) // 2] < 2_000_000  # median 1,000–20,000 yuan
    assert {x["level"] for x in d} == {"L1", "L2", "L3"}
    assert 0.7 < sum(x["in_county"] for x in d) / len(d) < 0.95


def test_roster_shares(province: Province, events: list[SimEvent]) -> None:
    n = len(province.persons)
    held = Counter(c for p in province.persons for c in p.categories)
    assert 0.08 <= held["poverty_alleviated"] / n <= 0.10
    assert 0.01 <= held["monitored"] / n <= 0.02
    assert 0.04 <= held["minimum_living"] / n <= 0.05
    assert 0.005 <= held["extreme_poverty"] / n <= 0.01
    assert any(len(p.categories) > 1 for p in province.persons)  # overlaps exist
    on_roster = {e.key for e in events if e.topic.endswith("-status.v1")}
    assert on_roster >= {p.token for p in province.persons if p.categories}


def test_enrolment_about_97_percent_with_subsidies(province: Province, events: list[SimEvent]) -> None:
    year = [e.value for e in events if e.topic == "insurance.enrollments.v1" and e.value["year"] == 2024]
    assert len(year) == len(province.persons)
    assert 0.95 <= sum(v["enrolled"] for v in year) / len(year) <= 0.99
    special = {p.token for p in province.persons if p.categories}
    subsidised = {v["person_token"] for v in year if v["subsidy_category"]}
    assert len(subsidised & special) >= 0.95 * len(special)


def test_health_signals_present(events: list[SimEvent]) -> None:
    codes = {e.value["icd10"] for e in events if e.topic == "health.diagnoses.v1"}
    assert {"I10", "E11.9"} <= codes and codes & {"C34.1", "C16.9", "I21.0"}
    fac = [e.value for e in events if e.topic == "health.facilities.v1"]
    assert any(f["kind"] == "village_clinic" and f["licensed_doctors"] == 0 for f in fac)
    kinds = Counter(e.value["kind"] for e in events if e.topic == "health.family-doctor.v1")
    assert kinds["contract"] > 0 and kinds["followup"] > 0
    assert any(e.value["reverses"] for e in events if e.topic == "health.discharges.v1")


def test_id_numbers_valid_and_tokens_are_not_numbers(province: Province) -> None:
    for p in province.persons[:200]:
        assert validate_id_number(p.id_number, today=date(2024, 1, 1)) == p.id_number
        assert p.id_number[:6] == "532503"
        assert p.id_number not in p.token
    assert id_number_check("11010519491231002") == "X"  # the GB 11643 worked example


def test_replay_lines_round_trip(events: list[SimEvent]) -> None:
    lines = list(to_replay_lines(events[:50]))
    assert [json.loads(line) for line in lines] == [{"topic": e.topic, "value": e.value} for e in events[:50]]


def test_answer_referrals_deterministic_valid_and_some_late(province: Province) -> None:
    refs = [
        {"kind": "referral", "referral_id": f"uninsured:p_{i:032x}:2024#1/insurance/enrollment",
         "flag_id": f"uninsured:p_{i:032x}:2024#1", "subject": f"p_{i:032x}", "subject_kind": "person",
         "department": "civil_affairs", "referral_type": "medical_assistance", "state": "open",
         "occurred_at": "2024-03-01T10:00:00+08:00", "due": "2024-03-08T10:00:00+08:00"}
        for i in range(200)
    ]
    a = province.answer_referrals(refs)
    assert [e.value for e in a] == [e.value for e in province.answer_referrals(reversed(refs))]
    for e in a:
        model_for_topic(e.topic).model_validate_json(json.dumps(e.value))
    statuses = Counter(e.value["status"] for e in a)
    assert statuses["completed"] > 0 and statuses["rejected"] > 0
    due = datetime.fromisoformat("2024-03-08T10:00:00+08:00")
    assert any(datetime.fromisoformat(e.value["occurred_at"]) > due for e in a)
    assert not province.answer_referrals([{**refs[0], "state": "completed"}])


# -- busy admissions: hub up's live demo (issue 15, item 6) ----------------------------------------------


def test_busy_admissions_discharge_round_the_clock_from_the_first_minute() -> None:
    """A settlement every minute needs discharges every minute, at night too, from the start: busy stays are
    hours long and discharged at any hour, and patients already in hospital at busy_from are simulated."""
    from datetime import timedelta

    from hub.timeutil import SHANGHAI

    busy_from = datetime(2026, 12, 6, 2, 30, tzinfo=SHANGHAI)  # the middle of the night in Shanghai
    province = Province(seed=5, persons=500, start=date(2026, 12, 5), busy_per_minute=10, busy_from=busy_from)
    window = busy_from + timedelta(hours=2)
    events = []
    for e in province.events():
        if datetime.fromisoformat(e.value["occurred_at"]) >= window:
            break
        events.append(e)
    times = [datetime.fromisoformat(e.value["occurred_at"]) for e in events]
    assert times == sorted(times)
    discharges = [t for e, t in zip(events, times, strict=True) if e.topic == "health.discharges.v1"]
    minutes = Counter(int((t - busy_from).total_seconds() // 60) for t in discharges if t >= busy_from)
    assert all(minutes[m] > 0 for m in range(120)), sorted(m for m in range(120) if not minutes[m])
    busy_admissions = [t for e, t in zip(events, times, strict=True) if e.topic == "health.admissions.v1"
                       and t.hour < 8]  # a county's own admissions come at any hour too, but only ≈0.25 a day here
    assert busy_admissions and min(busy_admissions) >= busy_from
    for e in events:
        model_for_topic(e.topic).model_validate_json(json.dumps(e.value))


def test_started_in_december_the_province_is_enrolled_for_next_year_too() -> None:
    province = Province(seed=2, persons=200, start=date(2026, 12, 6))
    years = Counter(e.value["year"] for e in province.events(600) if e.topic == "insurance.enrollments.v1")
    assert years == {2026: 200, 2027: 200}


def test_no_busy_admissions_leave_the_stream_as_it_was() -> None:
    plain = [e.value for e in Province(seed=3, persons=300).events(1500)]
    assert [e.value for e in Province(seed=3, persons=300, busy_per_minute=0.0).events(1500)] == plain
    with pytest.raises(ValueError, match="time zone"):
        Province(seed=3, persons=10, busy_per_minute=1, busy_from=datetime(2026, 1, 1))
