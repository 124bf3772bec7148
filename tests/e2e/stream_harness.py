"""Drive live workers under adversarial delivery and compare their outputs with ``hub replay`` (§8.5).

A *schedule* says how the same input records reach the broker and the workers: the order topics are
produced in, batches re-sent by a connector after a "crash" (same bytes, same event ids, new offsets),
the worker's batch size, a SIGKILL at some moment with an immediate restart, a second worker joining,
the first one leaving. Whatever the schedule, the outputs compared by ``event_id`` must be exactly
those of ``hub replay`` on the records (each written with one value only), because ``hub replay`` and
the live worker share only the pure rule code: the merge, the batching, the transactions and the
recovery are each their own.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from hub.broker import EmbeddedBroker, ensure_topics
from hub.processors.replay import by_event_id, iter_dump
from hub.runtime import APP_ID, encode_input, group_lag, output_count, read_topics, spawn_worker, stop_process
from hub.simulate import Province, to_replay_lines
from hub.topics import INPUT_TOPICS, OUTPUT_TOPICS

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Schedule:
    """One adversarial delivery of the same records (every field is chosen by the test)."""

    topic_order: tuple[str, ...] = INPUT_TOPICS
    """Topics are produced one after the other in this order (each in line order)."""
    resends: tuple[tuple[str, float, int], ...] = ()
    """(topic, where, how many): after ``where`` (0–1) of the topic's records, re-send the last ``how many``."""
    batch_max: int = 2000
    kill_at: float | None = None
    """SIGKILL the worker once this share (0–1) of the expected outputs is out, and start a new one at once."""
    second_worker_at: float | None = None
    """Start a second worker once this share of the expected outputs is out."""
    stop_first_at: float | None = None
    """Stop (SIGTERM) the first worker once this share of the outputs is out (a second one keeps going)."""
    restart_at: float | None = None
    """Stop (SIGTERM) the worker once this share of the outputs is out, and start a new one at once."""
    store: str = "memory://"
    """``HUB_STORE`` of the workers: where a task keeps its subjects (``rocksdb://`` on local disk)."""


@dataclass
class Outcome:
    reference: dict[tuple[str, str], str]
    live: dict[tuple[str, str], str]
    logs: list[str] = field(default_factory=list)

    def differences(self, limit: int = 5) -> list[str]:
        out = []
        missing = sorted(set(self.reference) - set(self.live))
        extra = sorted(set(self.live) - set(self.reference))
        diff = sorted(k for k in set(self.reference) & set(self.live) if self.reference[k] != self.live[k])
        for k in missing[:limit]:
            out.append(f"missing {k}: {self.reference[k][:300]}")
        for k in extra[:limit]:
            out.append(f"extra {k}: {self.live[k][:300]}")
        for k in diff[:limit]:
            out.append(f"differs {k}:\n  replay {self.reference[k][:400]}\n  live   {self.live[k][:400]}")
        if missing or extra or diff:
            out.insert(0, f"{len(missing)} missing, {len(extra)} extra, {len(diff)} differing of "
                          f"{len(self.reference)} replay outputs")
        return out


@lru_cache(maxsize=4)
def adversarial_lines(persons: int, events: int, seed: int) -> tuple[str, ...]:
    """Replay lines of a simulated county with what real feeds carry: answers to the hub's referrals,
    late records (event time older than the record before them in their topic-partition), inputs sent
    twice with the same event id, and inputs the rules refuse."""
    province = Province(seed=seed, persons=persons, start=date(2024, 1, 1))
    evs = list(province.events(events))
    lines = list(to_replay_lines(evs))
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:  # answers need the referral ids: a first replay gives them
        src, dump = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        replay(src, dump)
        referrals = [r["value"] for r in iter_dump(dump) if r["topic"] == "hub.referrals.v1"]
    answers = list(to_replay_lines(province.answer_referrals(referrals)))
    merged = _merge_by_time(lines, answers)
    for _ in range(max(1, len(merged) // 50)):  # ≈2 % of lines arrive late
        i = rng.randrange(len(merged) - 1)
        j = min(len(merged) - 1, i + rng.randrange(1, 200))
        merged.insert(j, merged.pop(i))
    for _ in range(max(1, len(merged) // 100)):  # ≈1 % sent twice
        i = rng.randrange(len(merged))
        merged.insert(min(len(merged), i + rng.randrange(1, 300)), merged[i])
    for _ in range(max(1, len(merged) // 200)):  # ≈0.5 % refused by the rules: a category its source does not own
        obj = json.loads(merged[rng.randrange(len(merged))])
        if obj["topic"] == "revitalization.poverty-status.v1":
            obj["value"]["categories"] = ["extreme_poverty"]
            obj["value"]["event_id"] += "-bad"
            merged.insert(rng.randrange(len(merged)), json.dumps(obj, ensure_ascii=False))
    return tuple(merged)


def _merge_by_time(a: list[str], b: list[str]) -> list[str]:
    def at(line: str) -> str:
        return json.loads(line)["value"]["occurred_at"]
    return sorted(a + b, key=at)  # stable: ties keep the simulator's order


def replay(src: Path, dump: Path) -> None:
    subprocess.run([sys.executable, "-m", "hub.cli", "replay", str(src), "--dump", str(dump)], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def reference_and_records(lines: Sequence[str], tmp: Path) -> tuple[dict[Any, Any], list[tuple[str, Any, Any]]]:
    """``hub replay``'s outputs for ``lines`` by event id, and the lines as (topic, key, value) records to produce."""
    src, dump = tmp / "in.jsonl", tmp / "replay.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    replay(src, dump)
    records = [(obj["topic"], *encode_input(obj["topic"], obj["value"])) for obj in map(json.loads, lines)]
    return by_event_id(iter_dump(dump)), records


def run_schedule(lines: Sequence[str], schedule: Schedule, *, timeout: float = 150.0) -> Outcome:
    """Replay ``lines``, deliver them live as ``schedule`` says, and return both outputs by event id."""
    with tempfile.TemporaryDirectory(prefix="hub-adversarial-") as tmp_name:
        tmp = Path(tmp_name)
        reference, records = reference_and_records(lines, tmp)
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap)
            _produce(broker.bootstrap, _deliveries(records, schedule))
            live, logs = _run_workers(broker.bootstrap, tmp, schedule, len(reference), timeout)
        return Outcome(reference, live, logs)


def _deliveries(records: list[tuple[str, bytes, bytes]], schedule: Schedule) -> list[tuple[str, bytes, bytes]]:
    """The records in produce order: topic by topic as the schedule says, with its re-sent slices."""
    by_topic: dict[str, list[tuple[str, bytes, bytes]]] = {t: [] for t in INPUT_TOPICS}
    for rec in records:
        by_topic[rec[0]].append(rec)
    out: list[tuple[str, bytes, bytes]] = []
    for topic in schedule.topic_order:
        seq = list(by_topic[topic])
        for t, where, n in schedule.resends:
            if t == topic and seq:
                cut = max(1, int(len(seq) * where))
                seq[cut:cut] = seq[max(0, cut - n):cut]
        out += seq
    return out


def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=5)
    try:
        for topic, key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def _run_workers(bootstrap: str, tmp: Path, schedule: Schedule, expected: int,
                 timeout: float) -> tuple[dict[tuple[str, str], str], list[str]]:
    env = {"HUB_WALL_CLOCK": "0", "HUB_BATCH_MAX": str(schedule.batch_max), "HUB_STORE": schedule.store}
    n = 0

    def start() -> subprocess.Popen[bytes]:
        nonlocal n
        n += 1
        return spawn_worker(bootstrap, data_dir=tmp / f"w{n}", log_file=tmp / f"w{n}.log", extra_env=env)

    started = time.monotonic()
    deadline = started + timeout
    first = start()
    workers = [first]
    pending = sorted((at, what) for at, what in (
        (schedule.kill_at, "kill"), (schedule.second_worker_at, "second"), (schedule.stop_first_at, "stop_first"),
        (schedule.restart_at, "restart")) if at is not None)
    try:
        while pending and time.monotonic() < deadline:
            at, what = pending[0]
            if output_count(bootstrap) < at * expected:
                if all(w.poll() is not None for w in workers):
                    raise AssertionError("every worker exited:\n" + _logs(tmp)[-6000:])
                time.sleep(0.02)
                continue
            pending.pop(0)
            if what in ("kill", "restart") and first.poll() is None:
                if what == "kill":
                    first.kill()  # SIGKILL, mid-stream: whatever was not committed is applied again
                    first.wait()
                else:
                    stop_process(first)  # SIGTERM: the batch in hand is finished or abandoned, then a new one
                workers.remove(first)
                first = start()
                workers.append(first)
                _processing_again(bootstrap, first, tmp, within=30.0)
            elif what == "second":
                workers.append(start())
            elif what == "stop_first" and len(workers) > 1:
                stop_process(workers[0])
                workers.pop(0)
                first = workers[0]
        if not _wait_idle(bootstrap, workers, deadline):
            raise AssertionError("the workers did not finish in time:\n" + _logs(tmp)[-6000:])
        rows = read_topics(bootstrap, OUTPUT_TOPICS)
    finally:
        for w in workers:
            stop_process(w)
    return by_event_id(rows), [_logs(tmp)]


def _processing_again(bootstrap: str, worker: subprocess.Popen[bytes], tmp: Path, within: float) -> None:
    """Issue 14: a worker restarted at once after a SIGKILL (or a stop) is processing again within 30 s."""
    started, outputs = time.monotonic(), output_count(bootstrap)
    while time.monotonic() - started < within:
        if output_count(bootstrap) > outputs or group_lag(bootstrap, APP_ID, INPUT_TOPICS) == 0:
            return
        if worker.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"the restarted worker did not process anything within {within:.0f} s:\n"
                         + _logs(tmp)[-6000:])


def _wait_idle(bootstrap: str, workers: list[subprocess.Popen[bytes]], deadline: float, idle: float = 2.5) -> bool:
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        for w in workers:
            if w.poll() is not None:
                raise AssertionError(f"a worker exited with {w.returncode}")
        lag = group_lag(bootstrap, APP_ID, INPUT_TOPICS)
        total = output_count(bootstrap)
        if total != last:
            last, since = total, time.monotonic()
        if lag == 0 and time.monotonic() - since >= idle:
            return True
        time.sleep(0.3)
    return False


def _logs(tmp: Path) -> str:
    tail = int(os.environ.get("E2E_LOG_TAIL", "4000"))
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in sorted(tmp.glob("w*.log")))
