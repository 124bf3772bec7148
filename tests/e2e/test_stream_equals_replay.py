"""policy-spec §8.5: whatever the delivery, the live worker's outputs are ``hub replay``'s.

The same input records (a simulated county with referral answers, late records, inputs sent twice and
inputs the rules refuse — :func:`adversarial_lines`) are delivered to the embedded broker under a
schedule Hypothesis chooses: the order the ten topics are produced in, connector re-sends (the same
bytes again at new offsets), the worker's batch size from 1 to 5,000, a SIGKILL once some share of the
outputs is out followed by an immediate restart, a second worker joining, the first one leaving. The
outputs of every output topic, dead letters included, are compared with ``hub replay`` by event id:
nothing missing, nothing extra, one value per id.

``hub replay`` and the live worker share only the pure rules: the merge (incremental queues with holds
vs. whole lists), batching, transactions and recovery are each their own, so this compares two
independent paths to the same sequence.

CI runs a few examples (``E2E_EXAMPLES``, default 5) on ≈4,400 lines plus the explicit ones below;
``E2E_LARGE=1`` runs 40 examples on ≈22,000 lines.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from hub.topics import INPUT_TOPICS
from tests.e2e.stream_harness import Schedule, adversarial_lines, run_schedule

pytestmark = pytest.mark.e2e

LARGE = os.environ.get("E2E_LARGE") == "1"
EXAMPLES = int(os.environ.get("E2E_EXAMPLES", "40" if LARGE else "5"))
PERSONS, EVENTS = (2_000, 20_000) if LARGE else (400, 4_000)


def lines() -> tuple[str, ...]:
    return adversarial_lines(PERSONS, EVENTS, 11)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    second = draw(st.none() | st.floats(0.05, 0.7))
    return Schedule(
        topic_order=tuple(draw(st.permutations(INPUT_TOPICS))),
        resends=tuple(draw(st.lists(st.tuples(st.sampled_from(INPUT_TOPICS), st.floats(0.05, 0.95),
                                              st.integers(1, 400)), max_size=3))),
        batch_max=draw(st.sampled_from([1, 3, 50, 500, 2000, 5000])),
        kill_at=draw(st.none() | st.floats(0.05, 0.9)),
        restart_at=draw(st.none() | st.floats(0.05, 0.9)),
        store=draw(st.sampled_from(["memory://", "rocksdb://"])),
        second_worker_at=second,
        stop_first_at=None if second is None else draw(st.none() | st.floats(second + 0.05, 0.95)),
    )


def check(schedule: Schedule) -> None:
    outcome = run_schedule(lines(), schedule)
    problems = outcome.differences()
    assert not problems, "\n".join([repr(schedule), *problems, outcome.logs[0][-3000:]])


@pytest.mark.timeout(1800 if LARGE else 600)
@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
@given(schedules())
@example(Schedule(topic_order=tuple(reversed(INPUT_TOPICS)), batch_max=5000))
@example(Schedule(resends=(("insurance.enrollments.v1", 0.5, 400), ("health.discharges.v1", 0.3, 60),
                           ("health.family-doctor.v1", 0.6, 100)), batch_max=50, kill_at=0.4))
@example(Schedule(batch_max=200, second_worker_at=0.2, stop_first_at=0.6))
@example(Schedule(batch_max=1, restart_at=0.3))
@example(Schedule(batch_max=500, kill_at=0.5, second_worker_at=0.2, store="rocksdb://"))
def test_live_worker_gives_what_replay_gives(schedule: Schedule) -> None:
    check(schedule)


@pytest.mark.timeout(300)
def test_a_sigkill_at_every_stage_changes_nothing() -> None:
    """SIGKILL early, in the middle and near the end (each time restarted at once): the same outputs."""
    for kill_at in (0.1, 0.5, 0.9):
        check(Schedule(batch_max=100, kill_at=kill_at))
