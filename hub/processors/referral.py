"""Referral bookkeeping for operators: open referrals (救助转介) by department and age.

The referral lifecycle itself is rule code (:mod:`hub.policy.monitor`); this turns the subject
states the person processor holds into the ``hub_referrals_open{department,age}`` gauge, so an
operator sees a department's backlog grow before its escalations do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from hub.metrics import age_bucket
from hub.policy.model import Route
from hub.policy.monitor.state import SubjectState


def open_referral_counts(subjects: Iterable[SubjectState], routes: Iterable[Route],
                         clock: datetime | None) -> Counter[tuple[str, str]]:
    """``{(department, age bucket): n}`` of referrals not yet final, aged at the event-time ``clock``.

    A referral's age is ``clock − (due − sla_days)``: the state keeps its due time, and the routing
    table its SLA, which together give when it was opened.
    """
    counts: Counter[tuple[str, str]] = Counter()
    if clock is None:
        return counts
    sla = {(r.flag, r.department, r.type): timedelta(days=r.sla_days) for r in routes}
    for state in subjects:
        for ref in state.referrals.values():
            if ref.final:
                continue
            flag = ref.flag_id.split(":", 1)[0]
            opened = ref.due - sla.get((flag, ref.department, ref.type), timedelta(0))
            counts[(ref.department, age_bucket(clock - opened))] += 1
    return counts
