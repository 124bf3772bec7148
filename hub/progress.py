"""What ``hub up`` shows while it runs: each part's state, the worker's lag, the outputs so far.

Why a thread reads the broker: the numbers come from the broker (end offsets of the topics, the committed
offsets of the worker's consumer group) and from the counter API's ``/healthz``; a broker that is gone or
slow must not hold ``hub up``'s main loop, which supervises the parts and answers Ctrl-C. So
:class:`Observer` reads them once a second in a daemon thread, and the main loop draws the last reading
with its age (a reading that stops updating says so instead of printing frozen numbers).

Lag is the group lag of the worker's consumer group over the input topics: records on the inputs not yet
committed by the worker (it commits inside each task's transaction, at most a second behind what it
applied). A lag that grows while the worker is ``running`` is a worker that does not keep up or no longer
processes; one that falls to 0 is a worker that has caught up.

Outputs are counted as records read (read_committed), not as end offsets: the worker writes them in
transactions, and every transaction leaves a commit marker that takes an offset of its own — with the
live demo's one or two records per transaction, end offsets read about twice the real count.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from hub.topics import BY_NAME, INPUT_TOPICS

__all__ = ["PROGRESS_TOPICS", "Observer", "Reading", "Screen", "counts_text"]

PROGRESS_TOPICS = {
    "settlements": "hub.settlements.v1",
    "deposit decisions": "hub.deposit-decisions.v1",
    "flags": "hub.risk-flags.v1",
    "referrals": "hub.referrals.v1",
    "mismatches": "hub.mismatches.v1",
    "dead letters": "hub.dead-letters.v1",
}


@dataclass
class Reading:
    """One look at the broker and the API. ``error`` is set (and the numbers are the last good ones) when
    the broker could not be read; ``at`` is when the numbers were read (monotonic seconds)."""

    counts: dict[str, int] = field(default_factory=dict)
    inputs: int = 0
    lag: int | None = None
    api: str = "starting"
    at: float = 0.0
    error: str = ""


class Observer:
    """Reads :class:`Reading` every ``interval`` seconds in a daemon thread; :attr:`reading` is the latest."""

    def __init__(self, bootstrap: str, group: str, api_url: str | None, interval: float = 1.0) -> None:
        self.bootstrap, self.group, self.api_url, self.interval = bootstrap, group, api_url, interval
        self.reading = Reading()
        self._stop = threading.Event()
        self._admin: object | None = None
        self._consumer: Any = None
        self._counts: dict[str, int] = {}
        self._positions: dict[Any, int] = {}
        self._thread = threading.Thread(target=self._run, name="hub-up-observer", daemon=True)

    def start(self) -> Observer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the thread to end and wait at most ``timeout``: a read stuck on a dead broker is left behind
        (the thread is a daemon), never waited for."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.reading = self.read(self.reading)
                self._stop.wait(self.interval)
        finally:
            self._close_admin()

    def read(self, last: Reading) -> Reading:
        """A new reading; on a broker error the last numbers are kept and the error is given."""
        api = self._api_health()
        try:
            counts, inputs, lag = self._offsets()
        except Exception as exc:  # any client error: the broker is unreachable or misbehaves
            self._close_admin()
            return Reading(last.counts, last.inputs, last.lag, api, last.at, _short(exc))
        return Reading(counts, inputs, lag, api, time.monotonic(), "")

    def _offsets(self) -> tuple[dict[str, int], int, int | None]:
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec

        admin = self._admin_client()
        inputs = [TopicPartition(t, p) for t in INPUT_TOPICS for p in range(BY_NAME[t].partitions)]
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in inputs}, timeout_ms=3000)  # type: ignore[attr-defined]
        end = {tp: ends[tp].offset for tp in inputs}
        committed = admin.list_group_offsets({self.group: inputs}).get(self.group, {})  # type: ignore[attr-defined]
        done = {tp: c.offset for tp, c in committed.items() if c is not None and c.offset >= 0}
        lag = sum(max(end[tp] - done.get(tp, 0), 0) for tp in inputs) if done else None
        return self._count_outputs(), sum(end.values()), lag

    def _count_outputs(self, budget: float = 0.5) -> dict[str, int]:
        """Records on the output topics so far: read on from where the last reading stopped (at most
        ``budget`` seconds a reading, so a large backlog is counted over several readings)."""
        from kafka import KafkaConsumer, TopicPartition

        from hub.clients import kafka_python_options

        if self._consumer is None:
            tps = [TopicPartition(t, p) for t in PROGRESS_TOPICS.values() for p in range(BY_NAME[t].partitions)]
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), client_id="hub-up-progress",
                                     enable_auto_commit=False, isolation_level="read_committed",
                                     auto_offset_reset="earliest", request_timeout_ms=5000, **kafka_python_options())
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self._positions.get(tp, 0))
            self._consumer = consumer
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            batch = self._consumer.poll(timeout_ms=100, max_records=20_000)
            if not batch:
                break
            for tp, msgs in batch.items():
                self._counts[tp.topic] = self._counts.get(tp.topic, 0) + len(msgs)
                self._positions[tp] = msgs[-1].offset + 1
        return dict(self._counts)

    def _admin_client(self) -> object:
        if self._admin is None:
            from kafka.admin import KafkaAdminClient

            from hub.clients import kafka_python_options

            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap.split(","), client_id="hub-up-progress",
                                           request_timeout_ms=5000, bootstrap_timeout_ms=5000,
                                           **kafka_python_options())
        return self._admin

    def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        consumer, self._consumer = self._consumer, None
        for client in (admin, consumer):
            if client is not None:
                with contextlib.suppress(Exception):  # closing a client of a dead broker: nothing left to do
                    client.close()

    def _api_health(self) -> str:
        """``running``, ``unhealthy: …`` (503 from /healthz) or ``down: …`` (no answer)."""
        if not self.api_url:
            return "off"
        try:
            with urllib.request.urlopen(f"{self.api_url}/healthz", timeout=2) as resp:
                return "running" if resp.status == 200 else f"unhealthy: HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")[:120]
            exc.close()
            return f"unhealthy: HTTP {exc.code} {body}"
        except Exception as exc:  # refused, timed out
            return f"down: {_short(exc)}"


def _short(exc: BaseException, width: int = 120) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= width else text[: width - 1] + "…"


def counts_text(reading: Reading) -> str:
    """``in 1,234  settlements 56  deposit decisions …``: the outputs so far (end offsets of their topics)."""
    return f"in {reading.inputs:,}  " + "  ".join(
        f"{label} {reading.counts.get(topic, 0):,}" for label, topic in PROGRESS_TOPICS.items())


class Screen:
    """Status lines and event lines on one output.

    On a terminal the status (a few lines) is redrawn in place and event lines ("worker: restarting …")
    are printed above it; elsewhere (a pipe, a log file) the status is one line every ``every`` seconds,
    its parts joined with `` | ``, and events are lines of their own.
    """

    def __init__(self, out: TextIO, every: float | None = None) -> None:
        self.out = out
        self.tty = _isatty(out)
        self.every = every if every is not None else (1.0 if self.tty else 5.0)
        self._drawn = 0
        self._last: list[str] = []

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\r\x1b[K" + "\x1b[1A\r\x1b[K" * (self._drawn - 1))
            self._drawn = 0

    def event(self, line: str) -> None:
        self._clear()
        self.out.write(line + "\n")
        if self.tty and self._last:
            self._draw(self._last)
        self.out.flush()

    def status(self, lines: Sequence[str]) -> None:
        self._last = list(lines)
        if self.tty:
            self._clear()
            self._draw(self._last)
        else:
            self.out.write(" | ".join(line.strip() for line in lines) + "\n")
        self.out.flush()

    def _draw(self, lines: Sequence[str]) -> None:
        width = max(shutil.get_terminal_size((120, 24)).columns - 1, 20)
        self.out.write("\n".join(line[:width] for line in lines))
        self._drawn = len(lines)

    def close(self) -> None:
        """Leave the last status on screen and end its line."""
        if self.tty and self._drawn:
            self.out.write("\n")
            self._drawn = 0
        self.out.flush()


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
