"""``hub doctor`` — a conformance probe of the Kafka-protocol broker the hub is about to rely on.

Why: the two brokers installable here differ in ways no client error reveals (broker-notes.md: one
reports wrong end offsets after multi-record batches, one loses partitions after ``kill -9``), and a
misconfigured production cluster can be just as quietly wrong. So before workers start, the hub
measures what it depends on, against whatever broker ``HUB_BROKER`` names:

- the broker answers the Kafka protocol and offers the APIs the hub uses;
- end offsets equal the records written after multi-record batches (lag, replay and recovery use them);
- a consumer in a fresh group gets an assignment (every faust worker and sink connector is one);
- transactions (informative: processing is at-least-once with idempotent effects, never exactly-once);
- every catalogue topic exists with its partition count and cleanup.policy.

The probe writes only to a scratch topic with a unique name, deleted afterwards when the broker can.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from hub.broker import DEFAULT_TOPICS, admin_client, api_versions, connect, partition_counts
from hub.config import Settings
from hub.errors import BrokerError
from hub.topics import Topic

REQUIRED_APIS: dict[int, str] = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    18: "ApiVersions", 19: "CreateTopics",
}
"""APIs the processors and connectors cannot work without."""

OPTIONAL_APIS: dict[int, str] = {
    20: "DeleteTopics", 22: "InitProducerId", 24: "AddPartitionsToTxn", 26: "EndTxn",
    32: "DescribeConfigs", 42: "DeleteGroups",
}
"""APIs the hub uses when present (scratch clean-up, transactions, config checks)."""

SCRATCH_PREFIX = "hub-doctor-"
SCRATCH_PARTITIONS = 2
SESSION_TIMEOUT_MS = 10_000  # brokers refuse below 6 s (noida-db, like Apache Kafka's default)


@dataclass(frozen=True)
class Check:
    """One probe result. ``required`` checks gate ``hub up``; the others are information."""

    name: str
    ok: bool
    detail: str
    required: bool = True
    hint: str = ""
    """What a person should do when the check fails."""


def run_probe(
    bootstrap: str,
    catalogue: Iterable[Topic] = DEFAULT_TOPICS,
    *,
    records: int = 1000,
    group_timeout: float = 30.0,
) -> list[Check]:
    """Probe the broker at ``bootstrap`` (``host:port[,host:port]``) and return every check's result.

    Never raises for a broker fault: a fault is a failed check, so ``hub doctor`` can print them all.
    """
    reach, apis = _reachable(bootstrap)
    checks = [reach]
    if not reach.ok:
        return checks
    checks.append(_api_check(apis))
    scratch = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    group = f"{scratch}-group"
    created = False
    try:
        created, create_error = _create_scratch(bootstrap, scratch)
        if created:
            checks.append(_end_offsets_check(bootstrap, scratch, records))
            checks.append(_group_check(bootstrap, scratch, group, group_timeout))
        else:
            checks.append(Check("end offsets after batches", False,
                                f"scratch topic not created: {create_error}",
                                hint="the broker must allow CreateTopics for the hub's user"))
            checks.append(Check("consumer group join", False, "not run: no scratch topic"))
        checks.append(_transactions_check(bootstrap, scratch if created else None, apis))
        checks.extend(_topic_checks(bootstrap, list(catalogue), 32 in apis))
    finally:
        _cleanup(bootstrap, scratch if created else None, group, apis)
    return checks


# -- individual checks ---------------------------------------------------------------------------


def _reachable(bootstrap: str) -> tuple[Check, dict[int, tuple[int, int]]]:
    errors = []
    for server in [s for s in bootstrap.split(",") if s]:
        t0 = time.monotonic()
        try:
            apis = api_versions(server)
        except (OSError, BrokerError, ValueError) as exc:
            errors.append(f"{server}: {exc}")
            continue
        ms = (time.monotonic() - t0) * 1000
        return Check("broker reachable", True, f"{server} answers ApiVersions in {ms:.0f} ms, "
                     f"{len(apis)} APIs"), apis
    return Check("broker reachable", False, "; ".join(errors) or "no bootstrap server given",
                 hint="start the broker, or fix HUB_BROKER (kafka://host:port[,host:port])"), {}


def _api_check(apis: dict[int, tuple[int, int]]) -> Check:
    missing = [name for key, name in REQUIRED_APIS.items() if key not in apis]
    lacking = [name for key, name in OPTIONAL_APIS.items() if key not in apis]
    detail = "all required APIs offered" if not missing else f"missing: {', '.join(missing)}"
    if lacking:
        detail += f"; optional not offered: {', '.join(lacking)}"
    return Check("api versions", not missing, detail,
                 hint="use a Kafka-protocol broker with consumer groups (Apache Kafka 2.x or later)")


def _create_scratch(bootstrap: str, name: str) -> tuple[bool, str]:
    from kafka.admin import NewTopic

    try:
        with admin_client(bootstrap, "hub-doctor") as admin:
            admin.create_topics([NewTopic(name, SCRATCH_PARTITIONS, 1)])  # type: ignore[attr-defined]
        return True, ""
    except Exception as exc:  # any client or broker error is the finding
        return False, f"{type(exc).__name__}: {exc}"


def _end_offsets_check(bootstrap: str, topic: str, records: int) -> Check:
    """Produce ``records`` in multi-record batches and compare ListOffsets with the acknowledged counts."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    name = "end offsets after batches"
    acked: dict[int, int] = {}
    producer = consumer = None
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), linger_ms=20, batch_size=16384,
                                 acks="all", client_id="hub-doctor")
        futures = [producer.send(topic, key=str(i).encode(), value=b"%d:" % i + b"x" * 100)
                   for i in range(records)]
        producer.flush(timeout=30)
        for f in futures:
            md = f.get(timeout=30)
            acked[md.partition] = acked.get(md.partition, 0) + 1
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), client_id="hub-doctor")
        tps = [TopicPartition(topic, p) for p in range(SCRATCH_PARTITIONS)]
        ends = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    finally:
        for client in (producer, consumer):
            if client is not None:
                client.close()
    wrong = {p: (ends.get(p), n) for p, n in acked.items() if ends.get(p) != n}
    if wrong:
        shown = ", ".join(f"partition {p}: end offset {e}, records {n}"
                          for p, (e, n) in sorted(wrong.items()))
        return Check(name, False, f"{records} records written; {shown}",
                     hint="this broker misreports end offsets after multi-record batches (lag, replay and "
                          "table recovery would be wrong); use noida-db or Apache Kafka")
    return Check(name, True, f"{records} records in batches → end offsets {sum(ends.values())}")


def _group_check(bootstrap: str, topic: str, group: str, timeout: float) -> Check:
    """A consumer in a fresh group must get an assignment (and read back what was written)."""
    from kafka import KafkaConsumer

    name = "consumer group join"
    consumer = None
    t0 = time.monotonic()
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group,
                                 client_id="hub-doctor", auto_offset_reset="earliest",
                                 enable_auto_commit=False, session_timeout_ms=SESSION_TIMEOUT_MS,
                                 heartbeat_interval_ms=3000)
        consumer.subscribe([topic])
        read = 0
        while time.monotonic() - t0 < timeout:
            batch = consumer.poll(timeout_ms=500)
            read += sum(len(v) for v in batch.values())
            if consumer.assignment() and read:
                break
        assigned = consumer.assignment()
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    finally:
        if consumer is not None:
            consumer.close(autocommit=False)
    secs = time.monotonic() - t0
    if not assigned:
        return Check(name, False, f"no assignment after {secs:.1f} s in group {group}",
                     hint="the broker's group coordinator does not work; workers could not share partitions")
    return Check(name, True, f"assigned {len(assigned)} partition(s) in {secs:.1f} s, read {read} record(s)")


def _transactions_check(bootstrap: str, topic: str | None, apis: dict[int, tuple[int, int]]) -> Check:
    """InitProducerId + a committed transaction. Informative: the hub does not rely on exactly-once."""
    from kafka import KafkaProducer

    name = "transactions"
    if 22 not in apis:
        return Check(name, False, "InitProducerId not offered; exactly_once unavailable", required=False)
    if topic is None:
        return Check(name, False, "not run: no scratch topic", required=False)
    producer = None
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), client_id="hub-doctor",
                                 transactional_id=f"{topic}-tx", max_block_ms=10_000)
        producer.init_transactions()
        producer.begin_transaction()
        for i in range(3):
            producer.send(topic, key=b"tx", value=b"%d" % i)
        producer.commit_transaction()
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}; exactly_once unavailable", required=False)
    finally:
        if producer is not None:
            producer.close(timeout=5)
    return Check(name, True, "InitProducerId and a committed transaction work (exactly_once possible)",
                 required=False)


def _topic_checks(bootstrap: str, catalogue: list[Topic], can_describe_configs: bool) -> list[Check]:
    try:
        with admin_client(bootstrap, "hub-doctor") as admin:
            existing = set(admin.list_topics())  # type: ignore[attr-defined]
            present = [t.name for t in catalogue if t.name in existing]
            counts = partition_counts(admin, present)
            policies = _cleanup_policies(admin, present) if can_describe_configs else {}
    except Exception as exc:
        return [Check("catalogue topics", False, f"cannot list topics: {type(exc).__name__}: {exc}")]
    return [_topic_check(t, counts.get(t.name), policies.get(t.name), can_describe_configs)
            for t in catalogue]


def _cleanup_policies(admin: Any, names: list[str]) -> dict[str, str]:
    """cleanup.policy of each topic; a broker that stores only explicit configs may omit it (→ unknown)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return {}
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    topics = result.get("topic", {}) if isinstance(result, dict) else {}
    out = {}
    for name, configs in topics.items():
        value = (configs or {}).get("cleanup.policy")
        if isinstance(value, dict) and value.get("value") is not None:
            out[name] = str(value["value"])
    return out


def _topic_check(t: Topic, partitions: int | None, policy: str | None, can_describe: bool) -> Check:
    name = f"topic {t.name}"
    want_policy = t.config["cleanup.policy"]
    if partitions is None:
        return Check(name, False, "missing",
                     hint="create the catalogue topics before any worker starts: `hub up` does it "
                          "(hub.broker.ensure_topics)")
    problems = []
    if partitions != t.partitions:
        problems.append(f"{partitions} partition(s), catalogue says {t.partitions}")
    if policy is None:
        policy_text = "cleanup.policy unknown" + ("" if can_describe else " (no DescribeConfigs)")
    elif policy != want_policy:
        problems.append(f"cleanup.policy={policy}, catalogue says {want_policy}")
        policy_text = ""
    else:
        policy_text = f"cleanup.policy={policy}"
    if problems:
        return Check(name, False, "; ".join(problems),
                     hint="on the embedded broker: reset its data dir (`hub up --reset`; a kill -9 can lose "
                          "partitions); on a cluster: recreate the topic as hub/topics.py says")
    return Check(name, True, f"{partitions} partition(s), {policy_text}")


def _cleanup(bootstrap: str, topic: str | None, group: str, apis: dict[int, tuple[int, int]]) -> None:
    """Best effort: a leftover scratch topic is harmless, a failed clean-up must not hide the findings."""
    try:
        with admin_client(bootstrap, "hub-doctor") as admin:
            if topic is not None and 20 in apis:
                admin.delete_topics([topic])  # type: ignore[attr-defined]
            if 42 in apis:
                admin.delete_groups([group])  # type: ignore[attr-defined]
    except Exception:  # noqa: S110 - clean-up only
        pass


# -- output --------------------------------------------------------------------------------------


def _result(c: Check) -> str:
    if c.ok:
        return "ok"
    return "FAIL" if c.required else "warn"


def render(checks: list[Check]) -> str:
    """A plain-text table (check, result, detail) and a one-line verdict; readable in logs and terminals."""
    rows = [("check", "result", "detail")] + [(c.name, _result(c), c.detail) for c in checks]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
    lines.insert(1, f"{'-' * w0}  {'-' * w1}  {'-' * 6}")
    failed = [c for c in checks if c.required and not c.ok]
    lines.append("")
    lines.append(f"{len(failed)} required check(s) failed" if failed else "all required checks passed")
    return "\n".join(lines) + "\n"


def doctor_command(settings: Settings, out: TextIO, err: TextIO) -> int:
    """Run the probe against ``HUB_BROKER``; 0 when every required check passes, 1 when one fails, 2 when
    the broker cannot be started or reached at all. Each failure is followed by what to do."""
    try:
        handle = connect(settings)
    except BrokerError as exc:
        err.write(f"hub doctor: {exc}\n")
        if "already running" in str(exc):
            err.write("hub doctor: `hub up` may be running on this data dir; probe it instead with "
                      "HUB_BROKER=kafka://127.0.0.1:<its port> hub doctor\n")
        return 2
    with handle:
        out.write(f"broker: {settings.broker} ({handle.bootstrap})\n")
        if handle.embedded is not None:
            # The embedded broker is the hub's own: set it up as `hub up` would, so the probe judges
            # what the hub will run on (a wrong partition count still fails, with its reset hint).
            from hub.broker import broker_data_dir, ensure_topics

            try:
                ensure_topics(handle.bootstrap, data_dir=broker_data_dir(settings))
            except BrokerError as exc:
                err.write(f"hub doctor: {exc}\n")
        checks = run_probe(handle.bootstrap)
    out.write(render(checks))
    failed = [c for c in checks if c.required and not c.ok]
    for c in failed:
        err.write(f"hub doctor: {c.name}: {c.detail}" + (f" — {c.hint}" if c.hint else "") + "\n")
    if not checks[0].ok:
        return 2
    return 1 if failed else 0
