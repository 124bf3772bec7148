"""``hub doctor`` — a conformance probe of the Kafka-protocol broker the hub is about to rely on.

Why: the two brokers installable here differ in ways no client error reveals (broker-notes.md: one
reports wrong end offsets after multi-record batches, one loses partitions after ``kill -9``), and a
misconfigured production cluster can be just as quietly wrong. So before workers start, the hub
measures what it depends on, against whatever broker ``HUB_BROKER`` names, with the same client
security (``HUB_KAFKA_*``, :mod:`hub.clients`), acks and replication the hub's own clients use:

- the broker answers the Kafka protocol and offers the APIs the hub uses;
- end offsets cover the records written after multi-record batches, written with ``acks=all`` to a
  topic of the configured replication (lag, replay and recovery use end offsets; a replication or
  ``min.insync.replicas`` the cluster cannot honour fails here, not in the first settlement);
- a consumer in a fresh group gets an assignment (every worker and sink connector is one);
- transactions commit (REQUIRED: the worker writes outputs and state in transactions);
- every topic the hub needs exists with its partition count, cleanup.policy and replication.

The probe writes only to the pre-created topic ``<app id>-probe`` (hub.topics.probe_topic, one hour
of retention), with a consumer group and transactional id unique to the run under ``<app id>-probe-``,
so concurrent probes of several workers do not disturb each other, and the worker needs no right to
create or delete topics.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TextIO

from hub.broker import admin_client, api_versions, cluster_size, connect, kafka_reason, partition_counts
from hub.clients import ACKS, kafka_python_options
from hub.config import Settings, get_settings
from hub.errors import BrokerError
from hub.topics import Topic, hub_topics, probe_topic

REQUIRED_APIS: dict[int, str] = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    18: "ApiVersions", 19: "CreateTopics", 22: "InitProducerId", 24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn", 26: "EndTxn", 28: "TxnOffsetCommit",
}
"""APIs the worker and connectors cannot work without (transactions included: the worker writes its
outputs, state and input offsets in one transaction per task)."""

OPTIONAL_APIS: dict[int, str] = {32: "DescribeConfigs", 42: "DeleteGroups"}
"""APIs the probe uses when present (config checks, clean-up of its group)."""

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
    catalogue: Iterable[Topic] | None = None,
    *,
    settings: Settings | None = None,
    records: int = 1000,
    group_timeout: float = 30.0,
) -> list[Check]:
    """Probe the broker at ``bootstrap`` (``host:port[,host:port]``) and return every check's result.

    ``catalogue`` defaults to every topic the hub needs (:func:`hub.topics.hub_topics` of the configured
    app id). Never raises for a broker fault: a fault is a failed check, so ``hub doctor`` can print
    them all.
    """
    s = settings if settings is not None else get_settings()
    topics = list(catalogue) if catalogue is not None else list(hub_topics(s.app_id))
    reach, apis = _reachable(bootstrap, s)
    checks = [reach]
    if not reach.ok:
        return checks
    checks.append(_api_check(apis))
    run = uuid.uuid4().hex[:12]
    probe = probe_topic(s.app_id)
    group = f"{probe.name}-{run}"
    ready, problem = _probe_topic_ready(bootstrap, probe, s)
    if ready:
        checks.append(_end_offsets_check(bootstrap, probe.name, run, records, s))
        checks.append(_group_check(bootstrap, probe.name, group, group_timeout, s))
        checks.append(_transactions_check(bootstrap, probe.name, f"{probe.name}-{run}", s))
        _cleanup(bootstrap, group, apis, s)
    else:
        for name in ("end offsets after batches", "consumer group join", "transactions"):
            checks.append(Check(name, False, f"not run: {problem}",
                                hint="create the hub's topics first: `hub up` / hub.broker.ensure_topics, or "
                                     "deploy/k8s/topics.yaml (deploy/compose/create-topics.sh) in production"))
    checks.extend(_topic_checks(bootstrap, topics, 32 in apis, s))
    return checks


# -- individual checks ---------------------------------------------------------------------------


def _reachable(bootstrap: str, s: Settings) -> tuple[Check, dict[int, tuple[int, int]]]:
    """ApiVersions of the first server that answers: by hand on PLAINTEXT (it tells a port that answers
    from one that speaks Kafka), through kafka-python with TLS/SASL (which a hand-made request cannot do)."""
    if s.kafka_security_protocol != "PLAINTEXT":
        return _reachable_secured(bootstrap, s)
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


def _reachable_secured(bootstrap: str, s: Settings) -> tuple[Check, dict[int, tuple[int, int]]]:
    t0 = time.monotonic()
    try:
        with admin_client(bootstrap, "hub-doctor", s, timeout_ms=10_000) as admin:
            apis = {int(k): tuple(v) for k, v in admin.api_versions().items()}  # type: ignore[attr-defined]
    except Exception as exc:
        return Check("broker reachable", False, f"{bootstrap} ({s.kafka_security_protocol}): {exc}",
                     hint="check HUB_BROKER, the TLS CA (HUB_KAFKA_SSL_CAFILE) and the SASL user and password "
                          "(HUB_KAFKA_SASL_USERNAME/PASSWORD)"), {}
    ms = (time.monotonic() - t0) * 1000
    return Check("broker reachable", True, f"{bootstrap} answers over {s.kafka_security_protocol} in "
                 f"{ms:.0f} ms, {len(apis)} APIs"), apis


def _api_check(apis: dict[int, tuple[int, int]]) -> Check:
    missing = [name for key, name in REQUIRED_APIS.items() if key not in apis]
    lacking = [name for key, name in OPTIONAL_APIS.items() if key not in apis]
    detail = "all required APIs offered" if not missing else f"missing: {', '.join(missing)}"
    if lacking:
        detail += f"; optional not offered: {', '.join(lacking)}"
    return Check("api versions", not missing, detail,
                 hint="use a Kafka-protocol broker with consumer groups and transactions (Apache Kafka 2.5+)")


def _probe_topic_ready(bootstrap: str, probe: Topic, s: Settings) -> tuple[bool, str]:
    """The probe topic exists, or is created now with the configured replication (a fresh dev broker)."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from hub.broker import topic_configs

    try:
        with admin_client(bootstrap, "hub-doctor", s) as admin:
            if probe.name in set(admin.list_topics()):  # type: ignore[attr-defined]
                return True, ""
            rf, isr = s.replication(cluster_size(admin))
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another probe
                admin.create_topics([NewTopic(probe.name, probe.partitions, rf,  # type: ignore[attr-defined]
                                              topic_configs=topic_configs(probe, isr))])
        return True, ""
    except Exception as exc:  # not authorized, no broker: the finding
        return False, f"probe topic {probe.name} missing and not creatable: {kafka_reason(exc)}"


def _end_offsets_check(bootstrap: str, topic: str, run: str, records: int, s: Settings) -> Check:
    """Produce ``records`` in multi-record batches (acks=all, idempotent, as the hub does); every
    partition's end offset must lie beyond the last offset acknowledged there.

    ``>`` rather than ``==`` a count: workers starting together probe the same topic at once. A broker
    that reports the last batch's *base* offset + 1 (broker-notes.md) still fails, as ours is the last.
    """
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    name = "end offsets after batches"
    last: dict[int, int] = {}
    producer = consumer = None
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), linger_ms=20, batch_size=16384,
                                 acks=ACKS, enable_idempotence=True, client_id="hub-doctor",
                                 **kafka_python_options(s))
        futures = [producer.send(topic, key=f"{run}:{i}".encode(), value=b"%d:" % i + b"x" * 100)
                   for i in range(records)]
        producer.flush(timeout=30)
        for f in futures:
            md = f.get(timeout=30)
            last[md.partition] = max(last.get(md.partition, -1), md.offset)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), client_id="hub-doctor",
                                 **kafka_python_options(s))
        tps = [TopicPartition(topic, p) for p in sorted(last)]
        ends = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    except Exception as exc:
        return Check(name, False, kafka_reason(exc),
                     hint="NotEnoughReplicas: the cluster has fewer in-sync replicas than min.insync.replicas "
                          "(HUB_KAFKA_MIN_INSYNC_REPLICAS); authorization errors: the user's ACLs "
                          "(deploy/k8s/users.yaml)")
    finally:
        for client in (producer, consumer):
            if client is not None:
                client.close()
    wrong = {p: (ends.get(p), off) for p, off in last.items() if (ends.get(p) or 0) <= off}
    if wrong:
        shown = ", ".join(f"partition {p}: end offset {e}, last record at {off}"
                          for p, (e, off) in sorted(wrong.items()))
        return Check(name, False, f"{records} records written; {shown}",
                     hint="this broker misreports end offsets after multi-record batches (lag, replay and "
                          "state recovery would be wrong); use noida-db or Apache Kafka")
    return Check(name, True, f"{records} records in batches, acks={ACKS} → every end offset beyond the last "
                 "acknowledged record")


def _group_check(bootstrap: str, topic: str, group: str, timeout: float, s: Settings) -> Check:
    """A consumer in a fresh group must get an assignment (and read back what was written)."""
    from kafka import KafkaConsumer

    name = "consumer group join"
    consumer = None
    t0 = time.monotonic()
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group,
                                 client_id="hub-doctor", auto_offset_reset="latest",
                                 enable_auto_commit=False, session_timeout_ms=SESSION_TIMEOUT_MS,
                                 heartbeat_interval_ms=3000, isolation_level="read_committed",
                                 **kafka_python_options(s))
        consumer.subscribe([topic])
        while time.monotonic() - t0 < timeout and not consumer.assignment():
            consumer.poll(timeout_ms=500)
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
    return Check(name, True, f"assigned {len(assigned)} partition(s) in {secs:.1f} s")


def _transactions_check(bootstrap: str, topic: str, transactional_id: str, s: Settings) -> Check:
    """InitProducerId + a committed transaction, read back with read_committed. REQUIRED: the worker
    writes every output, its state and its input offsets in one transaction per task."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    name = "transactions"
    producer = consumer = None
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), client_id="hub-doctor", acks=ACKS,
                                 transactional_id=transactional_id, max_block_ms=10_000,
                                 **kafka_python_options(s))
        producer.init_transactions()
        producer.begin_transaction()
        futures = [producer.send(topic, key=f"{transactional_id}:tx".encode(), value=b"%d" % i, partition=0)
                   for i in range(3)]
        producer.commit_transaction()
        last = max(f.get(timeout=10).offset for f in futures)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), client_id="hub-doctor",
                                 isolation_level="read_committed", enable_auto_commit=False,
                                 **kafka_python_options(s))
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, last - 2)
        seen: list[bytes] = []
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            for msgs in consumer.poll(timeout_ms=500).values():
                seen += [m.value for m in msgs if m.key == f"{transactional_id}:tx".encode()]
    except Exception as exc:
        return Check(name, False, kafka_reason(exc),
                     hint="the worker needs transactions: a broker with InitProducerId/EndTxn, and a user allowed "
                          f"to Write the transactional ids {s.app_id}-person-* (deploy/k8s/users.yaml)")
    finally:
        for client in (producer, consumer):
            if client is not None:
                client.close()
    if sorted(seen) != [b"0", b"1", b"2"]:
        return Check(name, False, f"a committed transaction of 3 records read back as {seen} (read_committed)",
                     hint="the broker does not serve committed transactions to read_committed consumers")
    return Check(name, True, "InitProducerId, a committed transaction, read back with read_committed")


def _topic_checks(bootstrap: str, catalogue: list[Topic], can_describe_configs: bool, s: Settings) -> list[Check]:
    try:
        with admin_client(bootstrap, "hub-doctor", s) as admin:
            existing = set(admin.list_topics())  # type: ignore[attr-defined]
            present = [t.name for t in catalogue if t.name in existing]
            counts = partition_counts(admin, present)
            replicas = replica_counts(admin, present)
            configs = _topic_configs(admin, present) if can_describe_configs else {}
            want_rf, want_isr = s.replication(cluster_size(admin))
    except Exception as exc:
        return [Check("catalogue topics", False, f"cannot list topics: {type(exc).__name__}: {exc}")]
    return [_topic_check(t, counts.get(t.name), replicas.get(t.name), configs.get(t.name), can_describe_configs,
                         want_rf, want_isr) for t in catalogue]


def replica_counts(admin: Any, names: list[str]) -> dict[str, int]:
    """The smallest replica count over each topic's partitions (its effective replication factor)."""
    if not names:
        return {}
    described = admin.describe_topics(names)
    return {d["name"]: min(len(p.get("replica_nodes") or p.get("replicas") or ()) for p in d["partitions"])
            for d in described if not d.get("error_code") and d.get("partitions")}


def _topic_configs(admin: Any, names: list[str]) -> dict[str, dict[str, str]]:
    """cleanup.policy and min.insync.replicas of each topic; a broker that stores only explicit configs
    may omit them (→ unknown)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return {}
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    topics = result.get("topic", {}) if isinstance(result, dict) else {}
    out: dict[str, dict[str, str]] = {}
    for name, configs in topics.items():
        for key in ("cleanup.policy", "min.insync.replicas"):
            value = (configs or {}).get(key)
            if isinstance(value, dict) and value.get("value") is not None:
                out.setdefault(name, {})[key] = str(value["value"])
    return out


def _topic_check(t: Topic, partitions: int | None, replicas: int | None, config: dict[str, str] | None,
                 can_describe: bool, want_rf: int, want_isr: int) -> Check:
    name = f"topic {t.name}"
    config = config or {}
    want_policy = t.config["cleanup.policy"]
    if partitions is None:
        return Check(name, False, "missing",
                     hint="create the hub's topics before any worker starts: `hub up` does it "
                          "(hub.broker.ensure_topics); in production deploy/k8s/topics.yaml")
    problems, facts = [], [f"{partitions} partition(s)"]
    if partitions != t.partitions:
        problems.append(f"{partitions} partition(s), catalogue says {t.partitions}")
    policy = config.get("cleanup.policy")
    if policy is None:
        facts.append("cleanup.policy unknown" + ("" if can_describe else " (no DescribeConfigs)"))
    elif policy != want_policy:
        problems.append(f"cleanup.policy={policy}, catalogue says {want_policy}")
    else:
        facts.append(f"cleanup.policy={policy}")
    if replicas is not None:
        facts.append(f"{replicas} replica(s)")
        if replicas < want_rf:
            problems.append(f"{replicas} replica(s), the configured replication factor is {want_rf} "
                            "(HUB_KAFKA_REPLICATION_FACTOR)")
    isr = config.get("min.insync.replicas")
    if isr is not None:
        facts.append(f"min.insync.replicas={isr}")
        if isr.isdigit() and int(isr) < want_isr:
            problems.append(f"min.insync.replicas={isr}, configured {want_isr} (HUB_KAFKA_MIN_INSYNC_REPLICAS)")
        if isr.isdigit() and replicas is not None and int(isr) > replicas:
            problems.append(f"min.insync.replicas={isr} exceeds its {replicas} replica(s): every acks={ACKS} "
                            "write fails with NotEnoughReplicas")
    if problems:
        return Check(name, False, "; ".join(problems),
                     hint="on the embedded broker: reset its data dir (`hub up --reset`; a kill -9 can lose "
                          "partitions); on a cluster: recreate the topic as hub/topics.py and deploy/k8s/topics.yaml "
                          "say (kafka-reassign-partitions for the replication factor)")
    return Check(name, True, ", ".join(facts))


def _cleanup(bootstrap: str, group: str, apis: dict[int, tuple[int, int]], s: Settings) -> None:
    """Best effort: a leftover probe group is harmless, a failed clean-up must not hide the findings."""
    if 42 not in apis:
        return
    try:
        with admin_client(bootstrap, "hub-doctor", s) as admin:
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


def policy_check(today: date | None = None) -> Check:
    """The home region's policy (HUB_REGION, HUB_POLICY_DIR) on ``today``: loads, in force, not ending soon.

    Why in the doctor: a hub whose policy period has ended settles nothing (every discharge is a
    ``no_policy`` dead letter) while every broker check is green — the defect issue 15 found. A policy that
    ends within 30 days, or has ended, is a loud warning (not a failure: the broker is fine, and the
    monitoring rules fall back to the nearest period, policy-spec §8.4); files that do not load fail.
    """
    from hub.errors import PolicyError
    from hub.processors import home_region, policy_expiry_warnings
    from hub.timeutil import SHANGHAI

    today = today or datetime.now(SHANGHAI).date()
    try:
        warnings = policy_expiry_warnings(today)
    except PolicyError as exc:
        return Check("policy of the home region", False, str(exc), hint="fix the file named above (policy-spec §2)")
    if warnings:
        return Check("policy of the home region", False, "!!! " + "; ".join(warnings) + " !!!", required=False,
                     hint="add the policy file of the next period to HUB_POLICY_DIR (default hub/policy/regions): "
                          "one TOML file per region and period, policy-spec §2")
    return Check("policy of the home region", True, f"{home_region()}: in force on {today} for more than 30 days")


def doctor_command(settings: Settings, out: TextIO, err: TextIO, today: date | None = None) -> int:
    """Run the probe against ``HUB_BROKER``; 0 when every required check passes, 1 when one fails, 2 when
    the broker cannot be started or reached at all. Each failure is followed by what to do. The home region's
    policy is checked too (:func:`policy_check`): a warning when it ends within 30 days or has ended."""
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
                ensure_topics(handle.bootstrap, settings=settings, data_dir=broker_data_dir(settings))
            except BrokerError as exc:
                err.write(f"hub doctor: {exc}\n")
        checks = run_probe(handle.bootstrap, settings=settings)
    checks.append(policy_check(today))
    out.write(render(checks))
    failed = [c for c in checks if c.required and not c.ok]
    for c in [c for c in checks if not c.ok]:
        label = "" if c.required else "WARNING "
        err.write(f"hub doctor: {label}{c.name}: {c.detail}" + (f" — {c.hint}" if c.hint else "") + "\n")
    if not checks[0].ok:
        return 2
    return 1 if failed else 0
