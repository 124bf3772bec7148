"""Pydantic models of the hub's events, one per Avro schema in ``schemas/``.

Why both: the ``.avsc`` files are the wire contract (any consumer with only ``schemas/`` and the
bytes can decode a record), while these models are how Python code builds and reads events with
type checking and the rules Avro cannot express (non-negative amounts, the owner of a category,
a rejected referral needs a reason, no raw ID number in ``person_token``).
``tests/unit/test_events_schemas.py`` compares both programmatically — field names and order, types,
optionality, defaults and enum symbols — so they cannot drift apart.

Conventions: money is integer fen (``*_fen``, Avro ``long``); times are timezone-aware
``datetime`` (Avro ``timestamp-micros``), normalised to Asia/Shanghai on the way in; calendar dates
are ``date`` (Avro ``date``); enumerations are ``StrEnum`` classes named like their Avro enum, so a
member compares equal to its symbol string. Models are frozen: an event is a fact.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    field_serializer,
    model_validator,
)

from hub.identity import TOKEN_PATTERN, redact
from hub.timeutil import SHANGHAI
from hub.topics import CATALOGUE

__all__ = [
    "Category", "HospitalLevel", "Department", "FacilityKind", "FlagKind", "FlagState", "SubjectKind",
    "ReferralState", "ReferralUpdateStatus", "ReferralEventKind", "DepositReason", "MismatchKind",
    "MismatchState", "FamilyDoctorEventKind", "CATEGORY_OWNER",
    "Event", "PovertyStatusChanged", "AssistanceStatusChanged", "EnrollmentChanged", "AdmissionRegistered",
    "DischargeSettlementRequested", "DiagnosisRecorded", "FamilyDoctorEvent", "FacilityStaffingChanged",
    "PaymentDefaultChanged", "ReferralUpdated", "DepositDecision", "Settlement", "RiskFlagChanged",
    "ReferralChanged", "MismatchChanged", "DeadLetter", "MODELS", "BY_TOPIC", "model_for",
    "model_for_topic", "referral_addressees", "referral_facility",
]


# ---------------------------------------------------------------- enumerations (schemas/common/)


class Category(StrEnum):
    """帮扶类别 — relief category of a person (policy-spec §1)."""

    POVERTY_ALLEVIATED = "poverty_alleviated"  # 脱贫人口
    MONITORED = "monitored"  # 监测对象
    MINIMUM_LIVING = "minimum_living"  # 农村低保
    EXTREME_POVERTY = "extreme_poverty"  # 特困人员


class HospitalLevel(StrEnum):
    """医院等级 — hospital level; selects deductible and ratio (§3)."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"


class Department(StrEnum):
    """部门 — a department that sends or receives records."""

    HEALTH = "health"
    INSURANCE = "insurance"
    CIVIL_AFFAIRS = "civil_affairs"
    REVITALIZATION = "revitalization"
    CHARITY = "charity"


class FacilityKind(StrEnum):
    """医疗卫生机构类别 — kind of primary-care facility."""

    VILLAGE_CLINIC = "village_clinic"  # 村卫生室
    TOWNSHIP_CENTER = "township_center"  # 乡镇卫生院
    COMMUNITY_CENTER = "community_center"  # 社区卫生服务中心
    HOSPITAL = "hospital"


class FlagKind(StrEnum):
    """风险预警类型 — risk flag kinds (§5.3)."""

    HIGH_MEDICAL_BURDEN = "high_medical_burden"
    MAJOR_DISEASE = "major_disease"
    CHRONIC_UNSIGNED = "chronic_unsigned"
    FOLLOWUP_OVERDUE = "followup_overdue"
    UNINSURED = "uninsured"
    FACILITY_GAP = "facility_gap"


class FlagState(StrEnum):
    """State of a flag instance (§5.3)."""

    RAISED = "raised"
    REFERRED = "referred"
    RESOLVED = "resolved"
    CLEARED = "cleared"


class SubjectKind(StrEnum):
    """Whether a flag or referral is about a person or a facility (separate namespaces, §5.2)."""

    PERSON = "person"
    FACILITY = "facility"


class ReferralState(StrEnum):
    """救助转介状态 — referral lifecycle (§6.1)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class ReferralUpdateStatus(StrEnum):
    """Statuses a department may report (§6.1); ``open`` and ``withdrawn`` are the hub's own."""

    ACKNOWLEDGED = "acknowledged"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COMPLETED = "completed"


class ReferralEventKind(StrEnum):
    """A referral state change, or an escalation (超时督办) at its due time."""

    REFERRAL = "referral"
    ESCALATION = "escalation"


class DepositReason(StrEnum):
    """先诊疗后付费 — deposit decision reasons, in the order §4 checks them."""

    NOT_OFFERED = "not_offered"
    NOT_ENROLLED = "not_enrolled"
    CATEGORY_NOT_ELIGIBLE = "category_not_eligible"
    HOSPITAL_NOT_DESIGNATED = "hospital_not_designated"
    BLACKLISTED = "blacklisted"
    WAIVED = "waived"


class MismatchKind(StrEnum):
    """四清 — cross-department disagreements (§6.2)."""

    SUBSIDY_WITHOUT_CATEGORY = "subsidy_without_category"
    DECLARED_CATEGORY_UNKNOWN = "declared_category_unknown"


class MismatchState(StrEnum):
    OPEN = "open"
    CLEARED = "cleared"


class FamilyDoctorEventKind(StrEnum):
    """家庭医生 — a contract status change (签约) or a follow-up visit (随访)."""

    CONTRACT = "contract"
    FOLLOWUP = "followup"


CATEGORY_OWNER: dict[Category, Department] = {
    Category.POVERTY_ALLEVIATED: Department.REVITALIZATION,
    Category.MONITORED: Department.REVITALIZATION,
    Category.MINIMUM_LIVING: Department.CIVIL_AFFAIRS,
    Category.EXTREME_POVERTY: Department.CIVIL_AFFAIRS,
}
"""§5.1 owners: a status carrying a category its department does not own is invalid."""


# ---------------------------------------------------------------- field types

_TOKEN_PROBLEM = "must be a person token: p_ followed by 32 lower-case hex characters (hub.identity.person_token)"


def _person_token(value: str) -> str:
    # Raw ID numbers never travel on hub topics (§1). One shape only: a check for "looks like an ID
    # number" let ``ID5301…`` and ``530102-19900101-1231`` through. The message never echoes the value.
    if TOKEN_PATTERN.match(value) is None:
        if redact(value) != value:
            raise ValueError("looks like a raw resident ID number; use hub.identity.person_token(...)")
        raise ValueError(_TOKEN_PROBLEM)
    return value


def _no_id_number(value: str) -> str:
    # Facility codes, referral subjects: free text from a department, which must not carry an ID number.
    if redact(value) != value:
        raise ValueError("holds something shaped like a resident ID number; ids must not carry one")
    return value


def _to_shanghai(value: datetime) -> datetime:
    return value.astimezone(SHANGHAI)


def _json_object(value: str) -> str:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"must be a JSON object text: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError("must be a JSON object text (found a JSON " + type(parsed).__name__ + ")")
    return value


Int = Annotated[int, Strict(), Field(ge=-(2**31), le=2**31 - 1)]
"""Avro ``int`` (32-bit). Strict: ``True`` and ``5.0`` are not integers (§7)."""
Long = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]
"""Avro ``long`` (64-bit)."""
Fen = Annotated[Long, Field(ge=0)]
"""A non-negative amount in fen (分)."""
Bool = Annotated[bool, Strict()]
Id = Annotated[str, Field(min_length=1)]
"""Ids and codes are non-empty strings (§7)."""
PersonToken = Annotated[str, AfterValidator(_person_token)]
"""``p_`` + 32 lower-case hex: a keyed HMAC of an ID number, never anything else."""
FacilityCode = Annotated[str, Field(min_length=1), AfterValidator(_no_id_number)]
Timestamp = Annotated[AwareDatetime, AfterValidator(_to_shanghai)]
"""Avro ``timestamp-micros``: aware in, Asia/Shanghai out (naive datetimes are refused)."""
RegionCode = Annotated[str, Field(pattern=r"^\d{6}$")]
"""GB/T 2260 administrative division code (行政区划代码), 6 digits."""
JsonObject = Annotated[str, AfterValidator(_json_object)]


# ---------------------------------------------------------------- base


class Event(BaseModel):
    """Base of every event: ``SCHEMA`` is the Avro full name, ``TOPIC`` its v1 topic (from hub.topics)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    SCHEMA: ClassVar[str] = ""
    TOPIC: ClassVar[str | None] = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # The topic comes from the one catalogue, so a model cannot name a topic that does not exist.
        cls.TOPIC = next((t.name for t in CATALOGUE if t.schema == cls.SCHEMA), None)

    event_id: Id
    occurred_at: Timestamp


def _categories_owned_by(categories: list[Category], department: Department, event: str) -> None:
    wrong = [c.value for c in categories if CATEGORY_OWNER[c] is not department]
    if wrong:
        raise ValueError(
            f"{event}: categories {wrong} are not owned by {department.value} (§5.1 owners); "
            f"send them from their own department"
        )


# ---------------------------------------------------------------- inputs


class PovertyStatusChanged(Event):
    """脱贫人口/监测对象 roster change from the rural-revitalization bureau; replaces its category set."""

    SCHEMA: ClassVar[str] = "hub.revitalization.PovertyStatusChanged"
    person_token: PersonToken
    categories: list[Category]
    household_income_fen: Fen | None = None
    region_code: RegionCode

    @model_validator(mode="after")
    def _owner(self) -> PovertyStatusChanged:
        _categories_owned_by(self.categories, Department.REVITALIZATION, "PovertyStatusChanged")
        return self


class AssistanceStatusChanged(Event):
    """农村低保/特困人员 roster change from civil affairs; replaces its category set."""

    SCHEMA: ClassVar[str] = "hub.civil_affairs.AssistanceStatusChanged"
    person_token: PersonToken
    categories: list[Category]
    region_code: RegionCode

    @model_validator(mode="after")
    def _owner(self) -> AssistanceStatusChanged:
        _categories_owned_by(self.categories, Department.CIVIL_AFFAIRS, "AssistanceStatusChanged")
        return self


class EnrollmentChanged(Event):
    """参保 — enrolment for one calendar year; the latest record for a year wins."""

    SCHEMA: ClassVar[str] = "hub.insurance.EnrollmentChanged"
    person_token: PersonToken
    year: Annotated[Int, Field(ge=1900, le=9999)]
    enrolled: Bool
    subsidy_category: Category | None = None
    insured_region: RegionCode


class AdmissionRegistered(Event):
    """入院登记 — answered by one DepositDecision (先诊疗后付费, §4)."""

    SCHEMA: ClassVar[str] = "hub.health.AdmissionRegistered"
    person_token: PersonToken
    admission_id: Id
    hospital_code: Id
    hospital_level: HospitalLevel
    in_county: Bool
    declared_categories: list[Category] = Field(default_factory=list)
    admitted_at: Timestamp


class DischargeSettlementRequested(Event):
    """出院结算 — asks for one-stop settlement (§3), or reverses one (冲正) when ``reverses`` is set."""

    SCHEMA: ClassVar[str] = "hub.health.DischargeSettlementRequested"
    person_token: PersonToken
    discharge_id: Id
    discharged_at: Timestamp
    level: HospitalLevel
    in_county: Bool
    referred: Bool
    total_fen: Fen
    out_of_policy_fen: Fen
    hospital_code: Id
    reverses: Id | None = None

    @model_validator(mode="after")
    def _amounts(self) -> DischargeSettlementRequested:
        if self.out_of_policy_fen > self.total_fen:
            raise ValueError("out_of_policy_fen must not exceed total_fen")
        return self


class DiagnosisRecorded(Event):
    """诊断 — an ICD-10 diagnosis for a person (major disease and chronic codes, §5.3)."""

    SCHEMA: ClassVar[str] = "hub.health.DiagnosisRecorded"
    person_token: PersonToken
    icd10: Id


class FamilyDoctorEvent(Event):
    """家庭医生签约服务 — a contract on/off (``active`` required) or a follow-up (``active`` absent)."""

    SCHEMA: ClassVar[str] = "hub.health.FamilyDoctorEvent"
    person_token: PersonToken
    kind: FamilyDoctorEventKind
    active: Bool | None = None

    @model_validator(mode="after")
    def _active_for_contract(self) -> FamilyDoctorEvent:
        if self.kind is FamilyDoctorEventKind.CONTRACT and self.active is None:
            raise ValueError("active is required when kind = contract")
        if self.kind is FamilyDoctorEventKind.FOLLOWUP and self.active is not None:
            raise ValueError("active must be absent when kind = followup")
        return self


class FacilityStaffingChanged(Event):
    """村医配备 — staffing of a facility; keyed by facility code, not by person."""

    SCHEMA: ClassVar[str] = "hub.health.FacilityStaffingChanged"
    facility_code: FacilityCode
    kind: FacilityKind
    licensed_doctors: Annotated[Int, Field(ge=0)]
    region_code: RegionCode


class PaymentDefaultChanged(Event):
    """欠费黑名单 — a hospital's payment default for a person set or cleared (§4 ``blacklisted``)."""

    SCHEMA: ClassVar[str] = "hub.health.PaymentDefaultChanged"
    person_token: PersonToken
    hospital_code: Id
    defaulted: Bool


class ReferralUpdated(Event):
    """转介反馈 — a department's answer to a referral (§6.1).

    ``person_token`` is the record key: the subject of the referral, a person's token — or, for a
    ``facility_gap`` referral, the facility code its id names (and only then).
    """

    SCHEMA: ClassVar[str] = "hub.department.ReferralUpdated"
    person_token: str
    referral_id: Annotated[Id, AfterValidator(_no_id_number)]
    status: ReferralUpdateStatus
    reason: str | None = None
    amount_fen: Fen | None = None
    department: Department

    @model_validator(mode="after")
    def _subject(self) -> ReferralUpdated:
        if TOKEN_PATTERN.match(self.person_token) is None and self.person_token != referral_facility(self.referral_id):
            raise ValueError(f"person_token {_TOKEN_PROBLEM}, or the facility code of a facility_gap referral")
        return self

    @model_validator(mode="after")
    def _reason_for_rejected(self) -> ReferralUpdated:
        if self.status is ReferralUpdateStatus.REJECTED and not (self.reason and self.reason.strip()):
            raise ValueError("a rejected referral needs a non-empty reason (§6.1)")
        return self


# ---------------------------------------------------------------- outputs


class DepositDecision(Event):
    """先诊疗后付费 — the deposit decision for one admission (§4)."""

    SCHEMA: ClassVar[str] = "hub.outputs.DepositDecision"
    person_token: PersonToken
    admission_id: Id
    hospital_code: str
    waived: Bool
    reason: DepositReason


class Settlement(Event):
    """一站式结算 — one settlement (§3); a reversal negates every ``*_fen`` and sets ``reverses``."""

    SCHEMA: ClassVar[str] = "hub.outputs.Settlement"
    person_token: PersonToken
    discharge_id: Id
    hospital_code: str
    discharge_date: date
    year: Int
    basic_fen: Long
    critical_fen: Long
    assistance_fen: Long
    top_up_fen: Long
    patient_fen: Long
    total_fen: Long
    actual_ratio_bp: Annotated[Int, Field(ge=0, le=10000)]
    policy_region: str
    policy_name: str
    reverses: Id | None = None


class RiskFlagChanged(Event):
    """防止因病返贫致贫监测预警 — a flag instance changed state (§5.3)."""

    SCHEMA: ClassVar[str] = "hub.outputs.RiskFlagChanged"
    flag_id: Id
    flag: FlagKind
    subject: Id
    subject_kind: SubjectKind
    state: FlagState
    evidence: JsonObject
    policy_region: str


class ReferralChanged(Event):
    """救助转介 — a referral changed state, or escalated at its due time (§6.1)."""

    SCHEMA: ClassVar[str] = "hub.outputs.ReferralChanged"
    kind: ReferralEventKind
    referral_id: Id
    flag_id: Id
    subject: Id
    subject_kind: SubjectKind
    department: Department
    referral_type: Id
    state: ReferralState
    due: Timestamp


class MismatchChanged(Event):
    """四清 — departments disagree about a person, or agree again (§6.2)."""

    SCHEMA: ClassVar[str] = "hub.outputs.MismatchChanged"
    person_token: PersonToken
    mismatch_id: Id
    kind: MismatchKind
    departments: list[Department]
    state: MismatchState


class DeadLetter(Event):
    """死信 — a record that could not be processed; build it with ``hub.deadletter.dead_letter``."""

    SCHEMA: ClassVar[str] = "hub.outputs.DeadLetter"
    source: Id
    topic: str | None = None
    partition: Annotated[Int, Field(ge=0)] | None = None
    offset: Annotated[Long, Field(ge=0)] | None = None
    reason: Id
    detail: str
    original: bytes
    original_encrypted: Bool
    key_id: str | None = None
    failed_at: Timestamp

    @field_serializer("original", when_used="json")
    def _standard_base64(self, value: bytes) -> str:
        # Standard alphabet (+/), what most tools expect; input accepts either alphabet.
        return base64.b64encode(value).decode("ascii")

    @model_validator(mode="after")
    def _key_id_iff_encrypted(self) -> DeadLetter:
        if self.original_encrypted != (self.key_id is not None):
            raise ValueError("key_id must be set exactly when original_encrypted is true")
        return self


# ---------------------------------------------------------------- referral ids

_FLAG_KINDS = tuple(k.value for k in FlagKind)


def referral_addressees(referral_id: str) -> frozenset[str]:
    """The departments a referral id ``FLAG_ID/DEPARTMENT/TYPE`` can be addressed to.

    Why a set: the flag id and the route type may themselves contain ``/`` (a facility code, a policy's
    type), so every ``/DEPARTMENT/`` whose left part is a well-formed flag id (``KIND:…#N``) is a
    possible split. For every id the hub emits about a person it is exactly one department. The edge
    uses it to refuse an update from a department the referral is not addressed to (a credential may
    answer only its own referrals); the processor checks the stored referral itself.
    """
    found = set()
    for d in Department:
        sep = f"/{d.value}/"
        i = referral_id.find(sep)
        while i > 0:
            flag_id, rest = referral_id[:i], referral_id[i + len(sep):]
            kind, _, tail = flag_id.partition(":")
            number = flag_id.rpartition("#")[2]
            if rest and kind in _FLAG_KINDS and tail and number.isdigit():
                found.add(d.value)
            i = referral_id.find(sep, i + 1)
    return frozenset(found)


def referral_facility(referral_id: str) -> str | None:
    """The facility code a ``facility_gap:F#N/health/staffing`` referral id names, else None."""
    if not referral_id.startswith("facility_gap:") or "/health/" not in referral_id:
        return None
    flag_id = referral_id[: referral_id.rfind("/health/")]
    code, sep, n = flag_id.removeprefix("facility_gap:").rpartition("#")
    return code if sep and code and n.isdigit() else None


# ---------------------------------------------------------------- registry

MODELS: dict[str, type[Event]] = {
    m.SCHEMA: m
    for m in (
        PovertyStatusChanged, AssistanceStatusChanged, EnrollmentChanged, AdmissionRegistered,
        DischargeSettlementRequested, DiagnosisRecorded, FamilyDoctorEvent, FacilityStaffingChanged,
        PaymentDefaultChanged, ReferralUpdated, DepositDecision, Settlement, RiskFlagChanged,
        ReferralChanged, MismatchChanged, DeadLetter,
    )
}
"""Avro full name → model."""

BY_TOPIC: dict[str, type[Event]] = {m.TOPIC: m for m in MODELS.values() if m.TOPIC}
"""Topic name → model of its values."""


def model_for(schema_name: str) -> type[Event]:
    """The model of an Avro full name, with a clear error for a typo."""
    try:
        return MODELS[schema_name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise KeyError(f"no event model for schema {schema_name!r}; known: {known}") from None


def model_for_topic(topic: str) -> type[Event]:
    """The model of a topic's values (hub.topics catalogue)."""
    try:
        return BY_TOPIC[topic]
    except KeyError:
        raise KeyError(f"no event model for topic {topic!r}; known: {', '.join(sorted(BY_TOPIC))}") from None
