"""The check every stream benchmark makes before it reports a rate: its outputs equal ``hub replay``'s.

Why: a consumer that drops, reorders or duplicates differently can be fast for free (the old benchmark reported
5,203 events/s for a worker that dead-lettered 3,552 of ≈3,900 discharges). policy-spec §8.5 defines the
correct outputs as those of ``hub replay`` on the same records, compared by ``event_id``; so the reference is
that command itself, run as its own process on the workload's replay lines (:func:`replay_reference`), and a
run's outputs are read back from the broker with ``read_committed`` (:func:`live_outputs`), as the e2e tests do
(tests/e2e/stream_harness.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness import ROOT, BenchError

Outputs = dict[tuple[str, str], str]

__all__ = ["Outputs", "compare", "end_offsets", "live_outputs", "read_records", "replay_reference"]


def replay_reference(lines_file: Path, timeout: float = 3600.0) -> tuple[Outputs, float]:
    """``hub replay LINES --dump …`` as its own process; (outputs by event id, seconds it took)."""
    from hub.processors.replay import by_event_id, iter_dump

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        dump = Path(tmp) / "replay.jsonl"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "hub.cli", "replay", str(lines_file), "--dump", str(dump)],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise BenchError(f"hub replay failed ({proc.returncode}): {proc.stderr[-2000:]}")
        seconds = time.perf_counter() - started
        return by_event_id(iter_dump(dump)), seconds


def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The end offset of every partition of ``topics`` now: pass it as ``since`` to read only what comes after."""
    from kafka import KafkaConsumer, TopicPartition

    from hub.clients import kafka_python_options

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), **kafka_python_options())
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        return {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def read_records(bootstrap: str, topics: Iterable[str], since: Mapping[tuple[str, int], int] | None = None
                 ) -> list[dict[str, Any]]:
    """Committed records of ``topics`` (read_committed, as a downstream consumer sees them), decoded to JSON form,
    from ``since`` (or the beginning) to the current end: the rows ``by_event_id`` takes."""
    from hub.runtime import read_topics

    return read_topics(bootstrap, topics, since)


def live_outputs(bootstrap: str, topics: Iterable[str], rename: Mapping[str, str] | None = None,
                 since: Mapping[tuple[str, int], int] | None = None) -> Outputs:
    """Committed records of ``topics`` (after ``since``) by (topic, event id); ``rename`` maps a topic to the name
    compared. Raises :class:`BenchError` when one event id was written with two values (§8.5)."""
    from hub.processors.replay import by_event_id

    rows = read_records(bootstrap, list(topics), since)
    if rename:
        for r in rows:
            r["topic"] = rename.get(r["topic"], r["topic"])
    try:
        return by_event_id(rows)
    except AssertionError as exc:
        raise BenchError(f"an output event id carries two values: {exc}") from None


def compare(reference: Outputs, live: Outputs, what: str = "hub replay") -> tuple[bool, str]:
    """(equal?, the verdict as a table prints it, with the first differences when not equal)."""
    missing = sorted(set(reference) - set(live))
    extra = sorted(set(live) - set(reference))
    differ = sorted(k for k in set(reference) & set(live) if reference[k] != live[k])
    if not (missing or extra or differ):
        return True, f"= {what} ({len(reference):,} outputs by event id)"
    first = (missing[:2] and f"; first missing {missing[0]}") or (extra[:1] and f"; first extra {extra[0]}") or \
        f"; first differing {differ[0]}"
    return False, (f"≠ {what}: {len(missing):,} missing, {len(extra):,} extra, {len(differ):,} differing of "
                   f"{len(reference):,}{first}")
