"""先诊疗后付费 — the deposit-waiver decision at admission (policy-spec §4).

Why the reasons are checked in a fixed order: the decision must name the *first* obstacle, so
that the hospital and the person know which department can lift it (offer, enrolment, category,
designation, then the blacklist of seed 001 clause 6).
"""

from __future__ import annotations

from hub.policy.model import Policy
from hub.policy.monitor.inputs import AdmissionInput
from hub.policy.monitor.state import PersonState


def deposit_reason(p: PersonState, admission: AdmissionInput, year: int, policy: Policy) -> str:
    """The §4 reason for ``admission`` judged on the person state at its (effective) time."""
    rules = policy.deposit_waiver
    if rules is None:
        return "not_offered"
    if not p.enrolled(year):
        return "not_enrolled"
    if not p.C & rules.categories:  # the admission's declared categories do not count
        return "category_not_eligible"
    designated = (admission.hospital in rules.designated_hospitals if rules.designated_hospitals
                  else admission.in_county)
    if not designated:
        return "hospital_not_designated"
    if p.defaults:
        return "blacklisted"
    return "waived"
