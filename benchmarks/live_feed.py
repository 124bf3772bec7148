"""The simulated province as a live feed: its events in their order, with their times moved onto the present.

Why: a live latency means something only for inputs that look like a live feed's — each produced once its
event time has come (never from the future), event times increasing, at a steady pace. The simulator
(:class:`hub.simulate.Province`) gives a county's events in event-time order but spread over simulated
*years*; a benchmark needs them at 50 or 2,000 a second *now*. So each event keeps its place in the order and
its content, and its times are replaced by the moment it is due on the wall clock (:class:`Retimer`):

``occurred_at``
    the event's due time, to the microsecond: every input of a run has an event time of its own, and an
    output carries the event time of the input it was applied at (policy-spec §5.1, the task's clock), which
    names its cause (``benchmarks/live_latency.py`` links outputs to inputs by it);
``admitted_at``, ``discharged_at``
    the event's own time where the simulator gave its own, the original discharge's (retimed) time for a
    reversal (冲正), whose fields repeat the original's.

Nothing else changes: amounts, persons, ids and enrolment years stay as simulated. The province starts on
1 January of the current year (Asia/Shanghai), so enrolments name the year the retimed discharges fall in and
the policies of that year apply (hub/policy/regions; a run across New Year's Eve in Shanghai would date its
last inputs in a year nobody is enrolled for). Months of the simulation are compressed into minutes, so due
times the rules set days ahead (escalations, overdue follow-ups) do not come during a run.

The feed has two parts (:func:`province_feed`): the *registration day* — rosters, facilities, enrolments,
family-doctor contracts, everything the simulator dates on its first day — which a benchmark loads first as a
backlog so that persons are known when their admissions come, and the *days after*, produced live; a province
of :func:`persons_for` persons gives the live part before its autumn enrolment campaign.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from workload import MIXES, Mix

from hub.timeutil import SHANGHAI

__all__ = ["FeedEvent", "Retimer", "at_us", "iso_us", "persons_for", "province_feed"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
TIME_FIELDS = ("admitted_at", "discharged_at")
"""Times inside an input's value besides ``occurred_at`` (hub.events: admissions and discharges)."""
EVENTS_PER_PERSON_TO_CAMPAIGN = {"realistic": 0.9, "discharge-heavy": 3.7}
"""Events a simulated person causes from the registration day to the autumn enrolment campaign (1 December),
measured on seed 7: realistic — diagnoses, admissions, discharges, follow-ups, roster changes; discharge-heavy
— discharges and payment defaults. The campaign itself is one enrolment per person on one simulated day."""


@dataclass(frozen=True)
class FeedEvent:
    """One simulated input: its topic and its value in the events' JSON form, with the simulated times."""

    topic: str
    value: dict[str, Any]


def at_us(t: datetime) -> int:
    """A time as integer µs since the epoch (exact: no float on the way)."""
    return (t - _EPOCH) // _US


def iso_us(us: int) -> str:
    """µs since the epoch as ISO-8601 in Asia/Shanghai, to the microsecond (the events' form of a time)."""
    return (_EPOCH + us * _US).astimezone(SHANGHAI).isoformat(timespec="microseconds")


def persons_for(live_events: int, mix: str) -> int:
    """Persons for a province whose days after registration give ``live_events`` before the autumn campaign.

    Why: the simulator puts a whole year's enrolment campaign (集中参保期, months in a real county) on one day, so
    a live part that reached it would be one enrolment per person in a row — inputs without outputs, not a
    province's daily mix. 10 % more persons than needed keep the live part well before it."""
    return max(1000, math.ceil(live_events / EVENTS_PER_PERSON_TO_CAMPAIGN[mix] * 1.1))


def province_feed(mix: Mix | str, persons: int, seed: int = 7, year: int | None = None
                  ) -> tuple[list[FeedEvent], Iterator[FeedEvent]]:
    """(registration day, the days after) of a province starting 1 January of ``year`` (default: this year in
    Asia/Shanghai); the second part is endless, in simulator order, with the mix's dropped topics left out."""
    from hub.simulate import Province

    mix = MIXES[mix] if isinstance(mix, str) else mix
    year = year or datetime.now(SHANGHAI).year
    start = date(year, 1, 1)
    day_two = datetime(year, 1, 2, tzinfo=SHANGHAI).isoformat()
    province = Province(seed, persons, start=start, rate=mix.rate)
    events = (FeedEvent(ev.topic, ev.value) for ev in province.events(None) if ev.topic not in mix.dropped)
    registration: list[FeedEvent] = []
    for ev in events:
        if datetime.fromisoformat(ev.value["occurred_at"]) >= datetime.fromisoformat(day_two):
            return registration, itertools.chain([ev], events)
        registration.append(ev)
    raise AssertionError("the simulator's stream is endless")


class Retimer:
    """Moves events onto the wall clock in feed order (module docstring): call :meth:`retime` once per event,
    in order, with non-decreasing due times."""

    def __init__(self) -> None:
        self._mapped: dict[str, str] = {}
        """Simulated time → the retimed time of the first event the simulator dated then."""
        self._discharged: dict[str, str] = {}
        """Discharge id → its retimed ``discharged_at`` (a reversal repeats it)."""
        self.last_us = -1

    def retime(self, ev: FeedEvent, due_us: int) -> dict[str, Any]:
        """The event's value with ``occurred_at`` = ``due_us`` and its other times moved with it."""
        if due_us <= self.last_us:
            raise ValueError(f"due times must increase: {due_us} after {self.last_us} µs")
        self.last_us = due_us
        value = dict(ev.value)
        sim_at = value["occurred_at"]
        at = iso_us(due_us)
        self._mapped.setdefault(sim_at, at)
        value["occurred_at"] = at
        for name in TIME_FIELDS:
            sim = value.get(name)
            if sim is None:
                continue
            if name == "discharged_at" and value.get("reverses") in self._discharged:
                value[name] = self._discharged[value["reverses"]]
            else:
                value[name] = at if sim == sim_at else self._mapped.get(sim, at)
        if ev.topic == "health.discharges.v1" and not value.get("reverses"):
            self._discharged.setdefault(value["discharge_id"], value["discharged_at"])
        return value
