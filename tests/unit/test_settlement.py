"""Settlement arithmetic and ledger (policy-spec §3), with every "decided point" checked by hand.

Each expected value is computed in the comment above it, in fen, with mul(a, b) = (a·b + 5000) // 10000.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path

import pytest

from hub.errors import ValidationError
from hub.policy.loader import parse_policy
from hub.policy.model import Policy
from hub.policy.settlement import (
    Discharge,
    PersonFacts,
    Reversal,
    SettlementLedger,
    Ytd,
    mul,
    parse_discharge_line,
    settle_discharge,
)
from hub.timeutil import SHANGHAI

SPEC_EXAMPLE = (Path(__file__).parent / "fixtures" / "spec_example_policy.toml").read_text(encoding="utf-8")
HEAD = '[policy]\nregion = "530000"\nname = "Test"\neffective_from = 2020-01-01\n'


def policy(text: str = SPEC_EXAMPLE) -> Policy:
    return parse_policy(tomllib.loads(text), "<test>")


def person(*categories: str, years: tuple[int, ...] = (2024,)) -> PersonFacts:
    return PersonFacts(frozenset(categories), frozenset(years))


def discharge(did: str = "d1", total: int = 1234500, oop: int = 100000, level: str = "L2",
              in_county: bool = True, referred: bool = False, at: str = "2024-03-05") -> Discharge:
    line = {"discharge_id": did, "discharged_at": at, "level": level, "in_county": in_county,
            "referred": referred, "total_fen": total, "out_of_policy_fen": oop}
    parsed = parse_discharge_line(line)
    assert isinstance(parsed, Discharge)
    return parsed


def parts(r: object) -> tuple[int, ...]:
    return (r.basic_fen, r.critical_fen, r.assistance_fen, r.top_up_fen, r.patient_fen)  # type: ignore[attr-defined]


def test_mul_rounds_half_up() -> None:
    """§3: mul(a, b) = (a × b + 5000) // 10000."""
    assert mul(1, 5000) == 1  # 0.5 → 1
    assert mul(1, 4999) == 0  # 0.4999 → 0
    assert mul(66900, 5000) == 33450
    assert mul(12345, 10000) == 12345


# ---------------------------------------------------------------- §3 steps 1–5 on the spec example


def test_spec_example_poverty_alleviated_in_county_l2() -> None:
    """§3.1–3.5 with the spec's example policy, a 脱贫人口 enrolled for 2024, L2 in county."""
    r = settle_discharge(policy(), person("poverty_alleviated"), discharge(), Ytd())
    # T = 1234500, O = 100000, P = 1134500
    # basic: sb; D = mul(50000, 10000) = 50000; r = 7500 + 500 (in county) = 8000
    #        basic = mul(1134500 − 50000, 8000) = mul(1084500, 8000) = 867600
    # critical: R1 = 1134500 − 867600 = 266900; Dc = mul(1500000, 5000) = 750000 > 266900 → 0
    # assistance: R2 = 266900; k = poverty_alleviated (0.50, Da = 200000)
    #        e = max(266900 − 200000, 0) − 0 = 66900 → mul(66900, 5000) = 33450
    # top-up: B = T; covered = 901050; mul(1234500, 9000) = 1111050 − 901050 = 210000 (≤ B − covered)
    # patient = 1234500 − 867600 − 0 − 33450 − 210000 = 123450
    # actual_ratio_bp = (1111050 × 10000 + 617250) // 1234500 = 9000
    assert parts(r) == (867600, 0, 33450, 210000, 123450)
    assert (r.total_fen, r.out_of_policy_fen, r.actual_ratio_bp, r.year, r.policy) == (
        1234500, 100000, 9000, 2024, "530000")
    assert r.delta == Ytd(basic_paid=867600, critical_base=266900, critical_paid=0, assistance_base=266900,
                          assistance_paid=33450, top_up_paid=210000, patient_paid=123450, total_cost=1234500)


def test_spec_example_large_l3_reaches_critical_tiers_with_special_terms() -> None:
    """§3.2: special deductible factor and ratio bonus of 大病保险 on a 200,000-yuan L3 stay."""
    r = settle_discharge(policy(), person("poverty_alleviated"),
                         discharge(total=20000000, oop=0, level="L3"), Ytd())
    # basic: D = 100000, r = 6000 + 500 = 6500 → mul(19900000, 6500) = 12935000 (cap 15000000 not hit)
    # critical: R1 = 20000000 − 12935000 = 7065000; Dc = mul(1500000, 5000) = 750000; x = 6315000
    #   tier 1 (0, 5000000]        @ 6000+1000 = 7000 → mul(5000000, 7000) = 3500000
    #   tier 2 (5000000, 10000000] @ 7000+1000 = 8000 → mul(1315000, 8000) = 1052000
    #   critical = 4552000 (≤ R1; special_no_cap: annual cap not applied)
    # assistance: R2 = 2513000; e = 2513000 − 200000 = 2313000 → mul(…, 5000) = 1156500
    # top-up: covered = 18643500 > mul(20000000, 9000) = 18000000 → 0
    # patient = 20000000 − 18643500 = 1356500; ratio = (18643500·10000 + 10000000) // 20000000 = 9322
    assert parts(r) == (12935000, 4552000, 1156500, 0, 1356500)
    assert r.actual_ratio_bp == 9322


# ---------------------------------------------------------------- decided points


def test_timestamp_with_z_is_converted_to_shanghai_next_year() -> None:
    """Decided: 2024-12-31T17:00:00Z is 2025-01-01 01:00 in Shanghai → year 2025 (not enrolled there)."""
    d = discharge(at="2024-12-31T17:00:00Z")
    assert (d.day.isoformat(), d.year) == ("2025-01-01", 2025)
    ledger = SettlementLedger()
    r = ledger.settle(policy(), person("poverty_alleviated", years=(2024,)), d).result
    # not enrolled for 2025: basic = critical = top_up = 0; assistance on R2 = P = 1134500:
    # e = 1134500 − 200000 = 934500 → 467250; patient = 1234500 − 467250 = 767250
    assert parts(r) == (0, 0, 467250, 0, 767250)
    assert r.year == 2025
    assert ledger.ytd(2024) == Ytd() and ledger.ytd(2025).total_cost == 1234500


def test_timestamp_without_offset_is_shanghai_local_and_offsets_convert() -> None:
    """Decided: no offset = Shanghai local; +HH:MM converts first."""
    assert discharge(at="2024-12-31T23:59:59").year == 2024
    assert discharge(at="2024-12-31T15:59:59Z").year == 2024
    assert discharge(at="2024-12-31T12:00:00-04:00").year == 2025  # 16:00Z → 2025-01-01 00:00 Shanghai
    assert discharge(at="2024-03-05").discharged_at == datetime(2024, 3, 5, tzinfo=SHANGHAI)


CRIT_055 = HEAD + """
[critical]
deductible = 0
tiers = [ { ratio = 0.55 } ]
annual_cap = 100000000
"""


def test_tierpay_rounds_on_the_cumulative_figure_not_the_increment() -> None:
    """Decided: critical = tierpay(new − Dc) − tierpay(prev − Dc), rounding per tier on cumulative amounts."""
    p = policy(CRIT_055)  # no [basic]: basic = 0, so R1 = P
    ledger = SettlementLedger()
    who = person()
    first = ledger.settle(p, who, discharge("a", total=1, oop=0)).result
    second = ledger.settle(p, who, discharge("b", total=1, oop=0)).result
    # first:  tierpay(1) − tierpay(0) = mul(1, 5500) = (5500 + 5000) // 10000 = 1
    # second: tierpay(2) − tierpay(1) = (11000 + 5000) // 10000 − 1 = 1 − 1 = 0
    #         (rounding the increment alone would give mul(1, 5500) = 1)
    assert (first.critical_fen, second.critical_fen) == (1, 0)
    assert ledger.ytd(2024).critical_base == 2


def test_tierpay_splits_an_amount_across_tiers() -> None:
    """§3.2: tier i covers (up_to_{i−1}, up_to_i] of x."""
    p = policy(HEAD + "[critical]\ndeductible = 10\ntiers = [ { up_to = 100, ratio = 0.5 }, { ratio = 0.8 } ]\n"
               "annual_cap = 100000\n")
    r = settle_discharge(p, person(), discharge(total=160, oop=0), Ytd())
    # x = 160 − 10 = 150: mul(100, 5000) + mul(50, 8000) = 50 + 40 = 90
    assert r.critical_fen == 90


def test_critical_is_capped_by_r1_and_by_the_annual_cap() -> None:
    """§3.2: critical ≤ R1, and ≤ annual_cap − critical_paid unless (sc and special_no_cap)."""
    p = policy(HEAD + "[critical]\ndeductible = 0\ntiers = [ { ratio = 1 } ]\nannual_cap = 1000\n")
    ytd = Ytd(critical_paid=700)
    # tierpay(5000) = 5000 = R1; cap room = 1000 − 700 = 300
    assert settle_discharge(p, person(), discharge(total=5000, oop=0), ytd).critical_fen == 300


SPECIAL_NO_CAP = HEAD + """
[critical]
deductible = 0
tiers = [ { ratio = 1 } ]
annual_cap = 1000
special_categories = ["monitored"]
special_no_cap = true
"""


def test_special_no_cap_lifts_the_critical_cap_only_for_special_categories() -> None:
    """§3.2: "unless sc and special_no_cap: critical = min(critical, max(annual_cap − critical_paid, 0))"."""
    p = policy(SPECIAL_NO_CAP)
    d = discharge(total=5000, oop=0)
    # monitored (sc): tierpay(5000) = 5000, min(5000, R1 = 5000) = 5000, no cap
    assert settle_discharge(p, person("monitored"), d, Ytd()).critical_fen == 5000
    # poverty_alleviated (not sc): min(5000, 1000 − 0) = 1000
    assert settle_discharge(p, person("poverty_alleviated"), d, Ytd()).critical_fen == 1000


def test_assistance_base_grows_without_categories() -> None:
    """Decided: assistance_base grows by R2 on every settled discharge, category or not."""
    ledger = SettlementLedger()
    p = policy()
    # not enrolled → R2 = P. First stay without any category: assistance 0, base 0 → 80000
    first = ledger.settle(p, person(years=()), discharge("a", total=80000, oop=0)).result
    assert first.assistance_fen == 0 and ledger.ytd(2024).assistance_base == 80000
    # then the person becomes 监测对象 (0.60, Da = 100000): prev_a = 80000, new_a = 130000
    # e = max(130000 − 100000, 0) − max(80000 − 100000, 0) = 30000 → mul(30000, 6000) = 18000
    second = ledger.settle(p, person("monitored", years=()), discharge("b", total=50000, oop=0)).result
    assert second.assistance_fen == 18000
    assert ledger.ytd(2024).assistance_base == 130000


def test_k_falls_back_to_a_lower_priority_category_with_an_entry() -> None:
    """Decided: k = the highest-priority category of C that has an entry in assistance.categories."""
    p = policy(HEAD + "[assistance]\nannual_cap = 100000000\n"
               "categories.minimum_living = { ratio = 0.70, deductible = 0 }\n"
               "categories.monitored = { ratio = 0.60, deductible = 100000 }\n")
    r = settle_discharge(p, person("extreme_poverty", "monitored"), discharge(total=300000, oop=0), Ytd())
    # extreme_poverty has no entry → k = monitored: e = 300000 − 100000 = 200000 → mul(200000, 6000) = 120000
    assert r.assistance_fen == 120000
    # with minimum_living too, priority picks minimum_living: mul(300000, 7000) = 210000
    r2 = settle_discharge(p, person("monitored", "minimum_living"), discharge(total=300000, oop=0), Ytd())
    assert r2.assistance_fen == 210000


def test_assistance_is_capped_by_the_annual_cap() -> None:
    p = policy(HEAD + "[assistance]\nannual_cap = 1000\ncategories.extreme_poverty = { ratio = 1, deductible = 0 }\n")
    # mul(5000, 10000) = 5000, room = 1000 − 400 = 600
    r = settle_discharge(p, person("extreme_poverty"), discharge(total=5000, oop=0), Ytd(assistance_paid=400))
    assert r.assistance_fen == 600


def test_zero_total_settles_and_uses_up_the_id() -> None:
    """Decided: T = 0 settles (every amount 0, actual_ratio_bp = 0) and uses up the id."""
    ledger = SettlementLedger()
    out = ledger.settle(policy(), person("poverty_alleviated"), discharge(total=0, oop=0))
    assert out.kind == "new"
    assert parts(out.result) == (0, 0, 0, 0, 0) and out.result.actual_ratio_bp == 0
    again = ledger.settle(policy(), person("poverty_alleviated"), discharge(total=500, oop=0))
    assert again.kind == "conflicting_redelivery" and again.result == out.result


def test_rejected_no_policy_does_not_use_up_the_id() -> None:
    """Decided: a discharge rejected with no_policy does not use up its id."""
    ledger = SettlementLedger()
    rejected = ledger.settle(None, person(), discharge())
    assert (rejected.kind, rejected.error, rejected.result) == ("no_policy", "no_policy", None)
    assert ledger.to_dict() == SettlementLedger().to_dict()
    assert ledger.settle(policy(), person(), discharge()).kind == "new"


def test_redelivery_returns_the_original_and_changes_nothing() -> None:
    """§3 Idempotence: a redelivered discharge returns the original settlement and changes no state."""
    ledger = SettlementLedger()
    first = ledger.settle(policy(), person("poverty_alleviated"), discharge())
    before = ledger.to_dict()
    again = ledger.settle(policy(), person("poverty_alleviated"), discharge())
    assert (again.kind, again.result, again.changed, again.conflict) == ("redelivery", first.result, False, False)
    assert ledger.to_dict() == before
    # same instant written differently is the same payload
    same = ledger.settle(policy(), person(), discharge(at="2024-03-04T16:00:00Z"))
    assert same.kind == "redelivery"


def test_redelivery_with_a_different_payload_returns_the_original_and_flags_the_conflict() -> None:
    """Decided: a redelivery whose payload differs returns the original; conflicting_redelivery."""
    ledger = SettlementLedger()
    first = ledger.settle(policy(), person("poverty_alleviated"), discharge(total=1234500))
    before = ledger.to_dict()
    other = ledger.settle(policy(), person("poverty_alleviated"), discharge(total=999999))
    assert other.kind == "conflicting_redelivery" and other.conflict and other.error is None
    assert other.result == first.result
    assert ledger.to_dict() == before


def test_reversal_subtracts_exactly_and_emits_negated_amounts() -> None:
    """§3 Reversal (冲正): subtract the original's deltas from its year; negate every *_fen; keep the ratio."""
    ledger = SettlementLedger()
    p, who = policy(), person("poverty_alleviated")
    d1 = ledger.settle(p, who, discharge("d1")).result
    d2 = ledger.settle(p, who, discharge("d2")).result
    out = ledger.reverse(Reversal("d1"))
    rev = out.result
    assert out.kind == "new"
    assert (rev.discharge_id, rev.reverses, rev.year) == ("d1", "d1", 2024)
    assert parts(rev) == tuple(-x for x in parts(d1))
    assert (rev.total_fen, rev.out_of_policy_fen, rev.actual_ratio_bp) == (-1234500, -100000, d1.actual_ratio_bp)
    assert rev.to_output()["reverses"] == "d1"
    # later settlements are not recomputed: the state is d2's delta on top of d1's, minus d1's
    assert ledger.ytd(2024) == d1.delta.plus(d2.delta).minus(d1.delta)


def test_reversal_uses_the_original_year() -> None:
    ledger = SettlementLedger()
    ledger.settle(policy(), person(years=(2024, 2025)), discharge("d1", at="2024-12-31T17:00:00Z"))
    ledger.reverse(Reversal("d1"))
    assert ledger.ytd(2025) == Ytd() and ledger.ytd(2024) == Ytd()


def test_reversing_twice_or_an_unknown_id_changes_nothing() -> None:
    """§3: "Reversing twice, or reversing an unknown id, changes nothing and is reported"."""
    ledger = SettlementLedger()
    ledger.settle(policy(), person(), discharge("d1"))
    assert ledger.reverse(Reversal("zz")).error == "unknown_discharge"
    ledger.reverse(Reversal("d1"))
    before = ledger.to_dict()
    twice = ledger.reverse(Reversal("d1"))
    assert (twice.kind, twice.error, twice.result) == ("already_reversed", "already_reversed", None)
    assert ledger.to_dict() == before


def test_a_reversed_id_never_settles_again() -> None:
    """Decided: a redelivery of a reversed id returns the original settlement."""
    ledger = SettlementLedger()
    original = ledger.settle(policy(), person(), discharge("d1")).result
    ledger.reverse(Reversal("d1"))
    before = ledger.to_dict()
    again = ledger.settle(policy(), person(), discharge("d1"))
    assert (again.kind, again.result) == ("redelivery", original)
    assert ledger.to_dict() == before


SCOPE = HEAD + """
[basic]
deductible = { L1 = 0, L2 = 0, L3 = 0 }
ratio = { L1 = 0.50, L2 = 0.05, L3 = 0.95 }
out_of_county_unreferred_delta = -0.10
annual_cap = 100000000
special_categories = ["poverty_alleviated"]
special_ratio_bonus = 0.05
special_bonus_scope = "in_county_or_referred"
"""


@pytest.mark.parametrize(("scope", "cats", "in_county", "referred", "expected"), [
    # r = 5000 + 500 (bonus: in county) = 5500 → mul(10000, 5500)
    ("in_county_or_referred", ("poverty_alleviated",), True, False, 5500),
    # out of county but referred: bonus applies, no delta → 5500
    ("in_county_or_referred", ("poverty_alleviated",), False, True, 5500),
    # out of county, unreferred: no bonus under this scope, delta −1000 → 4000
    ("in_county_or_referred", ("poverty_alleviated",), False, False, 4000),
    # scope "all": bonus everywhere, delta too → 5000 + 500 − 1000 = 4500
    ("all", ("poverty_alleviated",), False, False, 4500),
    # not special: 5000 − 1000 = 4000
    ("all", ("monitored",), False, False, 4000),
])
def test_special_bonus_scope(scope: str, cats: tuple[str, ...], in_county: bool, referred: bool,
                             expected: int) -> None:
    """§3.1: bonus when sb and (scope = "all" or in_county or referred); delta when !in_county and !referred."""
    p = policy(SCOPE.replace('"in_county_or_referred"', f'"{scope}"'))
    d = discharge(total=10000, oop=0, level="L1", in_county=in_county, referred=referred)
    assert settle_discharge(p, person(*cats), d, Ytd()).basic_fen == expected


def test_basic_ratio_is_clamped_to_0_and_10000() -> None:
    """§3.1: r clamped to [0, 10000] after bonus and delta."""
    p = policy(SCOPE.replace('"in_county_or_referred"', '"all"').replace("special_ratio_bonus = 0.05",
                                                                           "special_ratio_bonus = 0.10"))
    # L3: 9500 + 1000 = 10500 → 10000: basic = P
    d3 = discharge(total=10000, oop=0, level="L3")
    assert settle_discharge(p, person("poverty_alleviated"), d3, Ytd()).basic_fen == 10000
    # L2 out of county, unreferred, not special: 500 − 1000 = −500 → 0
    d2 = discharge(total=10000, oop=0, level="L2", in_county=False)
    assert settle_discharge(p, person(), d2, Ytd()).basic_fen == 0


def test_basic_special_deductible_factor_and_annual_cap() -> None:
    """§3.1: D = mul(D, bp(factor)) for special categories; basic ≤ annual_cap − basic_paid."""
    p = policy(HEAD + """
[basic]
deductible = { L1 = 20001, L2 = 0, L3 = 0 }
ratio = { L1 = 0.5, L2 = 0, L3 = 0 }
annual_cap = 5000
special_categories = ["monitored"]
special_deductible_factor = 0.5
""")
    d = discharge(total=30000, oop=0, level="L1")
    # special: D = mul(20001, 5000) = (100005000 + 5000) // 10000 = 10001
    #          mul(30000 − 10001, 5000) = (99995000 + 5000) // 10000 = 10000, capped at 5000 − 1000 = 4000
    assert settle_discharge(p, person("monitored"), d, Ytd(basic_paid=1000)).basic_fen == 4000
    assert settle_discharge(p, person("monitored"), d, Ytd()).basic_fen == 5000
    # not special (D = 20001): mul(25000 − 20001, 5000) = (24995000 + 5000) // 10000 = 2500
    assert settle_discharge(p, person(), discharge(total=25000, oop=0, level="L1"), Ytd()).basic_fen == 2500


TOP_UP = HEAD + """
[basic]
deductible = { L1 = 0, L2 = 0, L3 = 0 }
ratio = { L1 = 0.5, L2 = 0.5, L3 = 0.5 }
annual_cap = 100000000
[top_up]
target_ratio = 0.9
categories = ["poverty_alleviated"]
base = "in_policy"
"""


def test_top_up_base_in_policy_and_total() -> None:
    """§3.4: B = P ("in_policy") or T ("total"); top_up = min(max(mul(B, t) − covered, 0), max(B − covered, 0))."""
    d = discharge(total=10000, oop=2000, level="L1")
    # P = 8000; basic = mul(8000, 5000) = 4000
    r = settle_discharge(policy(TOP_UP), person("poverty_alleviated"), d, Ytd())
    # in_policy: mul(8000, 9000) = 7200 − 4000 = 3200; patient = 10000 − 4000 − 3200 = 2800
    assert parts(r) == (4000, 0, 0, 3200, 2800)
    r = settle_discharge(policy(TOP_UP.replace('"in_policy"', '"total"')), person("poverty_alleviated"), d, Ytd())
    # total: mul(10000, 9000) = 9000 − 4000 = 5000; patient = 1000; ratio 9000
    assert parts(r) == (4000, 0, 0, 5000, 1000) and r.actual_ratio_bp == 9000
    # not in the top-up categories: nothing
    assert settle_discharge(policy(TOP_UP), person("monitored"), d, Ytd()).top_up_fen == 0


def test_not_enrolled_gets_no_basic_critical_top_up_but_assistance_applies() -> None:
    """§3: basic, critical and top-up need enrolment; medical assistance does not; critical_base does not grow."""
    r = settle_discharge(policy(), person("poverty_alleviated", years=(2023,)), discharge(), Ytd())
    # R1 = R2 = P = 1134500; e = 1134500 − 200000 = 934500 → mul(934500, 5000) = 467250
    # patient = 1234500 − 467250 = 767250; ratio = (467250·10000 + 617250) // 1234500 = 3785
    assert parts(r) == (0, 0, 467250, 0, 767250)
    assert r.actual_ratio_bp == 3785
    assert r.delta.critical_base == 0 and r.delta.assistance_base == 1134500


def test_actual_ratio_rounds_half_up() -> None:
    """§3.5: actual_ratio_bp = ((T − patient) × 10000 + T // 2) // T."""
    p = policy(HEAD + "[assistance]\nannual_cap = 100\ncategories.extreme_poverty = { ratio = 1, deductible = 0 }\n")
    # T = 3, assistance = min(3, 100) = 3 → ratio 10000; T = 20000 with cap 100: (100·10000 + 10000) // 20000 = 50
    assert settle_discharge(p, person("extreme_poverty"), discharge(total=3, oop=0), Ytd()).actual_ratio_bp == 10000
    assert settle_discharge(p, person("extreme_poverty"), discharge(total=20000, oop=0), Ytd()).actual_ratio_bp == 50
    # T = 3, covered 1 (cap 1): (1·10000 + 1) // 3 = 3333
    p1 = policy(HEAD + "[assistance]\nannual_cap = 1\ncategories.extreme_poverty = { ratio = 1, deductible = 0 }\n")
    assert settle_discharge(p1, person("extreme_poverty"), discharge(total=3, oop=0), Ytd()).actual_ratio_bp == 3333


def test_ledger_round_trips_through_json_safe_dict() -> None:
    """A stream processor keeps ``to_dict()`` in a table and rebuilds the ledger with ``from_dict``."""
    import json

    ledger = SettlementLedger()
    ledger.settle(policy(), person("poverty_alleviated"), discharge("d1", at="2024-03-05T10:11:12.5+08:00"))
    ledger.settle(policy(), person("poverty_alleviated"), discharge("d2", at="2024-12-31T17:00:00Z"))
    ledger.reverse(Reversal("d2"))
    restored = SettlementLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored == ledger
    assert restored.settle(policy(), person(), discharge("d1", at="2024-03-05T10:11:12.5+08:00")).kind == "redelivery"
    assert restored.reverse(Reversal("d2")).error == "already_reversed"


# ---------------------------------------------------------------- line parsing


GOOD = {"discharge_id": "d1", "discharged_at": "2024-03-05", "level": "L2", "in_county": True,
        "referred": False, "total_fen": 1234500, "out_of_policy_fen": 100000}


@pytest.mark.parametrize(("change", "field", "fragment"), [
    ({"discharge_id": None}, "discharge_id", "missing"),
    ({"discharge_id": ""}, "discharge_id", "non-empty string"),
    ({"discharge_id": 7}, "discharge_id", "non-empty string"),
    ({"discharged_at": "05/03/2024"}, "discharged_at", "not a date"),
    ({"discharged_at": 20240305}, "discharged_at", "expected an ISO-8601"),
    ({"level": "L4"}, "level", "L1, L2, L3"),
    ({"in_county": 1}, "in_county", "true or false"),
    ({"referred": "no"}, "referred", "true or false"),
    ({"total_fen": True}, "total_fen", "integer"),  # bool is not int
    ({"total_fen": 12.5}, "total_fen", "integer"),
    ({"total_fen": 1.0}, "total_fen", "integer"),
    ({"total_fen": "100"}, "total_fen", "integer"),
    ({"total_fen": -1}, "total_fen", "negative"),
    ({"out_of_policy_fen": -1}, "out_of_policy_fen", "negative"),
    ({"out_of_policy_fen": 1234501}, "out_of_policy_fen", "exceeds total_fen"),
])
def test_parse_discharge_line_rejects_with_the_field(change: dict, field: str, fragment: str) -> None:
    """§3: invalid_input for a missing or mistyped field, an unknown level, O > T or a negative amount."""
    line = {**GOOD, **change}
    if change.get(field, 0) is None:
        del line[field]
    with pytest.raises(ValidationError) as info:
        parse_discharge_line(line)
    assert (info.value.field, info.value.reason) == (field, "invalid_input")
    assert fragment in info.value.problem


@pytest.mark.parametrize("missing", sorted(GOOD))
def test_every_field_of_the_example_line_is_required(missing: str) -> None:
    line = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ValidationError, match=f"^{missing}: missing required field"):
        parse_discharge_line(line)


def test_parse_reversal_and_text_lines() -> None:
    assert parse_discharge_line('{"reverses": "d1"}') == Reversal("d1")
    with pytest.raises(ValidationError, match="not JSON"):
        parse_discharge_line("{nope")
    with pytest.raises(ValidationError, match="JSON object"):
        parse_discharge_line("[1, 2]")
    with pytest.raises(ValidationError, match="^reverses: "):
        parse_discharge_line({"reverses": 5})


def test_critical_tier_ratio_plus_bonus_is_capped_at_10000() -> None:
    """§3.2: each tier uses min(bp(ratio_i) + bonus, 10000)."""
    p = policy(HEAD + "[critical]\ndeductible = 0\ntiers = [ { ratio = 0.95 } ]\nannual_cap = 100000000\n"
               'special_categories = ["monitored"]\nspecial_ratio_bonus = 0.10\n')
    # sc: min(9500 + 1000, 10000) = 10000 → mul(7777, 10000) = 7777 = R1; not sc: mul(7777, 9500) = 7388.15 → 7388
    assert settle_discharge(p, person("monitored"), discharge(total=7777, oop=0), Ytd()).critical_fen == 7777
    assert settle_discharge(p, person(), discharge(total=7777, oop=0), Ytd()).critical_fen == 7388
