"""Test kit: run a connector against the embedded broker and look at what it wrote.

A connector author's test is three lines::

    from connectors.sdk import testkit
    stats = testkit.run_source(MySource, cfg, bootstrap)            # poll until caught up, once
    events = testkit.read_topic(bootstrap, "health.diagnoses.v1")   # decoded values, with keys

``bootstrap`` comes from the ``kafka_bootstrap`` fixture of tests/conftest.py (one noida-db per
session). Names must be unique per test because the session broker is shared: use
``unique_name``. Keys are fixed test keys, so tests can compute expected person tokens.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from connectors.sdk.base import ConnectorContext, SinkConnector, SourceConnector
from connectors.sdk.config import ConnectorConfig, read_yaml, validate
from connectors.sdk.loader import load_config
from connectors.sdk.records import Rejected, SourceOffset, SourceRecord
from connectors.sdk.runner import RunStats, SinkRunner, SourceRunner, encode_event
from hub import codec, identity
from hub.clients import kafka_python_options
from hub.metrics import Metrics
from hub.topics import DEAD_LETTERS

TEST_PSEUDONYM_KEY = "testkit-pseudonym-key"
TEST_EDGE_KEY = bytes(range(32))


def unique_name(prefix: str = "t") -> str:
    """A connector name no other test uses (offsets and consumer groups are per name)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def context(name: str) -> ConnectorContext:
    return ConnectorContext(name=name, pseudonym_key=TEST_PSEUDONYM_KEY, edge_key=TEST_EDGE_KEY)


def token(id_number: str) -> str:
    """The person_token the test key gives an ID number."""
    return identity.person_token(identity.validate_id_number(id_number), TEST_PSEUDONYM_KEY)


def config(cls: type[SourceConnector] | type[SinkConnector], data: Mapping[str, Any],
           base_dir: Path | None = None) -> ConnectorConfig:
    """Validate a configuration dict the way a YAML file would be."""
    return validate(cls.config_model, dict(data), "<test>", base_dir or Path.cwd())


def build(cls: type[SourceConnector] | type[SinkConnector], data: Mapping[str, Any] | ConnectorConfig,
          base_dir: Path | None = None) -> Any:
    cfg = data if isinstance(data, ConnectorConfig) else config(cls, data, base_dir)
    return cls(cfg, context(cfg.name))  # type: ignore[arg-type]


def from_yaml(path: str | Path, *, cls: type[SourceConnector] | type[SinkConnector] | None = None,
              **overrides: Any) -> Any:
    """Build a connector from a YAML file with test keys; ``overrides`` replace top-level keys.

    ``cls`` skips plugin discovery: a connector under development is not installed yet.
    """
    p = Path(path)
    if cls is None:
        cls, _ = load_config(p)
    data = {**read_yaml(p), **overrides}
    cfg = validate(cls.config_model, data, str(p), p.resolve().parent)
    return cls(cfg, context(cfg.name))  # type: ignore[arg-type]


def metrics() -> Metrics:
    """Fresh metrics on their own registry, so a test reads exact counts."""
    return Metrics(CollectorRegistry())


def run_source(connector: SourceConnector, bootstrap: str, *, m: Metrics | None = None) -> RunStats:
    """Poll once until caught up, committing offsets; returns what was produced and rejected."""
    return SourceRunner(connector, bootstrap, metrics=m or metrics()).run(once=True)


def run_sink(connector: SinkConnector, bootstrap: str, *, m: Metrics | None = None) -> RunStats:
    """Deliver everything on the sink's topics, then stop."""
    return SinkRunner(connector, bootstrap, metrics=m or metrics(), caught_up_wait_s=20).run(once=True)


def poll_all(connector: SourceConnector, offsets: Mapping[str, Mapping[str, Any]] | None = None,
             ) -> list[tuple[SourceRecord | Rejected, SourceOffset | None]]:
    """Everything one poll yields, without a broker (unit tests of a connector's format handling)."""
    connector.start(offsets or {})
    try:
        return list(connector.poll())
    finally:
        connector.stop()


@dataclass(frozen=True)
class Consumed:
    key: str | None
    schema: str
    value: dict[str, Any]
    partition: int
    offset: int


def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 15.0) -> list[Consumed]:
    """Every record on ``topic`` now, decoded, in partition then offset order."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_python_options())
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list[Consumed] = []
        deadline = time.monotonic() + timeout_s
        while any(c.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: did not reach the end offsets {end} in {timeout_s}s")
            for tp, recs in c.poll(timeout_ms=500).items():
                for r in recs:
                    schema, value = codec.decode(r.value)
                    key = r.key.decode("utf-8", "replace") if r.key else None  # keys written by others may be bytes
                    out.append(Consumed(key, schema, value, tp.partition, r.offset))
        return sorted(out, key=lambda x: (x.partition, x.offset))
    finally:
        c.close()


def events_from(bootstrap: str, topic: str, source_ids: Iterable[str] = (), **match: Any) -> list[Consumed]:
    """Records of ``topic`` whose value fields equal ``match`` (the session broker is shared)."""
    return [r for r in read_topic(bootstrap, topic) if all(r.value.get(k) == v for k, v in match.items())]


def dead_letters(bootstrap: str, source: str) -> list[dict[str, Any]]:
    """Dead letters written by connector ``source``."""
    return [r.value for r in read_topic(bootstrap, DEAD_LETTERS) if r.value.get("source") == source]


def produce(bootstrap: str, topic: str, schema: str, values: Iterable[Mapping[str, Any]],
            key_field: str = "person_token") -> None:
    """Put events on a topic (to feed a sink under test), validated like a source would."""
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **kafka_python_options())
    try:
        for v in values:
            p.send(topic, key=str(v[key_field]).encode(), value=encode_event(schema, v))
        p.flush()
    finally:
        p.close()


def edge_key_b64() -> str:
    return base64.b64encode(TEST_EDGE_KEY).decode()
