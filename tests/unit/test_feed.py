"""hub.feed, the simulator of ``hub up`` (issue 15, item 6): it catches up to the present, then follows the
wall clock and never produces an event from the future; a restart resumes where the last run was."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

from hub.feed import Feed, event_time, run
from hub.simulate import Province, SimEvent
from hub.timeutil import SHANGHAI

NOW = datetime(2026, 12, 6, 11, 30, tzinfo=SHANGHAI)


def _province() -> Province:
    return Province(seed=9, persons=300, start=NOW.date() - timedelta(days=1), busy_per_minute=6,
                    busy_from=NOW - timedelta(hours=1))


def _run(feed: Feed, clock: list[datetime], loops: int) -> tuple[list[SimEvent], list[dict]]:
    """Run the feed loop ``loops`` times (its sleep counts them) with the wall clock at ``clock[0]``."""
    sent: list[SimEvent] = []
    out = io.StringIO()
    done = [0]

    def sleep(_seconds: float) -> None:
        done[0] += 1

    run(feed, sent.append, rate=0, out=out, should_stop=lambda: done[0] >= loops, now=lambda: clock[0], sleep=sleep)
    return sent, [json.loads(line) for line in out.getvalue().splitlines()]


def test_catches_up_to_now_and_produces_nothing_from_the_future() -> None:
    clock = [NOW]
    everything = []
    for ev in _province().events():
        if event_time(ev) > NOW + timedelta(minutes=10):
            break
        everything.append(ev)
    due = [ev for ev in everything if event_time(ev) <= NOW]
    sent, _ = _run(Feed(iter(_province().events())), clock, loops=50)
    assert [e.value["event_id"] for e in sent] == [e.value["event_id"] for e in due]
    assert all(event_time(e) <= NOW for e in sent)
    clock[0] = NOW + timedelta(minutes=5)  # the wall clock moves on: what fell due is produced, nothing later
    feed = Feed(iter(_province().events()))
    sent, _ = _run(feed, clock, loops=50)
    assert all(event_time(e) <= clock[0] for e in sent)
    assert len(sent) == sum(1 for e in everything if event_time(e) <= clock[0]) > len(due)


def test_reports_live_once_caught_up() -> None:
    import hub.feed as feed_module

    clock = [NOW]
    old, feed_module.STATUS_SECONDS = feed_module.STATUS_SECONDS, 0.0
    try:
        sent, statuses = _run(Feed(iter(_province().events())), clock, loops=20)
    finally:
        feed_module.STATUS_SECONDS = old
    assert statuses and statuses[-1]["live"] is True and statuses[-1]["produced"] == len(sent)
    assert statuses[-1]["at"] == sent[-1].value["occurred_at"]


def test_a_restart_resumes_after_the_last_event_time_it_reported() -> None:
    clock = [NOW]
    first, _ = _run(Feed(iter(_province().events())), clock, loops=50)
    resume_at = event_time(first[len(first) // 2])
    resumed = Feed(iter(_province().events()), resume_after=resume_at)
    again, _ = _run(resumed, clock, loops=50)
    assert resumed.skipped > 0 and all(event_time(e) >= resume_at for e in again)
    ids = [e.value["event_id"] for e in first]
    # the same seed gives the same events: the resumed run goes on exactly where the first one was at that time
    assert [e.value["event_id"] for e in again] == ids[ids.index(again[0].value["event_id"]):]
