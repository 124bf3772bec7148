"""The public surface and the import rules of STYLE.md, checked so they cannot rot silently."""

from __future__ import annotations

import ast
from pathlib import Path

import hub

ROOT = Path(__file__).resolve().parents[2]


def test_public_api_is_exactly_the_documented_list() -> None:
    """Something exported by accident fails here: add it to the list only on purpose."""
    assert sorted(hub.__all__) == sorted([
        "HubError", "PolicyError", "ValidationError", "BrokerError", "SchemaError", "ConnectorError",
        "load_policy", "settle_discharge", "topics", "__version__",
    ])
    for name in hub.__all__:
        assert getattr(hub, name) is not None


def test_every_hub_error_derives_from_hub_error() -> None:
    for name in ("PolicyError", "ValidationError", "BrokerError", "SchemaError", "ConnectorError"):
        assert issubclass(getattr(hub, name), hub.HubError)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_policy_code_is_pure_no_kafka_no_http_no_clock() -> None:
    """hub.policy is the rule code: no broker client, no HTTP, no wall clock (pass `now` in)."""
    forbidden = ("kafka", "aiokafka", "faust", "aiohttp", "requests", "httpx", "time", "socket")
    for path in _modules("hub/policy"):
        for name in _imports(path):
            root = name.split(".")[0]
            assert root not in forbidden, f"{path.relative_to(ROOT)} imports {name}"
        text = path.read_text(encoding="utf-8")
        assert "datetime.now(" not in text and "date.today(" not in text, f"{path} reads the clock"


def test_processors_never_import_connectors() -> None:
    for path in _modules("hub/processors"):
        for name in _imports(path):
            assert not name.startswith("connectors"), f"{path.relative_to(ROOT)} imports {name}"


def test_connectors_reach_the_hub_only_through_its_public_edge_modules() -> None:
    """Connectors may use events, codec, identity, dead letters, topics, config, client options, errors, metrics,
    broker."""
    allowed = {"hub", "hub.events", "hub.codec", "hub.identity", "hub.deadletter", "hub.topics", "hub.config",
               "hub.clients", "hub.errors", "hub.metrics", "hub.broker", "hub.timeutil",
               # the edge's safety modules: bounded JSON, the key policy, the audit log
               "hub.safejson", "hub.keys", "hub.audit"}
    for path in _modules("connectors"):
        for name in _imports(path):
            if name == "hub" or name.startswith("hub."):
                assert name in allowed, f"{path.relative_to(ROOT)} imports {name}"
