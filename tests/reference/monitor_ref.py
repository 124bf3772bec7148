"""Reference transcription of policy-spec §4–§7 (``hub monitor``), written from the spec alone.

This module is deliberately independent of ``hub.policy.monitor``: it reuses only the policy
loader's data model. It favours a literal, readable reading of the spec over speed. Each rule
cites the sentence it transcribes. ``run_reference(policy, lines)`` returns the §7 output dicts.

Readings this module takes where the spec leaves room (see the differential test's report):

* Times are kept exactly (``Fraction`` seconds since the epoch), so fractions finer than a
  microsecond still compare ("Times are compared at full precision"); printing truncates to the
  second ("printed to the second").
* A revitalization status without ``household_income_fen`` makes the income unknown ("income as
  last reported by revitalization (absent = unknown)").
* ``household_income_fen`` on a civil-affairs status is invalid ("optional, revitalization only").
* A redelivered admission or settlement is still a valid input: it moves the clock and makes the
  person seen; it changes no person state and emits nothing.
* A ``reason`` present on a non-rejecting referral update must still be a string (a mistyped
  field); only ``rejected`` needs it non-empty.
* A time whose Shanghai calendar date falls outside the years 0001–9999 is invalid (it cannot be
  printed as ``YYYY-MM-DDTHH:MM:SS+08:00``).
* ``NaN``/``Infinity`` (Python extensions) and strings holding a lone UTF-16 surrogate escape
  (``"\\ud800"``, not Unicode text) make a line "not a JSON object".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from hub.policy.model import Policy

# ----------------------------------------------------------------------------- constants (§1, §5, §6)

CATEGORIES = ("extreme_poverty", "minimum_living", "monitored", "poverty_alleviated")
OWNER = {
    "poverty_alleviated": "revitalization",
    "monitored": "revitalization",
    "minimum_living": "civil_affairs",
    "extreme_poverty": "civil_affairs",
}
SOURCES = ("revitalization", "civil_affairs")
FACILITY_KINDS = ("village_clinic", "township_center", "community_center", "hospital")
UPDATE_STATUSES = ("acknowledged", "accepted", "rejected", "completed")
FINAL = ("completed", "rejected", "withdrawn")
FORWARD = {"open": 0, "acknowledged": 1, "accepted": 2, "completed": 3}
MISMATCHES = ("subsidy_without_category", "declared_category_unknown")
DAY = 86400
INPUT_TYPES = ("status", "enrollment", "admission", "settlement", "diagnosis", "contract", "followup",
               "payment_default", "facility", "referral_update", "tick")

# ----------------------------------------------------------------------------- time (§5.1)

UTC8 = timezone(timedelta(hours=8))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_D = "([0-9]{4})-([0-9]{2})-([0-9]{2})"
_DATE_RE = re.compile(_D)
_TS_RE = re.compile(_D + r"T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(Z|[+-][0-9]{2}:[0-9]{2})?")

Time = Fraction
"""Seconds since 1970-01-01T00:00Z, exact."""


class Invalid(Exception):
    """An input line that yields ``invalid_input`` (§7)."""


def _seconds(dt: datetime) -> int:
    delta = dt - EPOCH
    return delta.days * DAY + delta.seconds


def parse_time(value: Any) -> Time:
    """``YYYY-MM-DD`` (00:00 Shanghai) or ``YYYY-MM-DDTHH:MM[:SS[.fraction]]`` + nothing/``Z``/``±HH:MM``."""
    if not isinstance(value, str):
        raise Invalid("time is not a string")
    m = _DATE_RE.fullmatch(value)
    try:
        if m:
            y, mo, d = (int(g) for g in m.groups())
            return Fraction(_seconds(datetime(y, mo, d, tzinfo=UTC8)))
        m = _TS_RE.fullmatch(value)
        if not m:
            raise Invalid(f"bad time {value!r}")
        y, mo, d, hh, mi = (int(g) for g in m.groups()[:5])
        ss = int(m.group(6) or 0)
        frac = m.group(7)
        off = m.group(8)
        if off is None:
            tz = UTC8
        elif off == "Z":
            tz = UTC
        else:
            oh, om = int(off[1:3]), int(off[4:6])
            if oh > 23 or om > 59:
                raise Invalid(f"bad offset {value!r}")
            sign = 1 if off[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=oh, minutes=om))
        whole = _seconds(datetime(y, mo, d, hh, mi, ss, tzinfo=tz))
        year_of(Fraction(whole))  # outside the years 0001-9999 in Shanghai time: invalid (see module doc)
    except (ValueError, OverflowError) as exc:
        raise Invalid(f"bad time {value!r}: {exc}") from None
    return Fraction(whole) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)


def shanghai(t: Time) -> datetime:
    return EPOCH.astimezone(UTC8) + timedelta(seconds=t.numerator // t.denominator)


def fmt(t: Time) -> str:
    """Printed to the second with ``+08:00`` (truncated)."""
    return shanghai(t).isoformat()


def year_of(t: Time) -> int:
    return shanghai(t).year


def new_year(y: int) -> Time:
    return Fraction(_seconds(datetime(y, 1, 1, tzinfo=UTC8)))


def mul(a: int, b: int) -> int:
    """§3: ``mul(a, b) = (a × b + 5000) // 10000``."""
    return (a * b + 5000) // 10000


def normalise(code: str) -> str:
    """§5.3: upper case, spaces and dots removed."""
    return code.upper().replace(" ", "").replace(".", "")


# ----------------------------------------------------------------------------- input validation (§7)

_ABSENT = object()


def _get(obj: dict[str, Any], key: str, required: bool) -> Any:
    """``null`` in an optional field means absent; a missing required field is invalid."""
    value = obj.get(key)
    if value is None:
        if required:
            raise Invalid(f"missing {key}")
        return _ABSENT
    return value


def _id(obj: dict[str, Any], key: str, required: bool = True) -> Any:
    value = _get(obj, key, required)
    if value is _ABSENT:
        return None
    if not isinstance(value, str) or value == "":
        raise Invalid(f"{key}: not a non-empty string")
    return value


def _int(obj: dict[str, Any], key: str, required: bool = True, minimum: int | None = None) -> Any:
    value = _get(obj, key, required)
    if value is _ABSENT:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{key}: not an integer")
    if minimum is not None and value < minimum:
        raise Invalid(f"{key}: below {minimum}")
    return value


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = _get(obj, key, True)
    if not isinstance(value, bool):
        raise Invalid(f"{key}: not a boolean")
    return value


def _cats(obj: dict[str, Any], key: str, required: bool) -> frozenset[str]:
    value = _get(obj, key, required)
    if value is _ABSENT:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(c, str) and c in CATEGORIES for c in value):
        raise Invalid(f"{key}: not a list of categories")
    return frozenset(value)


def validate(obj: Any) -> dict[str, Any]:
    """The normalised input, or ``Invalid``."""
    if not isinstance(obj, dict):
        raise Invalid("not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in INPUT_TYPES:
        raise Invalid("unknown type")
    out: dict[str, Any] = {"type": kind, "at": parse_time(_get(obj, "at", True))}
    if kind not in ("facility", "referral_update", "tick"):
        out["person"] = _id(obj, "person")
    if kind == "status":
        source = _get(obj, "source", True)
        if source not in SOURCES:
            raise Invalid("unknown source")
        cats = _cats(obj, "categories", True)
        if any(OWNER[c] != source for c in cats):
            raise Invalid("category not owned by source")
        income = _int(obj, "household_income_fen", False, 0)
        if income is not None and source != "revitalization":
            raise Invalid("household_income_fen is revitalization only")
        out.update(source=source, categories=cats, income=income)
    elif kind == "enrollment":
        out.update(year=_int(obj, "year"), enrolled=_bool(obj, "enrolled"))
        sub = _get(obj, "subsidy_category", False)
        if sub is not _ABSENT and sub not in CATEGORIES:
            raise Invalid("unknown subsidy_category")
        out["subsidy"] = None if sub is _ABSENT else sub
    elif kind == "admission":
        out.update(admission_id=_id(obj, "admission_id"), hospital=_id(obj, "hospital"),
                   in_county=_bool(obj, "in_county"), declared=_cats(obj, "declared_categories", False))
    elif kind == "settlement":
        out.update(discharge_id=_id(obj, "discharge_id"), year=_int(obj, "year"),
                   patient_fen=_int(obj, "patient_fen"), reverses=_id(obj, "reverses", False))
        if out["patient_fen"] < 0 and out["reverses"] is None:
            raise Invalid("negative patient_fen without reverses")
    elif kind == "diagnosis":
        out["code"] = _id(obj, "code")
    elif kind == "contract":
        out["active"] = _bool(obj, "active")
    elif kind == "payment_default":
        out.update(hospital=_id(obj, "hospital"), defaulted=_bool(obj, "defaulted"))
    elif kind == "facility":
        out["facility"] = _id(obj, "facility")
        fkind = _get(obj, "kind", True)
        if fkind not in FACILITY_KINDS:
            raise Invalid("unknown kind")
        out.update(kind=fkind, doctors=_int(obj, "doctors", True, 0))
    elif kind == "referral_update":
        out["referral_id"] = _id(obj, "referral_id")
        status = _get(obj, "status", True)
        if status not in UPDATE_STATUSES:
            raise Invalid("unknown status")
        out["status"] = status
        reason = _get(obj, "reason", status == "rejected")
        if reason is not _ABSENT and not isinstance(reason, str):
            raise Invalid("reason: not a string")  # a mistyped optional field (two-way: see module doc)
        if status == "rejected" and reason == "":
            raise Invalid("rejected needs a non-empty reason")
        out["amount_fen"] = _int(obj, "amount_fen", False, 0)
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _lone_surrogate(value: Any) -> bool:
    """``"\\ud800"`` decodes to a Python str that is not Unicode text (two-way: see module doc)."""
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


# ----------------------------------------------------------------------------- state (§5.1)


@dataclass
class Person:
    rev: frozenset[str] = frozenset()
    civ: frozenset[str] = frozenset()
    income: int | None = None
    enrolment: dict[int, tuple[bool, str | None]] = field(default_factory=dict)
    declared: frozenset[str] | None = None  # None: no admission yet
    ytd: dict[int, int] = field(default_factory=dict)
    chronic_at: Time | None = None
    contract_active: bool = False
    contract_at: Time | None = None
    followup_at: Time | None = None
    defaults: set[str] = field(default_factory=set)
    major: set[tuple[str, int]] = field(default_factory=set)  # (entry, year) diagnosed while W

    @property
    def C(self) -> frozenset[str]:  # noqa: N802 - the spec's name
        return self.rev | self.civ

    def enrolled(self, year: int) -> bool:
        return self.enrolment.get(year, (False, None))[0]


@dataclass
class Referral:
    id: str
    flag_id: str
    department: str
    type: str
    due: Time
    state: str = "open"


@dataclass
class Instance:
    id: str
    kind: str
    subject: str
    referrals: list[Referral] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)


@dataclass
class KeyState:
    armed: bool = True
    active: Instance | None = None
    n: int = 0


Key = tuple[str, str, str, str | None]
"""(namespace ``person``/``facility``, kind, subject, scope)."""


def key_text(key: Key) -> str:
    _, kind, subject, scope = key
    return f"{kind}:{subject}" + (f":{scope}" if scope is not None else "")


class Reference:
    """§4–§7 over one policy; ``feed`` one line at a time, as the command reads them."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.risk = policy.risk
        self.clock: Time | None = None
        self.persons: dict[str, Person] = {}
        self.seen: set[str] = set()
        self.facilities: dict[str, tuple[str, int]] = {}
        self.keys: dict[Key, KeyState] = {}
        self.subject_keys: dict[tuple[str, str], list[Key]] = {}
        self.referrals: dict[str, Referral] = {}
        self.escalated: set[str] = set()
        self.flag_of: dict[str, Instance] = {}
        self.admissions: set[str] = set()
        self.settlements: set[tuple[str, str | None]] = set()
        self.lineno = 0

    # ------------------------------------------------------------------ feeding

    def feed(self, raw: str | bytes) -> list[dict[str, Any]]:
        self.lineno += 1
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                return [self._error("invalid_input", "not UTF-8")]
        if raw.strip() == "":
            return []
        try:
            obj = json.loads(raw, parse_constant=_reject_constant)
            if _lone_surrogate(obj):
                raise Invalid("a string is not Unicode text")
            inp = validate(obj)
        except (ValueError, RecursionError, Invalid) as exc:
            return [self._error("invalid_input", str(exc))]
        return self.apply(inp)

    def _error(self, reason: str, detail: str) -> dict[str, Any]:
        return {"type": "error", "at": None if self.clock is None else fmt(self.clock), "line": self.lineno,
                "reason": reason, "detail": detail}

    def apply(self, inp: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        t: Time = inp["at"]
        if self.clock is None:
            self.clock = t
        else:
            self._fire_due(t, out)
            self.clock = max(self.clock, t)  # an input older than the clock is applied at the clock
        now = self.clock
        kind = inp["type"]
        if "person" in inp:
            pid = inp["person"]
            person = self.persons.setdefault(pid, Person())
            self.seen.add(pid)
            candidates = getattr(self, f"_on_{kind}")(pid, person, inp, now, out)
            self._judge(("person", pid), candidates, out)
        elif kind == "facility":
            self.facilities[inp["facility"]] = (inp["kind"], inp["doctors"])
            cands: list[Key] = []
            if self.risk is not None:
                cands.append(("facility", "facility_gap", inp["facility"], None))
            self._judge(("facility", inp["facility"]), cands, out)
        elif kind == "referral_update":
            self._update(inp, out)
        return out

    # ------------------------------------------------------------------ time: due times (§5.1)

    def _due_times(self) -> list[Time]:
        assert self.clock is not None
        dues: list[Time] = []
        if self.risk is not None:
            dues.append(new_year(year_of(self.clock) + 1))
            for p in self.persons.values():
                dues.extend(self._person_dues(p).keys())
        dues.extend(r.due for r in self.referrals.values() if r.state not in FINAL and r.id not in self.escalated)
        return [d for d in dues if d > self.clock]

    def _person_dues(self, p: Person) -> dict[Time, list[str]]:
        assert self.risk is not None
        dues: dict[Time, list[str]] = {}
        if p.chronic_at is not None:
            dues.setdefault(p.chronic_at + self.risk.signing_grace_days * DAY, []).append("chronic_unsigned")
            s = max(x for x in (p.chronic_at, p.contract_at, p.followup_at) if x is not None)
            dues.setdefault(s + self.risk.followup_days * DAY, []).append("followup_overdue")
        return dues

    def _fire_due(self, t: Time, out: list[dict[str, Any]]) -> None:
        """Everything due after the clock and at or before ``t`` fires, in time order."""
        while True:
            pending = [d for d in self._due_times() if d <= t]
            if not pending:
                return
            due = min(pending)
            self.clock = due
            for r in list(self.referrals.values()):
                if r.due == due and r.state not in FINAL and r.id not in self.escalated:
                    self.escalated.add(r.id)
                    out.append({"type": "escalation", "at": fmt(due), "referral_id": r.id,
                                "department": r.department, "due": fmt(r.due)})
            if self.risk is None:
                continue
            sweep = due == new_year(year_of(due))
            for pid in sorted(self.persons):
                p = self.persons[pid]
                kinds = list(self._person_dues(p).get(due, []))
                if sweep and pid in self.seen:
                    kinds.append("uninsured")
                if not kinds:
                    continue
                cands: list[Key] = []
                for k in kinds:
                    scope = str(year_of(due)) if k == "uninsured" else None
                    cands.append(("person", k, pid, scope))
                self._judge(("person", pid), cands, out)

    # ------------------------------------------------------------------ inputs about a person

    def _flag(self, kind: str, pid: str, scope: str | None = None) -> list[Key]:
        return [] if self.risk is None else [("person", kind, pid, scope)]

    def _on_status(self, pid: str, p: Person, inp: dict[str, Any], now: Time, out: list[Any]) -> list[Key]:
        if inp["source"] == "revitalization":
            p.rev = inp["categories"]
            p.income = inp["income"]
        else:
            p.civ = inp["categories"]
        y = str(year_of(now))
        cands = (self._flag("high_medical_burden", pid, y) + self._flag("chronic_unsigned", pid)
                 + self._flag("followup_overdue", pid) + self._flag("uninsured", pid, y))
        cands.append(("person", "subsidy_without_category", pid, y))
        for x in sorted(p.declared or ()):
            cands.append(("person", "declared_category_unknown", pid, x))
        return cands

    def _on_enrollment(self, pid: str, p: Person, inp: dict[str, Any], now: Time, out: list[Any]) -> list[Key]:
        p.enrolment[inp["year"]] = (inp["enrolled"], inp["subsidy"])
        y = str(inp["year"])
        return (self._flag("high_medical_burden", pid, y) + self._flag("uninsured", pid, y)
                + [("person", "subsidy_without_category", pid, y)])

    def _on_admission(self, pid: str, p: Person, inp: dict[str, Any], now: Time, out: list[Any]) -> list[Key]:
        if inp["admission_id"] in self.admissions:
            return []  # a redelivered admission id is ignored: no decision, no change
        self.admissions.add(inp["admission_id"])
        out.append({"type": "deposit_decision", "at": fmt(now), "admission_id": inp["admission_id"],
                    "person": pid, **self._deposit(p, inp, now)})
        p.declared = inp["declared"]
        return [("person", "declared_category_unknown", pid, x) for x in sorted(inp["declared"])]

    def _deposit(self, p: Person, inp: dict[str, Any], now: Time) -> dict[str, Any]:
        """§4, reasons checked in order."""
        rules = self.policy.deposit_waiver
        if rules is None:
            reason = "not_offered"
        elif not p.enrolled(year_of(now)):
            reason = "not_enrolled"
        elif not (p.C & rules.categories):
            reason = "category_not_eligible"
        elif not (inp["hospital"] in rules.designated_hospitals if rules.designated_hospitals
                  else inp["in_county"]):
            reason = "hospital_not_designated"
        elif p.defaults:
            reason = "blacklisted"
        else:
            return {"waived": True, "reason": "waived"}
        return {"waived": False, "reason": reason}

    def _on_settlement(self, pid: str, p: Person, inp: dict[str, Any], now: Time, out: list[Any]) -> list[Key]:
        sid = (inp["discharge_id"], inp["reverses"])
        if sid in self.settlements:
            return []  # a redelivery changes nothing
        self.settlements.add(sid)
        p.ytd[inp["year"]] = p.ytd.get(inp["year"], 0) + inp["patient_fen"]
        return self._flag("high_medical_burden", pid, str(inp["year"]))

    def _on_diagnosis(self, pid: str, p: Person, inp: dict[str, Any], now: Time, out: list[Any]) -> list[Key]:
        if self.risk is None:
            return []
        code = normalise(inp["code"])
        cands: list[Key] = []
        if p.chronic_at is None and any(code.startswith(c) for c in self.risk.chronic_codes):
            p.chronic_at = now
        matches = [e for e in self.risk.major_disease_codes if code.startswith(e)]
        if matches:
            entry = max(matches, key=len)
            scope = f"{entry}:{year_of(now)}"
            if self._watched(p):
                p.major.add((entry, year_of(now)))
            cands.append(("person", "major_disease", pid, scope))
        return cands + self._flag("chronic_unsigned", pid) + self._flag("followup_overdue", pid)

    def _on_contract(self, pid: str, p: Person, inp: dict[str, Any], now: Time, out: list[Any]) -> list[Key]:
        if inp["active"] and not p.contract_active:
            p.contract_at = now
        p.contract_active = inp["active"]
        return self._flag("chronic_unsigned", pid) + self._flag("followup_overdue", pid)

    def _on_followup(self, pid: str, p: Person, inp: dict[str, Any], now: Time, out: list[Any]) -> list[Key]:
        p.followup_at = now
        return self._flag("followup_overdue", pid)

    def _on_payment_default(self, pid: str, p: Person, inp: dict[str, Any], now: Time,
                            out: list[Any]) -> list[Key]:
        if inp["defaulted"]:
            p.defaults.add(inp["hospital"])
        else:
            p.defaults.discard(inp["hospital"])
        return []

    # ------------------------------------------------------------------ conditions (§5.3, §6.2)

    def _watched(self, p: Person) -> bool:
        assert self.risk is not None
        return bool(p.C & self.risk.watched_categories)

    def _holds(self, key: Key) -> bool:
        ns, kind, subject, scope = key
        assert self.clock is not None
        if ns == "facility":
            assert self.risk is not None
            fac = self.facilities.get(subject)
            return fac is not None and fac[0] in self.risk.gap_facility_kinds and fac[1] == 0
        p = self.persons[subject]
        if kind == "subsidy_without_category":
            assert scope is not None
            enrolled, x = p.enrolment.get(int(scope), (False, None))
            return enrolled and x is not None and x not in p.C
        if kind == "declared_category_unknown":
            return p.declared is not None and scope in p.declared and scope not in p.C
        risk = self.risk
        assert risk is not None
        if kind == "high_medical_burden":
            assert scope is not None
            y = int(scope)
            ytd = p.ytd.get(y, 0)
            watched = bool(p.C & risk.burden_categories) or (risk.watch_general_population and p.enrolled(y))
            frac = risk.oop_income_fraction_bp
            over = ytd >= risk.oop_threshold or (
                p.income is not None and frac is not None and ytd > 0 and ytd >= mul(p.income, frac))
            return watched and over
        if kind == "major_disease":
            assert scope is not None
            entry, y = scope.rsplit(":", 1)
            return (entry, int(y)) in p.major
        if kind == "chronic_unsigned":
            return (self._watched(p) and p.chronic_at is not None
                    and self.clock >= p.chronic_at + risk.signing_grace_days * DAY and not p.contract_active)
        if kind == "followup_overdue":
            if not (self._watched(p) and p.chronic_at is not None and p.contract_active):
                return False
            s = max(x for x in (p.chronic_at, p.contract_at, p.followup_at) if x is not None)
            return self.clock >= s + risk.followup_days * DAY
        if kind == "uninsured":
            assert scope is not None
            return self._watched(p) and not p.enrolled(int(scope))
        raise AssertionError(kind)

    # ------------------------------------------------------------------ rule instances (§5.2)

    def _judge(self, subject: tuple[str, str], candidates: list[Key], out: list[dict[str, Any]]) -> None:
        for key in self.subject_keys.get(subject, []):  # rule 1
            state = self.keys[key]
            if not self._holds(key):
                if state.active is not None:
                    self._clear(state.active, out)
                    state.active = None
                state.armed = True
        for key in candidates:  # rule 2
            state = self.keys.get(key)
            if state is None:
                state = self.keys[key] = KeyState()
                self.subject_keys.setdefault((key[0], key[2]), []).append(key)
            if state.armed and self._holds(key):
                state.armed = False
                state.n += 1
                state.active = self._raise(key, f"{key_text(key)}#{state.n}", out)

    def _raise(self, key: Key, iid: str, out: list[dict[str, Any]]) -> Instance:
        _, kind, subject, scope = key
        assert self.clock is not None
        now = self.clock
        at = fmt(now)
        inst = Instance(iid, kind, subject)
        if kind in MISMATCHES:
            p = self.persons[subject]
            x = p.enrolment[int(scope)][1] if kind == "subsidy_without_category" else scope  # type: ignore[arg-type]
            assert x is not None
            inst.departments = ["insurance" if kind == "subsidy_without_category" else "health", OWNER[x]]
            out.append({"type": "mismatch", "at": at, "mismatch_id": iid, "kind": kind, "person": subject,
                        "departments": inst.departments, "state": "open"})
            return inst
        out.append(self._flag_line(inst, "raised"))
        for route in self.policy.routes:
            if route.flag != kind:
                continue
            ref = Referral(f"{iid}/{route.department}/{route.type}", iid, route.department, route.type,
                           now + route.sla_days * DAY)
            inst.referrals.append(ref)
            self.referrals[ref.id] = ref
            self.flag_of[ref.id] = inst
            out.append(self._referral_line(ref))
        if inst.referrals:
            out.append(self._flag_line(inst, "referred"))
        return inst

    def _clear(self, inst: Instance, out: list[dict[str, Any]]) -> None:
        if inst.kind in MISMATCHES:
            out.append({"type": "mismatch", "at": fmt(self._now()), "mismatch_id": inst.id, "kind": inst.kind,
                        "person": inst.subject, "departments": inst.departments, "state": "cleared"})
            return
        out.append(self._flag_line(inst, "cleared"))
        for ref in inst.referrals:
            if ref.state not in FINAL:
                ref.state = "withdrawn"
                out.append(self._referral_line(ref))

    def _now(self) -> Time:
        assert self.clock is not None
        return self.clock

    def _flag_line(self, inst: Instance, state: str) -> dict[str, Any]:
        return {"type": "flag", "at": fmt(self._now()), "flag_id": inst.id, "flag": inst.kind,
                "subject": inst.subject, "state": state, "evidence": {"clock": fmt(self._now())}}

    def _referral_line(self, ref: Referral) -> dict[str, Any]:
        return {"type": "referral", "at": fmt(self._now()), "referral_id": ref.id, "flag_id": ref.flag_id,
                "department": ref.department, "referral_type": ref.type, "state": ref.state, "due": fmt(ref.due)}

    # ------------------------------------------------------------------ referral updates (§6.1)

    def _update(self, inp: dict[str, Any], out: list[dict[str, Any]]) -> None:
        ref = self.referrals.get(inp["referral_id"])
        if ref is None:
            out.append(self._error("unknown_referral", inp["referral_id"]))
            return
        status = inp["status"]
        if status == ref.state:
            return  # repeats the current state: nothing
        if ref.state in FINAL or (status != "rejected" and FORWARD[status] < FORWARD[ref.state]):
            out.append(self._error("invalid_transition", f"{ref.state} -> {status}"))
            return
        ref.state = status
        out.append(self._referral_line(ref))
        inst = self.flag_of[ref.id]
        if status in ("completed", "rejected") and all(r.state in ("completed", "rejected") for r in inst.referrals):
            out.append(self._flag_line(inst, "resolved"))
            ks = self.keys[self._key_of(inst)]
            ks.active = None  # ended; not armed until its condition lapses

    def _key_of(self, inst: Instance) -> Key:
        base = inst.id.rsplit("#", 1)[0]
        for key, state in self.keys.items():
            if state.active is inst and key_text(key) == base:
                return key
        raise AssertionError(inst.id)


def run_reference(policy: Policy, lines: list[str] | list[bytes] | list[str | bytes]) -> list[dict[str, Any]]:
    """All §7 output lines for ``lines`` (line numbers are 1-based positions in ``lines``)."""
    ref = Reference(policy)
    out: list[dict[str, Any]] = []
    for raw in lines:
        out.extend(ref.feed(raw))
    return out


__all__ = ["Reference", "run_reference", "parse_time", "fmt", "year_of", "new_year", "Invalid"]
