"""Issue 15, item 7, CI-sized: ``hub up`` keeps running for three minutes — no worker restart, no crash line in
the worker log, settlements in every minute, a clean stop within 15 s with nothing left — and its simulator never
produced an event from the future (item 6).

The same code as the 30-minute soak of BENCHMARKS.md (benchmarks/soak.py), shorter: catch-up (≈20 s), 15 s of
warm-up, two measured minutes.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module
    spec.loader.exec_module(module)
    return module


def _inputs_from_the_future(data_dir: Path) -> tuple[int, list[str]]:
    """(records read, those whose event time is after the time they were produced), from the kept data dir."""
    from kafka import KafkaConsumer, TopicPartition

    from hub import codec
    from hub.broker import EmbeddedBroker
    from hub.topics import BY_NAME, INPUT_TOPICS

    late: list[str] = []
    n = 0
    with EmbeddedBroker(data_dir / "broker") as broker:
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        try:
            tps = [TopicPartition(t, p) for t in INPUT_TOPICS for p in range(BY_NAME[t].partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for msgs in consumer.poll(timeout_ms=1000, max_records=5000).values():
                    for m in msgs:
                        n += 1
                        occurred = codec.decode(m.value)[1]["occurred_at"]
                        occurred = occurred if isinstance(occurred, datetime) else datetime.fromisoformat(occurred)
                        if occurred.timestamp() * 1000 > m.timestamp:
                            late.append(f"{m.topic}@{m.offset}: occurred_at {occurred}, produced at {m.timestamp}")
        finally:
            consumer.close()
    return n, late


def test_hub_up_keeps_running_for_three_minutes(tmp_path: Path) -> None:
    soak = _soak_module()
    data_dir = tmp_path / "data"
    report = soak.soak(minutes=2.0, warmup=15.0, hub_args=["--persons", "2000"], data_dir=data_dir)
    print(soak.markdown(report))
    assert report.problems == [], soak.markdown(report)
    assert len(report.settlements_per_minute) == 2
    n, late = _inputs_from_the_future(data_dir)
    assert n > 1000 and not late, late[:5]
