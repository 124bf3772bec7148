"""The open-referral gauge: per department and age bucket, final referrals left out (issue 4, item 4)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hub.policy.model import DEFAULT_ROUTES
from hub.policy.monitor.state import PersonState, Referral
from hub.processors.referral import open_referral_counts
from hub.timeutil import SHANGHAI

T0 = datetime(2024, 3, 1, tzinfo=SHANGHAI)


def _ref(rid: str, department: str, rtype: str, state: str, due: datetime) -> Referral:
    return Referral(rid, rid.split("/")[0], department, rtype, state, due)


def test_counts_open_referrals_by_department_and_age_from_their_sla() -> None:
    p = PersonState("p1")
    # high_medical_burden → civil_affairs medical_assistance, SLA 7 days: opened at T0 when due T0 + 7 d
    p.referrals["a"] = _ref("high_medical_burden:p1:2024#1/civil_affairs/medical_assistance", "civil_affairs",
                            "medical_assistance", "open", T0 + timedelta(days=7))
    # uninsured → insurance enrollment, SLA 15 days, opened 10 days before the clock: the 7–30 d bucket
    p.referrals["b"] = _ref("uninsured:p1:2024#1/insurance/enrollment", "insurance", "enrollment", "acknowledged",
                            T0 - timedelta(days=10) + timedelta(days=15))
    p.referrals["c"] = _ref("uninsured:p1:2024#1/civil_affairs/premium_subsidy", "civil_affairs",
                            "premium_subsidy", "completed", T0 + timedelta(days=15))
    counts = open_referral_counts([p], DEFAULT_ROUTES, T0 + timedelta(hours=2))
    assert counts == {("civil_affairs", "lt_1d"): 1, ("insurance", "7_30d"): 1}


def test_no_clock_no_counts() -> None:
    p = PersonState("p1")
    p.referrals["a"] = _ref("uninsured:p1:2024#1/insurance/enrollment", "insurance", "enrollment", "open", T0)
    assert open_referral_counts([p], DEFAULT_ROUTES, None) == {}
