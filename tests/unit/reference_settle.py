"""An independent, literal transcription of policy-spec §2 (selection) and §3 (settlement) for tests.

This module deliberately shares no code with ``hub.policy``: it reads the policy TOML itself (it
assumes the file is valid — load errors are tested separately), converts ratios with the spec's
``bp(x) = round(x × 10000)`` and does every amount in integer fen, line by line as the spec reads.
``reference_settle`` returns the list of output objects ``hub settle`` must print, one per
non-blank input line. Fields the spec does not fix (``detail``) are present but not meaningful.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

LEVELS = ("L1", "L2", "L3")
PRIORITY = ("extreme_poverty", "minimum_living", "monitored", "poverty_alleviated")
"""§1: extreme_poverty > minimum_living > monitored > poverty_alleviated."""

FEN_FIELDS = ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen")


def bp(x: float | int) -> int:
    """§3: ``bp(x) = round(x × 10000)``."""
    return round(x * 10000)


def mul(a: int, b: int) -> int:
    """§3: ``mul(a, b) = (a × b + 5000) // 10000`` for a ≥ 0 (half-up)."""
    assert a >= 0, a
    return (a * b + 5000) // 10000


def strip_zero_pairs(code: str) -> str:
    """§2: trailing zero pairs stripped: ``530000``→``53``, ``530100``→``5301``, ``530102``→``530102``."""
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


# ------------------------------------------------------------------ policy (valid files only)


@dataclass
class RefPolicy:
    region: str
    effective_from: date
    effective_to: date | None
    basic: dict[str, Any] | None
    critical: dict[str, Any] | None
    assistance: dict[str, Any] | None
    top_up: dict[str, Any] | None


def read_policy(text: str) -> RefPolicy:
    """Section contents with §2's defaults applied and every ratio already in basis points."""
    data = tomllib.loads(text)
    head = data["policy"]
    basic = critical = assistance = top_up = None
    if "basic" in data:
        b = data["basic"]
        basic = {
            "deductible": {lv: b["deductible"][lv] for lv in LEVELS},
            "ratio": {lv: bp(b["ratio"][lv]) for lv in LEVELS},
            "delta": bp(b.get("out_of_county_unreferred_delta", 0)),
            "annual_cap": b["annual_cap"],
            "special_categories": set(b.get("special_categories", [])),
            "special_ratio_bonus": bp(b.get("special_ratio_bonus", 0)),
            "special_bonus_scope": b.get("special_bonus_scope", "all"),
            "special_deductible_factor": bp(b.get("special_deductible_factor", 1)),
        }
    if "critical" in data:
        c = data["critical"]
        critical = {
            "deductible": c["deductible"],
            "tiers": [(t.get("up_to"), bp(t["ratio"])) for t in c["tiers"]],
            "annual_cap": c["annual_cap"],
            "special_categories": set(c.get("special_categories", [])),
            "special_deductible_factor": bp(c.get("special_deductible_factor", 1)),
            "special_ratio_bonus": bp(c.get("special_ratio_bonus", 0)),
            "special_no_cap": c.get("special_no_cap", False),
        }
    if "assistance" in data:
        a = data["assistance"]
        assistance = {
            "annual_cap": a["annual_cap"],
            "categories": {k: (bp(v["ratio"]), v["deductible"]) for k, v in a.get("categories", {}).items()},
        }
    if "top_up" in data:
        t = data["top_up"]
        top_up = {
            "target_ratio": bp(t["target_ratio"]),
            "categories": set(t["categories"]),
            "base": t.get("base", "total"),
        }
    return RefPolicy(head["region"], head["effective_from"], head.get("effective_to"),
                     basic, critical, assistance, top_up)


def policy_applies(policy: RefPolicy, insured_region: str | None, day: date) -> bool:
    """§2 selection with one candidate file: region prefix (when the person has one) and both ends inclusive."""
    if day < policy.effective_from:
        return False
    if policy.effective_to is not None and day > policy.effective_to:
        return False
    if insured_region is None:
        return True
    return strip_zero_pairs(insured_region).startswith(strip_zero_pairs(policy.region))


# ------------------------------------------------------------------ time


_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?", re.ASCII
)


def shanghai_day(text: Any) -> date | None:
    """§3 decided point: a date is the Shanghai date; a timestamp with Z/offset is converted to UTC+8.

    Returns None for anything that is not such a string. The fraction of a second can never move
    the calendar date (date boundaries fall on whole seconds), so only its syntax is checked.
    """
    if not isinstance(text, str):
        return None
    m = _TS.fullmatch(text)
    if m is None:
        return None
    y, mo, d, hh, mi, ss, _frac, off = m.groups()
    try:
        day = date(int(y), int(mo), int(d))
    except ValueError:
        return None
    if hh is None:
        return day
    h, mnt, s = int(hh), int(mi), int(ss or 0)
    if h > 23 or mnt > 59 or s > 59:
        return None
    if off is None:
        return day
    if off == "Z":
        offset_min = 0
    else:
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        offset_min = (oh * 60 + om) * (1 if off[0] == "+" else -1)
    local_minutes = h * 60 + mnt
    shanghai_minutes = local_minutes - offset_min + 8 * 60
    shift_days = shanghai_minutes // (24 * 60)
    try:
        return day + timedelta(days=shift_days)
    except OverflowError:
        return None


# ------------------------------------------------------------------ settlement


YTD_KEYS = ("basic_paid", "critical_base", "critical_paid", "assistance_base", "assistance_paid",
            "top_up_paid", "patient_paid", "total_cost")


@dataclass
class Settled:
    year: int
    output: dict[str, Any]
    deltas: dict[str, int]
    reversed: bool = False


@dataclass
class RefState:
    ytd: dict[int, dict[str, int]] = field(default_factory=dict)
    settled: dict[str, Settled] = field(default_factory=dict)

    def year(self, y: int) -> dict[str, int]:
        return self.ytd.setdefault(y, dict.fromkeys(YTD_KEYS, 0))


def tierpay(x: int, tiers: list[tuple[int | None, int]], bonus: int) -> int:
    """Σ_i mul(part of x in tier i, min(bp(ratio_i) + bonus, 10000)); tier i covers (up_to_{i−1}, up_to_i]."""
    total = 0
    lower = 0
    for up_to, ratio in tiers:
        upper = x if up_to is None else min(x, up_to)
        part = max(upper - lower, 0)
        total += mul(part, min(ratio + bonus, 10000))
        if up_to is None:
            break
        lower = up_to
    return total


def compute(policy: RefPolicy, cats: set[str], enrolled: bool, ytd: dict[str, int],
            level: str, in_county: bool, referred: bool, total: int, out_of_policy: int) -> dict[str, int]:
    """§3 steps 1–5 for one discharge; returns the five parts, the ratio and the eight ytd deltas."""
    T = total
    P = total - out_of_policy
    # 1. basic
    basic = 0
    if enrolled and policy.basic is not None:
        b = policy.basic
        sb = bool(cats & b["special_categories"])
        D = b["deductible"][level]
        if sb:
            D = mul(D, b["special_deductible_factor"])
        r = b["ratio"][level]
        if sb and (b["special_bonus_scope"] == "all" or in_county or referred):
            r += b["special_ratio_bonus"]
        if not in_county and not referred:
            r += b["delta"]
        r = min(max(r, 0), 10000)
        basic = min(mul(max(P - D, 0), r), max(b["annual_cap"] - ytd["basic_paid"], 0))
    # 2. critical
    R1 = P - basic
    critical = 0
    if enrolled and policy.critical is not None:
        c = policy.critical
        sc = bool(cats & c["special_categories"])
        Dc = c["deductible"]
        if sc:
            Dc = mul(Dc, c["special_deductible_factor"])
        bonus = c["special_ratio_bonus"] if sc else 0
        prev = ytd["critical_base"]
        new = prev + R1
        critical = tierpay(max(new - Dc, 0), c["tiers"], bonus) - tierpay(max(prev - Dc, 0), c["tiers"], bonus)
        critical = min(critical, R1)
        if not (sc and c["special_no_cap"]):
            critical = min(critical, max(c["annual_cap"] - ytd["critical_paid"], 0))
    # 3. assistance
    R2 = R1 - critical
    assistance = 0
    if policy.assistance is not None:
        a = policy.assistance
        k = next((cat for cat in PRIORITY if cat in cats and cat in a["categories"]), None)
        if k is not None:
            ratio, Da = a["categories"][k]
            prev_a = ytd["assistance_base"]
            new_a = prev_a + R2
            e = max(new_a - Da, 0) - max(prev_a - Da, 0)
            assistance = min(mul(e, ratio), max(a["annual_cap"] - ytd["assistance_paid"], 0))
    # 4. top-up
    top_up = 0
    if enrolled and policy.top_up is not None and cats & policy.top_up["categories"]:
        t = policy.top_up
        B = T if t["base"] == "total" else P
        covered = basic + critical + assistance
        top_up = min(max(mul(B, t["target_ratio"]) - covered, 0), max(B - covered, 0))
    # 5. patient
    patient = T - basic - critical - assistance - top_up
    ratio_bp = 0 if T == 0 else ((T - patient) * 10000 + T // 2) // T
    return {
        "basic": basic, "critical": critical, "assistance": assistance, "top_up": top_up,
        "patient": patient, "actual_ratio_bp": ratio_bp,
        "d_basic_paid": basic, "d_critical_base": R1 if enrolled else 0, "d_critical_paid": critical,
        "d_assistance_base": R2, "d_assistance_paid": assistance, "d_top_up_paid": top_up,
        "d_patient_paid": patient, "d_total_cost": T,
    }


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _discharge_problem(obj: dict[str, Any]) -> str | None:
    """Every field of the example line is required, with its type (§3 reference command)."""
    if not isinstance(obj.get("discharge_id"), str):
        return "discharge_id"
    if shanghai_day(obj.get("discharged_at")) is None:
        return "discharged_at"
    if obj.get("level") not in LEVELS:
        return "level"
    for key in ("in_county", "referred"):
        if not isinstance(obj.get(key), bool):
            return key
    for key in ("total_fen", "out_of_policy_fen"):
        if not _is_int(obj.get(key)) or obj[key] < 0:
            return key
    if obj["out_of_policy_fen"] > obj["total_fen"]:
        return "out_of_policy_fen > total_fen"
    return None


def reference_settle(policy_text: str, person: dict[str, Any], lines: list[str]) -> list[dict[str, Any]]:
    """The output objects of ``hub settle`` for these input lines (blank lines skipped)."""
    policy = read_policy(policy_text)
    cats = set(person.get("categories", []))
    enrolled_years = set(person.get("enrolled_years", []))
    region = person.get("insured_region")
    state = RefState()
    out: list[dict[str, Any]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            out.append({"discharge_id": None, "error": "invalid_input", "detail": "not JSON"})
            continue
        if not isinstance(obj, dict):
            out.append({"discharge_id": None, "error": "invalid_input", "detail": "not an object"})
            continue
        if "reverses" in obj:
            out.append(_reverse(state, obj["reverses"]))
            continue
        problem = _discharge_problem(obj)
        if problem is not None:
            did = obj.get("discharge_id")
            out.append({"discharge_id": did if isinstance(did, str) else None,
                        "error": "invalid_input", "detail": problem})
            continue
        did = obj["discharge_id"]
        if did in state.settled:  # idempotence: the original settlement, no state change
            out.append(dict(state.settled[did].output))
            continue
        day = shanghai_day(obj["discharged_at"])
        assert day is not None
        if not policy_applies(policy, region, day):
            out.append({"discharge_id": did, "error": "no_policy", "detail": str(day)})
            continue
        ytd = state.year(day.year)
        res = compute(policy, cats, day.year in enrolled_years, ytd, obj["level"], obj["in_county"],
                      obj["referred"], obj["total_fen"], obj["out_of_policy_fen"])
        deltas = {k: res["d_" + k] for k in YTD_KEYS}
        for k in YTD_KEYS:
            ytd[k] += deltas[k]
        output = {"discharge_id": did, "basic_fen": res["basic"], "critical_fen": res["critical"],
                  "assistance_fen": res["assistance"], "top_up_fen": res["top_up"],
                  "patient_fen": res["patient"], "actual_ratio_bp": res["actual_ratio_bp"]}
        state.settled[did] = Settled(day.year, output, deltas)
        out.append(dict(output))
    return out


def _reverse(state: RefState, target: Any) -> dict[str, Any]:
    if not isinstance(target, str):
        # unspecified what to echo for a mistyped id; like discharge_id, null
        return {"reverses": None, "error": "invalid_input", "detail": "reverses must be a string"}
    orig = state.settled.get(target)
    if orig is None:
        return {"reverses": target, "error": "unknown_discharge", "detail": target}
    if orig.reversed:
        return {"reverses": target, "error": "already_reversed", "detail": target}
    ytd = state.year(orig.year)
    for k in YTD_KEYS:
        ytd[k] -= orig.deltas[k]
    orig.reversed = True
    result: dict[str, Any] = {"discharge_id": target, "reverses": target}
    for k in FEN_FIELDS:
        result[k] = -orig.output[k]
    result["actual_ratio_bp"] = orig.output["actual_ratio_bp"]
    return result
