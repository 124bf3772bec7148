"""audit_log — every settlement and every referral transition the hub emits, in the tamper-evident audit log.

Overview
    The hub's own record of what it decided: each ``hub.outputs.Settlement`` (一站式结算, and its 冲正) and
    each ``hub.outputs.ReferralChanged`` (a referral opened, answered, withdrawn, escalated) becomes one
    entry of the hash-chained audit log (``hub.audit``), which ``hub audit verify`` checks. Deliveries to
    departments are audited by every sink itself (``audit_log`` / ``HUB_AUDIT_LOG``).

How it works
    ``put`` appends one entry per event: ``settlement`` (event id, person token, discharge id, hospital,
    amounts, reverses) or ``referral`` (event id, referral id, department, state, kind). The log is
    append-only; an event already in it (a redelivery after a restart) is not appended again.

Behaviour when things go wrong
    A disk error fails the batch; the runner retries it. The chain key is ``HUB_AUDIT_KEY``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field

from connectors.sdk.base import SinkConnector
from connectors.sdk.config import SinkConfig
from connectors.sdk.records import SinkRecord
from hub.audit import AuditLog, audit_key
from hub.config import get_settings

AMOUNTS = ("basic_fen", "critical_fen", "assistance_fen", "top_up_fen", "patient_fen", "total_fen")


class AuditLogConfig(SinkConfig):
    """Settings of audit_log."""

    topics: list[str] = Field(["hub.settlements.v1", "hub.referrals.v1"], min_length=1,
                              description="settlement and referral topics")
    log: Path = Field(description="the audit log file (relative to the YAML file); its head file sits beside it")


class AuditLogSink(SinkConnector):
    """Appends settlements and referral transitions to the audit log (see module docstring)."""

    config_model = AuditLogConfig
    config: AuditLogConfig

    def start(self) -> None:
        self.log = AuditLog(self.config.resolve(self.config.log), audit_key(get_settings().audit_key))
        self.recorded = self.log.refs()

    def put(self, records: list[SinkRecord]) -> None:
        for r in records:
            if r.event_id in self.recorded:
                continue
            v, at = r.value, r.value.get("occurred_at") or datetime.now(UTC)
            if r.schema == "hub.outputs.Settlement":
                self.log.append("settlement", at, r.event_id, person_token=v.get("person_token"),
                                discharge_id=v.get("discharge_id"), hospital_code=v.get("hospital_code"),
                                reverses=v.get("reverses"), **{k: v.get(k) for k in AMOUNTS})
            elif r.schema == "hub.outputs.ReferralChanged":
                self.log.append("referral", at, r.event_id, referral_id=v.get("referral_id"),
                                department=v.get("department"), state=v.get("state"), event_kind=v.get("kind"),
                                due=str(v.get("due")))
            else:
                self.context.reject(r, "not_audited", f"{r.schema} is neither a settlement nor a referral")
                continue
            self.recorded.add(r.event_id)
