"""The §4–§6 engine on policies built in memory: the clauses the scenario files do not reach,
and the stream contract (serialisable state, wall-clock advance, routable referral ids)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from hub.policy.model import DEFAULT_ROUTES, DepositWaiverRules, Policy, RiskRules, Route
from hub.policy.monitor import (
    FacilityState,
    JsonStore,
    MonitorEngine,
    PersonState,
    parse_input,
    referral_subject,
)
from hub.policy.monitor.referrals import referral_subjects
from hub.timeutil import parse_event_time

RISK = RiskRules(oop_threshold=1_000_000, oop_income_fraction_bp=5000, major_disease_codes=("C34", "C341"))
WAIVER = DepositWaiverRules(categories=frozenset({"minimum_living", "extreme_poverty", "monitored"}))
FULL = Policy(region="530000", name="test", effective_from=date(2020, 1, 1), deposit_waiver=WAIVER, risk=RISK)
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def run(records: list[dict[str, Any]], policy: Policy = FULL) -> list[dict[str, Any]]:
    engine = MonitorEngine(policy)
    out: list[dict[str, Any]] = []
    for r in records:
        out += [o.to_json() for o in engine.apply(parse_input(r))]
    return out


def short(outputs: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """(type, id, state-or-reason) — enough to read a sequence at a glance."""
    rows = []
    for o in outputs:
        ident = o.get("referral_id") or o.get("flag_id") or o.get("mismatch_id") or o.get("admission_id")
        rows.append((o["type"], ident, o.get("state") or o.get("reason") or ""))
    return rows


def status(at: str, person: str, source: str, cats: list[str], **kw: Any) -> dict[str, Any]:
    return {"type": "status", "at": at, "person": person, "source": source, "categories": cats, **kw}


def enrol(at: str, person: str, year: int, enrolled: bool = True, **kw: Any) -> dict[str, Any]:
    return {"type": "enrollment", "at": at, "person": person, "year": year, "enrolled": enrolled, **kw}


def settle(at: str, person: str, did: str, fen: int, year: int = 2024, **kw: Any) -> dict[str, Any]:
    return {"type": "settlement", "at": at, "person": person, "discharge_id": did, "year": year,
            "patient_fen": fen, **kw}


def update(at: str, rid: str, new: str, **kw: Any) -> dict[str, Any]:
    return {"type": "referral_update", "at": at, "referral_id": rid, "status": new, **kw}


# -- §4 deposit waiver ------------------------------------------------------------------------------

def test_no_deposit_waiver_section_means_not_offered() -> None:
    policy = Policy(region="530000", name="t", effective_from=date(2020, 1, 1))
    out = run([{"type": "admission", "at": "2024-01-05", "person": "p", "admission_id": "a",
                "hospital": "h", "in_county": True}], policy)
    assert out == [{"type": "deposit_decision", "at": "2024-01-05T00:00:00+08:00", "admission_id": "a",
                    "person": "p", "waived": False, "reason": "not_offered"}]


def test_designated_hospitals_list_replaces_in_county() -> None:
    policy = Policy(region="530000", name="t", effective_from=date(2020, 1, 1),
                    deposit_waiver=DepositWaiverRules(frozenset({"minimum_living"}), frozenset({"H7"})))
    base = [enrol("2024-01-01", "p", 2024), status("2024-01-01", "p", "civil_affairs", ["minimum_living"])]
    adm = {"type": "admission", "at": "2024-01-02", "person": "p", "hospital": "H1", "in_county": True}
    out = run(base + [{**adm, "admission_id": "a1"}, {**adm, "admission_id": "a2", "hospital": "H7",
                                                      "in_county": False}], policy)
    assert [o["reason"] for o in out] == ["hospital_not_designated", "waived"]


# -- §5.3 flags without the scenario policy ---------------------------------------------------------

def test_without_risk_section_no_flags_but_mismatches_still_judged() -> None:
    policy = Policy(region="530000", name="t", effective_from=date(2020, 1, 1))
    out = run([status("2024-01-01", "p", "revitalization", ["poverty_alleviated"]),
               enrol("2024-01-02", "p", 2024, subsidy_category="extreme_poverty")], policy)
    assert short(out) == [("mismatch", "subsidy_without_category:p:2024#1", "open")]
    assert out[0]["departments"] == ["insurance", "civil_affairs"]


def test_flag_with_no_route_is_raised_then_only_cleared() -> None:
    policy = Policy(region="530000", name="t", effective_from=date(2020, 1, 1), risk=RISK,
                    routes=(Route("facility_gap", "health", "staffing", 30),))
    out = run([status("2024-01-01", "p", "revitalization", ["monitored"]), enrol("2024-01-02", "p", 2024)], policy)
    assert short(out) == [("flag", "uninsured:p:2024#1", "raised"), ("flag", "uninsured:p:2024#1", "cleared")]


def test_income_fraction_needs_a_positive_share() -> None:
    """Income 0: mul(0, bp) = 0, so only ytd_patient > 0 can raise the burden flag."""
    base = [enrol("2024-01-01", "p", 2024),
            status("2024-01-01", "p", "revitalization", ["poverty_alleviated"], household_income_fen=0)]
    assert run(base + [settle("2024-01-02", "p", "d0", 0)]) == []
    assert short(run(base + [settle("2024-01-02", "p", "d1", 1)]))[0] == (
        "flag", "high_medical_burden:p:2024#1", "raised")


def test_general_population_watched_when_enrolled() -> None:
    risk = RiskRules(oop_threshold=100, watch_general_population=True)
    policy = Policy(region="530000", name="t", effective_from=date(2020, 1, 1), risk=risk)
    assert run([settle("2024-01-02", "q", "d1", 500)], policy) == []  # not enrolled: not watched
    out = run([enrol("2024-01-01", "q", 2024), settle("2024-01-02", "q", "d1", 500)], policy)
    assert short(out)[0] == ("flag", "high_medical_burden:q:2024#1", "raised")


def test_resolved_flag_waits_for_its_condition_to_lapse() -> None:
    """§5.2: a resolved chronic_unsigned is re-raised (#2) only after signing then un-signing."""
    rid = "chronic_unsigned:p#1/health/family_doctor_signing"
    base = [enrol("2024-01-01", "p", 2024), status("2024-01-01", "p", "civil_affairs", ["minimum_living"]),
            {"type": "diagnosis", "at": "2024-01-01", "person": "p", "code": "i10.0"},
            {"type": "tick", "at": "2024-02-01"},
            update("2024-02-02", rid, "completed")]
    out = run(base + [{"type": "contract", "at": "2024-02-03", "person": "p", "active": False}])
    assert ("flag", "chronic_unsigned:p#2", "raised") not in short(out)
    out = run(base + [{"type": "contract", "at": "2024-02-03", "person": "p", "active": True},
                      {"type": "contract", "at": "2024-02-04", "person": "p", "active": False}])
    assert short(out)[-3:] == [("flag", "chronic_unsigned:p#2", "raised"),
                               ("referral", "chronic_unsigned:p#2/health/family_doctor_signing", "open"),
                               ("flag", "chronic_unsigned:p#2", "referred")]
    assert out[-3]["at"] == "2024-02-04T00:00:00+08:00"


def test_late_diagnosis_is_recorded_at_the_clock() -> None:
    """§5.1: f is the clock, not the diagnosis' own older time, so the grace runs from the clock."""
    out = run([enrol("2024-03-01", "p", 2024), status("2024-03-01", "p", "civil_affairs", ["minimum_living"]),
               {"type": "diagnosis", "at": "2024-01-01", "person": "p", "code": "I10"},
               {"type": "tick", "at": "2024-03-30T23:59:59"}, {"type": "tick", "at": "2024-03-31"}])
    assert [(o["at"], o["state"]) for o in out if o["type"] == "flag"] == [
        ("2024-03-31T00:00:00+08:00", "raised"), ("2024-03-31T00:00:00+08:00", "referred")]


def test_major_disease_is_once_per_year_and_longest_entry() -> None:
    base = [enrol("2024-01-01", "p", 2024), status("2024-01-01", "p", "revitalization", ["monitored"])]
    out = run(base + [{"type": "diagnosis", "at": "2024-01-02", "person": "p", "code": " c 34.19"},
                      {"type": "diagnosis", "at": "2024-01-03", "person": "p", "code": "C341"}])
    assert [o["flag_id"] for o in out if o["type"] == "flag" and o["state"] == "raised"] == [
        "major_disease:p:C341:2024#1"]


# -- §6.1 referrals -----------------------------------------------------------------------------------

def test_final_states_and_unknown_ids() -> None:
    base = [status("2024-01-01", "p", "revitalization", ["monitored"])]  # uninsured:p:2024#1
    rid = "uninsured:p:2024#1/insurance/enrollment"
    out = run(base + [update("2024-01-02", rid, "completed"), update("2024-01-03", rid, "completed"),
                      update("2024-01-04", rid, "rejected", reason="late"),
                      update("2024-01-05", "uninsured:p:2024#9/insurance/enrollment", "accepted"),
                      update("2024-01-06", "garbage", "accepted")])
    assert short(out)[4:] == [("referral", rid, "completed"), ("error", None, "invalid_transition"),
                              ("error", None, "unknown_referral"), ("error", None, "unknown_referral")]
    assert [o["at"][:10] for o in out[5:]] == ["2024-01-04", "2024-01-05", "2024-01-06"]


def test_no_escalation_when_final_before_due_and_wall_clock_advance_fires_it() -> None:
    engine = MonitorEngine(FULL)
    engine.apply(parse_input(status("2024-01-01", "p", "revitalization", ["monitored"])))
    engine.apply(parse_input(update("2024-01-15T23:59:59", "uninsured:p:2024#1/insurance/enrollment",
                                    "completed")))
    fired = engine.advance_to(parse_event_time("2024-01-20"))  # a quiet day: the wall clock moves
    assert [o.to_json()["referral_id"] for o in fired] == ["uninsured:p:2024#1/civil_affairs/premium_subsidy"]
    assert fired[0].to_json()["at"] == "2024-01-16T00:00:00+08:00"
    assert engine.advance_to(parse_event_time("2024-02-01")) == []


def test_referral_ids_route_to_their_subject() -> None:
    assert referral_subject("uninsured:a:b:2024#3/insurance/enrollment") == ("person", "a:b")
    assert referral_subject("major_disease:p/q:C34:2024#1/health/special_treatment") == ("person", "p/q")
    assert referral_subject("facility_gap:F-1#2/health/staffing") == ("facility", "F-1")
    assert referral_subject("chronic_unsigned:p/health") is None
    assert referral_subject("bogus:p#1/health/x") is None
    # a policy's route type may hold "/" (only the department cannot): every split is a candidate
    assert referral_subjects("facility_gap:F#1/health/staffing/clinic") == [("facility", "F")]
    assert referral_subjects("uninsured:a/health/b:2024#1/insurance/x/y") == [("person", "a/health/b")]


# -- stream contract ----------------------------------------------------------------------------------

def _scenario_inputs() -> list[dict[str, Any]]:
    records = []
    for path in sorted(SCENARIOS.glob("monitor_*.jsonl")):
        if path.name.endswith(".expected.jsonl"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def test_restoring_from_json_after_every_input_changes_nothing() -> None:
    """A partition restored from its changelog (JSON values + clock) continues exactly as before."""
    valid = []
    for rec in _scenario_inputs():
        try:
            valid.append(parse_input(rec))
        except Exception:  # noqa: BLE001 - invalid lines are the command's business
            continue
    straight = MonitorEngine(FULL)
    expected = [o.to_json() for inp in valid for o in straight.apply(inp)]

    persons: dict[str, dict[str, Any]] = {}
    facilities: dict[str, dict[str, Any]] = {}
    state: dict[str, Any] | None = None
    got: list[dict[str, Any]] = []
    for inp in valid:
        engine = MonitorEngine(FULL, JsonStore(persons, PersonState.from_dict),
                               JsonStore(facilities, FacilityState.from_dict), state)
        outputs = engine.apply(inp)
        got += [o.to_json() for o in outputs]
        persons = json.loads(json.dumps(persons))
        facilities = json.loads(json.dumps(facilities))
        state = json.loads(json.dumps(engine.state_dict()))
    assert got == expected
    assert len(expected) > 100


def test_output_ids_are_unique_per_state_change() -> None:
    engine = MonitorEngine(FULL)
    ids = [o.output_id for rec in _scenario_inputs() for o in _apply_valid(engine, rec)]
    assert len(ids) == len(set(ids))


def _apply_valid(engine: MonitorEngine, rec: dict[str, Any]) -> list[Any]:
    try:
        inp = parse_input(rec)
    except Exception:  # noqa: BLE001
        return []
    return [o for o in engine.apply(inp) if o.to_json()["type"] != "error"]


def test_default_routes_are_the_spec_table() -> None:
    assert FULL.routes == DEFAULT_ROUTES and len(DEFAULT_ROUTES) == 10
