"""Properties of §3 over generated policies, persons and discharge sequences (hypothesis).

No amount is negative, the five parts sum to T, caps hold, a reversal restores the year-to-date
state, a redelivery changes nothing, and the ledger survives its JSON round trip.
"""

from __future__ import annotations

import json
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.policy.model import (
    CATEGORIES,
    AssistanceCategory,
    AssistanceRules,
    BasicRules,
    CriticalRules,
    Policy,
    Tier,
    TopUpRules,
)
from hub.policy.settlement import (
    Discharge,
    PersonFacts,
    Reversal,
    SettlementLedger,
    Ytd,
    parse_discharge_line,
    settle_discharge,
)

bp = st.integers(0, 10000)
fen = st.integers(0, 5_000_000)
cats = st.frozensets(st.sampled_from(CATEGORIES))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    levels = ("L1", "L2", "L3")
    basic = None if draw(st.booleans()) and draw(st.booleans()) else BasicRules(
        deductible={lv: draw(fen) for lv in levels},
        ratio_bp={lv: draw(bp) for lv in levels},
        annual_cap=draw(st.integers(0, 20_000_000)),
        out_of_county_unreferred_delta_bp=draw(st.integers(-10000, 10000)),
        special_categories=draw(cats),
        special_ratio_bonus_bp=draw(bp),
        special_bonus_scope=draw(st.sampled_from(("all", "in_county_or_referred"))),
        special_deductible_factor_bp=draw(bp),
    )
    bounds = sorted(draw(st.sets(st.integers(1, 20_000_000), max_size=3)))
    tiers = tuple(Tier(b, draw(bp)) for b in bounds) + (Tier(None, draw(bp)),)
    critical = CriticalRules(
        deductible=draw(fen), tiers=tiers, annual_cap=draw(st.integers(0, 40_000_000)),
        special_categories=draw(cats), special_deductible_factor_bp=draw(bp),
        special_ratio_bonus_bp=draw(bp), special_no_cap=draw(st.booleans()),
    )
    assistance = AssistanceRules(
        annual_cap=draw(st.integers(0, 10_000_000)),
        categories={c: AssistanceCategory(draw(bp), draw(fen)) for c in draw(cats)},
    )
    top_up = TopUpRules(draw(bp), draw(cats), draw(st.sampled_from(("total", "in_policy"))))
    return Policy("530000", "generated", date(2000, 1, 1), basic=basic,
                  critical=critical, assistance=assistance, top_up=top_up)


@st.composite
def discharges(draw: st.DrawFn, did: str) -> Discharge:
    total = draw(st.integers(0, 30_000_000))
    line = {
        "discharge_id": did,
        "discharged_at": draw(st.sampled_from(("2024-03-05", "2024-12-31T17:00:00Z", "2025-06-01T08:00"))),
        "level": draw(st.sampled_from(("L1", "L2", "L3"))),
        "in_county": draw(st.booleans()),
        "referred": draw(st.booleans()),
        "total_fen": total,
        "out_of_policy_fen": draw(st.integers(0, total)),
    }
    d = parse_discharge_line(line)
    assert isinstance(d, Discharge)
    return d


persons = st.builds(lambda c, y: PersonFacts(c, y), cats,
                    st.frozensets(st.sampled_from((2024, 2025))))


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Policy, PersonFacts, list[Discharge]]:
    n = draw(st.integers(1, 6))
    return draw(policies()), draw(persons), [draw(discharges(f"d{i}")) for i in range(n)]


FEN = ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen")


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_amounts_non_negative_sum_to_total_and_caps_hold(case: tuple[Policy, PersonFacts, list[Discharge]]) -> None:
    """§3: five parts ≥ 0 summing to T; year-to-date paid amounts stay within the annual caps."""
    policy, person, items = case
    ledger = SettlementLedger()
    for d in items:
        r = ledger.settle(policy, person, d).result
        assert all(getattr(r, f) >= 0 for f in FEN)
        assert sum(getattr(r, f) for f in FEN) == r.total_fen == d.total_fen
        assert 0 <= r.actual_ratio_bp <= 10000
        if not person.enrolled(r.year):
            assert r.basic_fen == r.critical_fen == r.top_up_fen == 0 == r.delta.critical_base
        y = ledger.ytd(r.year)
        if policy.basic is not None:
            assert y.basic_paid <= policy.basic.annual_cap
        sc = bool(person.categories & policy.critical.special_categories)
        if not (sc and policy.critical.special_no_cap):
            assert y.critical_paid <= policy.critical.annual_cap
        assert y.assistance_paid <= policy.assistance.annual_cap
        assert y.patient_paid + y.basic_paid + y.critical_paid + y.assistance_paid + y.top_up_paid == y.total_cost


@settings(max_examples=200, deadline=None)
@given(scenario(), st.data())
def test_reversal_restores_the_year_to_date_state(case: tuple[Policy, PersonFacts, list[Discharge]],
                                                  data: st.DataObject) -> None:
    """§3 Reversal: subtracting every settlement (any order) brings every year back to zero."""
    policy, person, items = case
    ledger = SettlementLedger()
    for d in items:
        ledger.settle(policy, person, d)
    # settle-then-reverse of the last one equals never having settled it (for the state)
    before = {y: ledger.ytd(y) for y in (2024, 2025)}
    extra = data.draw(discharges("extra"))
    ledger.settle(policy, person, extra)
    ledger.reverse(Reversal("extra"))
    assert {y: ledger.ytd(y) for y in (2024, 2025)} == before
    for did in data.draw(st.permutations([d.discharge_id for d in items])):
        assert ledger.reverse(Reversal(did)).kind == "new"
    assert ledger.ytd(2024) == Ytd() and ledger.ytd(2025) == Ytd()


@settings(max_examples=200, deadline=None)
@given(scenario(), st.data())
def test_redelivery_changes_nothing(case: tuple[Policy, PersonFacts, list[Discharge]], data: st.DataObject) -> None:
    """§3 Idempotence: redelivering any settled discharge (same or changed payload) leaves the ledger as it was."""
    policy, person, items = case
    ledger = SettlementLedger()
    results = {d.discharge_id: ledger.settle(policy, person, d).result for d in items}
    snapshot = ledger.to_dict()
    pick = data.draw(st.sampled_from(items))
    again = ledger.settle(policy, data.draw(persons), pick)
    assert again.kind == "redelivery" and again.result == results[pick.discharge_id]
    changed = data.draw(discharges(pick.discharge_id))
    other = ledger.settle(policy, person, changed)
    assert other.result == results[pick.discharge_id]
    assert other.kind == ("redelivery" if changed == pick else "conflicting_redelivery")
    assert ledger.to_dict() == snapshot
    assert SettlementLedger.from_dict(json.loads(json.dumps(snapshot))) == ledger


@settings(max_examples=200, deadline=None)
@given(policies(), persons, discharges("d"))
def test_settle_discharge_is_pure(policy: Policy, person: PersonFacts, d: Discharge) -> None:
    """The pure function gives the same answer twice, so the CLI and the processor cannot disagree."""
    assert settle_discharge(policy, person, d, Ytd()) == settle_discharge(policy, person, d, Ytd())
