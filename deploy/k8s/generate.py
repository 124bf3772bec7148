"""Generate the Kubernetes manifests, the Kafka topics and the least-privilege ACLs from the hub's own catalogues.

Why generated: topic names, partitions and compaction live in hub/topics.py; the worker's consumer group,
internal topics and transactional ids in hub.topics/hub.config; each connector's topic and consumer group
in its YAML (connectors/examples). deploy/_processes.py reads them all, and this file turns them into:

- deploy/k8s/topics.yaml        one Strimzi KafkaTopic per topic the hub needs (catalogue, connector
                                offsets, the worker's state topic, the probe's topic): replicas 3,
                                min.insync.replicas 2
- deploy/k8s/users.yaml         one Strimzi KafkaUser (SCRAM-SHA-512) per process, whose ACLs allow exactly
                                what that process does: Read what it consumes, Write what it produces, its
                                consumer group, its transactional ids — no Create, Delete, Alter or All
- deploy/k8s/hub.yaml           Deployments of the worker, the counter API and every example connector,
                                with the HUB_KAFKA_* settings of hub.clients (SASL_SSL, SCRAM-SHA-512, CA)
- deploy/k8s/monitoring.yaml    Prometheus, Alertmanager and its configuration (prometheus-operator)
- deploy/compose/create-topics.sh  the same topics for the docker compose topic-init job

Run: ``python deploy/k8s/generate.py`` (``--check`` to verify the checked-in files).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HEADER, dump_yaml, dump_yaml_all, run  # noqa: E402
from _processes import (  # noqa: E402
    API,
    APP_ID,
    IMAGE,
    METRICS_PORT,
    WORKER,
    WORKER_REPLICAS,
    Process,
    processes,
)

from hub.topics import Topic, hub_topics, probe_topic  # noqa: E402

CLUSTER = "hub"
NAMESPACE = "hub"
REPLICAS = 3
MIN_INSYNC = 2
BOOTSTRAP = f"kafka://{CLUSTER}-kafka-bootstrap.{NAMESPACE}.svc:9093"
CA_SECRET = f"{CLUSTER}-cluster-ca-cert"
"""Created by Strimzi's cluster operator for cluster ``hub``."""
KEYS_SECRET = "hub-keys"
"""Created by the operator before deploying (deploy/README.md): pseudonym_key, edge_key."""
CONNECTOR_ENV_SECRET = "hub-connector-env"
"""Optional: the ${HUB_…} variables of the connector configs (database URLs, tokens, webhook secrets)."""
DATA_DIR = "/var/lib/hub"
UID = 10001
FORBIDDEN_OPERATIONS = {"All", "Alter", "AlterConfigs", "Create", "Delete"}
"""Topic operations no hub process gets: topics come from topics.yaml, never from a client."""


def _k8s_name(topic: str) -> str:
    return topic.replace(".", "-").replace("_", "-").lower()


def topic_config(t: Topic) -> dict[str, str]:
    """Broker config of a production topic: the catalogue's own config plus min.insync.replicas."""
    return {**t.config, "min.insync.replicas": str(MIN_INSYNC)}


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
        for t in hub_topics(APP_ID)
    ]


# ---------------------------------------------------------------- ACLs


def _acl(name: str, ops: list[str], kind: str = "topic", pattern: str = "literal") -> dict:
    return {"resource": {"type": kind, "name": name, "patternType": pattern}, "operations": ops, "host": "*"}


def acls(p: Process) -> list[dict]:
    """What ``p`` may do: per topic the union of Read/Write it needs, Describe to see it; its groups; its
    transactional ids. The worker also describes every topic (its start-up probe checks them all) and owns
    the probe's per-run group and transactional ids (prefix ``<app id>-probe-``)."""
    ops: dict[str, set[str]] = {}
    for t in p.reads:
        ops.setdefault(t, {"Describe"}).add("Read")
    for t in p.writes:
        ops.setdefault(t, {"Describe"}).add("Write")
    if p.kind == "worker":
        for t in hub_topics(APP_ID):
            ops.setdefault(t.name, set()).update({"Describe", "DescribeConfigs"})
    out = [_acl(t, sorted(o)) for t, o in ops.items()]
    out += [_acl(g, ["Describe", "Read"], kind="group") for g in p.groups]
    out += [_acl(tid, ["Describe", "Write"], kind="transactionalId") for tid in p.transactional_ids]
    if p.kind == "worker":
        probe = f"{probe_topic(APP_ID).name}-"
        out += [_acl(probe, ["Delete", "Describe", "Read"], kind="group", pattern="prefix"),
                _acl(probe, ["Describe", "Write"], kind="transactionalId", pattern="prefix")]
    return out


def kafka_users() -> list[dict]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaUser",
            "metadata": {"name": p.name, "namespace": NAMESPACE, "labels": {"strimzi.io/cluster": CLUSTER}},
            "spec": {"authentication": {"type": "scram-sha-512"},
                     "authorization": {"type": "simple", "acls": acls(p)}},
        }
        for p in processes()
    ]


# ---------------------------------------------------------------- workloads


def _env(p: Process) -> list[dict]:
    secret = {"name": "HUB_KAFKA_SASL_PASSWORD", "valueFrom": {"secretKeyRef": {"name": p.name, "key": "password"}}}
    plain = {
        "HUB_BROKER": BOOTSTRAP, "HUB_DATA_DIR": DATA_DIR, "HUB_METRICS_HOST": "0.0.0.0",
        "HUB_METRICS_PORT": str(METRICS_PORT), "HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "HUB_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "HUB_KAFKA_SASL_USERNAME": p.name,
        "HUB_KAFKA_SSL_CAFILE": "/etc/kafka-ca/ca.crt", "HUB_KAFKA_REPLICATION_FACTOR": str(REPLICAS),
        "HUB_KAFKA_MIN_INSYNC_REPLICAS": str(MIN_INSYNC),
    }
    if p.kind == "worker":
        plain["HUB_APP_ID"] = APP_ID
    env = [{"name": k, "value": v} for k, v in plain.items()] + [secret]
    env += [{"name": f"HUB_{k.upper()}", "valueFrom": {"secretKeyRef": {"name": KEYS_SECRET, "key": k}}}
            for k in ("pseudonym_key", "edge_key")]
    return env


def _labels(p: Process) -> dict[str, str]:
    return {"app.kubernetes.io/name": "hub", "app.kubernetes.io/component": p.kind, "hub/process": p.name}


def deployment(p: Process) -> dict:
    ports = [{"name": "metrics", "containerPort": METRICS_PORT}]
    ports += [{"name": name, "containerPort": port} for name, port in p.ports]
    container: dict = {
        "name": p.kind,
        "image": IMAGE,
        "args": list(p.command),
        "ports": ports,
        "env": _env(p),
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10},
        "resources": ({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
                      if p.kind == "worker" else
                      {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}),
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/kafka-ca", "readOnly": True},
                         {"name": "data", "mountPath": DATA_DIR}],
    }
    if p.kind in ("source", "sink"):
        container["envFrom"] = [{"secretRef": {"name": CONNECTOR_ENV_SECRET, "optional": True}}]
    replicas = WORKER_REPLICAS if p.kind == "worker" else (2 if p.kind == "api" else 1)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": p.name, "namespace": NAMESPACE, "labels": _labels(p)},
        "spec": {
            "replicas": replicas,
            # a source connector owns its source offsets, a sink its group: one replica, never two at once
            "strategy": {"type": "Recreate"} if p.kind in ("source", "sink") else {"type": "RollingUpdate"},
            "selector": {"matchLabels": _labels(p)},
            "template": {
                "metadata": {"labels": _labels(p)},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID},
                    "containers": [container],
                    "volumes": [{"name": "kafka-ca", "secret": {"secretName": CA_SECRET}},
                                {"name": "data", "emptyDir": {}}],  # worker state is rebuilt from its topic
                },
            },
        },
    }


def service(p: Process) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": p.name, "namespace": NAMESPACE, "labels": _labels(p)},
        "spec": {"selector": _labels(p),
                 "ports": [{"name": name, "port": port, "targetPort": name} for name, port in p.ports]},
    }


def workloads() -> list[dict]:
    docs: list[dict] = []
    for p in processes():
        docs.append(deployment(p))
        if p.ports:
            docs.append(service(p))
    docs.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "hub-metrics", "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "hub"}},
        "spec": {"clusterIP": "None", "selector": {"app.kubernetes.io/name": "hub"},
                 "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}]},
    })
    return docs


def monitoring() -> list[dict]:
    """A Prometheus and an Alertmanager of prometheus-operator, wired together, with the hub's rules."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "prometheus"))
    from generate import alertmanager_config  # type: ignore[import-not-found]  # deploy/prometheus/generate.py

    selector = {"matchLabels": {"release": "prometheus"}}
    return [
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
         "metadata": {"name": "hub", "namespace": NAMESPACE},
         "spec": {"replicas": 1, "serviceAccountName": "prometheus", "retention": "30d",
                  "serviceMonitorSelector": selector, "ruleSelector": selector,
                  "alerting": {"alertmanagers": [{"namespace": NAMESPACE, "name": "alertmanager-operated",
                                                  "port": "web"}]}}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
         "metadata": {"name": "hub", "namespace": NAMESPACE},
         "spec": {"replicas": 1, "configSecret": "alertmanager-hub-config"}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "alertmanager-hub-config", "namespace": NAMESPACE},
         "type": "Opaque", "stringData": {"alertmanager.yaml": dump_yaml(alertmanager_config())}},
    ]


def create_topics_script() -> str:
    lines = [
        "#!/bin/sh",
        "# GENERATED by deploy/k8s/generate.py from hub.topics.hub_topics — do not edit.",
        "# Creates every topic the hub needs before any hub process starts (the worker's user may not create",
        "# topics, and a topic auto-created by a metadata request would get 1 partition and 1 replica).",
        "set -eu",
        'BOOTSTRAP="${BOOTSTRAP:-kafka-1:9092,kafka-2:9092,kafka-3:9092}"',
        'KT="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"',
    ]
    for t in hub_topics(APP_ID):
        cfg = " ".join(f"--config {k}={v}" for k, v in topic_config(t).items())
        lines.append(
            f'"$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic {t.name} '
            f"--partitions {t.partitions} --replication-factor {REPLICAS} {cfg}"
        )
    lines.append('echo "topics ready"')
    return "\n".join(lines) + "\n"


def render() -> dict[str, str]:
    """Render deploy/k8s/{topics,users,hub,monitoring}.yaml and deploy/compose/create-topics.sh."""
    head = HEADER.format(script="deploy/k8s/generate.py", source="hub.topics, hub.config and connectors/examples")
    return {
        "deploy/k8s/topics.yaml": head + dump_yaml_all(kafka_topics()),
        "deploy/k8s/users.yaml": head + dump_yaml_all(kafka_users()),
        "deploy/k8s/hub.yaml": head + dump_yaml_all(workloads()),
        "deploy/k8s/monitoring.yaml": head + dump_yaml_all(monitoring()),
        "deploy/compose/create-topics.sh": create_topics_script(),
    }


__all__ = ["API", "FORBIDDEN_OPERATIONS", "WORKER", "acls", "render"]

if __name__ == "__main__":
    raise SystemExit(run(render))
