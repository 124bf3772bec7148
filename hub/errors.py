"""The hub's one error tree, so a caller catches exactly what it can handle.

    HubError
    ├── PolicyError        a policy file cannot be loaded (names file, key, problem)
    ├── ValidationError    an input record is malformed (carries field and value)
    ├── BrokerError        the Kafka-protocol broker is missing, misbehaves or lacks a feature
    ├── SchemaError        an Avro schema is invalid, unknown, or not backward compatible
    └── ConnectorError     a connector's configuration or source cannot be used
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class PolicyError(HubError):
    """A policy file is invalid. The message names the file, the key and the problem."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        super().__init__(f"{file}: {key}: {problem}")


class ValidationError(HubError):
    """An input value is malformed. Carries the field and the offending value (never an ID number)."""

    def __init__(self, field: str, problem: str, value: Any = None, reason: str = "invalid_input") -> None:
        self.field = field
        self.problem = problem
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {problem}")


class BrokerError(HubError):
    """The broker cannot be reached, or lacks something the hub relies on."""


class SchemaError(HubError):
    """An Avro schema is invalid, unknown or breaks backward compatibility."""


class ConnectorError(HubError):
    """A connector's configuration or its department source cannot be used."""
