"""§7 input validation: an invalid record is refused before the engine sees it."""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import ValidationError
from hub.policy.monitor import parse_input
from hub.policy.monitor.inputs import ReferralUpdateInput, SettlementInput, StatusInput
from hub.timeutil import format_time

AT = "2024-05-01"


def rec(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "at": AT, **fields}


VALID = [
    rec("status", person="p", source="revitalization", categories=["monitored"], household_income_fen=0),
    rec("status", person="p", source="civil_affairs", categories=[], household_income_fen=None),
    rec("enrollment", person="p", year=2024, enrolled=False),
    rec("enrollment", person="p", year=2024, enrolled=True, subsidy_category=None),
    rec("admission", person="p", admission_id="a", hospital="h", in_county=True),
    rec("admission", person="p", admission_id="a", hospital="h", in_county=False, declared_categories=None),
    rec("settlement", person="p", discharge_id="d", year=2024, patient_fen=0),
    rec("settlement", person="p", discharge_id="d", year=2024, patient_fen=-5, reverses="d"),
    rec("diagnosis", person="p", code="I10"),
    rec("contract", person="p", active=True),
    rec("followup", person="p"),
    rec("payment_default", person="p", hospital="h", defaulted=False),
    rec("facility", facility="f", kind="township_center", doctors=0),
    rec("referral_update", referral_id="x/y/z", status="completed", amount_fen=0),
    rec("referral_update", referral_id="x/y/z", status="rejected", reason="no"),
    rec("tick"),
    rec("tick", unknown_extra_field={"ignored": True}),
]

INVALID = [
    ("not an object", [1]),
    ("unknown type", rec("nonsense")),
    ("missing at", {"type": "tick"}),
    ("bad time form", {"type": "tick", "at": "2024/05/01"}),
    ("impossible date", {"type": "tick", "at": "2024-02-30"}),
    ("time as number", {"type": "tick", "at": 20240501}),
    ("empty person", rec("followup", person="")),
    ("person not a string", rec("followup", person=7)),
    ("unknown source", rec("status", person="p", source="health", categories=[])),
    ("category not owned by source", rec("status", person="p", source="civil_affairs", categories=["monitored"])),
    ("unknown category", rec("status", person="p", source="revitalization", categories=["poor"])),
    ("categories not a list", rec("status", person="p", source="revitalization", categories="monitored")),
    ("income from civil affairs", rec("status", person="p", source="civil_affairs", categories=[],
                                      household_income_fen=5)),
    ("negative income", rec("status", person="p", source="revitalization", categories=[],
                            household_income_fen=-1)),
    ("year as float", rec("enrollment", person="p", year=2024.0, enrolled=True)),
    ("year as bool", rec("enrollment", person="p", year=True, enrolled=True)),
    ("enrolled not bool", rec("enrollment", person="p", year=2024, enrolled=1)),
    ("unknown subsidy category", rec("enrollment", person="p", year=2024, enrolled=True, subsidy_category="x")),
    ("in_county missing", rec("admission", person="p", admission_id="a", hospital="h")),
    ("unknown declared category", rec("admission", person="p", admission_id="a", hospital="h", in_county=True,
                                      declared_categories=["vip"])),
    ("negative patient share without reverses", rec("settlement", person="p", discharge_id="d", year=2024,
                                                   patient_fen=-1)),
    ("empty reverses", rec("settlement", person="p", discharge_id="d", year=2024, patient_fen=1, reverses="")),
    ("empty code", rec("diagnosis", person="p", code="")),
    ("unknown facility kind", rec("facility", facility="f", kind="clinic", doctors=0)),
    ("negative doctors", rec("facility", facility="f", kind="hospital", doctors=-1)),
    ("doctors as float", rec("facility", facility="f", kind="hospital", doctors=1.0)),
    ("open is not an update status", rec("referral_update", referral_id="x/y/z", status="open")),
    ("withdrawn is not an update status", rec("referral_update", referral_id="x/y/z", status="withdrawn")),
    ("rejected without reason", rec("referral_update", referral_id="x/y/z", status="rejected")),
    ("rejected with empty reason", rec("referral_update", referral_id="x/y/z", status="rejected", reason="")),
    ("negative amount", rec("referral_update", referral_id="x/y/z", status="completed", amount_fen=-1)),
    ("empty referral id", rec("referral_update", referral_id="", status="accepted")),
]


@pytest.mark.parametrize("obj", VALID, ids=lambda o: o["type"])
def test_valid_inputs_parse(obj: dict[str, Any]) -> None:
    assert parse_input(obj).at is not None


@pytest.mark.parametrize(("why", "obj"), INVALID, ids=[w for w, _ in INVALID])
def test_invalid_inputs_are_refused(why: str, obj: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_input(obj)
    assert info.value.reason == "invalid_input"


def test_time_is_converted_to_shanghai() -> None:
    """§5.1: a Z timestamp is converted to UTC+8 (2024-12-31T17:00Z is 2025-01-01 01:00)."""
    inp = parse_input({"type": "tick", "at": "2024-12-31T17:00:00.5Z"})
    assert format_time(inp.at) == "2025-01-01T01:00:00+08:00"
    assert inp.at.microsecond == 500000  # compared at full precision, printed to the second


def test_parsed_fields() -> None:
    s = parse_input(rec("status", person="p", source="revitalization", categories=["monitored", "monitored"]))
    assert isinstance(s, StatusInput) and s.categories == frozenset({"monitored"}) and s.household_income_fen is None
    r = parse_input(rec("settlement", person="p", discharge_id="d", year=2024, patient_fen=-3, reverses="d"))
    assert isinstance(r, SettlementInput) and r.reverses == "d"
    u = parse_input(rec("referral_update", referral_id="a/b/c", status="accepted", reason=None))
    assert isinstance(u, ReferralUpdateInput) and u.reason is None
