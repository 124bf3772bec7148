"""The simulated province every stream benchmark runs on: the same records for every consumer compared.

Why one workload module: "side by side, same broker, same data" (the aiokafka floor, the faust floor, Quix
Streams, the hub worker) only holds if every row reads the very records ``hub replay`` is given. So a
:class:`Workload` keeps both forms of each input: the replay line (``{"topic", "value"}`` JSON, the input of
``hub replay``) and the encoded record (topic, key, Avro value) a producer sends, built from the same value by
the same function (:func:`hub.runtime.encode_input`), in the same order.

Workloads (``mix``), from :class:`hub.simulate.Province` (start 2025-01-01, the year the bundled policies
cover):

``realistic``
    Every event the simulator emits for a county of 0.4·N persons (≈ one simulated year): roster,
    enrolments (two campaigns), contracts, chronic diagnoses, admissions, discharges (incl. reversals),
    follow-ups, payment defaults, facility staffing. Discharges are ≈7 %.
``discharge-heavy``
    The hospital-cashier path: 0.2·N persons at 4 admissions per person-year, keeping rosters,
    enrolments, discharges and payment defaults (admissions, diagnoses and family-doctor events
    dropped). Discharges are ≈70 %.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

DISCHARGE_HEAVY_DROPPED = frozenset({"health.admissions.v1", "health.diagnoses.v1", "health.family-doctor.v1"})

__all__ = ["MIXES", "Mix", "Workload", "build_workload", "produce"]


@dataclass(frozen=True)
class Mix:
    """A workload: persons per requested event, admission rate, topics left out."""

    name: str
    persons_per_event: float
    rate: float
    dropped: frozenset[str] = frozenset()


MIXES: dict[str, Mix] = {
    "realistic": Mix("realistic", 0.4, 0.18),
    "discharge-heavy": Mix("discharge-heavy", 0.2, 4.0, DISCHARGE_HEAVY_DROPPED),
}


@dataclass
class Workload:
    """The input records of one run, in simulator order, as replay lines and as encoded records."""

    mix: str
    persons: int
    seed: int
    lines: list[str]
    records: list[tuple[str, bytes, bytes]]  # (topic, key, Avro value), record i from lines[i]
    composition: dict[str, int]
    last_event: str
    build_seconds: float
    base_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    """Record timestamp of input i is ``base_ms + i`` (arrival order = simulator order). Wall-clock based on
    purpose: input topics' retention applies to record timestamps, and records stamped with their simulated
    2025 dates would be deleted before a consumer saw them."""

    @property
    def n(self) -> int:
        return len(self.records)

    def composition_text(self) -> str:
        return ", ".join(f"{t.split('.')[1]} {c / self.n:.1%}" for t, c in
                         sorted(self.composition.items(), key=lambda kv: -kv[1]))

    def describe(self) -> str:
        return (f"{self.n:,} input records of {self.persons:,} simulated persons (mix `{self.mix}`, seed {self.seed}, "
                f"events up to {self.last_event[:10]}): {self.composition_text()}")

    def write_lines(self, path: Path) -> Path:
        """The replay lines, the input of ``hub replay``."""
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        return path


def build_workload(n: int, mix: Mix | str = "realistic", seed: int = 7, persons: int | None = None) -> Workload:
    """Simulate ``n`` input records; encode each exactly as ``hub replay`` does (hub.runtime.encode_input)."""
    from hub.runtime import encode_input
    from hub.simulate import Province

    mix = MIXES[mix] if isinstance(mix, str) else mix
    started = time.perf_counter()
    persons = persons or max(200, round(n * mix.persons_per_event))
    province = Province(seed, persons, start=date(2025, 1, 1), rate=mix.rate)
    lines: list[str] = []
    records: list[tuple[str, bytes, bytes]] = []
    counts: collections.Counter[str] = collections.Counter()
    last = ""
    for ev in province.events(None):
        if ev.topic in mix.dropped:
            continue
        key, value = encode_input(ev.topic, ev.value)
        lines.append(json.dumps({"topic": ev.topic, "value": ev.value}, ensure_ascii=False, separators=(",", ":")))
        records.append((ev.topic, key, value))
        counts[ev.topic] += 1
        last = ev.value["occurred_at"]
        if len(records) >= n:
            break
    return Workload(mix.name, persons, seed, lines, records, dict(counts), last, time.perf_counter() - started)


def produce(bootstrap: str, workload: Workload, prefix: str = "") -> float:
    """Pre-produce every input in order (timestamp = base + index); returns the seconds it took.

    ``prefix`` is put before each topic name (benchmarks that must not touch the catalogue's topics).
    """
    from kafka import KafkaProducer

    from hub.clients import kafka_python_options

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=20,
                             batch_size=256 * 1024, max_request_size=4 * 1024 * 1024, **kafka_python_options())
    started = time.perf_counter()
    try:
        for i, (topic, key, value) in enumerate(workload.records):
            producer.send(prefix + topic, key=key, value=value, timestamp_ms=workload.base_ms + i)
        producer.flush(timeout=600)
    finally:
        producer.close()
    return time.perf_counter() - started
