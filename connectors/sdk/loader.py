"""From a YAML file to a ready connector and its runner — what ``hub connector run`` does.

Keys come from hub settings (``HUB_PSEUDONYM_KEY``, ``HUB_EDGE_KEY``): the edge is where raw ID
numbers are turned into tokens and where rejected originals are encrypted, so it needs both.

Before a connector is built, its secrets are judged (``hub.keys``): the hub's keys, and the
configuration's own (bearer ``tokens``, a webhook ``secret``, extra ``headers``). A development value —
the published defaults, or any ``${VAR:-default}`` fallback the environment did not replace — or a weak
one is refused unless the hub runs on its embedded development broker (``HUB_BROKER=embedded``), where it
is warned about loudly.
"""

from __future__ import annotations

import base64
import logging
import threading
from pathlib import Path
from typing import Any

from connectors.sdk import plugins
from connectors.sdk.base import ConnectorContext, SinkConnector, SourceConnector
from connectors.sdk.config import ConnectorConfig, read_yaml, validate
from connectors.sdk.errors import ConfigError
from connectors.sdk.runner import SinkRunner, SourceRunner
from hub import keys
from hub.config import get_settings
from hub.metrics import Metrics

Connector = SourceConnector | SinkConnector


def load_config(path: str | Path) -> tuple[plugins.ConnectorClass, ConnectorConfig]:
    """Read and validate a configuration; the plugin is chosen by its ``connector`` key."""
    p = Path(path)
    data = read_yaml(p)
    name = data.get("connector")
    if not isinstance(name, str):
        raise ConfigError(str(p), "connector", f"required: one of {', '.join(plugins.discover())}")
    try:
        cls = plugins.load(name)
    except plugins.PluginNotFound as exc:
        raise ConfigError(str(p), "connector", str(exc)) from None
    return cls, validate(cls.config_model, data, str(p), p.resolve().parent)


def context_from_settings(name: str) -> ConnectorContext:
    """The connector's keys from hub settings; a bad edge key is a clear error at start."""
    s = get_settings()
    try:
        edge = base64.b64decode(s.edge_key, validate=True)
    except ValueError as exc:
        raise ConfigError("HUB_EDGE_KEY", "edge_key", f"not base64: {exc}") from None
    if len(edge) != 32:
        raise ConfigError("HUB_EDGE_KEY", "edge_key", f"expected 32 bytes (AES-256), found {len(edge)}")
    return ConnectorContext(name=name, pseudonym_key=s.pseudonym_key, edge_key=edge,
                            logger=logging.getLogger(f"connectors.{name}"))


SECRET_KEYS = ("tokens", "secret", "headers")
"""Configuration keys that hold secrets (every built-in's; a plugin's keys of these names count too)."""


def config_findings(config: ConnectorConfig) -> list[keys.Finding]:
    """Development or weak secrets in a connector configuration (names only, never values)."""
    found: list[keys.Finding] = []
    for field in SECRET_KEYS:
        value = getattr(config, field, None)
        if isinstance(value, dict):
            for k, v in value.items():
                path = f"{field}.{k}"
                dev = path in config.defaulted
                problems = keys.secret_problems(str(v), dev=dev) if field == "tokens" else \
                    (["is a development default (a ${VAR:-default} fallback)"] if dev else [])
                found += [(f"{config.name}: {path}", p) for p in problems]
        elif isinstance(value, str):
            dev = field in config.defaulted
            found += [(f"{config.name}: {field}", p) for p in keys.webhook_secret_problems(value, dev=dev)]
    return found


def check_secrets(config: ConnectorConfig, where: str) -> list[str]:
    """Refuse (``ConfigError``) or warn about development and weak secrets; the warnings given."""
    settings = get_settings()
    findings = keys.settings_findings(settings) + config_findings(config)
    if getattr(config, "audit_log", None) or settings.audit_log or config.connector == "audit_log":
        default = type(settings).model_fields["audit_key"].default
        findings += [("HUB_AUDIT_KEY", p) for p in keys.secret_problems(settings.audit_key,
                                                                         dev=settings.audit_key == default)]
    try:
        return keys.judge(findings, embedded=settings.broker == "embedded", where=where,
                          logger=logging.getLogger(f"connectors.{config.name}"))
    except keys.WeakSecret as exc:
        raise ConfigError(where, "secrets", str(exc)) from None


def build(cls: plugins.ConnectorClass, config: ConnectorConfig, context: ConnectorContext | None = None) -> Connector:
    return cls(config, context or context_from_settings(config.name))  # type: ignore[arg-type]


def runner_for(connector: Connector, bootstrap: str, *, metrics: Metrics | None = None,
               stop: threading.Event | None = None, **kw: Any) -> SourceRunner | SinkRunner:
    """The runner that fits the connector's kind."""
    if isinstance(connector, SourceConnector):
        return SourceRunner(connector, bootstrap, metrics=metrics, stop=stop)
    return SinkRunner(connector, bootstrap, metrics=metrics, stop=stop, **kw)
