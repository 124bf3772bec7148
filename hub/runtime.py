"""Process orchestration: ``hub worker``, ``hub up`` and ``hub replay``.

Workers run as child processes (``python -m hub.worker``), one faust worker each, so that a
worker can be stopped or killed without touching the broker or the CLI, exactly as in
production where each worker is its own pod. Children get ``PR_SET_PDEATHSIG`` so nothing is
orphaned when the parent is killed (:mod:`hub.supervise`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from hub.clients import kafka_python_options
from hub.config import Settings, get_settings
from hub.topics import APP_ID, CATALOGUE, OUTPUT_TOPICS

log = logging.getLogger(__name__)



def _death_signal(sig: int = signal.SIGTERM) -> Any:
    """preexec_fn: own process group, and ``sig`` when this process dies (hub.supervise.death_signal_preexec)."""
    from hub.supervise import death_signal_preexec

    return death_signal_preexec(sig)


def spawn_worker(
    bootstrap: str,
    *,
    data_dir: Path,
    metrics_port: int = 0,
    app_id: str = APP_ID,
    store: str = "memory://",
    extra_env: dict[str, str] | None = None,
    log_file: Path | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start one ``hub worker`` child process against ``bootstrap``.

    The child runs in its own process group and gets ``death_signal`` from the kernel when this process
    dies (``hub up`` asks for SIGKILL: nothing can outlive it; tests keep SIGTERM, an orderly stop).
    """
    env = dict(os.environ)
    env.update(
        {
            "HUB_BROKER": "kafka://" + bootstrap,
            "HUB_DATA_DIR": str(data_dir),
            "HUB_METRICS_PORT": str(metrics_port),
            "HUB_APP_ID": app_id,
            "HUB_STORE": store,
            "HUB_SKIP_PROBE": env.get("HUB_SKIP_PROBE", "1"),
        }
    )
    env.update(extra_env or {})
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL,
            preexec_fn=_death_signal(death_signal),  # noqa: PLW1509
        )
    finally:
        if log_file:
            out.close()  # the child has its own copy


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: a worker gets the chance to commit and close cleanly."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- producing inputs and reading outputs ---------------------------------------------------------


def record_key(topic: str, value: dict[str, Any]) -> bytes:
    """Key of an input record: the catalogue's key field (person_token, or facility_code)."""
    key = value.get("facility_code") if topic == "health.facilities.v1" else value.get("person_token")
    if not key:
        raise ValueError(f"{topic}: value has no {'facility_code' if 'facilities' in topic else 'person_token'}")
    return str(key).encode()


def encode_input(topic: str, value: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, Avro bytes) of one input given in the events' JSON form; raises on a bad value."""
    from hub import codec
    from hub.topics import get

    schema = get(topic).schema
    return record_key(topic, value), codec.encode(schema, codec.from_json_dict(schema, value))


def read_replay_lines(path: Path) -> Iterator[tuple[int, bytes, str | None, Any]]:
    """(line number, exact bytes, topic, value) of every non-blank replay line.

    A line that is not a JSON object with a string ``topic`` and an object ``value`` comes back with
    ``topic=None`` and the problem as ``value``: the caller dead-letters it and goes on.
    """
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                yield n, line, None, f"not JSON: {exc}"
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str) or not isinstance(
                    obj.get("value"), dict):
                yield n, line, None, 'expected {"topic": "<catalogue topic>", "value": {...}}'
                continue
            yield n, line, obj["topic"], obj["value"]


def produce_lines(bootstrap: str, lines: Iterable[tuple[int, bytes, str | None, Any]], err: TextIO) -> int:
    """Produce replay lines in order (record timestamp = line order); bad lines go to dead letters.

    A dead letter keeps the line's exact bytes, encrypted with the edge key (§1: a rejected line may
    hold a raw ID number, so its original is never in clear on a topic).
    """
    from kafka import KafkaProducer

    from hub.deadletter import dead_letter
    from hub.topics import DEAD_LETTERS

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=10, **kafka_python_options())
    base_ms = int(time.time() * 1000)
    sent = 0
    edge_key = get_settings().edge_key
    try:
        for n, raw, topic, value in lines:
            try:
                if topic is None:
                    raise ValueError(value)
                key, data = encode_input(topic, value)
            except Exception as exc:  # any malformed line: dead letter with its bytes and reason
                err.write(f"line {n}: rejected ({exc})\n")
                dl_key, dl_value = dead_letter(raw, "hub replay", "invalid_input", f"line {n}: {exc}", topic=topic,
                                               encrypt_with=edge_key)
                producer.send(DEAD_LETTERS, key=dl_key, value=dl_value)
                continue
            producer.send(topic, key=key, value=data, timestamp_ms=base_ms + n)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


def read_topics(bootstrap: str, topics: Iterable[str], since: Mapping[tuple[str, int], int] | None = None
                ) -> list[dict[str, Any]]:
    """Every committed record of ``topics`` from ``since`` (default: the beginning) to the current end, decoded
    to JSON form (``topic, partition, offset, key, schema, value, timestamp_ms``)."""
    from kafka import KafkaConsumer, TopicPartition

    from hub import codec
    from hub.processors.convert import json_safe

    # read_committed: the worker writes outputs in transactions; an aborted copy is never shown
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                             isolation_level="read_committed", max_partition_fetch_bytes=2 * 1024 * 1024,
                             **kafka_python_options())
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps)
        rows: list[dict[str, Any]] = []
        # One partition at a time: noida-db answers a fetch with everything up to the end, whatever the
        # fetch's byte limits; the outputs of 1 M events in one answer (138 MB) are more than kafka-python
        # accepts as a frame, and it retried that fetch for ever.
        for tp in tps:
            consumer.assign([tp])
            consumer.seek(tp, (since or {}).get((tp.topic, tp.partition), 0))
            while consumer.position(tp) < ends[tp]:
                for part, msgs in consumer.poll(timeout_ms=1000, max_records=50_000).items():
                    for m in msgs:
                        try:
                            schema, value = codec.decode(m.value)
                            value = json_safe(value)
                        except Exception as exc:
                            schema, value = "undecodable", {"error": str(exc)}
                        rows.append({"topic": part.topic, "partition": part.partition, "offset": m.offset,
                                     "key": m.key.decode() if m.key else None, "schema": schema, "value": value,
                                     "timestamp_ms": m.timestamp})
        return rows
    finally:
        consumer.close()


def group_lag(bootstrap: str, group: str, topics: Iterable[str]) -> int | None:
    """Records not yet committed by ``group`` on ``topics`` (None when the group has not committed)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False,
                             **kafka_python_options())
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            end = ends.get(tp, 0)
            if end == 0:
                continue
            committed = consumer.committed(tp)
            if committed is None:
                return None
            lag += max(end - committed, 0)
        return lag
    finally:
        consumer.close()


# -- commands --------------------------------------------------------------------------------------


def worker_command() -> int:
    """``hub worker``: one faust worker against HUB_BROKER (embedded brokers are for `hub up`)."""
    from hub.worker import main

    return main()


def replay_command(inputs: Path, dump: Path, *, err: TextIO = sys.stderr, until: datetime | None = None) -> int:
    """``hub replay``: the reference run of policy-spec §8 (see :mod:`hub.processors.replay`)."""
    from hub.processors.replay import replay_file

    return replay_file(inputs, dump, err=err, until=until)


def wait_until_idle(bootstrap: str, worker: subprocess.Popen[bytes], *, idle: float, timeout: float,
                    err: TextIO, group: str = APP_ID) -> bool:
    """Wait until the worker has committed every input and no output appeared for ``idle`` seconds."""
    from hub.topics import INPUT_TOPICS

    deadline = time.monotonic() + timeout
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            err.write(f"worker exited with {worker.returncode}\n")
            return False
        lag = group_lag(bootstrap, group, INPUT_TOPICS)
        total = output_count(bootstrap)
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        if lag == 0 and time.monotonic() - last_change >= idle:
            return True
        time.sleep(0.5)
    return False


def output_counts(bootstrap: str, topics: Iterable[str] = OUTPUT_TOPICS) -> dict[str, int]:
    """Records per topic (sum of end offsets): a cheap progress measure."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, **kafka_python_options())
    try:
        counts: dict[str, int] = {}
        for t in topics:
            tps = [TopicPartition(t, p) for p in (consumer.partitions_for_topic(t) or ())]
            counts[t] = sum(consumer.end_offsets(tps).values()) if tps else 0
        return counts
    finally:
        consumer.close()


def output_count(bootstrap: str) -> int:
    return sum(output_counts(bootstrap).values())


def up_command(*, simulate: bool, persons: int, rate: float, reset: bool, duration: float,
               busy_per_minute: float = 10.0, out: TextIO = sys.stdout, settings: Settings | None = None) -> int:
    """``hub up``: broker, topics, probe, a worker, the API, the simulator, supervised, with a progress line."""
    from hub.up import run_up

    return run_up(settings or get_settings(), simulate=simulate, persons=persons, rate=rate, reset=reset,
                  duration=duration, busy_per_minute=busy_per_minute, out=out)


__all__ = ["APP_ID", "CATALOGUE", "spawn_worker", "stop_process", "replay_command", "up_command", "worker_command"]
