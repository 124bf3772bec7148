"""From a YAML file to a ready connector and its runner — what ``hub connector run`` does.

Keys come from hub settings (``HUB_PSEUDONYM_KEY``, ``HUB_EDGE_KEY``): the edge is where raw ID
numbers are turned into tokens and where rejected originals are encrypted, so it needs both.
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


def build(cls: plugins.ConnectorClass, config: ConnectorConfig, context: ConnectorContext | None = None) -> Connector:
    return cls(config, context or context_from_settings(config.name))  # type: ignore[arg-type]


def runner_for(connector: Connector, bootstrap: str, *, metrics: Metrics | None = None,
               stop: threading.Event | None = None, **kw: Any) -> SourceRunner | SinkRunner:
    """The runner that fits the connector's kind."""
    if isinstance(connector, SourceConnector):
        return SourceRunner(connector, bootstrap, metrics=metrics, stop=stop)
    return SinkRunner(connector, bootstrap, metrics=metrics, stop=stop, **kw)
