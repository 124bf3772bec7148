"""Monitoring inputs (policy-spec §7) and their validation.

Why validation lives apart from the engine: an invalid input "changes nothing, not even the clock"
(§7), so it must be rejected *before* the engine sees it. ``parse_input`` turns one decoded JSON
object into a frozen input dataclass or raises ``hub.errors.ValidationError`` (reason
``invalid_input``) naming the field. The same function serves ``hub monitor`` and the stream
processors, so both refuse exactly the same records.

Rules applied (§7): unknown extra fields are ignored; ``null`` in an optional field means absent;
ids and codes are non-empty strings; integers are JSON integers (not ``5.0``, not booleans); an
unknown category, facility kind or status is invalid; a status carrying a category its source does
not own is invalid; ``household_income_fen`` is accepted only from ``revitalization``;
``patient_fen`` < 0 only with ``reverses``; ``rejected`` needs a non-empty ``reason``;
``amount_fen`` ≥ 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.errors import ValidationError
from hub.policy.model import CATEGORIES, CATEGORY_OWNER, FACILITY_KINDS
from hub.timeutil import parse_event_time

SOURCES = ("revitalization", "civil_affairs")
UPDATE_STATUSES = ("acknowledged", "accepted", "rejected", "completed")
"""Statuses a department may send; ``open`` and ``withdrawn`` are the hub's own (§6.1)."""


@dataclass(frozen=True)
class StatusInput:
    """脱贫/监测 or 低保/特困 roster status: replaces the source's category set whole (§5.1)."""

    at: datetime
    person: str
    source: str
    categories: frozenset[str]
    household_income_fen: int | None = None


@dataclass(frozen=True)
class EnrollmentInput:
    """参保 record for one calendar year; the latest record for that year wins."""

    at: datetime
    person: str
    year: int
    enrolled: bool
    subsidy_category: str | None = None


@dataclass(frozen=True)
class AdmissionInput:
    """An admission: gets a deposit decision (§4) and replaces the declared categories (§6.2)."""

    at: datetime
    person: str
    admission_id: str
    hospital: str
    in_county: bool
    declared_categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class SettlementInput:
    """A §3 settlement output feeding ``ytd_patient`` (a reversal's ``patient_fen`` is negative)."""

    at: datetime
    person: str
    discharge_id: str
    year: int
    patient_fen: int
    reverses: str | None = None


@dataclass(frozen=True)
class DiagnosisInput:
    at: datetime
    person: str
    code: str


@dataclass(frozen=True)
class ContractInput:
    """Family-doctor contract (家庭医生签约) now active or not."""

    at: datetime
    person: str
    active: bool


@dataclass(frozen=True)
class FollowupInput:
    at: datetime
    person: str


@dataclass(frozen=True)
class PaymentDefaultInput:
    """A hospital records (``defaulted``) or clears a payment default: the §4 blacklist."""

    at: datetime
    person: str
    hospital: str
    defaulted: bool


@dataclass(frozen=True)
class FacilityInput:
    """A facility's kind and licensed doctors; facilities are their own subject namespace."""

    at: datetime
    facility: str
    kind: str
    doctors: int


@dataclass(frozen=True)
class ReferralUpdateInput:
    """A department's answer to a referral (§6.1); about no subject, routed by its id."""

    at: datetime
    referral_id: str
    status: str
    reason: str | None = None
    amount_fen: int | None = None
    department: str | None = None
    """The department that sent it (the stream's ``ReferralUpdated.department``, set by the edge from the
    sender's credential); None in ``hub monitor`` lines (§7), which name no sender."""


@dataclass(frozen=True)
class TickInput:
    """Only moves the clock (so due times fire on a quiet day)."""

    at: datetime


PersonInput = (
    StatusInput | EnrollmentInput | AdmissionInput | SettlementInput | DiagnosisInput
    | ContractInput | FollowupInput | PaymentDefaultInput
)
MonitorInput = PersonInput | FacilityInput | ReferralUpdateInput | TickInput


# -- field readers: each raises ValidationError naming the field ------------------------------

_MISSING = object()


def _get(obj: Mapping[str, Any], name: str, optional: bool = False) -> Any:
    value = obj.get(name, _MISSING)
    if value is _MISSING or value is None:
        if optional:
            return None
        raise ValidationError(name, "required field is missing" if value is _MISSING else "must not be null")
    return value


def _text(obj: Mapping[str, Any], name: str, optional: bool = False) -> str | None:
    value = _get(obj, name, optional)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(name, "expected a non-empty string", value)
    return value


def _req_text(obj: Mapping[str, Any], name: str) -> str:
    value = _text(obj, name)
    assert value is not None
    return value


def _int(obj: Mapping[str, Any], name: str, optional: bool = False, minimum: int | None = None) -> int | None:
    value = _get(obj, name, optional)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, "expected a JSON integer", value)
    if minimum is not None and value < minimum:
        raise ValidationError(name, f"expected an integer ≥ {minimum}", value)
    return value


def _req_int(obj: Mapping[str, Any], name: str, minimum: int | None = None) -> int:
    value = _int(obj, name, minimum=minimum)
    assert value is not None
    return value


def _bool(obj: Mapping[str, Any], name: str) -> bool:
    value = _get(obj, name)
    if not isinstance(value, bool):
        raise ValidationError(name, "expected true or false", value)
    return value


def _category(value: Any, name: str) -> str:
    if not isinstance(value, str) or value not in CATEGORIES:
        raise ValidationError(name, f"unknown category (expected one of {', '.join(CATEGORIES)})", value)
    return value


def _categories(obj: Mapping[str, Any], name: str, optional: bool = False) -> tuple[str, ...]:
    value = _get(obj, name, optional)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationError(name, "expected a list of categories", value)
    return tuple(_category(item, name) for item in value)


# -- one parser per type ------------------------------------------------------------------------


def _status(obj: Mapping[str, Any], at: datetime) -> StatusInput:
    person = _req_text(obj, "person")
    source = _get(obj, "source")
    if source not in SOURCES:
        raise ValidationError("source", f"expected one of {', '.join(SOURCES)}", source)
    cats = _categories(obj, "categories")
    for cat in cats:
        if CATEGORY_OWNER[cat] != source:
            raise ValidationError("categories", f"{cat} belongs to {CATEGORY_OWNER[cat]}, not {source}", cat)
    income = _int(obj, "household_income_fen", optional=True, minimum=0)
    if income is not None and source != "revitalization":
        raise ValidationError("household_income_fen", "only revitalization reports household income", income)
    return StatusInput(at, person, source, frozenset(cats), income)


def _enrollment(obj: Mapping[str, Any], at: datetime) -> EnrollmentInput:
    person = _req_text(obj, "person")
    year = _req_int(obj, "year")
    enrolled = _bool(obj, "enrolled")
    subsidy = obj.get("subsidy_category")
    return EnrollmentInput(at, person, year, enrolled,
                           None if subsidy is None else _category(subsidy, "subsidy_category"))


def _admission(obj: Mapping[str, Any], at: datetime) -> AdmissionInput:
    return AdmissionInput(
        at,
        _req_text(obj, "person"),
        _req_text(obj, "admission_id"),
        _req_text(obj, "hospital"),
        _bool(obj, "in_county"),
        _categories(obj, "declared_categories", optional=True),
    )


def _settlement(obj: Mapping[str, Any], at: datetime) -> SettlementInput:
    person = _req_text(obj, "person")
    discharge_id = _req_text(obj, "discharge_id")
    year = _req_int(obj, "year")
    patient = _req_int(obj, "patient_fen")
    reverses = _text(obj, "reverses", optional=True)
    if patient < 0 and reverses is None:
        raise ValidationError("patient_fen", "negative only on a reversal (with reverses)", patient)
    return SettlementInput(at, person, discharge_id, year, patient, reverses)


def _diagnosis(obj: Mapping[str, Any], at: datetime) -> DiagnosisInput:
    return DiagnosisInput(at, _req_text(obj, "person"), _req_text(obj, "code"))


def _contract(obj: Mapping[str, Any], at: datetime) -> ContractInput:
    return ContractInput(at, _req_text(obj, "person"), _bool(obj, "active"))


def _followup(obj: Mapping[str, Any], at: datetime) -> FollowupInput:
    return FollowupInput(at, _req_text(obj, "person"))


def _payment_default(obj: Mapping[str, Any], at: datetime) -> PaymentDefaultInput:
    return PaymentDefaultInput(at, _req_text(obj, "person"), _req_text(obj, "hospital"),
                               _bool(obj, "defaulted"))


def _facility(obj: Mapping[str, Any], at: datetime) -> FacilityInput:
    facility = _req_text(obj, "facility")
    kind = _get(obj, "kind")
    if kind not in FACILITY_KINDS:
        raise ValidationError("kind", f"unknown facility kind (expected one of {', '.join(FACILITY_KINDS)})",
                              kind)
    return FacilityInput(at, facility, kind, _req_int(obj, "doctors", minimum=0))


def _referral_update(obj: Mapping[str, Any], at: datetime) -> ReferralUpdateInput:
    referral_id = _req_text(obj, "referral_id")
    status = _get(obj, "status")
    if status not in UPDATE_STATUSES:
        raise ValidationError("status", f"expected one of {', '.join(UPDATE_STATUSES)}", status)
    reason = obj.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationError("reason", "expected a string", reason)
    if status == "rejected" and not reason:
        raise ValidationError("reason", "a rejection needs a non-empty reason", reason)
    amount = _int(obj, "amount_fen", optional=True, minimum=0)
    return ReferralUpdateInput(at, referral_id, status, reason, amount)


def _tick(obj: Mapping[str, Any], at: datetime) -> TickInput:
    return TickInput(at)


_PARSERS: dict[str, Callable[[Mapping[str, Any], datetime], MonitorInput]] = {
    "status": _status,
    "enrollment": _enrollment,
    "admission": _admission,
    "settlement": _settlement,
    "diagnosis": _diagnosis,
    "contract": _contract,
    "followup": _followup,
    "payment_default": _payment_default,
    "facility": _facility,
    "referral_update": _referral_update,
    "tick": _tick,
}
INPUT_TYPES = tuple(_PARSERS)


def parse_input(obj: object, at: datetime | None = None) -> MonitorInput:
    """Validate one decoded JSON value as a §7 input; raise ``ValidationError`` if it is not one.

    ``at`` is the event time when the caller already holds it as a time (the stream: an Avro
    ``timestamp-micros``), so it is not printed and parsed again; ``obj["at"]`` is then not read.
    """
    if not isinstance(obj, dict):
        raise ValidationError("(record)", "expected a JSON object", type(obj).__name__)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _PARSERS:
        raise ValidationError("type", f"unknown input type (expected one of {', '.join(INPUT_TYPES)})", kind)
    if at is None:
        if obj.get("at") is None:
            raise ValidationError("at", "required field is missing")
        try:
            at = parse_event_time(obj["at"])
        except (ValueError, OverflowError) as exc:
            raise ValidationError("at", str(exc), obj["at"]) from None
    return _PARSERS[kind](obj, at)
