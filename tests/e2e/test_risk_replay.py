"""Risk flags, referrals and reconciliation through the whole pipeline (policy-spec §5–§6): one ``hub replay``.

The worker judges under Mengzi's monitoring policy (HUB_REGION 532503: watched and burden categories
脱贫人口 and 监测对象, threshold 10 000 yuan, signing grace 30 days, follow-up 90 days, and its own
routing table: five referrals for a burden flag, a 7-day SLA for family-doctor signing).

``tests/scenarios/replay_risk.jsonl``, in event time (2024):

* 10 January — rosters and enrolment. ``mengzi-uninsured`` and ``mengzi-late-answer`` are watched and
  not enrolled (应保尽保: ``uninsured``, referred to insurance and civil affairs, due 25 January);
  ``mengzi-subsidy`` is enrolled with a 低保 premium subsidy that civil affairs does not know about;
  village clinic VC-XINAN-01 has no licensed doctor (空白点).
* 15–18 January — insurance rejects (with a reason), civil affairs completes: ``uninsured`` is
  resolved. Then an update that moves a completed referral backwards, and one for a referral that
  does not exist.
* 20–22 January — the clinic gets a doctor (flag cleared, referral withdrawn) and loses it again (#2).
* 26 January — another person's status moves the clock past 25 January 09:00: the late answerer's
  two referrals escalate at their due time; insurance acknowledges late, enrolment clears the flag.
* February — hypertension (I10) for ``mengzi-chronic`` without a family-doctor contract; lung cancer
  (``c34.1``) for ``mengzi-major``, treated through its referral (acknowledged → accepted →
  completed → resolved); the clinic's referral completed; two mismatches (四清) opened and reconciled.
* March — a 50 000-yuan bill leaves ``mengzi-burden`` 10 068.50 yuan out of pocket (flag raised), its
  reversal clears it, a second bill raises #2, which the five departments answer (four completed,
  one rejected: resolved). 30 days after the I10 code, ``chronic_unsigned``; the contract clears it.
* June — 90 days after signing with no follow-up, ``followup_overdue``; a follow-up visit clears it.
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict

import pytest

from hub.runtime import encode_input
from hub.topics import DEAD_LETTERS
from tests.e2e.conftest import Replay, ScenarioLine, read_scenario
from tests.e2e.persons import tok

pytestmark = pytest.mark.e2e

FLAGS = "hub.risk-flags.v1"
REFERRALS = "hub.referrals.v1"
MISMATCHES = "hub.mismatches.v1"

U = f"uninsured:{tok('mengzi-uninsured')}:2024#1"
LATE = f"uninsured:{tok('mengzi-late-answer')}:2024#1"
MAJOR = f"major_disease:{tok('mengzi-major')}:C34:2024#1"
BURDEN = f"high_medical_burden:{tok('mengzi-burden')}:2024"
CHRONIC = f"chronic_unsigned:{tok('mengzi-chronic')}#1"
FOLLOWUP = f"followup_overdue:{tok('mengzi-chronic')}#1"
GAP = "facility_gap:VC-XINAN-01"
BURDEN_ROUTES = ("civil_affairs/medical_assistance", "civil_affairs/temporary_assistance",
                 "revitalization/monitoring_enrollment", "insurance/reimbursement_review",
                 "charity/charity_assistance")
"""Mengzi's routing table for high_medical_burden, in table order."""


def timeline(replay: Replay, topic: str, key: str) -> list[str]:
    """``"YYYY-MM-DDTHH:MM event_id"`` of every record of ``key`` on ``topic``, in time order.

    Outputs of one instant may come in any order (§7), so records of one minute are compared sorted.
    """
    return sorted(f"{row['value']['occurred_at'][:16]} {row['value']['event_id']}"
                  for row in replay.by_topic.get(topic, []) if row["key"] == key)


def at(when: str, *event_ids: str) -> list[str]:
    """Expected timeline entries: several records at one instant."""
    return [f"2024-{when} {event_id}" for event_id in event_ids]


def line_with(event_id: str) -> ScenarioLine:
    return next(line for line in read_scenario("replay_risk") if line.value.get("event_id") == event_id)


# -- §5.3 flags and §6.1 referrals -----------------------------------------------------------------


def test_uninsured_is_referred_and_resolved_by_the_departments_answers(risk_replay: Replay) -> None:
    """§6.1: insurance rejects with a reason, civil affairs completes → the last final answer resolves the flag."""
    ins, civ = f"{U}/insurance/enrollment", f"{U}/civil_affairs/premium_subsidy"
    assert timeline(risk_replay, FLAGS, tok("mengzi-uninsured")) == sorted(
        at("01-10T09:00", f"{U}:raised", f"{U}:referred") + at("01-17T10:00", f"{U}:resolved"))
    assert timeline(risk_replay, REFERRALS, tok("mengzi-uninsured")) == sorted(
        at("01-10T09:00", f"{ins}:open", f"{civ}:open") + at("01-15T10:00", f"{ins}:acknowledged")
        + at("01-16T10:00", f"{ins}:rejected") + at("01-16T11:00", f"{civ}:acknowledged")
        + at("01-16T12:00", f"{civ}:accepted") + at("01-17T10:00", f"{civ}:completed"))
    opened = risk_replay.one(REFERRALS, referral_id=ins, state="open")
    assert (opened["department"], opened["referral_type"], opened["due"]) == (
        "insurance", "enrollment", "2024-01-25T09:00:00+08:00")  # 15-day SLA
    assert (opened["kind"], opened["flag_id"], opened["subject_kind"]) == ("referral", U, "person")


def test_a_resolved_flag_is_not_raised_again_while_its_condition_still_holds(risk_replay: Replay) -> None:
    """§5.2: the 1 February status finds the person still not enrolled, but the key is not re-armed."""
    assert not [v for v in risk_replay.values(FLAGS, subject=tok("mengzi-uninsured")) if "#2" in v["flag_id"]]


def test_refused_referral_updates_go_to_the_dead_letters(risk_replay: Replay) -> None:
    """§6.1: backwards from completed → ``invalid_transition``; an unknown id → ``unknown_referral``."""
    for event_id, reason, words in (("rf-u-civ-back", "invalid_transition", "is completed; accepted is not allowed"),
                                    ("rf-nobody", "unknown_referral", f"uninsured:{tok('mengzi-nobody')}:2024#1")):
        line = line_with(event_id)
        dead = risk_replay.one(DEAD_LETTERS, reason=reason)
        assert (dead["source"], dead["topic"]) == ("person-processor", "department.referral-updates.v1")
        assert words in dead["detail"]
        assert base64.b64decode(dead["original"]) == encode_input(line.topic, line.value)[1]
    assert len(risk_replay.values(DEAD_LETTERS)) == 2  # nothing else in this scenario is refused


def test_a_referral_not_final_at_its_due_time_escalates_once_stamped_with_due(risk_replay: Replay) -> None:
    """§6.1 escalation: fired when another person's status moves the clock past due; the referral goes on."""
    ins, civ = f"{LATE}/insurance/enrollment", f"{LATE}/civil_affairs/premium_subsidy"
    escalations = risk_replay.values(REFERRALS, kind="escalation")
    assert sorted(v["event_id"] for v in escalations) == [f"{civ}:escalation", f"{ins}:escalation"]
    for v in escalations:
        assert v["occurred_at"] == v["due"] == "2024-01-25T09:00:00+08:00"
        assert (v["flag_id"], v["state"]) == (LATE, "open")
    assert timeline(risk_replay, REFERRALS, tok("mengzi-late-answer")) == sorted(
        at("01-10T09:00", f"{ins}:open", f"{civ}:open") + at("01-25T09:00", f"{ins}:escalation", f"{civ}:escalation")
        + at("01-27T10:00", f"{ins}:acknowledged") + at("01-28T09:00", f"{ins}:withdrawn", f"{civ}:withdrawn"))
    assert timeline(risk_replay, FLAGS, tok("mengzi-late-answer")) == sorted(
        at("01-10T09:00", f"{LATE}:raised", f"{LATE}:referred") + at("01-28T09:00", f"{LATE}:cleared"))


def test_high_medical_burden_is_cleared_by_a_reversal_and_resolved_the_second_time(risk_replay: Replay) -> None:
    """§5.3 因病致贫: ytd patient share ≥ threshold; a reversal clears it (referrals withdrawn); #2 resolved."""
    first, second = f"{BURDEN}#1", f"{BURDEN}#2"
    assert timeline(risk_replay, FLAGS, tok("mengzi-burden")) == sorted(
        at("03-01T09:00", f"{first}:raised", f"{first}:referred") + at("03-05T09:00", f"{first}:cleared")
        + at("03-10T09:00", f"{second}:raised", f"{second}:referred") + at("03-15T09:00", f"{second}:resolved"))
    answers = ("completed", "rejected", "completed", "completed", "completed")
    assert timeline(risk_replay, REFERRALS, tok("mengzi-burden")) == sorted(
        at("03-01T09:00", *(f"{first}/{r}:open" for r in BURDEN_ROUTES))
        + at("03-05T09:00", *(f"{first}/{r}:withdrawn" for r in BURDEN_ROUTES))
        + at("03-10T09:00", *(f"{second}/{r}:open" for r in BURDEN_ROUTES))
        + [entry for day, r, s in zip((11, 12, 13, 14, 15), BURDEN_ROUTES, answers, strict=True)
           for entry in at(f"03-{day}T09:00", f"{second}/{r}:{s}")])
    dues = {v["referral_id"].rsplit("/", 2)[-2]: v["due"] for v in risk_replay.values(REFERRALS, flag_id=second,
                                                                                         state="open")}
    assert dues == {"civil_affairs": "2024-03-17T09:00:00+08:00", "revitalization": "2024-03-25T09:00:00+08:00",
                    "insurance": "2024-03-25T09:00:00+08:00", "charity": "2024-03-25T09:00:00+08:00"}
    evidence = json.loads(risk_replay.one(FLAGS, event_id=f"{first}:raised")["evidence"])
    assert (evidence["ytd_patient_fen"], evidence["oop_threshold_fen"]) == (1_006_850, 1_000_000)
    settlements = risk_replay.values("hub.settlements.v1", person_token=tok("mengzi-burden"))
    assert [s["patient_fen"] for s in settlements] == [1_006_850, -1_006_850, 1_006_850]


def test_major_disease_is_treated_through_its_referral_and_resolved(risk_replay: Replay) -> None:
    """§5.3 大病专项救治: ``c34.1`` normalises to C341 and matches entry C34; acknowledged → … → resolved."""
    rid = f"{MAJOR}/health/special_treatment"
    assert timeline(risk_replay, FLAGS, tok("mengzi-major")) == sorted(
        at("02-05T09:00", f"{MAJOR}:raised", f"{MAJOR}:referred") + at("02-10T09:00", f"{MAJOR}:resolved"))
    assert timeline(risk_replay, REFERRALS, tok("mengzi-major")) == sorted(
        at("02-05T09:00", f"{rid}:open") + at("02-06T09:00", f"{rid}:acknowledged")
        + at("02-08T09:00", f"{rid}:accepted") + at("02-10T09:00", f"{rid}:completed"))
    evidence = json.loads(risk_replay.one(FLAGS, event_id=f"{MAJOR}:raised")["evidence"])
    assert (evidence["entry"], evidence["code"], evidence["year"]) == ("C34", "C341", 2024)


def test_chronic_unsigned_is_raised_when_the_grace_ends_and_cleared_by_signing(risk_replay: Replay) -> None:
    """§5.3: I10 recorded 1 February 09:00 + 30 days = 2 March 09:00; the 6 March contract clears it."""
    rid = f"{CHRONIC}/health/family_doctor_signing"
    chronic = [e for e in timeline(risk_replay, FLAGS, tok("mengzi-chronic")) if "chronic_unsigned" in e]
    assert chronic == sorted(at("03-02T09:00", f"{CHRONIC}:raised", f"{CHRONIC}:referred")
                             + at("03-06T09:00", f"{CHRONIC}:cleared"))
    referral = risk_replay.one(REFERRALS, referral_id=rid, state="open")
    assert referral["due"] == "2024-03-09T09:00:00+08:00"  # Mengzi's 7-day SLA
    assert risk_replay.one(REFERRALS, referral_id=rid, state="withdrawn")["occurred_at"] == "2024-03-06T09:00:00+08:00"


def test_followup_overdue_is_raised_90_days_after_signing_and_cleared_by_a_visit(risk_replay: Replay) -> None:
    """§5.3: s = contract activation (6 March 09:00); overdue at s + 90 days = 4 June 09:00; a follow-up clears."""
    rid = f"{FOLLOWUP}/health/follow_up_visit"
    followup = [e for e in timeline(risk_replay, FLAGS, tok("mengzi-chronic")) if "followup_overdue" in e]
    assert followup == sorted(at("06-04T09:00", f"{FOLLOWUP}:raised", f"{FOLLOWUP}:referred")
                              + at("06-10T09:00", f"{FOLLOWUP}:cleared"))
    assert [e for e in timeline(risk_replay, REFERRALS, tok("mengzi-chronic")) if "follow_up_visit" in e] == sorted(
        at("06-04T09:00", f"{rid}:open") + at("06-10T09:00", f"{rid}:withdrawn"))
    evidence = json.loads(risk_replay.one(FLAGS, event_id=f"{FOLLOWUP}:raised")["evidence"])
    assert evidence["due"] == "2024-06-04T09:00:00+08:00"


def test_facility_gap_is_cleared_raised_again_and_resolved(risk_replay: Replay) -> None:
    """§5.3 空白点: a facility is its own subject (keyed by its code); #2 after #1 was cleared."""
    assert timeline(risk_replay, FLAGS, "VC-XINAN-01") == sorted(
        at("01-10T09:00", f"{GAP}#1:raised", f"{GAP}#1:referred") + at("01-20T09:00", f"{GAP}#1:cleared")
        + at("01-22T09:00", f"{GAP}#2:raised", f"{GAP}#2:referred") + at("02-15T09:00", f"{GAP}#2:resolved"))
    assert timeline(risk_replay, REFERRALS, "VC-XINAN-01") == sorted(
        at("01-10T09:00", f"{GAP}#1/health/staffing:open") + at("01-20T09:00", f"{GAP}#1/health/staffing:withdrawn")
        + at("01-22T09:00", f"{GAP}#2/health/staffing:open")
        + at("02-12T09:00", f"{GAP}#2/health/staffing:acknowledged")
        + at("02-15T09:00", f"{GAP}#2/health/staffing:completed"))
    assert {v["subject_kind"] for v in risk_replay.values(FLAGS, subject="VC-XINAN-01")} == {"facility"}


def test_every_flag_type_is_raised_and_nothing_else(risk_replay: Replay) -> None:
    """All six §5.3 flag types appear; no flag instance beyond those the scenario describes."""
    raised = sorted(v["flag_id"] for v in risk_replay.values(FLAGS, state="raised"))
    assert raised == sorted([U, LATE, MAJOR, f"{BURDEN}#1", f"{BURDEN}#2", CHRONIC, FOLLOWUP, f"{GAP}#1", f"{GAP}#2"])
    assert {v["flag"] for v in risk_replay.values(FLAGS)} == {
        "high_medical_burden", "major_disease", "chronic_unsigned", "followup_overdue", "uninsured", "facility_gap"}
    assert {v["policy_region"] for v in risk_replay.values(FLAGS)} == {"532503"}
    for v in risk_replay.values(FLAGS):
        assert v["event_id"] == f"{v['flag_id']}:{v['state']}"
        assert isinstance(json.loads(v["evidence"]), dict)


# -- §6.2 reconciliation ------------------------------------------------------------------------------


def test_both_mismatch_kinds_open_and_clear_when_the_departments_agree(risk_replay: Replay) -> None:
    """§6.2 四清: subsidised without the category; a category declared at admission that nobody granted."""
    subsidy = f"subsidy_without_category:{tok('mengzi-subsidy')}:2024#1"
    declared = f"declared_category_unknown:{tok('mengzi-declared')}:extreme_poverty#1"
    assert timeline(risk_replay, MISMATCHES, tok("mengzi-subsidy")) == sorted(
        at("01-10T09:00", f"{subsidy}:open") + at("02-25T09:00", f"{subsidy}:cleared"))
    assert timeline(risk_replay, MISMATCHES, tok("mengzi-declared")) == sorted(
        at("02-20T09:00", f"{declared}:open") + at("02-25T09:00", f"{declared}:cleared"))
    for mismatch_id, kind, departments in ((subsidy, "subsidy_without_category", ["insurance", "civil_affairs"]),
                                           (declared, "declared_category_unknown", ["health", "civil_affairs"])):
        for v in risk_replay.values(MISMATCHES, mismatch_id=mismatch_id):
            assert (v["kind"], v["departments"]) == (kind, departments)


# -- determinism ----------------------------------------------------------------------------------------


def per_key_sequences(replay: Replay) -> dict[tuple[str, str | None], list[str]]:
    """Each (topic, key)'s values in production order: the order a consumer of one key relies on."""
    sequences: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for topic, key, value in replay.comparable():
        sequences[(topic, key)].append(value)
    return dict(sequences)


def test_replaying_the_same_file_twice_gives_the_same_outputs(risk_replay: Replay, risk_replay_again: Replay) -> None:
    """Same input → the same records (topic, key, value; a dead letter's wall-clock failed_at aside).

    Offsets and partitions may differ between runs; what must not is the multiset of records, every
    event_id (consumers de-duplicate by it) and the order of the records of one key.
    """
    assert Counter(risk_replay.comparable()) == Counter(risk_replay_again.comparable())
    assert per_key_sequences(risk_replay) == per_key_sequences(risk_replay_again)
