"""A live worker judges 1 January over many transactions, is killed in the middle, and loses nothing.

A county's inputs of 2025, about half of its persons without an enrolment for 2026, go to a worker whose
wall clock is on (§8.3): once caught up, its clock jumps from the last input to today, and at 1 January 2026
every person it holds is judged. With ``HUB_BATCH_MAX=1`` that is one subject a transaction; the worker is
SIGKILLed part-way and a new one goes on from the firing's place in the task state. Whatever the pieces,
the outputs by event id must be ``hub replay --until`` today's: one uninterrupted advance, computed without
a broker, a transaction or a restore.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from hub.broker import EmbeddedBroker, ensure_topics
from hub.clients import kafka_python_options
from hub.processors.replay import by_event_id, iter_dump
from hub.runtime import encode_input, read_topics, spawn_worker, stop_process
from hub.simulate import Province, to_replay_lines
from hub.timeutil import SHANGHAI
from hub.topics import OUTPUT_TOPICS, PARTITIONS
from tests.e2e.stream_harness import ROOT, _produce, _wait_idle

pytestmark = pytest.mark.e2e

NEW_YEAR = datetime(2026, 1, 1, tzinfo=SHANGHAI)


def _county_of_2025() -> list[str]:
    lines = []
    for line in to_replay_lines(Province(seed=11, persons=800, start=date(2025, 1, 1)).events(5000)):
        value = json.loads(line)["value"]
        if datetime.fromisoformat(value["occurred_at"]) >= NEW_YEAR:
            continue
        if value.get("year") == NEW_YEAR.year and int(value["person_token"][-1], 16) % 2:
            continue  # not enrolled for 2026: judged uninsured at 1 January
        lines.append(line)
    return lines


@pytest.mark.timeout(400)
def test_a_worker_killed_while_judging_the_new_year_gives_hub_replays_outputs(tmp_path: Path) -> None:
    lines = _county_of_2025()
    src, dump = tmp_path / "in.jsonl", tmp_path / "replay.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    until = datetime.now(SHANGHAI).replace(microsecond=0)
    without, with_until = tmp_path / "replay-no-clock.jsonl", dump
    for out, extra in ((without, []), (with_until, ["--until", until.isoformat()])):
        subprocess.run([sys.executable, "-m", "hub.cli", "replay", str(src), "--dump", str(out), *extra],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    before = by_event_id(iter_dump(without))
    reference = by_event_id(iter_dump(with_until))
    new_year = {k: v for k, v in reference.items() if k not in before}
    uninsured = [v for (topic, _), v in new_year.items() if topic == "hub.risk-flags.v1" and '"uninsured"' in v]
    assert len(uninsured) >= 20, "the new year raised too few flags for pieces to matter"

    records = [(obj["topic"], *encode_input(obj["topic"], obj["value"])) for obj in map(json.loads, lines)]
    env = {"HUB_WALL_CLOCK": "1", "HUB_TICK_SECONDS": "1", "HUB_BATCH_MAX": "1"}
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        _produce(broker.bootstrap, records)
        logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
        worker = spawn_worker(broker.bootstrap, data_dir=tmp_path / "w1", log_file=logs[0], extra_env=env)
        workers = [worker]
        try:
            deadline = time.monotonic() + 240
            flags = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                                  enable_auto_commit=False, **kafka_python_options())
            flags.assign([TopicPartition("hub.risk-flags.v1", p) for p in range(PARTITIONS)])
            flags.seek_to_beginning()
            seen = 0
            while seen < len(uninsured) // 2:  # about half of the new year's flags are out
                assert worker.poll() is None, logs[0].read_text(errors="replace")[-4000:]
                assert time.monotonic() < deadline, "the first worker did not get half-way through the new year"
                for msgs in flags.poll(timeout_ms=20).values():
                    seen += sum(1 for m in msgs if b"uninsured" in m.value and b":2026#" in m.value)
            worker.kill()  # SIGKILL while the firing is paused between two of its transactions
            flags.close()
            worker.wait()
            workers = [spawn_worker(broker.bootstrap, data_dir=tmp_path / "w2", log_file=logs[1], extra_env=env)]
            assert _wait_idle(broker.bootstrap, workers, deadline, idle=4.0), logs[1].read_text()[-4000:]
            live = by_event_id(read_topics(broker.bootstrap, OUTPUT_TOPICS))
        finally:
            for w in workers:
                stop_process(w)
    second = logs[1].read_text(errors="replace")
    missing, extra = set(reference) - set(live), set(live) - set(reference)
    differing = [k for k in set(reference) & set(live) if reference[k] != live[k]]
    assert not (missing or extra or differing), (len(missing), len(extra), differing[:3], second[-3000:])
    # and the kill did land in the middle: the new worker restored a task part-way through the new year
    assert "in the middle of judging the subjects due at 2026-01-01T00:00:00+08:00" in second, second[-4000:]
