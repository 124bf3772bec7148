"""救助转介 — referral routing and lifecycle (policy-spec §6.1).

Why ids are routable: a referral id ``FLAG_ID/DEPARTMENT/TYPE`` embeds the flag id
``KIND:SUBJECT[:SCOPE]#N``, which embeds the subject, so a department's update can be sent to the
partition (and the stored state) of the person or facility that owns the flag, with no lookup
table. ``referral_subject`` does that parsing.
"""

from __future__ import annotations

from hub.policy.model import DEPARTMENTS, Policy, Route

PROGRESS = {"open": 0, "acknowledged": 1, "accepted": 2, "completed": 3}
FINAL = frozenset({"completed", "rejected", "withdrawn"})
SCOPE_PARTS = {
    "high_medical_burden": 1,
    "major_disease": 2,
    "chronic_unsigned": 0,
    "followup_overdue": 0,
    "uninsured": 1,
    "facility_gap": 0,
}
"""How many ``:SCOPE`` parts follow the subject in each flag's id (§5.3 id column)."""


def routes_for(flag: str, policy: Policy) -> list[Route]:
    """The routing-table rows of a flag type, in table order (one referral each)."""
    return [r for r in policy.routes if r.flag == flag]


def referral_id(flag_id: str, route: Route) -> str:
    return f"{flag_id}/{route.department}/{route.type}"


def transition(current: str, new: str) -> str:
    """Judge a department's update: ``"repeat"`` (nothing happens), ``"ok"`` or ``"invalid"``.

    Forward only along open → acknowledged → accepted → completed, skipping allowed; any
    non-final state may go to rejected; nothing leaves completed, rejected or withdrawn.
    """
    if new == current:
        return "repeat"
    if current in FINAL:
        return "invalid"
    if new == "rejected":
        return "ok"
    return "ok" if PROGRESS[new] > PROGRESS[current] else "invalid"


def split_referral_id(rid: str) -> tuple[str, str, str] | None:
    """``FLAG_ID/DEPARTMENT/TYPE`` → its three parts (the subject may itself contain ``/``)."""
    parts = rid.rsplit("/", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def flag_subject(flag_id: str) -> tuple[str, str] | None:
    """``KIND:SUBJECT[:SCOPE]#N`` → (namespace ``person``/``facility``, subject), or None."""
    key, sep, n = flag_id.rpartition("#")
    if not sep or not n.isdigit():
        return None
    kind, sep, rest = key.partition(":")
    if not sep or kind not in SCOPE_PARTS:
        return None
    parts = SCOPE_PARTS[kind]
    pieces = rest.rsplit(":", parts) if parts else [rest]
    if len(pieces) != parts + 1 or not pieces[0]:
        return None
    return ("facility" if kind == "facility_gap" else "person"), pieces[0]


def referral_subjects(rid: str) -> list[tuple[str, str]]:
    """Every (namespace, subject) that could own referral ``rid``, most likely first.

    In ``FLAG_ID/DEPARTMENT/TYPE`` the flag id may contain ``/`` (through its subject) and so may
    TYPE (a policy's route ``type`` is any string); only DEPARTMENT cannot. So each ``/DEPARTMENT/``
    in the id is a possible split, tried from the right; the caller keeps the one whose subject
    holds the referral.
    """
    splits: list[tuple[int, str]] = []
    for department in DEPARTMENTS:
        sep = f"/{department}/"
        i = rid.find(sep)
        while i != -1:
            if i > 0 and i + len(sep) < len(rid):
                splits.append((i, rid[:i]))
            i = rid.find(sep, i + 1)
    out: list[tuple[str, str]] = []
    for _, flag_id in sorted(splits, reverse=True):
        subject = flag_subject(flag_id)
        if subject is not None and subject not in out:
            out.append(subject)
    return out


def referral_subject(rid: str) -> tuple[str, str] | None:
    """The (namespace, subject) that most likely owns referral ``rid``: where a stream routes its update."""
    subjects = referral_subjects(rid)
    return subjects[0] if subjects else None


def sender_refusal(referral_id: str, addressed_to: str, sender: str | None) -> tuple[str, str] | None:
    """Whether ``sender`` may answer a referral addressed to ``addressed_to``: None, or (reason, detail).

    §6.1 routes each referral to one department; only that department may move it (acknowledge, accept,
    reject, complete). Without this check the charity's credential moved a civil-affairs referral to
    ``rejected``. ``sender`` is the department of the authenticated credential that sent the update
    (``ReferralUpdated.department``, which the edge fills from the token); ``None`` means the input
    names no sender (``hub monitor`` lines, §7): no check, exactly as before. The reason
    ``wrong_department`` is a refusal like ``invalid_transition``: nothing changes, nothing is emitted.
    The detail names the departments, not the subject.
    """
    if sender is None or sender == addressed_to:
        return None
    return ("wrong_department",
            f"referral {referral_id!r} is addressed to {addressed_to}; an update from {sender} is refused "
            "(only the department a referral is routed to may answer it)")
