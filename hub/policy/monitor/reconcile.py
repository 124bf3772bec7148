"""四清, 账账相符 — cross-department reconciliation mismatches of policy-spec §6.2.

Why here and not in flags: mismatches are judged whether or not a ``[risk]`` section exists,
they raise no referral, and they tell departments directly (``departments`` on the output).
"""

from __future__ import annotations

from typing import Any

from hub.policy.model import CATEGORY_OWNER
from hub.policy.monitor.state import PersonState

MISMATCH_KINDS = ("subsidy_without_category", "declared_category_unknown")


def mismatch_holds(kind: str, scope: tuple[Any, ...], p: PersonState) -> bool:
    """Does the mismatch hold now (§6.2 condition column)?"""
    if kind == "subsidy_without_category":
        rec = p.enrolment.get(int(scope[0]))
        return (rec is not None and rec.enrolled and rec.subsidy_category is not None
                and rec.subsidy_category not in p.C)
    if kind == "declared_category_unknown":
        return scope[0] in p.declared and scope[0] not in p.C
    raise ValueError(f"not a mismatch kind: {kind}")


def departments_told(kind: str, scope: tuple[Any, ...], p: PersonState) -> tuple[str, ...]:
    """Who must reconcile: insurance or health, and the owner of the category in question."""
    if kind == "subsidy_without_category":
        rec = p.enrolment.get(int(scope[0]))
        cat = rec.subsidy_category if rec is not None else None
        return ("insurance",) + ((CATEGORY_OWNER[cat],) if cat is not None else ())
    return ("health", CATEGORY_OWNER[scope[0]])
