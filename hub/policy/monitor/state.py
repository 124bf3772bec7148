"""Per-subject state (policy-spec §5.1, §5.2, §6.1) as plain, JSON-serialisable objects.

Why plain objects with ``to_dict``/``from_dict``: the same engine runs in ``hub monitor`` (a dict
in memory) and in stream processors whose tables are changelog-backed; a subject's whole state —
its facts, its rule keys and its referrals — is one JSON value under one key (the person token or
the facility code), so a partition can be restored from its changelog alone.

Times are stored as full-precision ISO-8601 strings (``datetime.isoformat``), because §5.1 compares
times at full precision and prints them to the second only on output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINAL_REFERRAL_STATES = frozenset({"completed", "rejected", "withdrawn"})


def _t(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass
class Instance:
    """One occurrence ``KIND:SUBJECT[:SCOPE]#N`` of a flag or mismatch, while it is active."""

    id: str
    raised_at: datetime
    state: str  # flags: raised | referred; mismatches: open
    departments: tuple[str, ...] = ()
    referral_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "raised_at": _t(self.raised_at), "state": self.state,
                "departments": list(self.departments), "referral_ids": list(self.referral_ids)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Instance:
        raised = _dt(d["raised_at"])
        assert raised is not None
        return cls(d["id"], raised, d["state"], tuple(d["departments"]), tuple(d["referral_ids"]))


@dataclass
class KeyState:
    """A rule key ``KIND:SUBJECT[:SCOPE]`` once it has had an instance (§5.2).

    A key never raised is armed and needs no record; only keys with a history are kept.
    ``scope`` holds the scope values (year, ICD entry, category) so the condition can be re-judged.
    """

    kind: str
    scope: tuple[Any, ...]
    count: int = 0
    armed: bool = True
    active: Instance | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scope": list(self.scope), "count": self.count, "armed": self.armed,
                "active": None if self.active is None else self.active.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyState:
        active = None if d["active"] is None else Instance.from_dict(d["active"])
        return cls(d["kind"], tuple(d["scope"]), d["count"], d["armed"], active)


@dataclass
class Referral:
    """One referral ``FLAG_ID/DEPARTMENT/TYPE`` (§6.1); kept after it is final, so a late update
    is refused as ``invalid_transition`` rather than ``unknown_referral``."""

    id: str
    flag_id: str
    department: str
    type: str
    state: str
    due: datetime
    escalated: bool = False

    @property
    def final(self) -> bool:
        return self.state in FINAL_REFERRAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "flag_id": self.flag_id, "department": self.department, "type": self.type,
                "state": self.state, "due": _t(self.due), "escalated": self.escalated}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Referral:
        due = _dt(d["due"])
        assert due is not None
        return cls(d["id"], d["flag_id"], d["department"], d["type"], d["state"], due, d["escalated"])


@dataclass
class SubjectState:
    """What every subject has: its rule keys and the referrals of its flags."""

    subject: str
    keys: dict[str, KeyState] = field(default_factory=dict)
    referrals: dict[str, Referral] = field(default_factory=dict)

    def _base_dict(self) -> dict[str, Any]:
        return {"subject": self.subject,
                "keys": {k: v.to_dict() for k, v in self.keys.items()},
                "referrals": {k: v.to_dict() for k, v in self.referrals.items()}}

    def _load_base(self, d: dict[str, Any]) -> None:
        self.keys = {k: KeyState.from_dict(v) for k, v in d["keys"].items()}
        self.referrals = {k: Referral.from_dict(v) for k, v in d["referrals"].items()}


@dataclass
class Enrolment:
    enrolled: bool
    subsidy_category: str | None


@dataclass
class PersonState(SubjectState):
    """The §5.1 person state, keyed by ``person_token``. Existing at all means "seen" (§7)."""

    categories: dict[str, frozenset[str]] = field(default_factory=dict)  # source -> set
    income_fen: int | None = None
    enrolment: dict[int, Enrolment] = field(default_factory=dict)
    declared: tuple[str, ...] = ()
    admissions: set[str] = field(default_factory=set)
    ytd_patient: dict[int, int] = field(default_factory=dict)
    settlements: set[tuple[str, str | None]] = field(default_factory=set)
    first_chronic: datetime | None = None
    contract_active: bool = False
    contract_activated: datetime | None = None
    last_followup: datetime | None = None
    defaults: set[str] = field(default_factory=set)
    major: dict[str, str] = field(default_factory=dict)  # "ENTRY:Y" -> first matching code

    @property
    def C(self) -> frozenset[str]:  # noqa: N802 - the spec's name for the category set
        """The union of both departments' current category sets."""
        # one C-level union instead of a new frozenset per source: every judging asks for it
        return frozenset().union(*self.categories.values())

    def enrolled(self, year: int) -> bool:
        rec = self.enrolment.get(year)
        return rec is not None and rec.enrolled

    def followup_start(self) -> datetime | None:
        """``s`` of followup_overdue: the latest of first chronic code, activation, follow-up."""
        if self.first_chronic is None:
            return None
        times = (self.first_chronic, self.contract_activated, self.last_followup)
        return max(t for t in times if t is not None)

    def to_dict(self) -> dict[str, Any]:
        d = self._base_dict()
        d.update({
            "categories": {k: sorted(v) for k, v in sorted(self.categories.items())},
            "income_fen": self.income_fen,
            "enrolment": {str(y): {"enrolled": e.enrolled, "subsidy_category": e.subsidy_category}
                          for y, e in sorted(self.enrolment.items())},
            "declared": list(self.declared),
            "admissions": sorted(self.admissions),
            "ytd_patient": {str(y): v for y, v in sorted(self.ytd_patient.items())},
            "settlements": sorted([list(s) for s in self.settlements], key=lambda s: (s[0], s[1] or "")),
            "first_chronic": _t(self.first_chronic),
            "contract_active": self.contract_active,
            "contract_activated": _t(self.contract_activated),
            "last_followup": _t(self.last_followup),
            "defaults": sorted(self.defaults),
            "major": dict(sorted(self.major.items())),
        })
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PersonState:
        p = cls(d["subject"])
        p._load_base(d)
        p.categories = {k: frozenset(v) for k, v in d["categories"].items()}
        p.income_fen = d["income_fen"]
        p.enrolment = {int(y): Enrolment(e["enrolled"], e["subsidy_category"])
                       for y, e in d["enrolment"].items()}
        p.declared = tuple(d["declared"])
        p.admissions = set(d["admissions"])
        p.ytd_patient = {int(y): v for y, v in d["ytd_patient"].items()}
        p.settlements = {(s[0], s[1]) for s in d["settlements"]}
        p.first_chronic = _dt(d["first_chronic"])
        p.contract_active = d["contract_active"]
        p.contract_activated = _dt(d["contract_activated"])
        p.last_followup = _dt(d["last_followup"])
        p.defaults = set(d["defaults"])
        p.major = dict(d["major"])
        return p


@dataclass
class FacilityState(SubjectState):
    """A facility (村卫生室, 乡镇卫生院 …) keyed by its code; only facility_gap concerns it."""

    kind: str | None = None
    doctors: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self._base_dict()
        d.update({"kind": self.kind, "doctors": self.doctors})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FacilityState:
        f = cls(d["subject"])
        f._load_base(d)
        f.kind = d["kind"]
        f.doctors = d["doctors"]
        return f
