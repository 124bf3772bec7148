"""一站式结算 and 先诊疗后付费 through the whole pipeline (policy-spec §2–§4): one ``hub replay``.

``tests/scenarios/replay_settlement.jsonl`` (event ids and person tokens say who is who):

* 5 January 2024 — rosters and enrolment. ``kunming-*`` persons are insured in 530102 (Kunming: the
  Yunnan policy 530000, which has a 兜底 top-up), ``mengzi-*`` in 532503 (Mengzi, no top-up),
  ``beijing-no-policy`` in 110101 (no bundled policy). ``mengzi-not-enrolled`` has a 2024 enrolment
  record saying *not* enrolled; ``mengzi-no-enrolment`` has no enrolment record at all.
* February — admissions: one deposit decision each; ``mengzi-blacklist`` owes a hospital (欠费) at
  its first admission and has paid at its second, which is also sent twice.
* 5 March — one discharge per category; then out of county unreferred / referred (same bill); six
  bills of 150 000 yuan that run into all three annual caps; a reversal (冲正) followed by a second
  reversal and the reversal of an unknown id; a discharge sent twice, then again with another total;
  a discharge with no policy, sent again once the insured region is corrected; malformed lines (one
  of them carries a raw resident ID number where the person token belongs).
* New year — the same bill on 31 December 23:00 and on 1 January 01:00 Shanghai time (given in UTC:
  ``2024-12-31T15:00:00Z`` and ``2024-12-31T17:00:00Z``); and a 2027 discharge (no bundled policy in force:
  the 2026 files are the last).

Expected amounts are computed independently of the stream: the reference code path of ``hub settle``
(``SettlementLedger`` with the policy ``select_policy`` picks) over the person's facts *as stated in
this module*, not as the stream derived them from the roster events. Three cases also carry the hand
arithmetic of §3 and assert literal numbers.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from hub.config import get_settings
from hub.deadletter import decrypt_original, edge_key_bytes, key_id
from hub.policy.loader import load_policies, select_policy
from hub.policy.model import Policy
from hub.policy.settlement import Discharge, Outcome, PersonFacts, Reversal, SettlementLedger, settlement_event_id
from hub.runtime import encode_input
from hub.timeutil import parse_event_time
from hub.topics import DEAD_LETTERS
from tests.e2e.conftest import Replay, ScenarioLine, read_scenario
from tests.e2e.persons import tok

pytestmark = pytest.mark.e2e

SCENARIO = "replay_settlement"
SETTLEMENTS = "hub.settlements.v1"
DEPOSITS = "hub.deposit-decisions.v1"
POLICIES: list[Policy] = load_policies(Path(__file__).resolve().parents[2] / "hub" / "policy" / "regions")
AMOUNTS = ("discharge_id", "reverses", "year", "basic_fen", "critical_fen", "assistance_fen", "top_up_fen",
           "patient_fen", "total_fen", "actual_ratio_bp", "policy_region")
"""The fields of a settlement record that §3 decides."""

PERSONS: dict[str, PersonFacts] = {
    tok("kunming-alleviated"): PersonFacts(frozenset({"poverty_alleviated"}), frozenset({2024}), "530102"),
    tok("mengzi-monitored"): PersonFacts(frozenset({"monitored"}), frozenset({2024}), "532503"),
    tok("mengzi-minimum-living"): PersonFacts(frozenset({"minimum_living"}), frozenset({2024}), "532503"),
    tok("kunming-extreme-poverty"): PersonFacts(frozenset({"extreme_poverty"}), frozenset({2024}), "530102"),
    tok("mengzi-not-enrolled"): PersonFacts(frozenset({"poverty_alleviated"}), frozenset(), "532503"),
    tok("mengzi-out-of-county"): PersonFacts(frozenset({"monitored"}), frozenset({2024}), "532503"),
    tok("mengzi-caps"): PersonFacts(frozenset({"minimum_living"}), frozenset({2024}), "532503"),
    tok("mengzi-new-year"): PersonFacts(frozenset({"poverty_alleviated"}), frozenset({2024, 2025}), "532503"),
    tok("kunming-reversal"): PersonFacts(frozenset({"poverty_alleviated"}), frozenset({2024}), "530102"),
    tok("mengzi-redelivery"): PersonFacts(frozenset({"monitored"}), frozenset({2024}), "532503"),
}
"""Who the scenario's persons are (categories C, years enrolled, insured region), as a domain expert reads it."""


# -- reference ---------------------------------------------------------------------------------------


def discharge_lines(person: str) -> list[ScenarioLine]:
    """The person's discharge events that hub replay accepts, in file order, each event once (§8.2: an event
    sent again under the same id changes nothing)."""
    seen: set[str] = set()
    out = []
    for line in read_scenario(SCENARIO):
        if (line.topic == "health.discharges.v1" and line.accepted and line.value["person_token"] == person
                and line.value["event_id"] not in seen):
            seen.add(line.value["event_id"])
            out.append(line)
    return out


def ledger_item(value: dict[str, Any]) -> Discharge | Reversal:
    """A discharge event in the ledger's terms (what ``hub settle`` reads from a line)."""
    if value.get("reverses"):
        return Reversal(value["reverses"])
    return Discharge(value["discharge_id"], parse_event_time(value["discharged_at"]), value["level"],
                     value["in_county"], value["referred"], value["total_fen"], value["out_of_policy_fen"])


def reference(person: str, facts: PersonFacts | None = None) -> list[Outcome]:
    """What the reference ledger does with each of the person's discharges, in order."""
    facts = facts or PERSONS[person]
    ledger = SettlementLedger()
    outcomes = []
    for line in discharge_lines(person):
        item = ledger_item(line.value)
        policy = None if isinstance(item, Reversal) else select_policy(POLICIES, facts.insured_region, item.day)
        outcomes.append(ledger.apply(policy, facts, item))
    return outcomes


def expected_record(outcome: Outcome) -> dict[str, Any]:
    """The §3 fields a settlement record must carry for a reference outcome."""
    r = outcome.result
    assert r is not None
    return {"discharge_id": r.discharge_id, "reverses": r.reverses, "year": r.year, "basic_fen": r.basic_fen,
            "critical_fen": r.critical_fen, "assistance_fen": r.assistance_fen, "top_up_fen": r.top_up_fen,
            "patient_fen": r.patient_fen, "total_fen": r.total_fen, "actual_ratio_bp": r.actual_ratio_bp,
            "policy_region": r.policy}


def amounts(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in AMOUNTS}


def settled(replay: Replay, person: str, discharge_id: str) -> dict[str, Any]:
    """The one settlement record (not a reversal) of ``discharge_id``."""
    return replay.one(SETTLEMENTS, person_token=person, discharge_id=discharge_id, reverses=None)


def original_bytes(dead_letter: dict[str, Any]) -> bytes:
    return base64.b64decode(dead_letter["original"])


def original_json(dead_letter: dict[str, Any]) -> str:
    """The original line of a ``hub replay`` dead letter, decrypted with the edge key (HUB_EDGE_KEY)."""
    record = {**dead_letter, "original": original_bytes(dead_letter)}
    return decrypt_original(record, get_settings().edge_key).decode("utf-8")


def line_with(event_id: str) -> ScenarioLine:
    return next(line for line in read_scenario(SCENARIO) if line.value.get("event_id") == event_id)


# -- §3 through the stream = §3 by the reference code path ------------------------------------------


@pytest.mark.parametrize("person", sorted(PERSONS))
def test_every_settlement_equals_the_reference_ledger(settlement_replay: Replay, person: str) -> None:
    """Each category, enrolment, caps, new year, reversal, redelivery: the stream gives the reference numbers."""
    expected = [expected_record(o) for o in reference(person) if o.result is not None]
    found = [amounts(v) for v in settlement_replay.values(SETTLEMENTS, person_token=person)]
    assert found == expected


def test_poverty_alleviated_in_kunming_by_hand(settlement_replay: Replay) -> None:
    """§3 steps 1–5 under the Yunnan policy (530000), with its top-up, for a 脱贫人口 discharge."""
    # T = 5 000 000, O = 500 000, P = 4 500 000; L2, in county.
    # basic: D = mul(50 000, bp(1.0)) = 50 000; r = 7 500 + 500 (special, in county) = 8 000
    #        basic = mul(4 450 000, 8 000) = 3 560 000 (cap 15 000 000 not reached)
    # critical: R1 = 940 000; Dc = mul(1 500 000, 5 000) = 750 000; tier 1 at 6 000 + 1 000 bonus
    #        critical = tierpay(190 000) − tierpay(0) = mul(190 000, 7 000) = 133 000 (no cap: special_no_cap)
    # assistance: R2 = 807 000; poverty_alleviated: deductible 200 000, ratio 0.50
    #        assistance = mul(607 000, 5 000) = 303 500
    # top-up: B = T; covered = 3 996 500; mul(5 000 000, 9 000) = 4 500 000
    #        top_up = min(4 500 000 − 3 996 500, 5 000 000 − 3 996 500) = 503 500
    # patient = 5 000 000 − 3 560 000 − 133 000 − 303 500 − 503 500 = 500 000
    # actual_ratio_bp = (4 500 000 × 10 000 + 2 500 000) // 5 000 000 = 9 000
    record = settled(settlement_replay, tok("kunming-alleviated"), "KM-D-0001")
    assert amounts(record) == {
        "discharge_id": "KM-D-0001", "reverses": None, "year": 2024, "basic_fen": 3_560_000,
        "critical_fen": 133_000, "assistance_fen": 303_500, "top_up_fen": 503_500, "patient_fen": 500_000,
        "total_fen": 5_000_000, "actual_ratio_bp": 9_000, "policy_region": "530000"}
    assert record["policy_name"] == "Yunnan Province"
    assert record["event_id"] == settlement_event_id(tok("kunming-alleviated"), "KM-D-0001",
                                                     hospital=record["hospital_code"])
    assert record["discharge_date"] == "2024-03-05"
    assert record["hospital_code"] == "H-KM-DISTRICT"


def test_monitored_in_mengzi_by_hand(settlement_replay: Replay) -> None:
    """§3 under the Mengzi policy (532503, the longest prefix): a 监测对象 below the critical deductible."""
    # T = 2 000 000, O = 200 000, P = 1 800 000; L2, in county.
    # basic: D = 40 000 (factor 1); r = 7 500 + 500 = 8 000; basic = mul(1 760 000, 8 000) = 1 408 000
    # critical: R1 = 392 000 < Dc = mul(1 500 000, 5 000) = 750 000 → 0
    # assistance: R2 = 392 000; monitored: deductible 100 000, ratio 0.60 → mul(292 000, 6 000) = 175 200
    # top-up: Mengzi has no [top_up] → 0
    # patient = 2 000 000 − 1 408 000 − 175 200 = 416 800
    # actual_ratio_bp = (1 583 200 × 10 000 + 1 000 000) // 2 000 000 = 7 916
    record = settled(settlement_replay, tok("mengzi-monitored"), "MZ-D-0001")
    assert [record[k] for k in ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen",
                                "actual_ratio_bp", "policy_region")] == [
        1_408_000, 0, 175_200, 0, 416_800, 7_916, "532503"]


def test_minimum_living_in_mengzi_by_hand(settlement_replay: Replay) -> None:
    """§3 for a 农村低保 recipient whom Mengzi's basic and critical tilts do not cover."""
    # T = 800 000, O = 80 000, P = 720 000; L1, in county; minimum_living is not in Mengzi's special lists.
    # basic: D = 10 000; r = 9 000; basic = mul(710 000, 9 000) = 639 000
    # critical: R1 = 81 000 < 1 500 000 → 0
    # assistance: minimum_living: deductible 0, ratio 0.70 → mul(81 000, 7 000) = 56 700
    # patient = 800 000 − 639 000 − 56 700 = 104 300
    # actual_ratio_bp = (695 700 × 10 000 + 400 000) // 800 000 = 8 696
    record = settled(settlement_replay, tok("mengzi-minimum-living"), "MZ-D-0002")
    assert [record[k] for k in ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen",
                                "actual_ratio_bp")] == [639_000, 0, 56_700, 0, 104_300, 8_696]


def test_a_person_not_enrolled_gets_medical_assistance_only(settlement_replay: Replay) -> None:
    """§3: basic, critical and top-up need enrolment for the year; medical assistance does not."""
    # P = 1 800 000; assistance (poverty_alleviated): mul(1 800 000 − 200 000, 5 000) = 800 000
    record = settled(settlement_replay, tok("mengzi-not-enrolled"), "MZ-D-0003")
    assert [record[k] for k in ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen",
                                "actual_ratio_bp")] == [0, 0, 800_000, 0, 1_200_000, 4_000]


def test_out_of_county_unreferred_loses_ten_points_and_the_special_bonus(settlement_replay: Replay) -> None:
    """§3.1: r = 6 000 − 1 000 unreferred (no bonus: scope in_county_or_referred); 6 000 + 500 referred."""
    unreferred = settled(settlement_replay, tok("mengzi-out-of-county"), "KM-D-0003")
    referred = settled(settlement_replay, tok("mengzi-out-of-county"), "KM-D-0004")
    assert unreferred["basic_fen"] == 1_310_000  # mul(2 700 000 − 80 000, 5 000)
    assert referred["basic_fen"] == 1_703_000  # mul(2 700 000 − 80 000, 6 500)


def test_annual_caps_are_reached_across_several_discharges(settlement_replay: Replay) -> None:
    """§3: basic (15 M fen), critical (40 M, no special_no_cap for 低保 in Mengzi) and assistance (6 M) caps."""
    records = settlement_replay.values(SETTLEMENTS, person_token=tok("mengzi-caps"))
    assert [r["discharge_id"] for r in records] == [f"MZ-D-010{i}" for i in range(1, 7)]
    basic = [r["basic_fen"] for r in records]
    critical = [r["critical_fen"] for r in records]
    assistance = [r["assistance_fen"] for r in records]
    assert sum(basic) == 15_000_000 and sum(critical) == 40_000_000 and sum(assistance) == 6_000_000
    # basic: 8 952 000 = mul(14 920 000, 6 000), then min(8 952 000, 15 000 000 − 8 952 000) = 6 048 000
    assert basic == [8_952_000, 6_048_000, 0, 0, 0, 0]
    assert assistance[2] > 0 and assistance[3:] == [0, 0, 0]  # reached on the third discharge
    assert critical[4] > 0 and critical[5] == 0  # reached on the fifth
    last = records[-1]
    assert (last["patient_fen"], last["actual_ratio_bp"]) == (15_000_000, 0)


def test_a_discharge_after_midnight_shanghai_time_belongs_to_the_new_year(settlement_replay: Replay) -> None:
    """§3 decided point: 2024-12-31T17:00:00Z is 1 January 2025 01:00 in Shanghai: 2025's state, fresh."""
    first = settled(settlement_replay, tok("mengzi-new-year"), "MZ-D-0501")
    late_2024 = settled(settlement_replay, tok("mengzi-new-year"), "MZ-D-0502")
    early_2025 = settled(settlement_replay, tok("mengzi-new-year"), "MZ-D-0503")
    assert (late_2024["year"], late_2024["discharge_date"]) == (2024, "2024-12-31")
    assert (early_2025["year"], early_2025["discharge_date"]) == (2025, "2025-01-01")
    fields = ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen")
    # The same bill: on 31 December it meets 2024's cumulative critical base, on 1 January it starts afresh.
    assert [early_2025[k] for k in fields] == [first[k] for k in fields]
    assert [late_2024[k] for k in fields] != [first[k] for k in fields]


def test_a_reversal_negates_the_settlement_and_its_year_to_date(settlement_replay: Replay) -> None:
    """§3 冲正: every *_fen negated, ratio kept, ``reverses`` set; later settlements see the reduced state."""
    original = settled(settlement_replay, tok("kunming-reversal"), "KM-D-0201")
    reversal = settlement_replay.one(SETTLEMENTS, person_token=tok("kunming-reversal"), reverses="KM-D-0201")
    assert reversal["event_id"] == settlement_event_id(tok("kunming-reversal"), "KM-D-0201",
                                                       hospital=reversal["hospital_code"], reversal=True)
    assert reversal["discharge_id"] == "KM-D-0201"
    for k in ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen", "total_fen"):
        assert reversal[k] == -original[k], k
    assert reversal["actual_ratio_bp"] == original["actual_ratio_bp"]
    after = settled(settlement_replay, tok("kunming-reversal"), "KM-D-0203")
    assert amounts(after) == expected_record(reference(tok("kunming-reversal"))[3])


def test_reversing_twice_or_an_unknown_id_goes_to_the_dead_letters(settlement_replay: Replay) -> None:
    """§3: reversing twice, or an unknown id, changes nothing and is reported with its reason and bytes."""
    for event_id, reason in (("rv-kunming-reversal-1-again", "already_reversed"),
                             ("rv-kunming-reversal-unknown", "unknown_discharge")):
        line = line_with(event_id)
        dead = settlement_replay.one(DEAD_LETTERS, reason=reason)
        assert (dead["source"], dead["topic"]) == ("person-processor", "health.discharges.v1")
        assert original_bytes(dead) == encode_input(line.topic, line.value)[1]
    assert len(settlement_replay.values(SETTLEMENTS, person_token=tok("kunming-reversal"), reverses="KM-D-0201")) == 1


def test_a_redelivered_discharge_settles_once(settlement_replay: Replay) -> None:
    """§3 idempotence: the same discharge twice → the same record twice, and the ledger counts it once."""
    first, again = [v for v in settlement_replay.values(SETTLEMENTS, person_token=tok("mengzi-redelivery"))
                    if v["discharge_id"] == "MZ-D-0301"][:2]
    assert first == again
    assert first["event_id"] == settlement_event_id(tok("mengzi-redelivery"), "MZ-D-0301",
                                                    hospital=first["hospital_code"])
    later = settled(settlement_replay, tok("mengzi-redelivery"), "MZ-D-0302")
    assert amounts(later) == expected_record(reference(tok("mengzi-redelivery"))[-1])
    # Had the second delivery been settled too, the later discharge would have met a doubled critical base:
    doubled = SettlementLedger()
    facts = PERSONS[tok("mengzi-redelivery")]
    policy = select_policy(POLICIES, facts.insured_region, parse_event_time("2024-06-10").date())
    for discharge_id in ("MZ-D-0301", "MZ-D-0301-as-if-new"):
        doubled.settle(policy, facts, Discharge(discharge_id, parse_event_time("2024-06-01T09:00:00+08:00"),
                                                "L2", True, False, 2_000_000, 200_000))
    as_if_doubled = doubled.settle(policy, facts, ledger_item(line_with("ds-mengzi-redelivery-2").value))
    assert as_if_doubled.result is not None
    assert later["critical_fen"] != as_if_doubled.result.critical_fen


def test_a_re_sent_event_changes_nothing(settlement_replay: Replay) -> None:
    """§8.2: the hospital's connector sends ``ds-mengzi-redelivery-1`` again after a crash (same event id):
    no output at all — unlike a resubmission under a new event id, which §3 answers with the original."""
    records = [v for v in settlement_replay.values(SETTLEMENTS, person_token=tok("mengzi-redelivery"))
               if v["discharge_id"] == "MZ-D-0301"]
    lines = [ln for ln in read_scenario("replay_settlement") if '"ds-mengzi-redelivery-1"' in ln.raw]
    assert len(lines) == 2, "the scenario sends the event twice"
    assert len(records) == 3  # the first delivery, the resubmission and the changed payload: not the re-send


def test_a_redelivery_with_another_payload_keeps_the_original_and_is_reported(settlement_replay: Replay) -> None:
    """§3: a redelivery whose payload differs returns the original settlement; ``conflicting_redelivery``."""
    records = [v for v in settlement_replay.values(SETTLEMENTS, person_token=tok("mengzi-redelivery"))
               if v["discharge_id"] == "MZ-D-0301"]
    assert len(records) == 3
    assert {json.dumps(amounts(r), sort_keys=True) for r in records} == {json.dumps(amounts(records[0]),
                                                                                     sort_keys=True)}
    assert records[2]["total_fen"] == 2_000_000  # not the 2 500 000 of the changed payload
    dead = settlement_replay.one(DEAD_LETTERS, reason="conflicting_redelivery")
    line = line_with("ds-mengzi-redelivery-1-changed")
    assert original_bytes(dead) == encode_input(line.topic, line.value)[1]
    assert "MZ-D-0301" in dead["detail"]


def test_a_redelivery_with_another_payload_re_emits_the_identical_record(settlement_replay: Replay) -> None:
    """Consumers drop records by event_id: a record re-emitted under the same id must be the same record."""
    records = [v for v in settlement_replay.values(SETTLEMENTS, person_token=tok("mengzi-redelivery"))
               if v["discharge_id"] == "MZ-D-0301"]
    assert records[2] == records[0]


# -- §2 policy selection, dead letters ------------------------------------------------------------------


def test_no_policy_goes_to_the_dead_letters_and_leaves_the_id_free(settlement_replay: Replay) -> None:
    """§2: no policy for the insured region (Beijing) or the date (2027) → dead letter ``no_policy``.

    (The third ``no_policy`` of the scenario, a person with no insured region, is the next test's.)"""
    no_policy = [d for d in settlement_replay.values(DEAD_LETTERS, reason="no_policy")
                 if "MZ-D-0701" not in d["detail"]]
    assert len(no_policy) == 2, [d["detail"] for d in no_policy]
    for event_id, discharge_id in (("ds-beijing-no-policy-1", "BJ-D-0001"), ("ds-mengzi-monitored-2027",
                                                                              "MZ-D-0601")):
        line = line_with(event_id)
        dead = next(d for d in no_policy if discharge_id in d["detail"])
        assert (dead["source"], dead["topic"]) == ("person-processor", "health.discharges.v1")
        # the offset travels in the record's headers: a re-sent copy sits at another offset, and a dead letter
        # must carry one value whatever the delivery (policy-spec §8.5)
        assert dead["partition"] is not None and dead["offset"] is None
        assert original_bytes(dead) == encode_input(line.topic, line.value)[1]
    # The rejected discharge did not use up its id: once the insured region is corrected it settles (Mengzi).
    again = settled(settlement_replay, tok("beijing-no-policy"), "BJ-D-0001")
    facts = PersonFacts(frozenset({"monitored"}), frozenset({2024}), "532503")
    assert amounts(again) == expected_record(reference(tok("beijing-no-policy"), facts)[-1])
    assert not settlement_replay.values(SETTLEMENTS, discharge_id="MZ-D-0601")


def test_a_person_with_no_insured_region_has_no_policy(settlement_replay: Replay) -> None:
    """§2: the policy is chosen by the insured region; a person with none on record matches no policy."""
    assert not settlement_replay.values(SETTLEMENTS, person_token=tok("mengzi-no-enrolment"))
    assert any("MZ-D-0701" in d["detail"] for d in settlement_replay.values(DEAD_LETTERS, reason="no_policy"))


def test_malformed_lines_become_dead_letters_with_reason_and_original(settlement_replay: Replay) -> None:
    """Each line hub replay cannot put on its topic → one dead letter: invalid_input, line number, the line."""
    rejected = [line for line in read_scenario(SCENARIO) if not line.accepted]
    assert [line.value["event_id"] for line in rejected] == [f"ds-mengzi-malformed-{i}" for i in (1, 2, 3, 4)] + [
        "st-mengzi-malformed-5", "ds-mengzi-malformed-6", "ds-mengzi-malformed-7"]
    dead = settlement_replay.values(DEAD_LETTERS, source="hub replay")
    assert len(dead) == len(rejected)
    problems = ("out_of_policy_fen", "level", "total_fen", "occurred_at", "not owned by civil_affairs",
                "unknown topic", "raw resident ID number")
    for line, problem in zip(rejected, problems, strict=True):
        letter = next(d for d in dead if d["detail"].startswith(f"line {line.number}:"))
        assert letter["reason"] == "invalid_input"
        assert letter["topic"] == line.topic
        assert problem in letter["detail"]
        assert json.loads(original_json(letter)) == json.loads(line.raw)
    # A rejected line never reached the ledger: its discharge id settles later with the corrected payload.
    fixed = settled(settlement_replay, tok("mengzi-monitored"), "MZ-D-0401")
    assert fixed["total_fen"] == 200_000


def test_a_rejected_line_holding_a_raw_id_number_is_not_kept_in_clear(settlement_replay: Replay) -> None:
    """§1: raw ID numbers never travel on hub topics in clear; the edge encrypts a dead letter's original."""
    letter = next(d for d in settlement_replay.values(DEAD_LETTERS, source="hub replay")
                  if "raw resident ID number" in d["detail"])
    assert "530102199001010010" not in letter["detail"]
    assert letter["original_encrypted"] and letter["key_id"] == key_id(edge_key_bytes(get_settings().edge_key))
    assert b"530102199001010010" not in original_bytes(letter)
    assert json.loads(original_json(letter)) == json.loads(line_with("ds-mengzi-malformed-7").raw)


def test_lines_that_are_not_topic_value_objects_become_dead_letters(not_json_replay: Replay) -> None:
    """A malformed line (not JSON, an array, no topic) is a dead letter like any other; the rest still runs."""
    assert not_json_replay.returncode == 0, not_json_replay.log[-2000:]
    dead = not_json_replay.values(DEAD_LETTERS, source="hub replay")
    assert sorted(d["detail"].split(":", 1)[0] for d in dead) == ["line 2", "line 3", "line 4"]
    assert all(d["reason"] == "invalid_input" for d in dead)
    assert {len(not_json_replay.values("hub.risk-flags.v1", subject=f)) for f in ("VC-BEISHAN-01",
                                                                                  "VC-BEISHAN-05")} == {2}


# -- §4 deposit waiver ----------------------------------------------------------------------------------


def test_every_admission_gets_one_deposit_decision_with_the_first_obstacle(settlement_replay: Replay) -> None:
    """§4 reasons in order; a payment default blocks the waiver until it is cleared; redelivery is ignored."""
    decisions = {v["admission_id"]: v for v in settlement_replay.values(DEPOSITS)}
    assert len(settlement_replay.values(DEPOSITS)) == len(decisions)  # MZ-A-0006 arrived twice, decided once
    assert {a: (v["waived"], v["reason"]) for a, v in decisions.items()} == {
        "MZ-A-0001": (True, "waived"),  # monitored, enrolled, in county
        "MZ-A-0002": (False, "category_not_eligible"),  # 低保 is not in Mengzi's deposit_waiver categories
        "MZ-A-0003": (False, "not_enrolled"),
        "KM-A-0004": (False, "hospital_not_designated"),  # out of county, designated list empty
        "MZ-A-0005": (False, "blacklisted"),  # owes another hospital (H-MZ-TOWNSHIP)
        "MZ-A-0006": (True, "waived"),  # the default was cleared
    }
    blacklisted = decisions["MZ-A-0005"]
    assert blacklisted["event_id"] == f"deposit_decision:{tok('mengzi-blacklist')}:MZ-A-0005"
    assert (blacklisted["hospital_code"], blacklisted["occurred_at"]) == ("H-MZ-PEOPLES", "2024-02-02T10:00:00+08:00")
