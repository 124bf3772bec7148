"""Event ↔ rule-code conversions: Avro records in, engine inputs; engine outputs, Avro records out.

Kept apart from the agent so the mapping is testable without a broker, and so ``hub replay``,
the counter API and the stream all speak the same field names.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import date, datetime
from typing import Any

from hub.policy.monitor.inputs import (
    MonitorInput,
    ReferralUpdateInput,
    parse_input,
)
from hub.policy.monitor.outputs import (
    DepositDecision,
    Escalation,
    FlagEvent,
    MismatchEvent,
    Output,
    ReferralEvent,
)
from hub.policy.monitor.referrals import flag_subject
from hub.policy.settlement import Discharge, Reversal, SettlementResult, parse_discharge_line, settlement_event_id
from hub.timeutil import SHANGHAI, format_time

STATUS_TOPICS = {
    "revitalization.poverty-status.v1": "revitalization",
    "civil-affairs.assistance-status.v1": "civil_affairs",
}


def _at(value: dict[str, Any]) -> str:
    return value["occurred_at"].astimezone(SHANGHAI).isoformat()


def monitor_line(topic: str, v: dict[str, Any], with_time: bool = True) -> dict[str, Any] | None:
    """The ``hub monitor`` (§7) line an input event stands for; None for discharges (settled first).

    Building the §7 line and parsing it with the same ``parse_input`` as ``hub monitor`` means the
    stream validates exactly as the reference command does (an owner check, an unknown category …).
    """
    at = _at(v) if with_time else None
    if topic in STATUS_TOPICS:
        line = {"type": "status", "at": at, "person": v["person_token"], "source": STATUS_TOPICS[topic],
                "categories": list(v["categories"])}
        if topic.startswith("revitalization") and v.get("household_income_fen") is not None:
            line["household_income_fen"] = v["household_income_fen"]
        return line
    if topic == "insurance.enrollments.v1":
        return {"type": "enrollment", "at": at, "person": v["person_token"], "year": v["year"],
                "enrolled": v["enrolled"], "subsidy_category": v.get("subsidy_category")}
    if topic == "health.admissions.v1":
        return {"type": "admission", "at": at, "person": v["person_token"], "admission_id": v["admission_id"],
                "hospital": v["hospital_code"], "in_county": v["in_county"],
                "declared_categories": list(v.get("declared_categories") or ())}
    if topic == "health.diagnoses.v1":
        return {"type": "diagnosis", "at": at, "person": v["person_token"], "code": v["icd10"]}
    if topic == "health.family-doctor.v1":
        if v["kind"] == "followup":
            return {"type": "followup", "at": at, "person": v["person_token"]}
        return {"type": "contract", "at": at, "person": v["person_token"], "active": v.get("active")}
    if topic == "health.payment-defaults.v1":
        return {"type": "payment_default", "at": at, "person": v["person_token"], "hospital": v["hospital_code"],
                "defaulted": v["defaulted"]}
    if topic == "health.facilities.v1":
        return {"type": "facility", "at": at, "facility": v["facility_code"], "kind": v["kind"],
                "doctors": v["licensed_doctors"]}
    if topic == "department.referral-updates.v1":
        return {"type": "referral_update", "at": at, "referral_id": v["referral_id"], "status": v["status"],
                "reason": v.get("reason"), "amount_fen": v.get("amount_fen")}
    return None


def monitor_input(topic: str, v: dict[str, Any]) -> MonitorInput | None:
    """The validated §5.1 fact of an input event (raises ``ValidationError`` like ``hub monitor``).

    A referral update carries its sender (``department``, from the edge's credential), which §7 lines do
    not: only the department a referral is addressed to may move it.
    """
    line = monitor_line(topic, v, with_time=False)
    if line is None:
        return None
    inp = parse_input(line, at=v["occurred_at"].astimezone(SHANGHAI))
    if isinstance(inp, ReferralUpdateInput) and v.get("department"):
        inp = dataclasses.replace(inp, department=v["department"])
    return inp


def discharge_item(v: dict[str, Any]) -> Discharge | Reversal:
    """A discharge event as the ledger's input, validated by the same parser as ``hub settle``."""
    if v.get("reverses"):
        return parse_discharge_line({"reverses": v["reverses"]})
    return parse_discharge_line({
        "discharge_id": v["discharge_id"], "discharged_at": v["discharged_at"].astimezone(SHANGHAI).isoformat(),
        "level": v["level"], "in_county": v["in_county"], "referred": v["referred"], "total_fen": v["total_fen"],
        "out_of_policy_fen": v["out_of_policy_fen"],
    })


def settlement_record(person: str, result: SettlementResult, hospital: str | None, at: datetime,
                      day: date) -> dict[str, Any]:
    """The ``hub.outputs.Settlement`` record of a ledger result (event id = the settlement's identity:
    the person, the hospital whose numbering the discharge id belongs to, the id, reversal or not)."""
    event_id = settlement_event_id(person, result.discharge_id, hospital=hospital, reversal=bool(result.reverses))
    return {
        "event_id": event_id, "occurred_at": at, "person_token": person,
        "discharge_id": result.discharge_id, "hospital_code": hospital or "", "discharge_date": day,
        "year": result.year, "basic_fen": result.basic_fen, "critical_fen": result.critical_fen,
        "assistance_fen": result.assistance_fen, "top_up_fen": result.top_up_fen,
        "patient_fen": result.patient_fen, "total_fen": result.total_fen,
        "actual_ratio_bp": result.actual_ratio_bp, "policy_region": result.policy,
        "policy_name": result.policy_name, "reverses": result.reverses,
    }


def _subject(flag_id: str) -> tuple[str, str]:
    """(subject, kind) from an instance id ``KIND:SUBJECT[:SCOPE]#N`` — the engine's own parser, which
    knows how many scope parts each kind has, so a subject holding ``:`` or ``/`` comes out whole."""
    found = flag_subject(flag_id)
    if found is None:
        raise ValueError(f"not a flag instance id: {flag_id!r}")
    namespace, subject = found
    return subject, namespace


def output_record(out: Output, region: str, hospital_of: dict[str, str]) -> tuple[str, str, dict[str, Any]] | None:
    """(topic, key, record) of an engine output; None for outputs that are not topic records."""
    if isinstance(out, DepositDecision):
        return "hub.deposit-decisions.v1", out.person, {
            "event_id": out.output_id, "occurred_at": out.at, "person_token": out.person,
            "admission_id": out.admission_id, "hospital_code": hospital_of.get(out.admission_id, ""),
            "waived": out.waived, "reason": out.reason}
    if isinstance(out, FlagEvent):
        subject, kind = out.subject, "facility" if out.flag == "facility_gap" else "person"
        return "hub.risk-flags.v1", subject, {
            "event_id": out.output_id, "occurred_at": out.at, "flag_id": out.flag_id, "flag": out.flag,
            "subject": subject, "subject_kind": kind, "state": out.state,
            "evidence": json.dumps(out.evidence, ensure_ascii=False, sort_keys=True, default=str),
            "policy_region": region}
    if isinstance(out, ReferralEvent | Escalation):
        subject, kind = _subject(out.flag_id)
        if isinstance(out, ReferralEvent):
            rec = {"kind": "referral", "flag_id": out.flag_id, "referral_type": out.referral_type,
                   "state": out.state}
        else:
            rec = {"kind": "escalation", "flag_id": out.flag_id, "referral_type": out.referral_type,
                   "state": "open"}
        rec.update({"event_id": out.output_id, "occurred_at": out.at, "referral_id": out.referral_id,
                    "subject": subject, "subject_kind": kind, "department": out.department, "due": out.due})
        return "hub.referrals.v1", subject, rec
    if isinstance(out, MismatchEvent):
        return "hub.mismatches.v1", out.person, {
            "event_id": out.output_id, "occurred_at": out.at, "person_token": out.person,
            "mismatch_id": out.mismatch_id, "kind": out.kind, "departments": list(out.departments),
            "state": out.state}
    return None


def json_safe(value: Any) -> Any:
    """Decoded Avro values in the events' JSON form: times with +08:00, bytes as base64."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value) if value.microsecond == 0 else value.astimezone(SHANGHAI).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value
