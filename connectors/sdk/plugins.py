"""Plugin discovery through the entry-point group ``hub.connectors``.

A department's own connector ships as a Python distribution that declares::

    [project.entry-points."hub.connectors"]
    my_feed = "my_package.my_feed:MyFeedSource"

and ``hub connector list`` / ``run`` find it once installed — no change to the hub. The built-ins are
declared the same way in the hub's pyproject.toml; ``BUILTIN`` repeats them so a source checkout that
is not pip-installed (tests, ``python -m``) still finds them. An installed entry point of the same
name wins, so a deployment can replace a built-in.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from connectors.sdk.base import SinkConnector, SourceConnector
from connectors.sdk.errors import PluginNotFound

GROUP = "hub.connectors"

BUILTIN: dict[str, str] = {
    "file_drop": "connectors.sources.file_drop:FileDropSource",
    "sql_poll": "connectors.sources.sql_poll:SqlPollSource",
    "http_ingest": "connectors.sources.http_ingest:HttpIngestSource",
    "webhook": "connectors.sinks.webhook:WebhookSink",
    "sql_upsert": "connectors.sinks.sql_upsert:SqlUpsertSink",
    "file_export": "connectors.sinks.file_export:FileExportSink",
    "audit_log": "connectors.sinks.audit_log:AuditLogSink",
}

ConnectorClass = type[SourceConnector] | type[SinkConnector]


@dataclass(frozen=True)
class Plugin:
    name: str
    target: str  # "module:Class"
    origin: str  # "entry point" or "built-in"

    def load(self) -> ConnectorClass:
        module, _, attr = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginNotFound(f"connector {self.name!r}: cannot import {self.target}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, SourceConnector | SinkConnector)):
            raise PluginNotFound(f"connector {self.name!r}: {self.target} is not a SourceConnector or SinkConnector")
        return cls


def discover() -> dict[str, Plugin]:
    """Every known connector by name: built-ins, then installed entry points (which override)."""
    found = {name: Plugin(name, target, "built-in") for name, target in BUILTIN.items()}
    for ep in entry_points(group=GROUP):
        found[ep.name] = Plugin(ep.name, ep.value, "entry point")
    return dict(sorted(found.items()))


def load(name: str) -> ConnectorClass:
    """The connector class registered as ``name``; the error lists the known names."""
    plugins = discover()
    if name not in plugins:
        raise PluginNotFound(f"no connector named {name!r}; known: {', '.join(plugins)} "
                             f"(a new one is declared in the {GROUP!r} entry-point group)")
    return plugins[name].load()
