"""What flows between a connector and its runner.

A source connector yields ``(SourceRecord | Rejected, SourceOffset | None)`` pairs; a sink
connector receives ``SinkRecord`` lists. The records are plain data so a connector can be
tested without a broker (see ``connectors.sdk.testkit``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceOffset:
    """Where a source stands, Kafka Connect style.

    ``partition`` names one independently ordered stream of the source (a file, a table);
    ``position`` is a small JSON-serialisable map the runner stores in the compacted offsets
    topic after every record before it has been written to the hub, and hands back to
    ``SourceConnector.start`` after a restart.
    """

    partition: str
    position: Mapping[str, Any]


@dataclass
class SourceRecord:
    """One event produced from a department record.

    ``value`` holds the event fields (already pseudonymised: no raw ID number); ``key`` is the
    topic key (``person_token``, or the facility code). ``original`` is the department row as
    bytes, kept only so that a record the event schema refuses can still be dead-lettered with
    its original (or ``original_of``, which builds it only then). ``on_delivered`` is called once the
    record is safely on the hub (used by ``http_ingest`` to answer the department only then).
    """

    value: dict[str, Any]
    key: str
    topic: str | None = None
    schema: str | None = None
    original: bytes | None = None
    on_delivered: Callable[[], None] | None = None
    on_failed: Callable[[str], None] | None = None
    encoded: bytes | None = None
    """The value already checked and Avro-encoded by :func:`connectors.sdk.runner.checked_value` (a source that
    maps rows in worker processes encodes there too: connectors/sdk/parallel.py); the runner then sends it as is."""
    original_of: Callable[[], bytes] | None = None
    """Builds ``original`` when it is needed (a bulk source maps millions of rows and the schema refuses
    almost none: serialising every row for a dead letter it will not have costs more than mapping it)."""

    def original_bytes(self) -> bytes:
        """The department record for a dead letter: ``original``, else built by ``original_of``, else empty."""
        if self.original is None and self.original_of is not None:
            self.original = self.original_of()
        return self.original or b""


@dataclass
class Rejected:
    """A department record that cannot become an event: it goes to the dead-letter topic.

    ``original`` is the raw row (it may hold an ID number, so the runner encrypts it with the
    edge key); ``detail`` is shown to people and must be masked.
    """

    original: bytes
    reason: str
    detail: str
    key: str | None = None
    field: str | None = None
    on_rejected: Callable[[], None] | None = None


@dataclass
class SinkRecord:
    """One hub event handed to a sink, with where it came from (for dead letters and commits)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    schema: str
    value: dict[str, Any]
    raw: bytes = field(repr=False, default=b"")

    @property
    def event_id(self) -> str:
        """The event's id: the idempotency key of every delivery."""
        return str(self.value.get("event_id") or f"{self.topic}/{self.partition}/{self.offset}")
