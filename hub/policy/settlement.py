"""一站式结算 — one-stop settlement of a discharge (policy-spec §3), exact in integer fen.

Two layers, so the ``hub settle`` command and the stream processor run the same code:

* :func:`settle_discharge` is the pure arithmetic of §3 steps 1–5: a policy, a person's facts, one
  discharge and the person's year-to-date state in; a :class:`SettlementResult` (with the exact
  year-to-date delta it causes) out. No state, no I/O, no clock.
* :class:`SettlementLedger` is the per-person bookkeeping around it: year-to-date state per
  calendar year, settled discharges by id (idempotence), reversed ids (冲正). It is plain data with
  ``to_dict``/``from_dict``, so a stream processor keeps one ledger per ``person_token`` in a table.

Discharge ids are scoped to their hospital when the caller says which hospital sent them
(``hospital=``): a hospital's discharge id is its own numbering (住院号), so hospital H017 posting
H001's id must neither take that id from H001 (H001's real discharge would be refused as a conflicting
redelivery) nor reverse H001's settlement. ``hub settle`` has no hospital (policy-spec §3 defines one
id space per person) and passes none: unscoped ids behave exactly as §3 says.

Money is ``int`` fen everywhere; ratios are basis points from the policy loader. ``mul`` rounds half
up, which is exact for the non-negative amounts it is applied to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from typing import Any, Literal

from hub.errors import ValidationError
from hub.policy.model import CATEGORIES, LEVELS, CriticalRules, Policy
from hub.timeutil import SHANGHAI, parse_event_time

__all__ = [
    "Discharge",
    "Reversal",
    "PersonFacts",
    "Ytd",
    "SettlementResult",
    "Outcome",
    "SettlementLedger",
    "mul",
    "settlement_event_id",
    "tierpay",
    "settle_discharge",
    "parse_discharge_line",
    "parse_person",
]

BP = 10000


def mul(a: int, b: int) -> int:
    """``mul(a, b) = (a × b + 5000) // 10000``: an amount times basis points, rounded half up (§3)."""
    return (a * b + 5000) // BP


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Discharge:
    """One hospital discharge to settle (a line of ``hub settle``, or a discharge event)."""

    discharge_id: str
    discharged_at: datetime  # timezone-aware, Asia/Shanghai
    level: str  # "L1" | "L2" | "L3"
    in_county: bool
    referred: bool
    total_fen: int
    out_of_policy_fen: int

    @property
    def day(self) -> date:
        """The Shanghai calendar date (§3: selects the policy)."""
        return self.discharged_at.astimezone(SHANGHAI).date()

    @property
    def year(self) -> int:
        """The Shanghai calendar year: selects enrolment and the year-to-date state."""
        return self.day.year

    @property
    def in_policy_fen(self) -> int:
        """``P = T − O``: 政策范围内费用."""
        return self.total_fen - self.out_of_policy_fen

    def to_dict(self) -> dict[str, Any]:
        return {
            "discharge_id": self.discharge_id,
            "discharged_at": self.discharged_at.astimezone(SHANGHAI).isoformat(),
            "level": self.level,
            "in_county": self.in_county,
            "referred": self.referred,
            "total_fen": self.total_fen,
            "out_of_policy_fen": self.out_of_policy_fen,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Discharge:
        return cls(
            discharge_id=d["discharge_id"],
            discharged_at=parse_event_time(d["discharged_at"]),
            level=d["level"],
            in_county=d["in_county"],
            referred=d["referred"],
            total_fen=d["total_fen"],
            out_of_policy_fen=d["out_of_policy_fen"],
        )


@dataclass(frozen=True)
class Reversal:
    """冲正 — undo the settlement of an earlier discharge id."""

    reverses: str


@dataclass(frozen=True)
class PersonFacts:
    """What §3 needs to know about the person: category set ``C`` and the years they are enrolled."""

    categories: frozenset[str] = frozenset()
    enrolled_years: frozenset[int] = frozenset()
    insured_region: str | None = None

    def enrolled(self, year: int) -> bool:
        return year in self.enrolled_years


@dataclass(frozen=True)
class Ytd:
    """Year-to-date state of one person and calendar year (all 0 on 1 January, §3).

    Also used for the *delta* one settlement adds, so a reversal can subtract it exactly.
    """

    basic_paid: int = 0
    critical_base: int = 0
    critical_paid: int = 0
    assistance_base: int = 0
    assistance_paid: int = 0
    top_up_paid: int = 0
    patient_paid: int = 0
    total_cost: int = 0

    def plus(self, other: Ytd) -> Ytd:
        return Ytd(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Ytd)))

    def minus(self, other: Ytd) -> Ytd:
        return Ytd(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Ytd)))

    def negated(self) -> Ytd:
        return Ytd().minus(self)

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(Ytd)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ytd:
        return cls(**{f.name: int(d.get(f.name, 0)) for f in fields(Ytd)})


# ---------------------------------------------------------------- result

FEN_FIELDS = ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen",
              "total_fen", "out_of_policy_fen")


@dataclass(frozen=True)
class SettlementResult:
    """One settlement (or the negated settlement a reversal emits), with its year-to-date delta."""

    discharge_id: str
    year: int
    basic_fen: int
    critical_fen: int
    assistance_fen: int
    top_up_fen: int
    patient_fen: int
    total_fen: int
    out_of_policy_fen: int
    actual_ratio_bp: int
    policy: str  # region code of the policy that settled it
    policy_name: str
    delta: Ytd = field(default_factory=Ytd)
    reverses: str | None = None

    def reversed(self) -> SettlementResult:
        """§3 reversal output: every ``*_fen`` negated, ``actual_ratio_bp`` kept, ``reverses`` set."""
        negated: dict[str, Any] = {name: -getattr(self, name) for name in FEN_FIELDS}
        return replace(self, **negated, delta=self.delta.negated(), reverses=self.discharge_id)

    def to_output(self) -> dict[str, Any]:
        """The JSON object ``hub settle`` prints and the settlement topic carries."""
        out: dict[str, Any] = {"discharge_id": self.discharge_id}
        if self.reverses is not None:
            out["reverses"] = self.reverses
        out["year"] = self.year
        out["policy"] = self.policy
        for name in FEN_FIELDS:
            out[name] = getattr(self, name)
        out["actual_ratio_bp"] = self.actual_ratio_bp
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-safe, for the ledger's table (``to_output`` plus name and delta)."""
        out = self.to_output()
        out["reverses"] = self.reverses
        out["policy_name"] = self.policy_name
        out["delta"] = self.delta.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SettlementResult:
        return cls(
            discharge_id=d["discharge_id"], year=d["year"],
            **{name: d[name] for name in FEN_FIELDS},
            actual_ratio_bp=d["actual_ratio_bp"], policy=d["policy"], policy_name=d.get("policy_name", ""),
            delta=Ytd.from_dict(d.get("delta", {})), reverses=d.get("reverses"),
        )


# ---------------------------------------------------------------- arithmetic


def tierpay(x: int, critical: CriticalRules, bonus_bp: int) -> int:
    """``Σ_i mul(part of x in tier i, min(bp(ratio_i) + bonus, 10000))`` over (up_to_{i−1}, up_to_i]."""
    paid = 0
    lower = 0
    for tier in critical.tiers:
        upper = x if tier.up_to is None else min(x, tier.up_to)
        if upper > lower:
            paid += mul(upper - lower, min(tier.ratio_bp + bonus_bp, BP))
        if tier.up_to is None or x <= tier.up_to:
            break
        lower = tier.up_to
    return paid


def _basic(policy: Policy, c: frozenset[str], d: Discharge, p: int, ytd: Ytd) -> int:
    """§3.1 城乡居民基本医保统筹基金."""
    b = policy.basic
    if b is None:
        return 0
    sb = bool(c & b.special_categories)
    deductible = b.deductible[d.level]
    if sb:
        deductible = mul(deductible, b.special_deductible_factor_bp)
    r = b.ratio_bp[d.level]
    if sb and (b.special_bonus_scope == "all" or d.in_county or d.referred):
        r += b.special_ratio_bonus_bp
    if not d.in_county and not d.referred:
        r += b.out_of_county_unreferred_delta_bp
    r = min(max(r, 0), BP)
    return min(mul(max(p - deductible, 0), r), max(b.annual_cap - ytd.basic_paid, 0))


def _critical(policy: Policy, c: frozenset[str], r1: int, ytd: Ytd) -> int:
    """§3.2 大病保险: tierpay on the cumulative residual, then the difference."""
    cr = policy.critical
    if cr is None:
        return 0
    sc = bool(c & cr.special_categories)
    deductible = mul(cr.deductible, cr.special_deductible_factor_bp) if sc else cr.deductible
    bonus = cr.special_ratio_bonus_bp if sc else 0
    prev = ytd.critical_base
    new = prev + r1
    paid = tierpay(max(new - deductible, 0), cr, bonus) - tierpay(max(prev - deductible, 0), cr, bonus)
    paid = min(paid, r1)
    if not (sc and cr.special_no_cap):
        paid = min(paid, max(cr.annual_cap - ytd.critical_paid, 0))
    return paid


def _assistance(policy: Policy, c: frozenset[str], r2: int, ytd: Ytd) -> int:
    """§3.3 医疗救助, by the highest-priority category that has an entry (``k``)."""
    a = policy.assistance
    if a is None:
        return 0
    k = next((cat for cat in CATEGORIES if cat in c and cat in a.categories), None)
    if k is None:
        return 0
    entry = a.categories[k]
    prev = ytd.assistance_base
    new = prev + r2
    e = max(new - entry.deductible, 0) - max(prev - entry.deductible, 0)
    return min(mul(e, entry.ratio_bp), max(a.annual_cap - ytd.assistance_paid, 0))


def _top_up(policy: Policy, c: frozenset[str], d: Discharge, covered: int) -> int:
    """§3.4 兜底: raise the reimbursed share of the base to the target ratio."""
    t = policy.top_up
    if t is None or not (c & t.categories):
        return 0
    base = d.total_fen if t.base == "total" else d.in_policy_fen
    return min(max(mul(base, t.target_ratio_bp) - covered, 0), max(base - covered, 0))


def settle_discharge(policy: Policy, person: PersonFacts, discharge: Discharge, ytd: Ytd) -> SettlementResult:
    """§3 steps 1–5 for one discharge, given the person's year-to-date state for its year.

    Pure: the caller adds ``result.delta`` to its state (the ledger does that). Basic, critical and
    top-up need enrolment for the discharge's year; medical assistance does not (§3, decided points).
    """
    t = discharge.total_fen
    p = discharge.in_policy_fen
    c = person.categories
    enrolled = person.enrolled(discharge.year)
    basic = _basic(policy, c, discharge, p, ytd) if enrolled else 0
    r1 = p - basic
    critical = _critical(policy, c, r1, ytd) if enrolled else 0
    r2 = r1 - critical
    assistance = _assistance(policy, c, r2, ytd)
    top_up = _top_up(policy, c, discharge, basic + critical + assistance) if enrolled else 0
    patient = t - basic - critical - assistance - top_up
    ratio = ((t - patient) * BP + t // 2) // t if t else 0
    delta = Ytd(
        basic_paid=basic,
        critical_base=r1 if enrolled else 0,
        critical_paid=critical,
        assistance_base=r2,
        assistance_paid=assistance,
        top_up_paid=top_up,
        patient_paid=patient,
        total_cost=t,
    )
    return SettlementResult(
        discharge_id=discharge.discharge_id, year=discharge.year,
        basic_fen=basic, critical_fen=critical, assistance_fen=assistance, top_up_fen=top_up,
        patient_fen=patient, total_fen=t, out_of_policy_fen=discharge.out_of_policy_fen,
        actual_ratio_bp=ratio, policy=policy.region, policy_name=policy.name, delta=delta,
    )


# ---------------------------------------------------------------- ledger

OutcomeKind = Literal["new", "redelivery", "conflicting_redelivery", "no_policy",
                      "unknown_discharge", "already_reversed"]
ERROR_KINDS = frozenset({"no_policy", "unknown_discharge", "already_reversed"})


@dataclass(frozen=True)
class Outcome:
    """What the ledger did with one discharge or reversal.

    ``new``: settled (or reversed) now, ``result`` is to be published, state changed.
    ``redelivery``: the id was settled before; ``result`` is the original, nothing changed.
    ``conflicting_redelivery``: same, but the payload differed: also report it to the dead letters.
    ``no_policy`` / ``unknown_discharge`` / ``already_reversed``: rejected, ``result`` is None,
    nothing changed; ``detail`` says why.
    """

    kind: OutcomeKind
    result: SettlementResult | None = None
    detail: str = ""

    @property
    def error(self) -> str | None:
        """The dead-letter reason when the input was rejected, else None."""
        return self.kind if self.kind in ERROR_KINDS else None

    @property
    def conflict(self) -> bool:
        return self.kind == "conflicting_redelivery"

    @property
    def changed(self) -> bool:
        return self.kind == "new"


@dataclass
class _Entry:
    discharge: Discharge
    result: SettlementResult


def settlement_event_id(person: str, discharge_id: str, *, hospital: str | None = None,
                        reversal: bool = False) -> str:
    """The ``event_id`` of the settlement (or reversal) of a discharge: one id per ledger entry.

    Unscoped (``hospital=None``): ``settlement:{person}:{discharge_id}[:reversal]``, as today. Scoped, the
    hospital is part of it (percent-encoded, so ``:`` and ``/`` in codes cannot make two entries collide):
    two hospitals' discharges with the same id are two settlements and must be two events.
    """
    from urllib.parse import quote

    scope = "" if hospital is None else f"{quote(hospital, safe='')}/"
    return f"settlement:{person}:{scope}{discharge_id}" + (":reversal" if reversal else "")


Scope = tuple[str | None, str]
"""(hospital or None, discharge id): what identifies a ledger entry."""


class SettlementLedger:
    """One person's settlement bookkeeping: year-to-date state, settled ids, reversed ids.

    Every method either changes state and returns ``Outcome("new", …)`` or changes nothing. A
    rejected discharge (no policy) does not use up its id; a settled one — even with ``T = 0``,
    even once reversed — does, and its redeliveries return the original settlement.

    ``hospital`` (keyword, default None) scopes an id to the hospital that sent it: ``(H001, d1)`` and
    ``(H017, d1)`` are different discharges, and a reversal finds only its own hospital's entry
    (another hospital's id is ``unknown_discharge`` — the same answer as an id never settled, so a
    reversal is no oracle for other hospitals' patients). Unscoped entries (``hub settle``) are a
    namespace of their own.
    """

    def __init__(self) -> None:
        self._ytd: dict[int, Ytd] = {}
        self._settled: dict[Scope, _Entry] = {}
        self._reversed: dict[Scope, SettlementResult] = {}

    def ytd(self, year: int) -> Ytd:
        return self._ytd.get(year, Ytd())

    def years(self) -> list[int]:
        return sorted(self._ytd)

    def result(self, discharge_id: str, *, hospital: str | None = None) -> SettlementResult | None:
        entry = self._settled.get((hospital, discharge_id))
        return entry.result if entry else None

    def is_reversed(self, discharge_id: str, *, hospital: str | None = None) -> bool:
        return (hospital, discharge_id) in self._reversed

    def settle(self, policy: Policy | None, person: PersonFacts, discharge: Discharge, *,
               hospital: str | None = None) -> Outcome:
        """Settle once; redeliveries are answered before the policy is looked at.

        ``policy`` is what :func:`hub.policy.loader.select_policy` found for the discharge (None →
        ``no_policy``, the id stays free). ``hospital`` scopes the id (class docstring).
        """
        scope = (hospital, discharge.discharge_id)
        entry = self._settled.get(scope)
        if entry is not None:
            if entry.discharge == discharge:
                return Outcome("redelivery", entry.result)
            return Outcome("conflicting_redelivery", entry.result,
                           f"discharge {discharge.discharge_id!r} was settled before with a "
                           "different payload; the original settlement stands")
        if policy is None:
            return Outcome("no_policy", None, f"no policy covers discharge {discharge.discharge_id!r} "
                                              f"on {discharge.day.isoformat()}")
        result = settle_discharge(policy, person, discharge, self.ytd(discharge.year))
        self._ytd[result.year] = self.ytd(result.year).plus(result.delta)
        self._settled[scope] = _Entry(discharge, result)
        return Outcome("new", result)

    def reverse(self, reversal: Reversal, *, hospital: str | None = None) -> Outcome:
        """冲正: subtract the original's year-to-date delta from the original's year, emit it negated.

        With ``hospital``, only that hospital's own settlement of the id can be reversed.
        """
        rid = reversal.reverses
        scope = (hospital, rid)
        entry = self._settled.get(scope)
        if entry is None:
            of = "" if hospital is None else f" of hospital {hospital!r}"
            return Outcome("unknown_discharge", None, f"no settled discharge {rid!r}{of} to reverse")
        if scope in self._reversed:
            return Outcome("already_reversed", None, f"discharge {rid!r} was already reversed")
        negated = entry.result.reversed()
        self._ytd[negated.year] = self.ytd(negated.year).plus(negated.delta)
        self._reversed[scope] = negated
        return Outcome("new", negated)

    def apply(self, policy: Policy | None, person: PersonFacts, item: Discharge | Reversal, *,
              hospital: str | None = None) -> Outcome:
        """Dispatch a parsed line or event to :meth:`settle` or :meth:`reverse` (``hospital`` scopes the id)."""
        if isinstance(item, Reversal):
            return self.reverse(item, hospital=hospital)
        return self.settle(policy, person, item, hospital=hospital)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot (string keys, ints and strings only) for a changelog-backed table.

        Unscoped entries keep the first format (``settled``/``reversed`` by id, version 1); scoped ones are
        nested by hospital under ``scoped``/``scoped_reversed`` (version 2 only when there are any).
        """
        def entry(e: _Entry) -> dict[str, Any]:
            return {"discharge": e.discharge.to_dict(), "result": e.result.to_dict()}

        out: dict[str, Any] = {
            "version": 1,
            "ytd": {str(y): v.to_dict() for y, v in sorted(self._ytd.items())},
            "settled": {d: entry(e) for (h, d), e in self._settled.items() if h is None},
            "reversed": {d: r.to_dict() for (h, d), r in self._reversed.items() if h is None},
        }
        scoped: dict[str, dict[str, Any]] = {}
        for (h, d), e in self._settled.items():
            if h is not None:
                scoped.setdefault(h, {})[d] = entry(e)
        scoped_reversed: dict[str, dict[str, Any]] = {}
        for (h, d), r in self._reversed.items():
            if h is not None:
                scoped_reversed.setdefault(h, {})[d] = r.to_dict()
        if scoped or scoped_reversed:
            out.update(version=2, scoped=scoped, scoped_reversed=scoped_reversed)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SettlementLedger:
        def entry(e: dict[str, Any]) -> _Entry:
            return _Entry(Discharge.from_dict(e["discharge"]), SettlementResult.from_dict(e["result"]))

        ledger = cls()
        ledger._ytd = {int(y): Ytd.from_dict(v) for y, v in data.get("ytd", {}).items()}
        ledger._settled = {(None, k): entry(e) for k, e in data.get("settled", {}).items()}
        ledger._settled.update({(h, k): entry(e) for h, es in data.get("scoped", {}).items() for k, e in es.items()})
        ledger._reversed = {(None, k): SettlementResult.from_dict(r) for k, r in data.get("reversed", {}).items()}
        ledger._reversed.update({(h, k): SettlementResult.from_dict(r)
                                 for h, rs in data.get("scoped_reversed", {}).items() for k, r in rs.items()})
        return ledger

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SettlementLedger) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------- parsing


def _show(value: Any) -> str:
    """A value as it would appear in the input line (JSON), for error details."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _field(obj: dict[str, Any], name: str) -> Any:
    if name not in obj or obj[name] is None:
        raise ValidationError(name, "missing required field")
    return obj[name]


def _bool(obj: dict[str, Any], name: str) -> bool:
    value = _field(obj, name)
    if not isinstance(value, bool):
        raise ValidationError(name, f"expected true or false, found {_show(value)}", value)
    return value


def _amount(obj: dict[str, Any], name: str) -> int:
    value = _field(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, f"expected an integer amount in fen, found {_show(value)}", value)
    if value < 0:
        raise ValidationError(name, f"negative amount {value}", value)
    return value


def _text(obj: dict[str, Any], name: str) -> str:
    value = _field(obj, name)
    if not isinstance(value, str) or not value:
        raise ValidationError(name, f"expected a non-empty string, found {_show(value)}", value)
    return value


def parse_discharge_line(obj: Any) -> Discharge | Reversal:
    """Validate one ``hub settle`` line (JSON text or already-decoded object).

    ``{"reverses": ID}`` is a reversal; anything else must carry every field of the §3 example
    line. Problems raise ValidationError (reason ``invalid_input``) naming the field.
    """
    if isinstance(obj, str | bytes):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise ValidationError("line", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValidationError("line", f"expected a JSON object, found {type(obj).__name__}")
    if "reverses" in obj:
        return Reversal(_text(obj, "reverses"))
    discharge_id = _text(obj, "discharge_id")
    raw_time = _field(obj, "discharged_at")
    try:
        at = parse_event_time(raw_time)
    except ValueError as exc:
        raise ValidationError("discharged_at", str(exc), raw_time) from None
    level = _field(obj, "level")
    if level not in LEVELS:
        raise ValidationError("level", f"expected one of L1, L2, L3, found {_show(level)}", level)
    in_county = _bool(obj, "in_county")
    referred = _bool(obj, "referred")
    total = _amount(obj, "total_fen")
    oop = _amount(obj, "out_of_policy_fen")
    if oop > total:
        raise ValidationError("out_of_policy_fen", f"out_of_policy_fen {oop} exceeds total_fen {total}", oop)
    return Discharge(discharge_id, at, level, in_county, referred, total, oop)


def parse_person(obj: Any) -> PersonFacts:
    """Validate PERSON.json of ``hub settle``: categories, enrolled_years, optional insured_region."""
    if not isinstance(obj, dict):
        raise ValidationError("person", f"expected a JSON object, found {type(obj).__name__}")
    cats = _field(obj, "categories")
    if not isinstance(cats, list):
        raise ValidationError("categories", f"expected a list of categories, found {_show(cats)}", cats)
    for cat in cats:
        if cat not in CATEGORIES:
            raise ValidationError("categories", f"unknown category {_show(cat)} "
                                                f"(expected one of: {', '.join(CATEGORIES)})", cat)
    years = _field(obj, "enrolled_years")
    if not isinstance(years, list):
        raise ValidationError("enrolled_years", f"expected a list of years, found {_show(years)}", years)
    for y in years:
        if isinstance(y, bool) or not isinstance(y, int):
            raise ValidationError("enrolled_years", f"expected integer years, found {_show(y)}", y)
    region = obj.get("insured_region")
    if region is not None and not (isinstance(region, str) and region.isascii() and region.isdigit()
                                   and len(region) in (2, 4, 6)):
        raise ValidationError("insured_region", f"expected a GB/T 2260 code such as \"530102\", "
                                                f"found {_show(region)}", region)
    return PersonFacts(frozenset(cats), frozenset(years), region)
