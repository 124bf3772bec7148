"""``python -m hub.feed``: the simulator of ``hub up``, a process of its own that feeds a synthetic province to
the broker — catching up to the present, then following the wall clock, never ahead of it.

Why a process and not a thread of ``hub up``: it encodes hundreds of Avro records a second while catching
up, and in ``hub up``'s process that work would hold the interpreter lock the counter API thread needs to
answer a cashier; a producer blocked on a broker that is gone would hold ``hub up``'s loop; and a process can
be stopped first and on its own (the stop order is simulator, API, worker, broker), restarted when it
fails, and killed by the kernel with ``hub up`` (hub/supervise.py).

Time: the province (hub.simulate.Province) starts on ``--start`` and its events come in event-time order.
An event is produced once its ``occurred_at`` has come: as fast as ``--rate`` allows while the feed is
behind (catching up), then as the wall clock reaches each one (live). So nothing is ever produced with an
event time in the future, and the hub's clock follows today's date. ``--busy-per-minute`` admissions a
minute from ``--busy-from`` keep settlements flowing every minute (Province's docstring says why).

Departments answer the hub's referrals: the feed reads ``hub.referrals.v1`` from its end and holds each
answer (Province.answer_referrals) until its time has come too.

Output: one JSON status line a second on stdout (``produced``, ``at`` — the event time of the last record
produced —, ``live``, ``behind_s``), read by ``hub up`` for its progress line and to resume after a
restart (``--resume-after``: the same seed regenerates the same events; those before that time are
skipped, and one produced twice has the same event id, so the worker drops it, policy-spec §8.2).
Log lines go to stderr. Exit codes: 0 after SIGTERM/SIGINT, 1 when the broker refuses records or cannot
be reached (``hub up`` then restarts it with backoff), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, TextIO

from hub.simulate import Province, SimEvent

log = logging.getLogger("hub.feed")

__all__ = ["Feed", "ReferralAnswers", "main"]

STATUS_SECONDS = 1.0
SEND_BLOCK_MS = 10_000
"""How long a send may wait for a broker that is gone before the feed gives up (and is restarted)."""


def event_time(ev: SimEvent) -> datetime:
    return datetime.fromisoformat(ev.value["occurred_at"])


class ReferralAnswers:
    """Departments answering the hub's referrals (转介反馈), some late, so ``hub up`` shows every flow.

    The simulator decides each answer from the referral id; this reads the referrals the hub emitted
    (from the end of the topic as it was at start) and keeps the answers in event-time order until
    :class:`Feed` takes them. A department does not answer a referral the hub already withdrew.
    """

    def __init__(self, bootstrap: str, province: Province) -> None:
        from kafka import KafkaConsumer, TopicPartition

        from hub.clients import kafka_python_options

        self.province = province
        self.pending: list[tuple[str, int, SimEvent]] = []
        self.count = 0
        self.withdrawn: set[str] = set()
        self.last_poll = 0.0
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                                      isolation_level="read_committed", **kafka_python_options())
        topic = "hub.referrals.v1"
        tps = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)

    def poll(self) -> None:
        """Read new referrals (at most twice a second) and schedule the answers of those opened."""
        from hub import codec
        from hub.processors.convert import json_safe

        if time.monotonic() - self.last_poll < 0.5:
            return
        self.last_poll = time.monotonic()
        values = []
        for msgs in self.consumer.poll(timeout_ms=0, max_records=5000).values():
            for m in msgs:
                values.append(json_safe(codec.decode(m.value)[1]))
        self.withdrawn |= {v["referral_id"] for v in values if v.get("state") == "withdrawn"}
        for ev in self.province.answer_referrals(v for v in values if v["referral_id"] not in self.withdrawn):
            self.count += 1
            heapq.heappush(self.pending, (ev.value["occurred_at"], self.count, ev))

    def peek(self) -> SimEvent | None:
        while self.pending and self.pending[0][2].value["referral_id"] in self.withdrawn:
            heapq.heappop(self.pending)
        return self.pending[0][2] if self.pending else None

    def pop(self) -> SimEvent:
        return heapq.heappop(self.pending)[2]

    def close(self) -> None:
        self.consumer.close()


class Feed:
    """The next record to produce: the province's next event or a held answer, whichever is earlier.

    ``resume_after``: province events before that time were produced by an earlier run; they are skipped.
    """

    def __init__(self, events: Iterator[SimEvent], answers: ReferralAnswers | None = None,
                 resume_after: datetime | None = None) -> None:
        self.events = events
        self.answers = answers
        self._ahead: SimEvent | None = None
        self.skipped = 0
        if resume_after is not None:
            for ev in events:
                if event_time(ev) >= resume_after:
                    self._ahead = ev
                    break
                self.skipped += 1

    def peek(self) -> SimEvent:
        if self._ahead is None:
            self._ahead = next(self.events)
        if self.answers is not None:
            self.answers.poll()
            answer = self.answers.peek()
            if answer is not None and answer.value["occurred_at"] <= self._ahead.value["occurred_at"]:
                return answer
        return self._ahead

    def pop(self) -> SimEvent:
        ev = self.peek()
        if ev is self._ahead:
            self._ahead = None
        else:
            assert self.answers is not None
            self.answers.pop()
        return ev


def run(feed: Feed, send: Any, *, rate: float, out: TextIO, should_stop: Any,
        now: Any = lambda: datetime.now(UTC), sleep: Any = time.sleep) -> int:
    """Produce what is due, at most ``rate`` records a second (0: no limit), until ``should_stop()``; returns
    the count. An event is due once its event time is not after ``now()``: never an event from the future.
    """
    produced, last_at, tokens = 0, None, 0.0
    last_refill = last_status = time.monotonic()
    while not should_stop():
        mono = time.monotonic()
        tokens = min(tokens + (mono - last_refill) * rate, max(rate, 1.0)) if rate > 0 else float("inf")
        last_refill = mono
        wall = now()
        while tokens >= 1.0 and not should_stop() and event_time(feed.peek()) <= wall:
            ev = feed.pop()
            send(ev)
            tokens -= 1.0
            produced += 1
            last_at = ev.value["occurred_at"]
        if mono - last_status >= STATUS_SECONDS:
            last_status = mono
            behind = (wall - event_time(feed.peek())).total_seconds()
            live = behind < 0
            out.write(json.dumps({"produced": produced, "at": last_at, "live": live,
                                  "behind_s": max(round(behind), 0)}) + "\n")
            out.flush()
        sleep(0.05)
    return produced


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hub.feed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=5000, help="simulated persons")
    parser.add_argument("--rate", type=float, default=500.0, help="most records a second while catching up")
    parser.add_argument("--seed", type=int, required=True, help="the province's seed (a restart passes the same)")
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first simulated day (YYYY-MM-DD)")
    parser.add_argument("--busy-per-minute", type=float, default=0.0, help="busy admissions a minute (Province)")
    parser.add_argument("--busy-from", type=datetime.fromisoformat, default=None,
                        help="when the busy admissions start (ISO-8601 with offset)")
    parser.add_argument("--resume-after", type=datetime.fromisoformat, default=None,
                        help="skip province events before this time (ISO-8601 with offset): a restart")
    args = parser.parse_args(argv)
    for name in ("busy_from", "resume_after"):
        value = getattr(args, name)
        if value is not None and value.tzinfo is None:
            parser.error(f"--{name.replace('_', '-')} needs a UTC offset, e.g. 2026-12-06T10:00:00+08:00")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from kafka import KafkaProducer

    from hub.clients import kafka_python_options
    from hub.config import get_settings
    from hub.runtime import encode_input

    stopping: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bootstrap = ",".join(get_settings().bootstrap_servers())
    province = Province(seed=args.seed, persons=args.persons, start=args.start,
                        busy_per_minute=args.busy_per_minute, busy_from=args.busy_from)
    failures: list[BaseException] = []
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=20,
                             max_block_ms=SEND_BLOCK_MS, **kafka_python_options())
    answers = ReferralAnswers(bootstrap, province)
    feed = Feed(iter(province.events()), answers, args.resume_after)
    if feed.skipped:
        log.info("resumed after %s: skipped %d event(s) an earlier run produced", args.resume_after, feed.skipped)
    log.info("simulating %d persons of %s from %s; busy admissions %.1f/min from %s", args.persons,
             province.county, args.start, args.busy_per_minute, args.busy_from or "the start")

    def send(ev: SimEvent) -> None:
        if failures:
            raise RuntimeError(f"the broker refused a record: {failures[0]!r}")
        key, data = encode_input(ev.topic, ev.value)
        producer.send(ev.topic, key=key, value=data).add_errback(failures.append)

    code = 0
    try:
        produced = run(feed, send, rate=args.rate, out=sys.stdout, should_stop=lambda: bool(stopping))
        log.info("stopping on signal %s after %d record(s)", stopping[0] if stopping else "-", produced)
    except Exception as exc:  # a broker that is gone or refuses: exit non-zero, hub up restarts the feed
        log.error("simulator failed: %s: %s", type(exc).__name__, exc)
        code = 1
    finally:
        try:
            producer.close(timeout=2)
        except Exception as exc:
            log.warning("closing the producer: %r", exc)
        answers.close()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
