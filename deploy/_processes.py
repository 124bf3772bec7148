"""What a deployment of the hub runs, and under which Kafka principal — derived from the code.

Why one module: compose services, Kubernetes Deployments, Prometheus scrape targets and the Kafka
ACLs (KafkaUsers) must all name the same processes, and each process's names on the cluster (group
ids, transactional ids, topics) must be the ones the code really uses. So everything here is read
from the hub itself: the worker's names from ``hub.topics`` and ``hub.config`` defaults, every
example connector from its YAML through ``connectors.sdk.loader.load_config`` (its topic(s), its
consumer group), and nothing is typed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from _common import ROOT

from hub import topics
from hub.config import Settings
from hub.metrics import hub_version

IMAGE = f"health-relief-hub:{hub_version() if hub_version() != '0+unknown' else '0.1.0'}"
"""The one image every hub process runs (built by deploy/compose/Dockerfile)."""

METRICS_PORT = 9308
"""HUB_METRICS_PORT inside containers: every process serves /metrics there."""

CONFIG_DIR = "/etc/hub/connectors"
"""Where the image holds the example connector configs (and their sample inboxes), writable by ``hub``."""

EXAMPLES = ROOT / "connectors" / "examples"
APP_ID = Settings.model_fields["app_id"].default
WORKER = "hub-worker"
API = "hub-api"
WORKER_REPLICAS = 3


@dataclass(frozen=True)
class Process:
    """One kind of hub process: its principal (KafkaUser), command and what it touches on the cluster."""

    name: str
    """compose service / Deployment name, also the SASL user (KafkaUser) it authenticates as."""
    command: tuple[str, ...]
    kind: str  # worker | api | source | sink
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    transactional_ids: tuple[str, ...] = ()
    ports: tuple[tuple[str, int], ...] = ()
    config_file: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def worker() -> Process:
    """``hub worker``: consumer group ``<app id>`` on the 10 inputs, transactional producers per task,
    its state topic, the outputs and dead letters, and the probe's topic/group/transactional ids."""
    probe = topics.probe_topic(APP_ID).name
    internal = [t.name for t in topics.internal_topics(APP_ID)]
    return Process(
        WORKER, ("hub", "worker"), "worker",
        reads=(*topics.INPUT_TOPICS, *internal, probe),
        writes=(*topics.OUTPUT_TOPICS, *internal, probe),
        groups=(APP_ID,),
        transactional_ids=topics.transactional_ids(APP_ID),
    )


def api() -> Process:
    """``hub api``: produces admissions and discharges, reads the answers (no consumer group)."""
    return Process(API, ("hub", "api", "--host", "0.0.0.0", "--port", "8080"), "api",
                   reads=("hub.deposit-decisions.v1", "hub.settlements.v1"),
                   writes=("health.admissions.v1", "health.discharges.v1", topics.DEAD_LETTERS),
                   ports=(("http", 8080),))


def connectors() -> list[Process]:
    """One process per example connector config (connectors/examples/*.yaml), named after its ``name``."""
    from connectors.sdk.config import SinkConfig, SourceConfig
    from connectors.sdk.loader import load_config

    out = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        _cls, cfg = load_config(path)
        name = f"connector-{cfg.name}"
        command = ("hub", "connector", "run", f"{CONFIG_DIR}/{path.name}")
        port = getattr(cfg, "port", None)
        ports = (("http", int(port)),) if port else ()
        if isinstance(cfg, SourceConfig):
            out.append(Process(name, command, "source", reads=(topics.CONNECTOR_OFFSETS.name,),
                               writes=(cfg.topic, topics.DEAD_LETTERS, topics.CONNECTOR_OFFSETS.name),
                               ports=ports, config_file=path.name))
        elif isinstance(cfg, SinkConfig):
            group = cfg.consumer_group  # what SinkRunner joins (connectors/sdk/runner.py)
            out.append(Process(name, command, "sink", reads=tuple(cfg.topics), writes=(topics.DEAD_LETTERS,),
                               groups=(group,), ports=ports, config_file=path.name))
    return out


def processes() -> list[Process]:
    return [worker(), api(), *connectors()]


def compose_services() -> list[str]:
    """Service names in docker compose that serve /metrics (workers are numbered)."""
    names = [f"{WORKER}-{i}" for i in range(1, WORKER_REPLICAS + 1)]
    return names + [p.name for p in processes() if p.kind != "worker"]


def example_path(p: Process) -> Path | None:
    return EXAMPLES / p.config_file if p.config_file else None
