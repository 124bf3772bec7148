"""A worker killed or stopped mid-stream and restarted loses nothing and invents nothing (at-least-once).

What is compared: 12 000 events of the simulated county (``Province(seed=1, persons=500)`` from
1 January 2025) arrive in two halves. The first worker is killed (``kill -9``) or stopped (SIGTERM)
once it has produced outputs for the first half but before its input is committed; a new worker
takes over, the second half arrives, and the new worker runs until the group's lag is 0 and no
output has appeared for a while. A clean run of the same records, arriving the same way, on a fresh
broker with one uninterrupted worker is the reference. Processing is at-least-once, so an output may
appear twice, but the *set* of distinct ``event_id`` values must be the clean run's, each with the
same value (a dead letter's wall-clock ``failed_at``/``occurred_at`` aside): nothing missing,
nothing extra. The second half can only come out right if the new worker restored the first
half's person state (year-to-date ledgers, flags, referrals, the clock) from the changelog.

Why each half is one batch (``HUB_BATCH_MAX`` = 6 000): the person processor only orders records
within a batch, and where faust cuts batches across the ten input topics depends on timing, so two
clean runs with default batching already disagree on thousands of outputs (see
``test_risk_replay.py::test_outputs_do_not_depend_on_batch_boundaries``). With fixed batches the
clean run is reproducible, and a difference can only come from the interruption.

The restarted worker must first restore the person state from its changelog; when its log shows
faust failing to (``Error in recovery``) the test stops at once instead of waiting for a lag that
will never reach 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from hub.broker import EmbeddedBroker, ensure_topics, evict_group_members
from hub.runtime import APP_ID, encode_input, group_lag, output_count, read_topics, spawn_worker, stop_process
from hub.simulate import Province
from hub.topics import INPUT_TOPICS, OUTPUT_TOPICS
from tests.e2e.conftest import WALL_CLOCK_FIELDS

pytestmark = pytest.mark.e2e

EVENTS = 12_000
HALF = EVENTS // 2
IDLE = 2.0
"""Seconds without a new output (and lag 0) that count as done."""
SETTLE_TIMEOUT = 75.0
"""Seconds a worker may take to process everything; generous, the machine is shared."""
RECOVERY_FAILED = "Error in recovery"
"""What faust logs when it cannot apply a changelog record while restoring a table."""


@lru_cache(maxsize=1)
def simulated_records() -> tuple[tuple[str, bytes, bytes], ...]:
    """(topic, key, Avro value) of the simulated county's first events, in event-time order."""
    province = Province(seed=1, persons=500, start=date(2025, 1, 1))
    return tuple((e.topic, *encode_input(e.topic, e.value)) for e in province.events(EVENTS))


class Worker:
    """One ``python -m hub.worker`` child and its log."""

    def __init__(self, bootstrap: str, workdir: Path, name: str) -> None:
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] = spawn_worker(
            bootstrap, data_dir=workdir / name, log_file=self.log,
            extra_env={"HUB_WALL_CLOCK": "0", "HUB_BATCH_MAX": str(HALF), "HUB_BATCH_WITHIN": "60"})
        self._read = 0

    def new_log(self) -> str:
        """Log text written since the last call."""
        try:
            with self.log.open("rb") as fh:
                fh.seek(self._read)
                data = fh.read()
        except OSError:
            return ""
        self._read += len(data)
        return data.decode(errors="replace")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Pipeline:
    """A fresh embedded broker with the catalogue's topics, the simulated records in two halves, workers."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.broker = EmbeddedBroker().start()
        self.workers: list[Worker] = []
        try:
            ensure_topics(self.broker.bootstrap)  # every topic before any worker: faust refuses auto-created ones
        except BaseException:
            self.broker.stop()
            raise
        self._base_ms = int(time.time() * 1000)

    def produce_half(self, which: int) -> None:
        """Put the first (0) or second (1) half of the simulated records on their topics."""
        records = simulated_records()[which * HALF:(which + 1) * HALF]
        producer = KafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all", linger_ms=20)
        try:
            for i, (topic, key, value) in enumerate(records, which * HALF):  # record time = event order
                producer.send(topic, key=key, value=value, timestamp_ms=self._base_ms + i)
            producer.flush()
        finally:
            producer.close()

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def start_worker(self) -> Worker:
        worker = Worker(self.bootstrap, self.workdir, f"worker-{len(self.workers) + 1}")
        self.workers.append(worker)
        return worker

    def lag(self) -> int | None:
        return group_lag(self.bootstrap, APP_ID, INPUT_TOPICS)

    def wait_for_outputs(self, worker: Worker, timeout: float = SETTLE_TIMEOUT) -> int:
        """Wait until the worker has produced at least one output; returns how many there are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.tail()}")
            count = output_count(self.bootstrap)
            if count:
                return count
            time.sleep(0.05)
        pytest.fail(f"no output after {timeout:.0f} s:\n{worker.tail()}")

    def wait_until_settled(self, worker: Worker, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every input is committed and no output appeared for IDLE seconds."""
        deadline = time.monotonic() + timeout
        last_total, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.tail()}")
            if RECOVERY_FAILED in worker.new_log():
                pytest.fail("the restarted worker cannot restore the person-state table from its changelog "
                            f"(faust logs {RECOVERY_FAILED!r} for every record and never resumes):\n{worker.tail()}")
            total = output_count(self.bootstrap)
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            if self.lag() == 0 and time.monotonic() - last_change >= IDLE:
                return
            time.sleep(0.5)
        pytest.fail(f"not settled after {timeout:.0f} s (lag {self.lag()}, {last_total} outputs):\n{worker.tail()}")

    def outputs(self) -> list[dict[str, Any]]:
        return read_topics(self.bootstrap, OUTPUT_TOPICS)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.broker.stop()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    """A pipeline of its own for one test; every worker and the broker are killed at the end, whatever happened."""
    p = Pipeline(tmp_path)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(scope="module")
def clean_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """event_id → distinct values of a clean run: one worker, never interrupted, on a fresh broker."""
    p = Pipeline(tmp_path_factory.mktemp("clean"))
    try:
        p.produce_half(0)
        worker = p.start_worker()
        p.wait_until_settled(worker)
        p.produce_half(1)
        p.wait_until_settled(worker)
        return distinct_outputs(p.outputs())
    finally:
        p.close()


def distinct_outputs(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """event_id → the distinct values (JSON, wall-clock fields left out) the rows carry under that id."""
    out: dict[str, set[str]] = {}
    for row in rows:
        value = {k: v for k, v in row["value"].items() if k not in WALL_CLOCK_FIELDS.get(row["topic"], ())}
        out.setdefault(value["event_id"], set()).add(json.dumps([row["topic"], row["key"], value], sort_keys=True))
    return out


MONEY_TOPICS = ("hub.settlements.v1", "hub.deposit-decisions.v1")


def only(outputs: dict[str, set[str]], topics: tuple[str, ...]) -> dict[str, set[str]]:
    """The outputs of ``topics`` only (each value is JSON ``[topic, key, value]``)."""
    return {k: v for k, v in outputs.items() if any(json.loads(x)[0] in topics for x in v)}


def assert_same_outputs(found: dict[str, set[str]], clean: dict[str, set[str]]) -> None:
    """Nothing missing, nothing extra, one value per id: with examples grouped by kind when not."""
    missing, extra = sorted(set(clean) - set(found)), sorted(set(found) - set(clean))
    changed = sorted(k for k in set(found) & set(clean) if found[k] != clean[k])

    def summary(ids: list[str]) -> str:
        kinds = Counter(i.split(":", 1)[0] for i in ids)
        return f"{len(ids)} {dict(kinds.most_common(6))} e.g. {ids[:3]}"

    example = [(sorted(found[k]), sorted(clean[k])) for k in changed[:1]]
    assert not (missing or extra or changed), (
        f"after the restart, missing: {summary(missing)}; extra: {summary(extra)}; "
        f"different value: {summary(changed)}; first difference (found, clean): {example}")


@pytest.mark.timeout(180)
def test_a_worker_killed_mid_stream_loses_and_invents_nothing(
        pipeline: Pipeline, request: pytest.FixtureRequest) -> None:
    """kill -9 after the first outputs, before the input is committed; a new worker finishes the stream."""
    pipeline.produce_half(0)
    first = pipeline.start_worker()
    pipeline.wait_for_outputs(first)
    lag_at_kill = pipeline.lag()
    first.kill()
    assert lag_at_kill != 0, "the worker committed everything before it could be killed: nothing was tested"
    evict_group_members(pipeline.bootstrap, APP_ID)  # noida-db never expires a killed member (hub/broker.py)
    second = pipeline.start_worker()
    pipeline.wait_until_settled(second)  # the first half again: redelivered, it must change nothing
    pipeline.produce_half(1)
    pipeline.wait_until_settled(second)
    found, clean = distinct_outputs(pipeline.outputs()), request.getfixturevalue("clean_outputs")
    # Money first: every settlement and deposit decision of the clean run, with the same value.
    assert_same_outputs(only(found, MONEY_TOPICS), only(clean, MONEY_TOPICS))
    assert_same_outputs(found, clean)


@pytest.mark.timeout(180)
def test_a_worker_stopped_mid_stream_and_restarted_loses_and_invents_nothing(
        pipeline: Pipeline, request: pytest.FixtureRequest) -> None:
    """SIGTERM after the first outputs (the worker commits what it finished); a new worker finishes the stream."""
    pipeline.produce_half(0)
    first = pipeline.start_worker()
    pipeline.wait_for_outputs(first)
    lag_at_stop = pipeline.lag()
    stop_process(first.proc, timeout=30)
    assert lag_at_stop != 0, "the worker committed everything before it could be stopped: nothing was tested"
    assert first.proc.returncode is not None
    second = pipeline.start_worker()
    pipeline.wait_until_settled(second)
    pipeline.produce_half(1)  # settled only with the first half's state restored from the changelog
    pipeline.wait_until_settled(second)
    found, clean = distinct_outputs(pipeline.outputs()), request.getfixturevalue("clean_outputs")
    assert_same_outputs(only(found, MONEY_TOPICS), only(clean, MONEY_TOPICS))
    assert_same_outputs(found, clean)
