"""Issue 16 item 2, the pure parts: a discharge id is scoped to its hospital, a reversal only by the hospital
that settled, a referral update only by the department the referral is addressed to.

Each test replays the attack the review reproduced against the ledger or the routing rule, and checks
that ``hub settle``/``hub monitor`` semantics (no hospital, no sender) are unchanged.
"""

from __future__ import annotations

from hub.policy.monitor.referrals import sender_refusal
from hub.policy.settlement import Reversal, SettlementLedger, settlement_event_id
from tests.unit.test_settlement import discharge, person, policy

H001, H017 = "530102H001", "530102H017"


def test_another_hospital_cannot_take_a_discharge_id_first() -> None:
    """H017 posts H001's id with a total of 1 fen; H001's real discharge still settles, not as a conflict."""
    ledger, p, who = SettlementLedger(), policy(), person("poverty_alleviated")
    squat = ledger.settle(p, who, discharge("ZY-0001", total=1, oop=0), hospital=H017)
    real = ledger.settle(p, who, discharge("ZY-0001"), hospital=H001)
    assert (squat.kind, real.kind) == ("new", "new")
    assert real.result is not None and real.result.total_fen == 1_234_500
    assert ledger.result("ZY-0001", hospital=H001) == real.result
    assert ledger.result("ZY-0001", hospital=H017) == squat.result
    again = ledger.settle(p, who, discharge("ZY-0001"), hospital=H001)  # §3 idempotence, within the hospital
    assert (again.kind, again.result) == ("redelivery", real.result)


def test_a_reversal_only_by_the_hospital_that_settled() -> None:
    ledger, p, who = SettlementLedger(), policy(), person("poverty_alleviated")
    ledger.settle(p, who, discharge("ZY-0001"), hospital=H001)
    before = ledger.to_dict()
    refused = ledger.reverse(Reversal("ZY-0001"), hospital=H017)
    assert refused.kind == "unknown_discharge" and ledger.to_dict() == before  # same answer as a never-seen id
    own = ledger.reverse(Reversal("ZY-0001"), hospital=H001)
    assert own.kind == "new" and own.result is not None and own.result.reverses == "ZY-0001"
    assert ledger.ytd(2024).patient_paid == 0
    assert ledger.apply(p, who, Reversal("ZY-0001"), hospital=H001).kind == "already_reversed"


def test_unscoped_ids_behave_as_policy_spec_3_says() -> None:
    """``hub settle`` passes no hospital: one id space per person, first discharge wins, snapshot unchanged."""
    ledger, p, who = SettlementLedger(), policy(), person("poverty_alleviated")
    ledger.settle(p, who, discharge("d1", total=1, oop=0))
    assert ledger.settle(p, who, discharge("d1")).kind == "conflicting_redelivery"
    assert ledger.reverse(Reversal("d1")).kind == "new"
    snapshot = ledger.to_dict()
    assert snapshot["version"] == 1 and set(snapshot) == {"version", "ytd", "settled", "reversed"}
    assert ledger.reverse(Reversal("d1"), hospital=H001).kind == "unknown_discharge"  # namespaces do not mix


def test_scoped_ledgers_survive_their_snapshot() -> None:
    ledger, p, who = SettlementLedger(), policy(), person("monitored")
    ledger.settle(p, who, discharge("d1"))
    ledger.settle(p, who, discharge("d1", total=50_000, oop=0), hospital=H001)
    ledger.settle(p, who, discharge("d1", total=70_000, oop=0), hospital=H017)
    ledger.reverse(Reversal("d1"), hospital=H017)
    restored = SettlementLedger.from_dict(ledger.to_dict())
    assert restored == ledger
    assert restored.is_reversed("d1", hospital=H017) and not restored.is_reversed("d1", hospital=H001)
    assert not restored.is_reversed("d1")


def test_settlement_event_ids_differ_per_hospital_and_keep_the_unscoped_form() -> None:
    assert settlement_event_id("p_1", "d1") == "settlement:p_1:d1"
    assert settlement_event_id("p_1", "d1", reversal=True) == "settlement:p_1:d1:reversal"
    a, b = settlement_event_id("p_1", "d1", hospital=H001), settlement_event_id("p_1", "d1", hospital=H017)
    assert a != b and a.startswith("settlement:p_1:")
    # a ':' or '/' in a hospital code cannot make two entries collide
    assert settlement_event_id("p", "b/c", hospital="a") != settlement_event_id("p", "c", hospital="a/b")


def test_a_referral_update_only_from_the_department_it_is_addressed_to() -> None:
    rid = "high_medical_burden:p_0123:2024#1/civil_affairs/medical_assistance"
    reason, detail = sender_refusal(rid, "civil_affairs", "charity") or ("", "")
    assert reason == "wrong_department" and "civil_affairs" in detail and "charity" in detail
    assert sender_refusal(rid, "civil_affairs", "civil_affairs") is None
    assert sender_refusal(rid, "civil_affairs", None) is None  # hub monitor (§7): no sender, no check
