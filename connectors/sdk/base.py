"""The connector contract: a source implements ``poll``; a sink implements ``put`` and ``flush``.

Imitates Kafka Connect's task API: the connector owns only the department's format; the runner
(``connectors.sdk.runner``) owns offsets, retries, dead letters and metrics. A new connector is a
small class plus a pydantic settings model::

    class MySource(SourceConnector):
        config_model = MySourceConfig          # subclass of SourceConfig

        def poll(self):
            for row in read_rows_after(self.offsets.get("my-file")):
                yield self.map_row(row), SourceOffset("my-file", {"row": row.number})
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from connectors.sdk.config import SinkConfig, SourceConfig
from connectors.sdk.errors import RecordRejected
from connectors.sdk.mapping import MappedRow, MappingConfig, map_row
from connectors.sdk.records import Rejected, SinkRecord, SourceOffset, SourceRecord


@dataclass
class ConnectorContext:
    """What the runner lends a connector: its keys and a way to report failed sink records.

    Keys come from hub settings (``HUB_PSEUDONYM_KEY``, ``HUB_EDGE_KEY``); tests pass their own.
    """

    name: str
    pseudonym_key: str
    edge_key: bytes
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("connectors"))
    failures: list[tuple[SinkRecord, str, str]] = field(default_factory=list)

    def reject(self, record: SinkRecord, reason: str, detail: str) -> None:
        """Report a sink record that cannot be delivered; the runner dead-letters it after ``flush``."""
        self.failures.append((record, reason, detail))


class SourceConnector(ABC):
    """Base of every source: reads a department system and yields events with offsets."""

    config_model: ClassVar[type[SourceConfig]] = SourceConfig
    kind: ClassVar[str] = "source"

    def __init__(self, config: SourceConfig, context: ConnectorContext) -> None:
        self.config = config
        self.context = context
        self.offsets: dict[str, Mapping[str, Any]] = {}

    def start(self, offsets: Mapping[str, Mapping[str, Any]]) -> None:
        """Called once with the committed offsets (partition → position) before the first poll."""
        self.offsets = dict(offsets)

    @abstractmethod
    def poll(self) -> Iterable[tuple[SourceRecord | Rejected, SourceOffset | None]]:
        """Yield what the source has now, in order; return when caught up (the runner waits and asks again)."""

    def committed(self, offsets: Mapping[str, Mapping[str, Any]]) -> None:
        """Called after ``offsets`` are durable on the hub: the place to move a file aside."""
        return None

    def stop(self) -> None:
        """Release the source (connections, servers)."""
        return None

    # -- helpers the built-ins use; a new connector may too -------------------------------
    def map_row(self, row: Mapping[str, Any], *, where: str = "") -> SourceRecord | Rejected:
        """Map one department row through ``config.mapping``; a bad row becomes ``Rejected``."""
        return map_department_row(self.config.mapping, row, source=self.config.source_id,
                                  pseudonym_key=self.context.pseudonym_key, where=where)


class SinkConnector(ABC):
    """Base of every sink: receives decoded hub events in batches."""

    config_model: ClassVar[type[SinkConfig]] = SinkConfig
    kind: ClassVar[str] = "sink"

    def __init__(self, config: SinkConfig, context: ConnectorContext) -> None:
        self.config = config
        self.context = context

    def start(self) -> None:
        """Open connections before the first batch."""
        return None

    @abstractmethod
    def put(self, records: list[SinkRecord]) -> None:
        """Deliver (or buffer) a batch; call ``context.reject`` for a record that can never be delivered."""

    def flush(self) -> None:
        """Make everything ``put`` so far durable; the runner commits consumer offsets only after this."""
        return None

    def stop(self) -> None:
        """Release connections."""
        return None


def map_department_row(mapping: MappingConfig | None, row: Mapping[str, Any], *, source: str | None,
                       pseudonym_key: str, where: str = "") -> SourceRecord | Rejected:
    """:meth:`SourceConnector.map_row` as a function (what a worker process runs for a connector, same code)."""
    try:
        mapped: MappedRow = map_row(mapping, row, source=source, pseudonym_key=pseudonym_key)
    except RecordRejected as exc:
        detail = f"{where}: {exc.detail}" if where else exc.detail
        return Rejected(original=_row_bytes(row, where), reason=exc.reason, detail=detail, field=exc.field)
    except Exception as exc:  # a row no converter foresaw must not stop the feed (it would on every retry)
        detail = f"{where}: the row could not be read ({type(exc).__name__})"
        return Rejected(original=_row_bytes(row, where), reason="invalid_input", detail=detail.lstrip(": "))
    # The original is serialised only if the runner's schema check rejects the record after all.
    return SourceRecord(value=mapped.value, key=mapped.key, original_of=lambda: _row_bytes(row, where))


def _row_bytes(row: Mapping[str, Any], where: str) -> bytes:
    """The department row as UTF-8 JSON: what a dead letter keeps (encrypted) for a person to fix."""
    import json

    payload = {"where": where, "row": {str(k): _plain(v) for k, v in row.items()}}
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, str | int | float | bool) else str(v)


def iter_batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Cut an iterable into lists of at most ``size``."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
