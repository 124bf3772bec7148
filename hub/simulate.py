"""A synthetic province (合成数据): one county's persons and the department events they cause.

Why: the hub cannot be demonstrated, load-tested or replayed against real people. The simulator
produces the same event values the department connectors produce — the JSON form of each topic's
Avro event (hub.events), keyed by ``person_token`` computed from a synthetic but *valid* 18-digit
resident ID number (GB 11643 check digit) — with shares and cost distributions close enough to a
rural county in Yunnan that the settlement, risk and referral rules meet realistic cases:

- roster: ≈9 % 脱贫人口, ≈1.5 % 监测对象, ≈4.5 % 农村低保, ≈0.7 % 特困人员 (overlaps allowed);
- enrolment: ≈97 % enrolled, premium subsidy (资助参保) for special groups, a few wrong subsidies;
- admissions at L1/L2 in-county hospitals, L3 outside (mostly referred), log-normal costs in fen,
  5–20 % out of policy, occasional reversals (冲正), deposit-waiver relevant payment defaults;
- ICD-10 diagnoses: chronic I10/E11, major C34/C16/I21, family-doctor contracts and follow-ups
  (some overdue), village clinics with no doctor (空白点);
- department answers to the hub's referrals (some late) through :meth:`Province.answer_referrals`;
- optionally a *busy* stream of admissions (``busy_per_minute``) for ``hub up``'s live demo, see below.

Deterministic for a seed: the same ``Province(seed, …)`` yields the same events with the same ids.
Events come in non-decreasing event time (``occurred_at``).

Why a busy stream: a real county of 5,000 persons has about one discharge every two days, and a real one of
500,000 about ten an hour — discharged in office hours. ``hub up`` follows the wall clock once it has caught
up (it never produces an event from the future), so a realistic county would show nothing for hours. From
``busy_from``, hospitals also admit ``busy_per_minute`` patients a minute round the clock, with short stays
(a few hours to three days), so a settlement is due every minute or so: a province's pace on a county's
roster. Patients already in hospital at ``busy_from`` are simulated too, so discharges flow from the first
minute rather than after the first stays end. Nothing of this runs when ``busy_per_minute`` is 0 (the
default): the stream is then the same as without it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from hub.config import DEV_PSEUDONYM_KEY
from hub.timeutil import SHANGHAI

__all__ = ["SimEvent", "SimPerson", "Province", "to_replay_lines", "id_number_check"]

T_POVERTY = "revitalization.poverty-status.v1"
T_ASSIST = "civil-affairs.assistance-status.v1"
T_ENROL = "insurance.enrollments.v1"
T_ADMIT = "health.admissions.v1"
T_DISCH = "health.discharges.v1"
T_DIAG = "health.diagnoses.v1"
T_FDOC = "health.family-doctor.v1"
T_FAC = "health.facilities.v1"
T_DEFAULT = "health.payment-defaults.v1"
T_REFERRAL = "department.referral-updates.v1"

SHARES = {"poverty_alleviated": 0.09, "monitored": 0.015, "minimum_living": 0.045, "extreme_poverty": 0.007}
"""Roster shares of a rural county's population (overlaps allowed, see _assign_categories)."""
PRIORITY = ("extreme_poverty", "minimum_living", "monitored", "poverty_alleviated")
"""§1 priority; also the subsidy category (资助参保类别) of a special-group person."""
MAJOR_CODES = ("C34.1", "C16.9", "I21.0")
CHRONIC_CODES = ("I10", "E11.9")
ORDINARY_CODES = ("J18.9", "K35.8", "S72.0", "K80.2", "J44.1", "N39.0", "O80", "I63.9", "K29.7", "M17.1")

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

BUSY_STAY_HOURS = (3.0, 72.0)
"""Shortest and longest stay of a busy admission, in hours (day surgery to a three-day stay)."""


def id_number_check(first17: str) -> str:
    """GB 11643 check character (ISO 7064 MOD 11-2) — generated here so no real number is needed."""
    s = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return "10X98765432"[s % 11]


@dataclass(frozen=True)
class SimEvent:
    """One record for ``topic``: its key and its value in the event's JSON form (hub.events)."""

    topic: str
    key: str
    value: dict[str, Any]


@dataclass
class SimPerson:
    """A synthetic resident; ``id_number`` never leaves the simulator (only ``token`` does)."""

    index: int
    id_number: str
    token: str
    birth: date
    categories: frozenset[str]
    income_fen: int | None
    chronic: str | None
    admission_weight: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Hospital:
    code: str
    level: str
    in_county: bool


def _ts(t: datetime) -> str:
    return t.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _stable_seed(*parts: object) -> int:
    """A seed from values (Python's str hash is salted per process, so it cannot be used)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


class Province:
    """A synthetic county under ``county`` (default 532503 蒙自市, Honghe, Yunnan).

    ``rate`` is hospital admissions per person per year (rural inpatient rate ≈ 0.18); events are
    spread over simulated days from ``start``. ``key`` is the pseudonym key of person_token
    (the development key by default, like ``hub up``). ``busy_per_minute`` adds that many admissions a
    minute from ``busy_from`` (default: the start), round the clock (module docstring).
    """

    def __init__(self, seed: int, persons: int, county: str = "532503", start: date = date(2024, 1, 1),
                 rate: float = 0.18, key: str | bytes = DEV_PSEUDONYM_KEY, busy_per_minute: float = 0.0,
                 busy_from: datetime | None = None) -> None:
        if persons < 1:
            raise ValueError(f"persons must be ≥ 1, found {persons}")
        if len(county) != 6 or not county.isdigit():
            raise ValueError(f"county must be a 6-digit GB/T 2260 code, found {county!r}")
        if busy_per_minute < 0:
            raise ValueError(f"busy_per_minute must be ≥ 0, found {busy_per_minute}")
        if busy_from is not None and busy_from.tzinfo is None:
            raise ValueError("busy_from must carry a time zone (an aware datetime)")
        from hub.identity import person_token

        self.seed, self.county, self.start, self.rate = seed, county, start, rate
        self.busy_per_minute, self.busy_from = busy_per_minute, busy_from
        self._rng = random.Random(seed)
        self._seq = 0
        self.persons: list[SimPerson] = []
        used: set[str] = set()
        for i in range(persons):
            number, birth = self._id_number(used)
            self.persons.append(SimPerson(i, number, person_token(number, key, today=start), birth,
                                          frozenset(), None, None, 1.0))
        self._assign_categories()
        self._assign_health()
        self.hospitals = self._hospitals()
        self.facilities = self._facilities()
        self._cum_weights = list(_accumulate(p.admission_weight for p in self.persons))

    # ------------------------------------------------------------------ population

    def _id_number(self, used: set[str]) -> tuple[str, date]:
        rng = self._rng
        while True:
            age = min(int(rng.triangular(0, 95, 45)), 94)
            birth = date(self.start.year - 1 - age, 1, 1) + timedelta(days=rng.randrange(365))
            first17 = f"{self.county}{birth:%Y%m%d}{rng.randrange(1000):03d}"
            number = first17 + id_number_check(first17)
            if number not in used:
                used.add(number)
                return number, birth

    def _assign_categories(self) -> None:
        """Exact-count sampling, so a county of 1,000 has the shares of the brief, with overlaps:
        40 % of monitored, 30 % of minimum_living and 20 % of extreme_poverty are also poverty_alleviated."""
        rng, n = self._rng, len(self.persons)
        idx = list(range(n))
        pa = set(rng.sample(idx, round(n * SHARES["poverty_alleviated"])))
        rest = [i for i in idx if i not in pa]

        def pick(share: float, overlap: float, exclude: set[int]) -> set[int]:
            k = round(n * share)
            k_pa = min(round(k * overlap), len(pa - exclude))
            chosen = set(rng.sample(sorted(pa - exclude), k_pa))
            pool = [i for i in rest if i not in exclude]
            return chosen | set(rng.sample(pool, min(k - k_pa, len(pool))))

        mon = pick(SHARES["monitored"], 0.4, set())
        ml = pick(SHARES["minimum_living"], 0.3, set())
        ep = pick(SHARES["extreme_poverty"], 0.2, ml)  # 特困 and 低保 are exclusive
        for p in self.persons:
            cats = {c for c, s in (("poverty_alleviated", pa), ("monitored", mon), ("minimum_living", ml),
                                   ("extreme_poverty", ep)) if p.index in s}
            p.categories = frozenset(cats)
            if cats & {"poverty_alleviated", "monitored"} and rng.random() < 0.85:
                median = 700_000 if "monitored" in cats else 1_200_000  # fen per capita per year
                p.income_fen = int(median * math.exp(rng.gauss(0, 0.35)))

    def _age(self, p: SimPerson) -> int:
        return self.start.year - p.birth.year

    def _assign_health(self) -> None:
        rng = self._rng
        for p in self.persons:
            age = self._age(p)
            if age >= 35:
                r = rng.random()
                p.chronic = "I10" if r < 0.22 + 0.004 * (age - 35) else ("E11.9" if r < 0.32 else None)
            p.admission_weight = (0.6 if age < 45 else 1.0 if age < 65 else 2.2) * (1.5 if p.chronic else 1.0)
            if p.categories:
                p.admission_weight *= 1.3

    def _hospitals(self) -> list[_Hospital]:
        c = self.county
        towns = max(2, min(12, len(self.persons) // 5000 + 2))
        hs = [_Hospital(f"H{c}001", "L2", True), _Hospital(f"H{c}002", "L2", True)]
        hs += [_Hospital(f"H{c}1{t:02d}", "L1", True) for t in range(1, towns + 1)]
        prefecture = c[:4] + "00"
        hs += [_Hospital(f"H{prefecture}901", "L3", False), _Hospital("H530102901", "L3", False)]
        return hs

    def _facilities(self) -> list[tuple[str, str, int]]:
        """(code, kind, licensed doctors): ≈1 village clinic per 800 persons, ≈10 % with no doctor."""
        rng, c = self._rng, self.county
        out = [(h.code, "township_center", rng.randint(3, 12)) for h in self.hospitals if h.level == "L1"]
        out += [(h.code, "hospital", rng.randint(40, 160)) for h in self.hospitals[:2]]
        for v in range(max(5, len(self.persons) // 800)):
            doctors = 0 if rng.random() < 0.10 else rng.choice((1, 1, 2, 2, 3))
            out.append((f"V{c}{v + 1:04d}", "village_clinic", doctors))
        return out

    # ------------------------------------------------------------------ events

    def _eid(self, prefix: str) -> str:
        self._seq += 1
        return f"sim{self.seed}-{prefix}-{self._seq:08d}"

    def _event(self, topic: str, key: str, at: datetime, prefix: str, **fields: Any) -> SimEvent:
        value: dict[str, Any] = {"event_id": self._eid(prefix), "occurred_at": _ts(at)}
        if topic != T_FAC:
            value["person_token"] = key
        value.update(fields)
        return SimEvent(topic, key, value)

    def _at(self, day: date, lo_hour: int = 8, hi_hour: int = 18) -> datetime:
        minute = self._rng.randrange(lo_hour * 60, hi_hour * 60)
        return datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=SHANGHAI)

    def _roster(self, at: datetime) -> Iterator[SimEvent]:
        for code, kind, doctors in self.facilities:
            yield self._event(T_FAC, code, at, "fac", facility_code=code, kind=kind, licensed_doctors=doctors,
                              region_code=self.county)
        for p in self.persons:
            rev = sorted(p.categories & {"poverty_alleviated", "monitored"}, key=PRIORITY.index)
            civ = sorted(p.categories & {"minimum_living", "extreme_poverty"}, key=PRIORITY.index)
            if rev:
                yield self._event(T_POVERTY, p.token, at, "pov", categories=rev,
                                  household_income_fen=p.income_fen, region_code=self.county)
            if civ:
                yield self._event(T_ASSIST, p.token, at, "ast", categories=civ, region_code=self.county)

    def _enrolments(self, year: int, day: date) -> Iterator[SimEvent]:
        rng = self._rng
        for p in self.persons:
            enrolled = rng.random() < (0.995 if p.categories else 0.968)
            subsidy = next((c for c in PRIORITY if c in p.categories), None) if enrolled else None
            if enrolled and subsidy is None and rng.random() < 0.005:
                subsidy = "minimum_living"  # a subsidy the roster does not back (四清 mismatch)
            yield self._event(T_ENROL, p.token, self._at(day), "enr", year=year, enrolled=enrolled,
                              subsidy_category=subsidy, insured_region=self.county)

    def _contracts(self, day: date) -> Iterator[tuple[datetime, SimEvent]]:
        """家庭医生签约 at the start: ≈80 % of special groups, ≈50 % of chronic patients; follow-ups later."""
        rng = self._rng
        for p in self.persons:
            share = 0.8 if p.categories else (0.5 if p.chronic else 0.05)
            if rng.random() < share:
                at = self._at(day)
                yield at, self._event(T_FDOC, p.token, at, "fdc", kind="contract", active=True)
                if p.chronic:
                    p.extra["signed"] = True

    def _admission(self, p: SimPerson, day: date, admitted: datetime | None = None,
                   stay_hours: float | None = None) -> Iterator[tuple[datetime, SimEvent]]:
        """One stay: admission, diagnosis, discharge (and sometimes a reversal or a payment default).

        ``admitted=None``: a county's stay, admitted some time on ``day``, discharged days later in office
        hours. Given: a busy stay from that moment, discharged ``stay_hours`` later (drawn when not given)
        at any hour (module docstring).
        """
        rng = self._rng
        in_county = rng.random() < 0.85
        pool = [h for h in self.hospitals if h.in_county == in_county]
        h = rng.choice(pool) if in_county else pool[0] if rng.random() < 0.7 else pool[-1]
        major = rng.random() < (0.05 if self._age(p) >= 50 else 0.01)
        declared = sorted(p.categories, key=PRIORITY.index)
        if rng.random() < 0.02:
            declared = sorted(set(declared) | {"minimum_living"}, key=PRIORITY.index)  # a wrong self-declaration
        busy = admitted is not None
        admitted = self._at(day, 0, 24) if admitted is None else admitted
        adm_id = f"{h.code}-A{day:%Y%m%d}-{self._seq + 1:06d}"
        yield admitted, self._event(T_ADMIT, p.token, admitted, "adm", admission_id=adm_id, hospital_code=h.code,
                                    hospital_level=h.level, in_county=in_county, declared_categories=declared,
                                    admitted_at=_ts(admitted))
        code = rng.choice(MAJOR_CODES) if major else (
            p.chronic if p.chronic and rng.random() < 0.4 else rng.choice(ORDINARY_CODES))
        if busy:
            stay_hours = rng.uniform(*BUSY_STAY_HOURS) if stay_hours is None else stay_hours
            diag_at = admitted + timedelta(hours=stay_hours * rng.uniform(0.05, 0.5))
        else:
            diag_at = admitted + timedelta(hours=rng.randint(1, 20))
        yield diag_at, self._event(T_DIAG, p.token, diag_at, "dia", icd10=code)
        if busy:
            discharged = (admitted + timedelta(hours=stay_hours)).replace(microsecond=0)
        else:
            stay = rng.randint(2, 6) if h.level == "L1" else rng.randint(3, 14) + (10 if major else 0)
            discharged = self._at(day + timedelta(days=stay), 9, 17)
        median = {"L1": 250_000, "L2": 700_000, "L3": 1_800_000}[h.level] * (6 if major else 1)
        total = min(int(median * math.exp(rng.gauss(0, 0.75))), 150_000_000)
        oop = int(total * rng.uniform(0.05, 0.20))
        d_id = f"{h.code}-D{discharged:%Y%m%d}-{self._seq + 1:06d}"
        discharge = dict(discharge_id=d_id, discharged_at=_ts(discharged), level=h.level, in_county=in_county,
                         referred=(not in_county and rng.random() < 0.6) or (h.level == "L2" and rng.random() < 0.1),
                         total_fen=total, out_of_policy_fen=oop, hospital_code=h.code, reverses=None)
        yield discharged, self._event(T_DISCH, p.token, discharged, "dis", **discharge)
        if rng.random() < 0.01:  # 冲正: reversed within days; the amounts repeat the original's
            rev_at = discharged + timedelta(days=rng.randint(1, 3), hours=rng.randint(0, 5))
            yield rev_at, self._event(T_DISCH, p.token, rev_at, "rev", **{**discharge, "reverses": d_id})
        if not p.categories and rng.random() < 0.02:  # left without paying (欠费), cleared half the time
            yield discharged, self._event(T_DEFAULT, p.token, discharged, "pdf", hospital_code=h.code,
                                          defaulted=True)
            if rng.random() < 0.5:
                cleared = discharged + timedelta(days=rng.randint(10, 90))
                yield cleared, self._event(T_DEFAULT, p.token, cleared, "pdc", hospital_code=h.code,
                                           defaulted=False)

    def _busy_hour(self, hour: datetime, since: datetime) -> Iterator[tuple[datetime, SimEvent]]:
        """Busy admissions from ``since`` to the end of the hour that starts at ``hour`` (Poisson count)."""
        rng = self._rng
        span = (hour + timedelta(hours=1) - since).total_seconds()
        count = _poisson(rng, self.busy_per_minute * span / 60.0)
        for p in rng.choices(self.persons, cum_weights=self._cum_weights, k=count):
            at = (since + timedelta(seconds=rng.uniform(0, span))).replace(microsecond=0)
            yield from self._admission(p, at.astimezone(SHANGHAI).date(), admitted=at)

    def _busy_in_flight(self, since: datetime) -> Iterator[tuple[datetime, SimEvent]]:
        """Patients in hospital at ``since`` (admitted up to a longest stay before it): only their later events.

        The stay is drawn first, so the stays that ended before ``since`` cost nothing.
        """
        rng = self._rng
        longest = BUSY_STAY_HOURS[1]
        count = _poisson(rng, self.busy_per_minute * longest * 60.0)
        for p in rng.choices(self.persons, cum_weights=self._cum_weights, k=count):
            before, stay = rng.uniform(0, longest), rng.uniform(*BUSY_STAY_HOURS)
            if stay <= before:
                continue
            at = (since - timedelta(hours=before)).replace(microsecond=0)
            for when, ev in self._admission(p, at.astimezone(SHANGHAI).date(), admitted=at, stay_hours=stay):
                if when >= since:
                    yield when, ev

    def _followups(self, p: SimPerson, since: datetime, until: datetime) -> Iterator[tuple[datetime, SimEvent]]:
        rng, at = self._rng, since
        while True:
            at = at + timedelta(days=rng.randint(50, 130), hours=rng.randint(0, 8))  # some beyond 90 days
            if at >= until:
                return
            yield at, self._event(T_FDOC, p.token, at, "fup", kind="followup")

    def _day(self, day: date) -> Iterator[tuple[datetime, SimEvent]]:
        rng = self._rng
        if day.month == 12 and day.day == 1:  # enrolment for next year in the autumn campaign (集中参保期)
            for ev in self._enrolments(day.year + 1, day):
                yield datetime.fromisoformat(ev.value["occurred_at"]), ev
        lam = len(self.persons) * self.rate / 365.0
        for p in rng.choices(self.persons, cum_weights=self._cum_weights, k=_poisson(rng, lam)):
            yield from self._admission(p, day)
        for p in rng.sample(self.persons, _poisson(rng, len(self.persons) * 0.00003)):  # ≈1 %/year churn
            at = self._at(day)
            if "monitored" not in p.categories and rng.random() < 0.7:
                p.categories = p.categories | {"monitored"}  # 纳入监测 after a shock
            elif "monitored" in p.categories:
                p.categories = p.categories - {"monitored"}  # 风险消除
            else:
                continue
            rev = sorted(p.categories & {"poverty_alleviated", "monitored"}, key=PRIORITY.index)
            yield at, self._event(T_POVERTY, p.token, at, "pov", categories=rev,
                                  household_income_fen=p.income_fen, region_code=self.county)
        if self.facilities and rng.random() < 0.02:  # a clinic's staffing changes (空白点清零 or a loss)
            code, kind, doctors = rng.choice(self.facilities)
            at = self._at(day)
            yield at, self._event(T_FAC, code, at, "fac", facility_code=code, kind=kind,
                                  licensed_doctors=max(0, doctors + rng.choice((-1, 1))), region_code=self.county)

    def events(self, n: int | None = None) -> Iterator[SimEvent]:
        """The province's events in event-time order; ``n=None`` runs for ever (``hub up``)."""
        rng = random.Random(self.seed)  # events() can be called again and yields the same stream
        self._rng, self._seq = rng, 0
        for p in self.persons:
            p.extra.clear()
        self._reset_categories()
        heap: list[tuple[datetime, int, SimEvent]] = []
        order = 0

        def push(at: datetime, ev: SimEvent) -> None:
            nonlocal order
            order += 1
            heapq.heappush(heap, (at, order, ev))

        t0 = datetime(self.start.year, self.start.month, self.start.day, 0, 5, tzinfo=SHANGHAI)
        for ev in self._roster(t0):
            push(t0, ev)
        for ev in self._enrolments(self.start.year, self.start):
            push(datetime.fromisoformat(ev.value["occurred_at"]), ev)
        for at, ev in self._contracts(self.start):
            push(at, ev)
        horizon = t0 + timedelta(days=3650)
        for p in self.persons:
            if p.chronic:  # chronic code first recorded some time in the first year (outpatient)
                at = self._at(self.start + timedelta(days=rng.randrange(365)))
                push(at, self._event(T_DIAG, p.token, at, "dia", icd10=p.chronic))
                if p.extra.get("signed"):
                    for fat, fev in self._followups(p, at, horizon):
                        push(fat, fev)
        if self.start.month == 12 and self.start.day > 1:  # started after the autumn campaign: enrolled already
            for ev in self._enrolments(self.start.year + 1, self.start):
                push(datetime.fromisoformat(ev.value["occurred_at"]), ev)
        busy_from = (self.busy_from or t0) if self.busy_per_minute > 0 else None
        busy_started = False
        produced, day = 0, self.start
        while n is None or produced < n:
            for at, ev in self._day(day):
                push(at, ev)
            midnight = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
            # Busy days are generated an hour at a time, so a busy day's admissions are never all in memory.
            hours = range(1, 25) if busy_from is not None else (24,)
            ends = [midnight + timedelta(hours=h) for h in hours]
            for end in ends:
                if busy_from is not None and end > busy_from:
                    if not busy_started:
                        busy_started = True
                        for at, ev in self._busy_in_flight(busy_from):
                            push(at, ev)
                    hour = end - timedelta(hours=1)
                    for at, ev in self._busy_hour(hour, max(hour, busy_from)):
                        push(at, ev)
                while heap and heap[0][0] < end:
                    yield heapq.heappop(heap)[2]
                    produced += 1
                    if n is not None and produced >= n:
                        return
            day += timedelta(days=1)

    def _reset_categories(self) -> None:
        if "categories" not in self.__dict__:
            self.__dict__["categories"] = {p.index: p.categories for p in self.persons}
        for p in self.persons:
            p.categories = self.__dict__["categories"][p.index]

    # ------------------------------------------------------------------ feedback

    def answer_referrals(self, referral_outputs: Iterable[Mapping[str, Any]]) -> list[SimEvent]:
        """Departments' answers (转介反馈) to the hub's referrals, in event-time order.

        ``referral_outputs`` are values of hub.referrals.v1 (JSON form). Each newly opened referral
        gets an answer path decided by a seed of its id (deterministic, order-independent):
        ≈70 % acknowledged → accepted → completed, ≈10 % rejected with a reason, ≈20 % unanswered;
        ≈20 % of the answered ones come after the due time (late, so the hub escalates first).
        """
        out: list[tuple[datetime, int, SimEvent]] = []
        for ref in referral_outputs:
            if ref.get("kind", "referral") != "referral" or ref.get("state") != "open":
                continue
            rid = str(ref["referral_id"])
            rng = random.Random(_stable_seed(self.seed, rid))
            opened = datetime.fromisoformat(str(ref["occurred_at"]))
            due = datetime.fromisoformat(str(ref["due"]))
            r = rng.random()
            if r >= 0.8:
                continue
            span = (due - opened) * (rng.uniform(1.1, 2.0) if rng.random() < 0.2 else rng.uniform(0.1, 0.9))
            steps = ["acknowledged", "rejected"] if r >= 0.7 else ["acknowledged", "accepted", "completed"]
            for i, status in enumerate(steps, 1):
                at = opened + span * i / len(steps)
                fields: dict[str, Any] = {"referral_id": rid, "status": status, "reason": None,
                                          "amount_fen": None, "department": ref["department"]}
                if status == "rejected":
                    fields["reason"] = "不符合救助条件 (not eligible on review)"
                if status == "completed" and "assistance" in str(ref.get("referral_type", "")):
                    fields["amount_fen"] = rng.randrange(50_000, 2_000_000, 100)
                digest = hashlib.sha256(f"{rid}/{status}".encode()).hexdigest()[:16]
                value = {"event_id": f"sim{self.seed}-ans-{digest}",
                         "occurred_at": _ts(at), "person_token": str(ref["subject"]), **fields}
                out.append((at, len(out), SimEvent(T_REFERRAL, str(ref["subject"]), value)))
        out.sort(key=lambda x: (x[0], x[1]))
        return [ev for _, _, ev in out]


def _accumulate(values: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total


def _poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw (Knuth for small λ, normal approximation above 50): daily counts vary realistically."""
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def to_replay_lines(events: Iterable[SimEvent]) -> Iterator[str]:
    """``{"topic": …, "value": {…}}`` JSON lines, the input of ``hub replay``."""
    for ev in events:
        yield json.dumps({"topic": ev.topic, "value": ev.value}, ensure_ascii=False, separators=(",", ":"))
