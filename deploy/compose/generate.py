"""Generate deploy/compose/docker-compose.yml: a production-shaped hub on one host.

Why generated: the services must be exactly the processes of deploy/_processes.py (the worker, the counter
API, every example connector) so that Prometheus's targets (deploy/prometheus/prometheus.yml), the topics
(create-topics.sh) and the connector configs baked into the image agree with it; a hand-written file named
configs and services that did not exist.

The stack: Apache Kafka in KRaft mode (3 combined broker/controller nodes, data on named volumes via
``KAFKA_LOG_DIRS``, RF 3, min.insync.replicas 2), the topic-init job, 3 workers, the counter API, every
example connector, Prometheus with the hub's rules, Alertmanager and Grafana (provisioned dashboards).
This variant is PLAINTEXT for one trusted host; TLS + SASL/SCRAM and ACLs are what deploy/k8s sets up.

Run: ``python deploy/compose/generate.py`` (``--check`` to verify the checked-in file).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HEADER, dump_yaml, run  # noqa: E402
from _processes import APP_ID, IMAGE, METRICS_PORT, WORKER, WORKER_REPLICAS, processes  # noqa: E402

KAFKA_IMAGE = "apache/kafka:3.8.0"
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
BOOTSTRAP = ",".join(f"{b}:9092" for b in BROKERS)
DATA_DIR = "/var/lib/hub"

HEAD = HEADER.format(script="deploy/compose/generate.py", source="deploy/_processes.py") + """\
# Production-shaped stack for a single host (PLAINTEXT; TLS + SCRAM and ACLs: deploy/k8s):
#   docker compose -f deploy/compose/docker-compose.yml up --build      # needs .env: HUB_PSEUDONYM_KEY,
#                                                                      # HUB_EDGE_KEY, GRAFANA_ADMIN_PASSWORD
"""


def _kafka(i: int, name: str) -> dict:
    return {
        "image": KAFKA_IMAGE,
        "hostname": name,
        "restart": "unless-stopped",
        "environment": {
            "CLUSTER_ID": "hub-kraft-cluster-0001",
            "KAFKA_NODE_ID": i,
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": ",".join(f"{n}@{b}:9093" for n, b in enumerate(BROKERS, 1)),
            "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{name}:9092",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
            "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
            "KAFKA_DEFAULT_REPLICATION_FACTOR": 3,
            "KAFKA_MIN_INSYNC_REPLICAS": 2,
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": 3,
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": 3,
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": 2,
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
            "KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE": "false",
        },
        "volumes": [f"{name}:/var/lib/kafka/data"],
        "healthcheck": {
            "test": ["CMD-SHELL", "/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:9092 "
                                  ">/dev/null 2>&1"],
            "interval": "10s", "timeout": "10s", "retries": 12,
        },
    }


def _hub_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "HUB_BROKER": f"kafka://{BOOTSTRAP}",
        "HUB_DATA_DIR": DATA_DIR,
        "HUB_METRICS_HOST": "0.0.0.0",
        "HUB_METRICS_PORT": str(METRICS_PORT),
        "HUB_KAFKA_REPLICATION_FACTOR": "3",
        "HUB_KAFKA_MIN_INSYNC_REPLICAS": "2",
        "HUB_PSEUDONYM_KEY": "${HUB_PSEUDONYM_KEY:?set HUB_PSEUDONYM_KEY (the person_token HMAC key) in .env}",
        "HUB_EDGE_KEY": "${HUB_EDGE_KEY:?set HUB_EDGE_KEY (base64 AES-256 key of dead-letter originals) in .env}",
    }
    env.update(extra or {})
    return env


def _hub(command: list[str], *, build: bool = False, ports: list[str] | None = None,
         volumes: list[str] | None = None, env: dict[str, str] | None = None) -> dict:
    service: dict = {}
    if build:
        service["build"] = {"context": "../..", "dockerfile": "deploy/compose/Dockerfile"}
    service.update({
        "image": IMAGE,
        "restart": "unless-stopped",
        "depends_on": {"topic-init": {"condition": "service_completed_successfully"}},
        "command": command,
        "environment": _hub_env(env),
    })
    if ports:
        service["ports"] = ports
    if volumes:
        service["volumes"] = volumes
    return service


def compose() -> dict:
    services: dict[str, dict] = {b: _kafka(i, b) for i, b in enumerate(BROKERS, 1)}
    services["topic-init"] = {
        "image": KAFKA_IMAGE,
        "restart": "no",
        "depends_on": {b: {"condition": "service_healthy"} for b in BROKERS},
        "volumes": ["./create-topics.sh:/create-topics.sh:ro"],
        "entrypoint": ["/bin/sh", "/create-topics.sh"],
    }
    volumes: dict[str, dict] = {b: {} for b in BROKERS}
    for p in processes():
        if p.kind == "worker":
            for i in range(1, WORKER_REPLICAS + 1):
                name = f"{WORKER}-{i}"
                services[name] = _hub(list(p.command), build=i == 1, volumes=[f"{name}:{DATA_DIR}"],
                                      env={"HUB_APP_ID": APP_ID})
                volumes[name] = {}
        else:
            ports = [f"127.0.0.1:{port}:{port}" for _, port in p.ports]
            services[p.name] = _hub(list(p.command), ports=ports, volumes=[f"{p.name}:{DATA_DIR}"])
            if p.kind in ("source", "sink"):
                # the ${HUB_…} variables of the connector configs (database URLs, tokens), when .env sets them
                services[p.name]["env_file"] = [{"path": ".env", "required": False}]
            volumes[p.name] = {}
    services["prometheus"] = {
        "image": "prom/prometheus:v2.53.0",
        "restart": "unless-stopped",
        "command": ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=30d"],
        "volumes": ["../prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
                    "../prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro", "prometheus:/prometheus"],
        "ports": ["127.0.0.1:9090:9090"],
        "depends_on": ["alertmanager"],
    }
    services["alertmanager"] = {
        "image": "prom/alertmanager:v0.27.0",
        "restart": "unless-stopped",
        "command": ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
        "volumes": ["../prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro",
                    "alertmanager:/alertmanager"],
        "ports": ["127.0.0.1:9093:9093"],
    }
    services["grafana"] = {
        "image": "grafana/grafana:11.1.0",
        "restart": "unless-stopped",
        "depends_on": ["prometheus"],
        "environment": {"GF_AUTH_ANONYMOUS_ENABLED": "false",
                        "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD in .env}"},
        "volumes": ["../grafana/provisioning:/etc/grafana/provisioning:ro",
                    "../grafana/dashboards:/var/lib/grafana/dashboards:ro"],
        "ports": ["127.0.0.1:3000:3000"],
    }
    volumes.update({"prometheus": {}, "alertmanager": {}})
    return {"name": "health-relief-hub", "services": services, "volumes": volumes}


def render() -> dict[str, str]:
    """Render deploy/compose/docker-compose.yml."""
    return {"deploy/compose/docker-compose.yml": HEAD + dump_yaml(compose())}


if __name__ == "__main__":
    raise SystemExit(run(render))
