"""防止因病返贫致贫监测预警 — the six risk-flag conditions of policy-spec §5.3.

Why pure functions over the subject state: §5.2 re-judges every key of a subject after every
input and at every due time, so a condition must be a cheap, side-effect-free question
"does it hold now?" asked of the state and the clock. Evidence is informative (§5.3): it records
the amounts, dates, codes and thresholds as they stand when the flag changes state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from hub.policy.model import RiskRules
from hub.policy.monitor.state import FacilityState, PersonState
from hub.timeutil import format_time

PERSON_FLAGS = ("high_medical_burden", "major_disease", "chronic_unsigned", "followup_overdue", "uninsured")
FACILITY_FLAGS = ("facility_gap",)


def normalise_code(code: str) -> str:
    """ICD-10 as compared (§5.3): upper case, spaces and dots removed (``c34.1`` → ``C341``).

    Mirrors ``hub.policy.loader.normalise_icd10`` so a diagnosis and a policy entry normalise alike.
    """
    return code.upper().replace(" ", "").replace(".", "")


def match_entry(code: str, entries: tuple[str, ...] | frozenset[str]) -> str | None:
    """The longest (normalised) entry the normalised code starts with, or None.

    Memoised: every diagnosis asks this of the policy's code lists (dozens of entries), which are
    fixed, and codes repeat; the answer depends on the two arguments only.
    """
    try:
        return _match_cached(code, entries)
    except TypeError:  # unhashable entries (e.g. a list): answer without the cache
        return _match(normalise_code(code), _longest_first(entries))


def _longest_first(entries: Iterable[str]) -> tuple[str, ...]:
    """Distinct non-empty normalised entries, longest first: the first prefix found is the longest.

    Two entries of equal length that both prefix a code are the same string, so order among equal
    lengths cannot change the answer.
    """
    return tuple(sorted({normalise_code(e) for e in entries} - {""}, key=len, reverse=True))


def _match(norm: str, longest_first: tuple[str, ...]) -> str | None:
    for e in longest_first:
        if norm.startswith(e):
            return e
    return None


@lru_cache(maxsize=4096)
def _match_cached(code: str, entries: tuple[str, ...] | frozenset[str]) -> str | None:
    return _match(normalise_code(code), _longest_first(entries))


def mul(a: int, b_bp: int) -> int:
    """§3 half-up product of fen and basis points (a ≥ 0)."""
    return (a * b_bp + 5000) // 10000


def watched(p: PersonState, risk: RiskRules) -> bool:
    """``W``: the person holds a watched category at the moment of judging."""
    return bool(p.C & risk.watched_categories)


def chronic_due(p: PersonState, risk: RiskRules) -> datetime | None:
    """``f + signing_grace_days``: when an unsigned chronic patient becomes overdue for signing."""
    if p.first_chronic is None:
        return None
    return p.first_chronic + timedelta(days=risk.signing_grace_days)


def followup_due(p: PersonState, risk: RiskRules) -> datetime | None:
    """``s + followup_days`` with ``s`` the latest of first chronic code, activation, follow-up."""
    s = p.followup_start()
    return None if s is None else s + timedelta(days=risk.followup_days)


def burden_holds(p: PersonState, year: int, risk: RiskRules) -> bool:
    """high_medical_burden for year Y: a watched-for-burden person whose out-of-pocket is too high."""
    covered = bool(p.C & risk.burden_categories) or (risk.watch_general_population and p.enrolled(year))
    if not covered:
        return False
    ytd = p.ytd_patient.get(year, 0)
    if ytd >= risk.oop_threshold:
        return True
    return (p.income_fen is not None and risk.oop_income_fraction_bp is not None and ytd > 0
            and ytd >= mul(p.income_fen, risk.oop_income_fraction_bp))


def person_flag_holds(kind: str, scope: tuple[Any, ...], p: PersonState, clock: datetime,
                      risk: RiskRules) -> bool:
    """Does the person flag ``kind`` with ``scope`` hold now (§5.3 condition column)?"""
    if kind == "high_medical_burden":
        return burden_holds(p, int(scope[0]), risk)
    if kind == "major_disease":
        return f"{scope[0]}:{scope[1]}" in p.major
    if kind == "chronic_unsigned":
        due = chronic_due(p, risk)
        return watched(p, risk) and due is not None and clock >= due and not p.contract_active
    if kind == "followup_overdue":
        due = followup_due(p, risk)
        return watched(p, risk) and p.contract_active and due is not None and clock >= due
    if kind == "uninsured":
        return watched(p, risk) and not p.enrolled(int(scope[0]))
    raise ValueError(f"not a person flag: {kind}")


def facility_flag_holds(kind: str, f: FacilityState, risk: RiskRules) -> bool:
    """facility_gap (空白点): a gap-kind facility with no licensed doctor."""
    if kind != "facility_gap":
        raise ValueError(f"not a facility flag: {kind}")
    return f.kind in risk.gap_facility_kinds and f.doctors == 0


def _opt(t: datetime | None) -> str | None:
    return None if t is None else format_time(t)


def person_evidence(kind: str, scope: tuple[Any, ...], p: PersonState, clock: datetime,
                    risk: RiskRules) -> dict[str, Any]:
    """Amounts, dates, codes and thresholds as they stand now (informative, §5.3)."""
    cats = sorted(p.C)
    if kind == "high_medical_burden":
        year = int(scope[0])
        frac = risk.oop_income_fraction_bp
        return {"year": year, "ytd_patient_fen": p.ytd_patient.get(year, 0),
                "oop_threshold_fen": risk.oop_threshold, "household_income_fen": p.income_fen,
                "oop_income_fraction_bp": frac,
                "income_threshold_fen": (None if frac is None or p.income_fen is None
                                         else mul(p.income_fen, frac)),
                "categories": cats, "enrolled": p.enrolled(year)}
    if kind == "major_disease":
        return {"entry": scope[0], "year": int(scope[1]), "code": p.major.get(f"{scope[0]}:{scope[1]}"),
                "categories": cats}
    if kind == "chronic_unsigned":
        return {"first_chronic_at": _opt(p.first_chronic), "signing_grace_days": risk.signing_grace_days,
                "due": _opt(chronic_due(p, risk)), "contract_active": p.contract_active, "categories": cats}
    if kind == "followup_overdue":
        return {"first_chronic_at": _opt(p.first_chronic),
                "contract_activated_at": _opt(p.contract_activated),
                "last_followup_at": _opt(p.last_followup), "followup_days": risk.followup_days,
                "due": _opt(followup_due(p, risk)), "contract_active": p.contract_active, "categories": cats}
    if kind == "uninsured":
        return {"year": int(scope[0]), "enrolled": p.enrolled(int(scope[0])), "categories": cats}
    raise ValueError(f"not a person flag: {kind}")


def facility_evidence(f: FacilityState, risk: RiskRules) -> dict[str, Any]:
    return {"kind": f.kind, "doctors": f.doctors, "gap_facility_kinds": sorted(risk.gap_facility_kinds)}
