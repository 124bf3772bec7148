"""deploy/k8s/users.yaml (issue 17, item 4): each principal's ACLs cover exactly the names the code uses.

The names are derived here from the code itself, not from deploy/_processes.py (which generated the
file): the worker's group and transactional ids from hub.config/hub.topics, the probe's group and
transactional ids by running hub.doctor's probe against the embedded broker and recording what its
clients were built with, each connector's topic and consumer group from its YAML through the
connector SDK (what SourceRunner/SinkRunner use). Least privilege: no hub process may create,
delete or alter a topic, and nothing is granted with a wildcard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.sdk.config import SinkConfig, SourceConfig
from connectors.sdk.loader import load_config
from hub import topics
from hub.broker import EmbeddedBroker
from hub.config import Settings
from hub.doctor import run_probe

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
APP_ID = Settings().app_id
FORBIDDEN = {"All", "Alter", "AlterConfigs", "Create", "Delete"}


def _users() -> dict[str, list[dict[str, Any]]]:
    docs = yaml.safe_load_all((ROOT / "deploy/k8s/users.yaml").read_text(encoding="utf-8"))
    return {d["metadata"]["name"]: d["spec"]["authorization"]["acls"] for d in docs if d}


def _names(acls: list[dict[str, Any]], kind: str, op: str | None = None) -> set[tuple[str, str]]:
    return {(a["resource"]["name"], a["resource"]["patternType"]) for a in acls
            if a["resource"]["type"] == kind and (op is None or op in a["operations"])}


def _probe_names(broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> tuple[set[str], set[str], set[str]]:
    """(groups, transactional ids, topics written) of one real probe run, as its clients were built."""
    import kafka

    groups: set[str] = set()
    tids: set[str] = set()
    written: set[str] = set()

    class Consumer(kafka.KafkaConsumer):  # type: ignore[misc]
        def __init__(self, *a: Any, **kw: Any) -> None:
            if kw.get("group_id"):
                groups.add(kw["group_id"])
            super().__init__(*a, **kw)

    class Producer(kafka.KafkaProducer):  # type: ignore[misc]
        def __init__(self, *a: Any, **kw: Any) -> None:
            if kw.get("transactional_id"):
                tids.add(kw["transactional_id"])
            super().__init__(*a, **kw)

        def send(self, topic: str, *a: Any, **kw: Any) -> Any:
            written.add(topic)
            return super().send(topic, *a, **kw)

    monkeypatch.setattr(kafka, "KafkaConsumer", Consumer)
    monkeypatch.setattr(kafka, "KafkaProducer", Producer)
    checks = run_probe(broker.bootstrap, catalogue=())
    assert all(c.ok for c in checks)
    return groups, tids, written


def _matches(name: str, granted: set[tuple[str, str]]) -> bool:
    return any(name == n if p == "literal" else name.startswith(n) for n, p in granted)


def test_worker_acls_are_exactly_what_it_uses(broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    acls = _users()["hub-worker"]
    internal = {t.name for t in topics.internal_topics(APP_ID)}
    probe = topics.probe_topic(APP_ID).name
    assert internal == {f"{APP_ID}-person-state"}
    reads = {n for n, _ in _names(acls, "topic", "Read")}
    writes = {n for n, _ in _names(acls, "topic", "Write")}
    assert reads == set(topics.INPUT_TOPICS) | internal | {probe}
    assert writes == set(topics.OUTPUT_TOPICS) | internal | {probe}

    groups, tids, written = _probe_names(broker, monkeypatch)
    assert groups and tids and written == {probe}
    granted_groups = _names(acls, "group", "Read")
    granted_tids = _names(acls, "transactionalId", "Write")
    assert all(_matches(g, granted_groups) for g in groups), (groups, granted_groups)
    assert all(_matches(t, granted_tids) for t in tids), (tids, granted_tids)
    # the worker's own group and one transactional id per task, and the probe's prefixes: nothing else
    assert granted_groups == {(APP_ID, "literal"), (f"{probe}-", "prefix")}
    assert granted_tids == {*((t, "literal") for t in topics.transactional_ids(APP_ID)), (f"{probe}-", "prefix")}
    assert {t for t, _ in granted_tids} >= {f"{APP_ID}-person-{p}" for p in range(topics.PARTITIONS)}


def test_each_connector_may_touch_only_its_own_topic_and_group() -> None:
    users = _users()
    examples = sorted((ROOT / "connectors/examples").glob("*.yaml"))
    assert len(examples) >= 10, "the example connectors are gone"
    for path in examples:
        _cls, cfg = load_config(path)
        acls = users[f"connector-{cfg.name}"]
        writes = {n for n, _ in _names(acls, "topic", "Write")}
        reads = {n for n, _ in _names(acls, "topic", "Read")}
        groups = _names(acls, "group")
        if isinstance(cfg, SourceConfig):
            assert writes == {cfg.topic, topics.DEAD_LETTERS, topics.CONNECTOR_OFFSETS.name}, path.name
            assert reads == {topics.CONNECTOR_OFFSETS.name} and not groups, path.name
        else:
            assert isinstance(cfg, SinkConfig)
            assert reads == set(cfg.topics) and writes == {topics.DEAD_LETTERS}, path.name
            assert groups == {(cfg.consumer_group, "literal")}, path.name
        assert not _names(acls, "transactionalId"), path.name


def test_counter_api_writes_admissions_and_discharges_and_reads_its_answers() -> None:
    acls = _users()["hub-api"]
    assert {n for n, _ in _names(acls, "topic", "Write")} == {"health.admissions.v1", "health.discharges.v1",
                                                               topics.DEAD_LETTERS}
    assert {n for n, _ in _names(acls, "topic", "Read")} == {"hub.deposit-decisions.v1", "hub.settlements.v1"}
    assert not _names(acls, "group")


def test_no_principal_may_create_delete_or_alter_and_nothing_is_a_wildcard() -> None:
    users = _users()
    assert set(users) == {"hub-worker", "hub-api", *(f"connector-{load_config(p)[1].name}"
                                                     for p in (ROOT / "connectors/examples").glob("*.yaml"))}
    for user, acls in users.items():
        for a in acls:
            assert not set(a["operations"]) & FORBIDDEN or (a["resource"]["type"] == "group"
                                                            and a["operations"] == ["Delete", "Describe", "Read"]), (
                user, a)
            assert a["resource"]["name"] not in ("*", ""), (user, a)
            if a["resource"]["type"] == "topic":
                assert a["resource"]["patternType"] == "literal", (user, a)
