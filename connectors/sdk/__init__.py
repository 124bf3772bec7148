"""Connector SDK: what a department developer imports to write a connector.

    from connectors.sdk import SourceConnector, SourceConfig, SourceOffset

A source implements ``poll()`` yielding ``(record, offset)``; a sink implements ``put(records)``
and ``flush()``. The runner commits offsets, routes errors to dead letters and counts metrics.
See connectors/README.md for the guide and a worked example.
"""

from connectors.sdk.base import ConnectorContext, SinkConnector, SourceConnector
from connectors.sdk.config import ConnectorConfig, SinkConfig, SourceConfig
from connectors.sdk.errors import ConfigError, PluginNotFound, RecordRejected
from connectors.sdk.mapping import FieldSpec, MappingConfig, event_id, map_row
from connectors.sdk.records import Rejected, SinkRecord, SourceOffset, SourceRecord

__all__ = [
    "ConfigError", "ConnectorConfig", "ConnectorContext", "FieldSpec", "MappingConfig", "PluginNotFound",
    "RecordRejected", "Rejected", "SinkConfig", "SinkConnector", "SinkRecord", "SourceConfig", "SourceConnector",
    "SourceOffset", "SourceRecord", "event_id", "map_row",
]
