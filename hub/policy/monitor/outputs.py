"""Monitoring outputs (policy-spec §7) as plain dataclasses.

Why dataclasses and not dicts: the engine, ``hub monitor`` and the stream processors share one
shape, and each output carries a deterministic ``output_id`` (what changed + its new state) so a
downstream sink can upsert idempotently when a batch is replayed after a crash. ``to_json()``
gives exactly the §7 line (``type``, ``at`` and the fields of the table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.timeutil import format_time


@dataclass(frozen=True)
class DepositDecision:
    """先诊疗后付费 — the one decision an admission gets (§4)."""

    at: datetime
    admission_id: str
    person: str
    waived: bool
    reason: str

    @property
    def output_id(self) -> str:
        return f"deposit_decision:{self.person}:{self.admission_id}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "deposit_decision", "at": format_time(self.at), "admission_id": self.admission_id,
                "person": self.person, "waived": self.waived, "reason": self.reason}


@dataclass(frozen=True)
class FlagEvent:
    """A risk flag instance changed state (raised, referred, resolved, cleared)."""

    at: datetime
    flag_id: str
    flag: str
    subject: str
    state: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def output_id(self) -> str:
        return f"{self.flag_id}:{self.state}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "flag", "at": format_time(self.at), "flag_id": self.flag_id, "flag": self.flag,
                "subject": self.subject, "state": self.state, "evidence": self.evidence}


@dataclass(frozen=True)
class ReferralEvent:
    """A referral (救助转介) was created or moved to a new state."""

    at: datetime
    referral_id: str
    flag_id: str
    department: str
    referral_type: str
    state: str
    due: datetime

    @property
    def output_id(self) -> str:
        return f"{self.referral_id}:{self.state}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "referral", "at": format_time(self.at), "referral_id": self.referral_id,
                "flag_id": self.flag_id, "department": self.department,
                "referral_type": self.referral_type, "state": self.state, "due": format_time(self.due)}


@dataclass(frozen=True)
class Escalation:
    """A referral still not final at its due time; stamped with ``due`` (§6.1)."""

    at: datetime
    referral_id: str
    department: str
    due: datetime
    flag_id: str = ""
    referral_type: str = ""

    @property
    def output_id(self) -> str:
        return f"{self.referral_id}:escalation"

    def to_json(self) -> dict[str, Any]:
        return {"type": "escalation", "at": format_time(self.at), "referral_id": self.referral_id,
                "department": self.department, "due": format_time(self.due)}


@dataclass(frozen=True)
class MismatchEvent:
    """A cross-department mismatch (四清, §6.2) opened or cleared."""

    at: datetime
    mismatch_id: str
    kind: str
    person: str
    departments: tuple[str, ...]
    state: str

    @property
    def output_id(self) -> str:
        return f"{self.mismatch_id}:{self.state}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "mismatch", "at": format_time(self.at), "mismatch_id": self.mismatch_id,
                "kind": self.kind, "person": self.person, "departments": list(self.departments),
                "state": self.state}


@dataclass(frozen=True)
class InputRefused:
    """A valid referral update the engine refused (``unknown_referral``, ``invalid_transition``).

    The engine does not know line numbers or offsets; the shell adds them (``line`` in
    ``hub monitor``, topic/offset in a dead letter).
    """

    at: datetime
    reason: str
    detail: str
    referral_id: str
    status: str = ""

    @property
    def output_id(self) -> str:
        """Refusals go to dead letters; the id groups repeats of one refused update at one instant."""
        return f"refused:{self.referral_id}:{self.status}:{self.at.isoformat()}"

    def to_json(self, line: int | None = None) -> dict[str, Any]:
        return {"type": "error", "at": format_time(self.at), "line": line, "reason": self.reason,
                "detail": self.detail}


Output = DepositDecision | FlagEvent | ReferralEvent | Escalation | MismatchEvent | InputRefused


def error_line(line: int, reason: str, detail: str, clock: datetime | None) -> dict[str, Any]:
    """The §7 ``error`` line for an input refused before reaching the engine (``at`` = clock or null)."""
    return {"type": "error", "at": None if clock is None else format_time(clock), "line": line,
            "reason": reason, "detail": detail}
