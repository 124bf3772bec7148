"""sql_upsert — hub events into a department's PostgreSQL table, idempotently.

Overview
    For a department that wants hub outputs (settlements, referrals, risk flags) in its own
    database for reports and case work, without running a consumer.

How it works
    One row per event: ``event_id`` (primary key), ``topic``, ``schema_name``, ``record_key``,
    ``occurred_at``, ``payload`` (the whole event as JSON/JSONB), plus any event fields listed in
    ``columns`` copied into their own text columns for easy querying. Each batch is written in one
    transaction with ``INSERT … ON CONFLICT (event_id) DO UPDATE``, so a redelivered event changes
    nothing and the runner commits consumer offsets only after the transaction commits.

Behaviour when things go wrong
    Database down → the batch fails, the runner rewinds and retries after a back-off; nothing is
    skipped. An event that cannot be stored (e.g. a value too long for a column) fails the whole
    batch the same way — fix the table, and delivery resumes.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from pydantic import Field
from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, Text, create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from connectors.sdk.base import SinkConnector
from connectors.sdk.config import SinkConfig
from connectors.sdk.records import SinkRecord


class SqlUpsertConfig(SinkConfig):
    """Settings of sql_upsert."""

    url: str = Field(description="SQLAlchemy URL of the department database (PostgreSQL; SQLite for trials)")
    table: str = Field(description="target table")
    db_schema: str | None = Field(None, description="database schema of the table")
    columns: list[str] = Field(default_factory=list, description="event fields copied into their own columns")
    create_table: bool = Field(True, description="create the table if it does not exist")


def _plain(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return v


class SqlUpsertSink(SinkConnector):
    """Upserts events by event id (see module docstring)."""

    config_model = SqlUpsertConfig
    config: SqlUpsertConfig

    def start(self) -> None:
        self.engine: Engine = create_engine(self.config.url, pool_pre_ping=True)
        payload_type = JSON().with_variant(postgresql.JSONB(), "postgresql")
        self.table = Table(
            self.config.table, MetaData(), Column("event_id", String(64), primary_key=True),
            Column("topic", Text, nullable=False), Column("schema_name", Text, nullable=False),
            Column("record_key", Text), Column("occurred_at", DateTime(timezone=True)),
            Column("payload", payload_type, nullable=False),
            *(Column(c, Text) for c in self.config.columns), schema=self.config.db_schema,
        )
        if self.config.create_table:
            self.table.create(self.engine, checkfirst=True)
        self.rows: dict[str, dict[str, Any]] = {}

    def put(self, records: list[SinkRecord]) -> None:
        for r in records:
            payload = {k: _plain(v) for k, v in r.value.items()}
            row = {"event_id": r.event_id, "topic": r.topic, "schema_name": r.schema, "record_key": r.key,
                   "occurred_at": r.value.get("occurred_at"), "payload": payload}
            for c in self.config.columns:
                v = payload.get(c)
                row[c] = None if v is None else (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            self.rows[r.event_id] = row  # the last of two copies in one batch wins; they are equal anyway

    def flush(self) -> None:
        if not self.rows:
            return
        rows = list(self.rows.values())
        dialect = self.engine.dialect.name
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(self.table).values(rows)
        update = {c.name: ins.excluded[c.name] for c in self.table.columns if c.name != "event_id"}
        stmt = ins.on_conflict_do_update(index_elements=["event_id"], set_=update)
        with self.engine.begin() as conn:
            conn.execute(stmt)
        self.rows.clear()

    def stop(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.dispose()
