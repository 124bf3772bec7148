"""Generate Kafka topics and per-department ACLs from hub.topics.CATALOGUE.

Why generated: the catalogue is the one place that knows topic names, partitions, compaction and
retention, and (in its ``producer`` column) who may write each topic. Production settings come
from the same place as the embedded broker's topics, so the two cannot drift:

- deploy/k8s/topics.yaml        one Strimzi KafkaTopic per catalogue topic: replicas 3,
                                min.insync.replicas 2, the catalogue's partitions and cleanup/retention
- deploy/k8s/users.yaml         one Strimzi KafkaUser per principal (SCRAM-SHA-512) whose ACLs let it
                                write only the topics the catalogue names it producer of
- deploy/compose/create-topics.sh  the same topics for the docker compose topic-init job

A new ``producer`` text in the catalogue fails generation until it is mapped in PRODUCERS below.
Run: ``python deploy/k8s/generate_topics.py`` (``--check`` to verify the checked-in files).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HEADER, dump_yaml_all, run  # noqa: E402

from hub.topics import CATALOGUE, CONNECTOR_OFFSETS, Topic  # noqa: E402

CLUSTER = "hub"
NAMESPACE = "hub"
REPLICAS = 3
MIN_INSYNC = 2

WORKER = "hub-worker"
DEPARTMENT_CONNECTORS = (
    "connector-revitalization", "connector-civil-affairs", "connector-insurance", "connector-hospital",
    "connector-health",
)
SINKS = {
    "sink-cashier": ("hub.deposit-decisions.v1", "hub.settlements.v1"),
    "sink-civil-affairs-inbox": ("hub.referrals.v1", "hub.risk-flags.v1", "hub.mismatches.v1"),
}
"""Sink connectors and the output topics each delivers to a department (read ACLs)."""

PRODUCERS: dict[str, tuple[str, ...]] = {
    "revitalization connector": ("connector-revitalization",),
    "civil-affairs connector": ("connector-civil-affairs",),
    "insurance connector": ("connector-insurance",),
    "hospital connector / counter API": ("connector-hospital", WORKER),
    "hospital connector": ("connector-hospital",),
    "health connector": ("connector-health",),
    "every department's connector": DEPARTMENT_CONNECTORS,
    "settlement processor": (WORKER,),
    "risk processor": (WORKER,),
    "referral processor": (WORKER,),
    "everyone": (WORKER, *DEPARTMENT_CONNECTORS, *SINKS),
}
"""Catalogue ``producer`` text → Kafka principals (KafkaUser names). The counter API runs in the worker."""


def _k8s_name(topic: str) -> str:
    return topic.replace(".", "-").replace("_", "-").lower()


def topic_config(t: Topic) -> dict[str, str]:
    """Broker config of a production topic: the catalogue's own config plus min.insync.replicas."""
    return {**t.config, "min.insync.replicas": str(MIN_INSYNC)}


def writers(t: Topic) -> tuple[str, ...]:
    try:
        return PRODUCERS[t.producer]
    except KeyError:
        raise KeyError(
            f"topic {t.name}: producer {t.producer!r} is not mapped to Kafka principals; "
            f"add it to PRODUCERS in deploy/k8s/generate_topics.py"
        ) from None


def kafka_topics() -> list[dict]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {"name": _k8s_name(t.name), "namespace": NAMESPACE,
                         "labels": {"strimzi.io/cluster": CLUSTER}},
            "spec": {"topicName": t.name, "partitions": t.partitions, "replicas": REPLICAS,
                     "config": topic_config(t)},
        }
        for t in (*CATALOGUE, CONNECTOR_OFFSETS)
    ]


def _acl(name: str, ops: list[str], kind: str = "topic", pattern: str = "literal") -> dict:
    return {"resource": {"type": kind, "name": name, "patternType": pattern}, "operations": ops, "host": "*"}


def principal_acls() -> dict[str, list[dict]]:
    """Principal → ACLs. Writers get Write on exactly their topics; readers get Read; nobody gets '*'."""
    acls: dict[str, list[dict]] = {p: [] for p in (WORKER, *DEPARTMENT_CONNECTORS, *SINKS)}
    for t in CATALOGUE:
        for p in writers(t):
            acls[p].append(_acl(t.name, ["Write", "Describe"]))
    for t in CATALOGUE:  # the worker consumes every input and joins on outputs it produced
        acls[WORKER].append(_acl(t.name, ["Read", "Describe"]))
    acls[WORKER] += [
        _acl("hub", ["Read", "Describe"], kind="group", pattern="prefix"),
        _acl("hub", ["All"], kind="topic", pattern="prefix"),  # faust changelog/repartition topics hub-*
        _acl("hub", ["Write", "Describe"], kind="transactionalId", pattern="prefix"),
    ]
    for sink, topics in SINKS.items():
        acls[sink] += [_acl(t, ["Read", "Describe"]) for t in topics]
    for p in (*DEPARTMENT_CONNECTORS, *SINKS):
        acls[p] += [
            _acl(CONNECTOR_OFFSETS.name, ["Read", "Write", "Describe"]),
            _acl(p, ["Read", "Describe"], kind="group", pattern="prefix"),
        ]
    return acls


def kafka_users() -> list[dict]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaUser",
            "metadata": {"name": p, "namespace": NAMESPACE, "labels": {"strimzi.io/cluster": CLUSTER}},
            "spec": {"authentication": {"type": "scram-sha-512"},
                     "authorization": {"type": "simple", "acls": acls}},
        }
        for p, acls in principal_acls().items()
    ]


def create_topics_script() -> str:
    lines = [
        "#!/bin/sh",
        "# GENERATED by deploy/k8s/generate_topics.py from hub.topics.CATALOGUE — do not edit.",
        "# Creates every catalogue topic before any hub worker starts (a topic auto-created by a",
        "# metadata request gets 1 partition and faust refuses it: shared/broker-notes.md).",
        "set -eu",
        'BOOTSTRAP="${BOOTSTRAP:-kafka-1:9092,kafka-2:9092,kafka-3:9092}"',
        'KT="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"',
    ]
    for t in (*CATALOGUE, CONNECTOR_OFFSETS):
        cfg = " ".join(f"--config {k}={v}" for k, v in topic_config(t).items())
        lines.append(
            f'"$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic {t.name} '
            f"--partitions {t.partitions} --replication-factor {REPLICAS} {cfg}"
        )
    lines.append('echo "topics ready"')
    return "\n".join(lines) + "\n"


def render() -> dict[str, str]:
    """Render deploy/k8s/{topics,users}.yaml and deploy/compose/create-topics.sh from the catalogue."""
    head = HEADER.format(script="deploy/k8s/generate_topics.py", source="hub.topics.CATALOGUE")
    return {
        "deploy/k8s/topics.yaml": head + dump_yaml_all(kafka_topics()),
        "deploy/k8s/users.yaml": head + dump_yaml_all(kafka_users()),
        "deploy/compose/create-topics.sh": create_topics_script(),
    }


if __name__ == "__main__":
    raise SystemExit(run(render))
