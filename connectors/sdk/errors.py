"""Errors of the connector SDK, below the hub's one tree (``hub.errors``).

    HubError
    └── ConnectorError          a connector's configuration or department source cannot be used
        ├── ConfigError         the YAML is invalid: names the file and the key
        ├── PluginNotFound      no connector registered under that name
        └── RecordRejected      one department record cannot become an event (→ dead letters)

``RecordRejected`` is raised by field mapping and by connectors for *one* record; the runner
catches it and routes the record to the dead-letter topic, so a bad row never stops a feed.
Anything else a connector raises means the *source* is unusable (database down, inbox missing)
and the runner backs off and retries.
"""

from __future__ import annotations

from hub.errors import ConnectorError


class ConfigError(ConnectorError):
    """A connector configuration is invalid; ``key`` is the dotted path of the offending key."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: key `{key}`" if key else file
        super().__init__(f"{where}: {problem}")


class PluginNotFound(ConnectorError):
    """No connector class is registered under the requested name."""


class RecordRejected(ConnectorError):
    """One record cannot become an event.

    ``reason`` is a short machine-readable word (``invalid_id_number``, ``missing_field``,
    ``invalid_input`` …) counted by metrics; ``detail`` is for a person and must never hold a
    raw ID number (use ``hub.identity.mask``); ``field`` names the column or event field.
    """

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.field = field
        super().__init__(f"{reason}: {detail}")
