"""The monitoring state machine of policy-spec §4–§6: one engine, for ``hub monitor`` and streams.

Why one class with ``apply``/``advance_to``: ``hub monitor`` feeds it a file line by line, a stream
processor feeds it a partition's records batch by batch and, between records, the wall clock. Both
must give the same outputs for the same inputs, so everything that decides an output is here and
nothing here reads a clock, a file or a socket.

State lives in three places, all serialisable:

* ``persons`` — ``MutableMapping[person_token, PersonState]`` (existing = *seen*, §7);
* ``facilities`` — ``MutableMapping[facility_code, FacilityState]``;
* the engine state — only the clock (``state_dict()``); the due-time index is rebuilt from the
  subject states (``rebuild_due_index``), so it never needs saving.

Time (§5.1): before an input at ``t`` is applied, every due time after the clock and at or before
``t`` fires in time order with the clock standing at it; then the clock moves to ``t`` (never back)
and the input is applied at the clock. Due times: a referral's ``due`` (escalation), a person's
``f + signing_grace_days`` and ``s + followup_days``, and 1 January 00:00 of each year for every
person seen before it. At a due time the subject gets §5.2 rule 1 (every key) and rule 2 with the
due time's own candidate keys.

Interpretations (where the spec could be read two ways, this is what the engine does):

1. A redelivered settlement ``(discharge_id, reverses)`` or admission id is a valid input: it moves
   the clock (due times fire) and marks the person seen, but changes no person state, emits nothing
   and triggers no §5.2 judging ("it changes nothing"). Redelivery is detected per person, and
   with ``global_ids=True`` (``hub monitor``) also across persons: "seen before" names no person.
2. Rule 1 only needs the keys a subject has had instances for: a key never raised is armed and
   stays armed. A resolved flag stays unarmed until a later judging (an input about the subject or
   one of its due times) finds its condition false; a referral update is about no subject, so the
   resolution itself does not re-arm.
3. At a due time for which nothing is due any more (a follow-up moved ``s`` later, a referral became
   final) nothing is judged; judging there would be a no-op anyway, as conditions only become
   *true* as the clock advances.
4. Escalation, chronic, follow-up and 1-January due times of one subject at one instant fire as
   one judging with the union of their candidate keys. Subjects of one instant fire in sorted order.
5. A revitalization status without ``household_income_fen`` makes the income unknown ("income as
   last reported"); a civil-affairs status leaves it as it is.
6. A diagnosis records the first chronic code (``f``) whether or not the person is watched;
   ``major_disease`` needs ``W`` at the diagnosis. Without ``[risk]``, diagnoses record nothing.
7. ``s`` (follow-up start) exists only once a chronic code is recorded; it is the latest of the first
   chronic code, the last inactive→active contract change and the latest follow-up.
8. A contract input ``active=true`` while already active is not an activation (``s`` is unchanged).
9. Mismatch ``departments`` are fixed when the instance opens and repeated when it clears;
   ``subsidy_without_category`` needs ``enrolled = true`` for Y.
10. A flag's referrals are created in routing-table order; the flag is ``referred`` at the same
    instant when at least one was created; it is ``resolved`` when every referral of the instance
    is completed or rejected.
11. Deposit decision: the year of the admission is the year of its effective time (the clock).
12. An enrolment raises ``uninsured``/``subsidy_without_category`` for whatever year it names (past or
    future), since its Y is "its year"; a status judges only the year of the clock.
13. A referral id that does not parse as ``FLAG_ID/DEPARTMENT/TYPE`` with a known flag kind, or names
    a subject or referral the engine does not hold, is ``unknown_referral``.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from datetime import date, datetime, timedelta
from typing import Any

from hub.policy.model import Policy
from hub.policy.monitor import flags, reconcile, referrals
from hub.policy.monitor.deposit import deposit_reason
from hub.policy.monitor.due import DueHeap
from hub.policy.monitor.inputs import (
    AdmissionInput,
    ContractInput,
    DiagnosisInput,
    EnrollmentInput,
    FacilityInput,
    FollowupInput,
    MonitorInput,
    PaymentDefaultInput,
    PersonInput,
    ReferralUpdateInput,
    SettlementInput,
    StatusInput,
    TickInput,
)
from hub.policy.monitor.outputs import (
    DepositDecision,
    Escalation,
    FlagEvent,
    InputRefused,
    MismatchEvent,
    Output,
    ReferralEvent,
)
from hub.policy.monitor.state import (
    Enrolment,
    FacilityState,
    Instance,
    KeyState,
    PersonState,
    Referral,
    SubjectState,
)
from hub.policy.timeline import PolicyTimeline
from hub.timeutil import SHANGHAI, year_start

PERSON = "person"
FACILITY = "facility"
Candidate = tuple[str, tuple[Any, ...]]


def year_of(t: datetime) -> int:
    """The Shanghai calendar year of a time (§5.1)."""
    return t.astimezone(SHANGHAI).year


class MonitorEngine:
    """Pure, deterministic §4–§6 engine over caller-supplied subject stores."""

    def __init__(
        self,
        policy: Policy | PolicyTimeline,
        persons: MutableMapping[str, PersonState] | None = None,
        facilities: MutableMapping[str, FacilityState] | None = None,
        state: dict[str, Any] | None = None,
        *,
        global_ids: bool = False,
        due_index: Iterable[tuple[datetime, str, str]] | None = None,
        due: DueHeap | None = None,
    ) -> None:
        # §8.4: the sections §4–6 use come from the policy in force on the input's own date (a due time's
        # date while it fires). `hub monitor` passes one Policy: the same for every date.
        self.timeline = policy if isinstance(policy, PolicyTimeline) else PolicyTimeline.constant(policy)
        self._day: date | None = None
        self._day_policy: tuple[date | None, Policy] | None = None
        # §4/§7 say a settlement or admission id "seen before" is a redelivery, without naming the
        # person. `hub monitor` reads that literally (one id space per file: global_ids=True). A
        # stream partition cannot see other partitions' ids, so the processors dedupe per person,
        # which is the same whenever hospitals issue unique ids.
        self.global_ids = global_ids
        self._admissions_seen: set[str] = set()
        self._settlements_seen: set[tuple[str, str | None]] = set()
        self.persons: MutableMapping[str, PersonState] = {} if persons is None else persons
        self.facilities: MutableMapping[str, FacilityState] = {} if facilities is None else facilities
        self.clock: datetime | None = None
        if state is not None and state.get("clock") is not None:
            self.clock = datetime.fromisoformat(state["clock"])
        # An advance paused part-way through an instant (``advance_to(..., limit=)``): the instant, the last
        # subject fired at it, and the time the advance was asked to reach. ``_rest`` is what remains to fire
        # at the instant, in order (rebuilt from the saved due times after a restore).
        self.firing: tuple[datetime, tuple[str, str] | None, datetime] | None = None
        self._rest: list[tuple[str, str]] | None = None
        self._rest_at = 0
        self._restored_rest: set[tuple[str, str]] = set()
        if state is not None and state.get("firing"):
            f = state["firing"]
            self.firing = (datetime.fromisoformat(f["at"]), tuple(f["after"]) if f["after"] else None,  # type: ignore[misc]
                           datetime.fromisoformat(f["until"]))
        # Pending due times (hub/policy/monitor/due.py): all in memory, or spilled to the task's RocksDB.
        self.due = DueHeap() if due is None else due
        if due_index is None:
            self.rebuild_due_index()
        else:  # a stream restores the due times it saved, instead of reading every subject
            for entry in due_index:
                if self.clock is not None and entry[0] > self.clock:
                    self.due.push(entry)
                else:
                    self._keep_if_unfired(entry)

    # -- policy --------------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy of the date being judged (the input's, or the firing due time's; §8.4)."""
        day = self._day
        if day is None and self.clock is not None:
            day = self.clock.astimezone(SHANGHAI).date()
        cached = self._day_policy
        if cached is not None and cached[0] == day:
            return cached[1]
        policy = self.timeline.at(day or date.min)
        self._day_policy = (day, policy)
        return policy

    def _judging_day(self, t: datetime) -> None:
        self._day = t.astimezone(SHANGHAI).date()

    # -- engine-level state ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The engine's own state (JSON-safe): the clock and a paused firing; the rest lives in the stores."""
        state: dict[str, Any] = {"clock": None if self.clock is None else self.clock.isoformat()}
        if self.firing is not None:
            at, after, until = self.firing
            state["firing"] = {"at": at.isoformat(), "after": list(after) if after else None,
                               "until": until.isoformat()}
        return state

    def rebuild_due_index(self) -> None:
        """Recompute every pending due time from the subject states (after a restore)."""
        self.due.clear()
        for token in sorted(self.persons):
            self._register(PERSON, self.persons[token])
            if self.firing is not None:
                for t in self.due_times(self.persons[token]):
                    self._keep_if_unfired((t, PERSON, token))
        for code in sorted(self.facilities):
            self._register(FACILITY, self.facilities[code])
            if self.firing is not None:
                for t in self.due_times(self.facilities[code]):
                    self._keep_if_unfired((t, FACILITY, code))

    def _keep_if_unfired(self, entry: tuple[datetime, str, str]) -> None:
        """While restoring a paused firing: keep a due time of its instant that was not fired yet."""
        if self.firing is not None and entry[0] == self.firing[0]:
            after = self.firing[1]
            if after is None or (entry[1], entry[2]) > after:
                self._restored_rest.add((entry[1], entry[2]))

    # -- public API ----------------------------------------------------------------------------

    def advance_to(self, time: datetime, limit: int | None = None) -> list[Output]:
        """Fire every due time after the clock and at or before ``time``; move the clock there.

        With ``limit``, stop after firing that many subjects, even part-way through an instant: ``firing``
        then says where (it is part of :meth:`state_dict`), and the next call — any call, ``apply`` included —
        finishes the advance first, up to the later of its ``time`` and this one. Why: on 1 January every person
        seen before is judged at one instant, and a stream task with millions of persons must not hold them
        all, changed, in one transaction. The subjects fire in the same order either way, each judged alone,
        so the outputs and the states are those of one uninterrupted advance.
        """
        out: list[Output] = []
        if self.clock is None:
            self.clock = time
            return out
        budget = [limit]
        if self.firing is not None:
            time = max(time, self.firing[2])
            if not self._fire_rest(out, budget):
                self.firing = (self.firing[0], self.firing[1], time)
                return out
        while True:
            nxt = self._next_due()
            if nxt is None or nxt > time:
                break
            self._start_instant(nxt, time)
            if not self._fire_rest(out, budget):
                return out
        if time > self.clock:
            self.clock = time
        return out

    def apply(self, inp: MonitorInput) -> list[Output]:
        """Apply one *valid* input (see ``parse_input``) at ``max(clock, inp.at)``; return outputs."""
        out = self.advance_to(inp.at)
        if isinstance(inp, TickInput):
            return out
        self._judging_day(inp.at)  # §8.4: the input's own date, even when it is applied late at the clock
        if isinstance(inp, ReferralUpdateInput):
            self._referral_update(inp, out)
        elif isinstance(inp, FacilityInput):
            self._facility(inp, out)
        else:
            self._person(inp, out)
        return out

    # -- time ------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        assert self.clock is not None
        return self.clock

    def _next_due(self) -> datetime | None:
        now = self._now()
        nxt = self.due.next_after(now)  # entries at or before the clock cannot be there, and never fire
        if now.year < 9999:
            jan1 = year_start(year_of(now) + 1)
            if nxt is None or jan1 < nxt:
                nxt = jan1
        return nxt

    def _start_instant(self, t: datetime, until: datetime) -> None:
        self.clock = t
        due = self.due.pop_at(t)
        if t == year_start(year_of(t)):  # 1 January: every person seen before it
            due.update((PERSON, token) for token in self.persons)
        self._rest, self._rest_at = sorted(due), 0
        self.firing = (t, None, until)

    def _fire_rest(self, out: list[Output], budget: list[int | None]) -> bool:
        """Fire the paused instant's remaining subjects in order, within ``budget``; True once all are fired."""
        assert self.firing is not None
        t, after, until = self.firing
        self._judging_day(t)
        rest = self._rest
        if rest is None:  # restored part-way: what was due at t and not fired yet, in the same order
            due = self._restored_rest
            if t == year_start(year_of(t)):
                due.update((PERSON, token) for token in self.persons if after is None or (PERSON, token) > after)
            rest, self._rest_at = sorted(due), 0
            self._rest, self._restored_rest = rest, set()
        i = self._rest_at
        while i < len(rest):
            if budget[0] is not None:
                if budget[0] <= 0:
                    self._rest_at = i
                    self.firing = (t, rest[i - 1] if i else after, until)
                    return False
                budget[0] -= 1
            ns, subject = rest[i]
            self._fire_subject(ns, subject, t, out)
            i += 1
        self.firing, self._rest, self._rest_at = None, None, 0
        return True

    def _fire_subject(self, ns: str, subject: str, t: datetime, out: list[Output]) -> None:
        state = self._load(ns, subject)
        if state is None:
            return
        fired = False
        for ref in sorted(state.referrals.values(), key=lambda r: r.id):
            if ref.due == t and not ref.final and not ref.escalated:
                ref.escalated = True
                fired = True
                out.append(Escalation(t, ref.id, ref.department, ref.due, ref.flag_id, ref.type))
        candidates: list[Candidate] = []
        risk = self.policy.risk
        if isinstance(state, PersonState) and risk is not None:
            if t == year_start(year_of(t)):
                candidates.append(("uninsured", (year_of(t),)))
            if flags.chronic_due(state, risk) == t:
                candidates.append(("chronic_unsigned", ()))
            if flags.followup_due(state, risk) == t:
                candidates.append(("followup_overdue", ()))
        if not (fired or candidates):
            # A stale or empty due time: nothing to judge, nothing to write. Re-index the subject, in case
            # the policy of this date moved one of its due times (a new signing grace, say).
            self._register(ns, state)
            return
        self._judge(state, candidates, out)
        self._save(ns, state)

    def due_times(self, state: SubjectState) -> list[datetime]:
        """The subject's due times under the policy being judged: referral dues, signing grace, follow-up."""
        times = [r.due for r in state.referrals.values() if not r.final and not r.escalated]
        risk = self.policy.risk
        if isinstance(state, PersonState) and risk is not None:
            times += [d for d in (flags.chronic_due(state, risk), flags.followup_due(state, risk)) if d]
        return times

    def _register(self, ns: str, state: SubjectState) -> None:
        """Index the subject's future due times (duplicates and stale entries are harmless)."""
        if self.clock is None:
            return
        for t in self.due_times(state):
            if t > self.clock:
                self.due.push((t, ns, state.subject))

    # -- stores ----------------------------------------------------------------------------------

    def _load(self, ns: str, subject: str) -> PersonState | FacilityState | None:
        store: MutableMapping[str, Any] = self.persons if ns == PERSON else self.facilities
        return store.get(subject)

    def _save(self, ns: str, state: SubjectState) -> None:
        if ns == PERSON:
            assert isinstance(state, PersonState)
            self.persons[state.subject] = state
        else:
            assert isinstance(state, FacilityState)
            self.facilities[state.subject] = state
        self._register(ns, state)

    # -- inputs ----------------------------------------------------------------------------------

    def _person(self, inp: PersonInput, out: list[Output]) -> None:
        p = self.persons.get(inp.person) or PersonState(inp.person)
        candidates = self._record(p, inp, out)
        if candidates is not None:
            self._judge(p, candidates, out)
        self._save(PERSON, p)

    def _record(self, p: PersonState, inp: PersonInput, out: list[Output]) -> list[Candidate] | None:
        """Record the fact in the person state; return the candidate keys (None: a redelivery)."""
        t = self._now()
        risk = self.policy.risk
        if isinstance(inp, StatusInput):
            p.categories[inp.source] = inp.categories
            if inp.source == "revitalization":
                p.income_fen = inp.household_income_fen
            y = year_of(t)
            return [("high_medical_burden", (y,)), ("chronic_unsigned", ()), ("followup_overdue", ()),
                    ("uninsured", (y,)), ("subsidy_without_category", (y,))] + [
                ("declared_category_unknown", (x,)) for x in p.declared]
        if isinstance(inp, EnrollmentInput):
            p.enrolment[inp.year] = Enrolment(inp.enrolled, inp.subsidy_category)
            return [("high_medical_burden", (inp.year,)), ("uninsured", (inp.year,)),
                    ("subsidy_without_category", (inp.year,))]
        if isinstance(inp, AdmissionInput):
            if inp.admission_id in p.admissions or inp.admission_id in self._admissions_seen:
                return None
            if self.global_ids:
                self._admissions_seen.add(inp.admission_id)
            reason = deposit_reason(p, inp, year_of(t), self.policy)
            out.append(DepositDecision(t, inp.admission_id, p.subject, reason == "waived", reason))
            p.admissions.add(inp.admission_id)
            p.declared = inp.declared_categories
            return [("declared_category_unknown", (x,)) for x in inp.declared_categories]
        if isinstance(inp, SettlementInput):
            key = (inp.discharge_id, inp.reverses)
            if key in p.settlements or key in self._settlements_seen:
                return None
            if self.global_ids:
                self._settlements_seen.add(key)
            p.settlements.add(key)
            p.ytd_patient[inp.year] = p.ytd_patient.get(inp.year, 0) + inp.patient_fen
            return [("high_medical_burden", (inp.year,))]
        if isinstance(inp, DiagnosisInput):
            cands: list[Candidate] = [("chronic_unsigned", ()), ("followup_overdue", ())]
            if risk is None:
                return cands
            if p.first_chronic is None and flags.match_entry(inp.code, risk.chronic_codes) is not None:
                p.first_chronic = t
            entry = flags.match_entry(inp.code, risk.major_disease_codes)
            if entry is not None:
                if flags.watched(p, risk):
                    p.major.setdefault(f"{entry}:{year_of(t)}", flags.normalise_code(inp.code))
                cands.insert(0, ("major_disease", (entry, year_of(t))))
            return cands
        if isinstance(inp, ContractInput):
            if inp.active and not p.contract_active:
                p.contract_activated = t
            p.contract_active = inp.active
            return [("chronic_unsigned", ()), ("followup_overdue", ())]
        if isinstance(inp, FollowupInput):
            p.last_followup = t
            return [("followup_overdue", ())]
        if isinstance(inp, PaymentDefaultInput):
            if inp.defaulted:
                p.defaults.add(inp.hospital)
            else:
                p.defaults.discard(inp.hospital)
            return []
        raise TypeError(f"not a person input: {type(inp).__name__}")

    def _facility(self, inp: FacilityInput, out: list[Output]) -> None:
        f = self.facilities.get(inp.facility) or FacilityState(inp.facility)
        f.kind, f.doctors = inp.kind, inp.doctors
        self._judge(f, [("facility_gap", ())], out)
        self._save(FACILITY, f)

    def _referral_update(self, inp: ReferralUpdateInput, out: list[Output]) -> None:
        t = self._now()
        where: tuple[str, str] | None = None
        state: PersonState | FacilityState | None = None
        ref: Referral | None = None
        for where in referrals.referral_subjects(inp.referral_id):  # a route type may contain "/"
            state = self._load(*where)
            ref = None if state is None else state.referrals.get(inp.referral_id)
            if ref is not None:
                break
        if where is None or state is None or ref is None:
            detail = f"no referral {inp.referral_id!r} (ids are FLAG_ID/DEPARTMENT/TYPE as emitted)"
            out.append(InputRefused(t, "unknown_referral", detail, inp.referral_id, inp.status))
            return
        refused = referrals.sender_refusal(inp.referral_id, ref.department, inp.department)
        if refused is not None:  # only the department a referral is routed to may move it
            out.append(InputRefused(t, refused[0], refused[1], inp.referral_id, inp.status))
            return
        verdict = referrals.transition(ref.state, inp.status)
        if verdict == "repeat":
            return
        if verdict == "invalid":
            out.append(InputRefused(
                t, "invalid_transition",
                f"referral {inp.referral_id!r} is {ref.state}; {inp.status} is not allowed (states move "
                "forward only: open → acknowledged → accepted → completed, rejected from any non-final "
                "state; completed, rejected and withdrawn are final)", inp.referral_id, inp.status))
            return
        ref.state = inp.status
        out.append(self._referral_event(t, ref))
        if ref.final:
            self._maybe_resolve(state, ref.flag_id, out)
        self._save(where[0], state)

    def _maybe_resolve(self, state: SubjectState, flag_id: str, out: list[Output]) -> None:
        """The flag is resolved when the last of its referrals became completed or rejected."""
        ks = state.keys.get(flag_id.rpartition("#")[0])
        if ks is None or ks.active is None or ks.active.id != flag_id:
            return
        if all(state.referrals[r].final for r in ks.active.referral_ids):
            out.append(self._flag_event(state, ks, "resolved"))
            ks.active = None

    # -- §5.2 judging ------------------------------------------------------------------------------

    def _key(self, state: SubjectState, kind: str, scope: tuple[Any, ...]) -> str:
        return ":".join([kind, state.subject, *(str(s) for s in scope)])

    def _holds(self, state: SubjectState, kind: str, scope: tuple[Any, ...]) -> bool:
        if kind in reconcile.MISMATCH_KINDS:
            assert isinstance(state, PersonState)
            return reconcile.mismatch_holds(kind, scope, state)
        risk = self.policy.risk
        if risk is None:
            return False
        if isinstance(state, FacilityState):
            return flags.facility_flag_holds(kind, state, risk)
        assert isinstance(state, PersonState)
        return flags.person_flag_holds(kind, scope, state, self._now(), risk)

    def _judge(self, state: SubjectState, candidates: list[Candidate], out: list[Output]) -> None:
        """Rule 1 on every key of the subject, then rule 2 on the candidate keys."""
        for _key, ks in sorted(state.keys.items()):
            if not self._holds(state, ks.kind, ks.scope):
                ks.armed = True
                if ks.active is not None:
                    self._clear(state, ks, out)
        for kind, scope in candidates:
            if kind not in reconcile.MISMATCH_KINDS and self.policy.risk is None:
                continue
            key = self._key(state, kind, scope)
            ks = state.keys.get(key)
            if (ks is None or ks.armed) and self._holds(state, kind, scope):
                self._raise(state, ks or KeyState(kind, scope), key, out)

    def _raise(self, state: SubjectState, ks: KeyState, key: str, out: list[Output]) -> None:
        t = self._now()
        ks.count += 1
        ks.armed = False
        iid = f"{key}#{ks.count}"
        state.keys[key] = ks
        if ks.kind in reconcile.MISMATCH_KINDS:
            assert isinstance(state, PersonState)
            deps = reconcile.departments_told(ks.kind, ks.scope, state)
            ks.active = Instance(iid, t, "open", deps)
            out.append(MismatchEvent(t, iid, ks.kind, state.subject, deps, "open"))
            return
        ks.active = Instance(iid, t, "raised")
        out.append(self._flag_event(state, ks, "raised"))
        rids: list[str] = []
        for route in referrals.routes_for(ks.kind, self.policy):
            ref = Referral(referrals.referral_id(iid, route), iid, route.department, route.type, "open",
                           t + timedelta(days=route.sla_days))
            state.referrals[ref.id] = ref
            rids.append(ref.id)
            out.append(self._referral_event(t, ref))
        if rids:
            ks.active.state = "referred"
            ks.active.referral_ids = tuple(rids)
            out.append(self._flag_event(state, ks, "referred"))

    def _clear(self, state: SubjectState, ks: KeyState, out: list[Output]) -> None:
        t = self._now()
        inst = ks.active
        assert inst is not None
        if ks.kind in reconcile.MISMATCH_KINDS:
            out.append(MismatchEvent(t, inst.id, ks.kind, state.subject, inst.departments, "cleared"))
        else:
            for rid in inst.referral_ids:
                ref = state.referrals[rid]
                if not ref.final:
                    ref.state = "withdrawn"
                    out.append(self._referral_event(t, ref))
            out.append(self._flag_event(state, ks, "cleared"))
        ks.active = None

    # -- output builders ---------------------------------------------------------------------------

    def _flag_event(self, state: SubjectState, ks: KeyState, new_state: str) -> FlagEvent:
        risk = self.policy.risk
        assert risk is not None and ks.active is not None
        if isinstance(state, PersonState):
            evidence = flags.person_evidence(ks.kind, ks.scope, state, self._now(), risk)
        else:
            assert isinstance(state, FacilityState)
            evidence = flags.facility_evidence(state, risk)
        return FlagEvent(self._now(), ks.active.id, ks.kind, state.subject, new_state, evidence)

    @staticmethod
    def _referral_event(t: datetime, ref: Referral) -> ReferralEvent:
        return ReferralEvent(t, ref.id, ref.flag_id, ref.department, ref.type, ref.state, ref.due)
