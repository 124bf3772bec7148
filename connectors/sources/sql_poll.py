"""sql_poll — a department database table read by an ``(updated_at, primary key)`` cursor.

Overview
    For systems that keep the roster in a relational table (the insurance bureau's enrolment
    table, a hospital's admission register) and can give the hub a read-only account.

How it works
    Through SQLAlchemy (any dialect it knows; tested on PostgreSQL) the table is reflected, then
    read in pages ordered by ``(cursor_column, key_column)``::

        SELECT * FROM t WHERE (u > :u) OR (u = :u AND k > :k) ORDER BY u, k LIMIT :batch

    The position ``{cursor, key}`` of the last row handed to the hub is the offset, so rows with the
    same ``updated_at`` are neither skipped nor repeated, and an updated row (its ``updated_at``
    moves forward) is read again as a new event. Deleted rows are not seen: departments mark rows
    inactive instead (``有效标志 = 0``), which maps to an event like any change.

    The key column often *is* a person's identifier (an ID number, an insurance number), so the key's
    value never appears in clear outside the connector: in the offsets topic it is sealed with the edge
    key (AES-GCM, bound to the connector and the table), and rejects name the row by its cursor value.

Behaviour when things go wrong
    Database unreachable → the runner logs, backs off (1 s … 60 s) and resumes from the committed
    cursor. A bad row → dead letter; the cursor moves past it. A transaction that commits a row with
    an ``updated_at`` *older* than rows already read would be missed: have the department set
    ``updated_at`` at commit (a trigger with ``clock_timestamp()``), or poll a view that lags a few
    seconds behind ``now()``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, model_validator
from sqlalchemy import MetaData, Table, and_, create_engine, or_, select
from sqlalchemy.engine import Engine

from connectors.sdk.base import SourceConnector
from connectors.sdk.config import SourceConfig
from connectors.sdk.records import Rejected, SourceOffset, SourceRecord


class SqlPollConfig(SourceConfig):
    """Settings of sql_poll."""

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg://reader:${PW}@host/db")
    table: str = Field(description="table (or view) to poll")
    db_schema: str | None = Field(None, description="database schema of the table; default the search path")
    cursor_column: str = Field("updated_at", description="column that grows on every change")
    key_column: str = Field("id", description="primary key: orders rows sharing an updated_at")

    @model_validator(mode="after")
    def _needs_mapping(self) -> SqlPollConfig:
        if self.mapping is None:
            raise ValueError("sql_poll needs a `mapping` (table columns → event fields)")
        return self


class SqlPollSource(SourceConnector):
    """Polls one table by cursor (see module docstring)."""

    config_model = SqlPollConfig
    config: SqlPollConfig

    def start(self, offsets: Mapping[str, Mapping[str, Any]]) -> None:
        super().start(offsets)
        self.engine: Engine = create_engine(self.config.url, pool_pre_ping=True)
        self.partition = f"table:{self.config.db_schema or ''}.{self.config.table}"
        self._table: Table | None = None

    def stop(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.dispose()

    def table(self) -> Table:
        """Reflected lazily, so a database that is down at start is retried like any poll."""
        if self._table is None:
            self._table = Table(self.config.table, MetaData(), schema=self.config.db_schema,
                                autoload_with=self.engine)
            for col in (self.config.cursor_column, self.config.key_column):
                if col not in self._table.c:
                    raise LookupError(f"{self.config.table} has no column {col!r}; "
                                      f"columns: {', '.join(self._table.c.keys())}")
        return self._table

    def poll(self) -> Iterator[tuple[SourceRecord | Rejected, SourceOffset | None]]:
        t = self.table()
        cur, key = t.c[self.config.cursor_column], t.c[self.config.key_column]
        position = dict(self.offsets.get(self.partition, {}))
        while True:
            stmt = select(t).order_by(cur, key).limit(self.config.batch_size)
            if position:
                u, k = _load(position["cursor"], cur.type), _load(self._open_key(position), key.type)
                stmt = stmt.where(or_(cur > u, and_(cur == u, key > k)))
            with self.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(stmt)]
            for n, row in enumerate(rows, start=1):
                position = {"cursor": _dump(row[cur.name]), "key_sealed": self._seal_key(_dump(row[key.name]))}
                where = f"{self.config.table}, row {n} of the page after {cur.name}={position['cursor']}"
                yield self.map_row(row, where=where), SourceOffset(self.partition, position)
            self.offsets[self.partition] = position
            if len(rows) < self.config.batch_size:
                return


    # -- the key column's value, sealed in the offsets topic -----------------------------------
    def _aad(self) -> bytes:
        return json.dumps(["sql_poll.key", self.config.name, self.partition]).encode()

    def _seal_key(self, value: Any) -> str:
        """The key value encrypted with the edge key (it may be an ID number): what the offsets topic keeps."""
        nonce = os.urandom(12)
        sealed = AESGCM(self.context.edge_key).encrypt(nonce, json.dumps(value).encode(), self._aad())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def _open_key(self, position: Mapping[str, Any]) -> Any:
        """The key value of a committed position (``key`` in clear: offsets written before sealing)."""
        if "key_sealed" not in position:
            return position.get("key")
        blob = base64.b64decode(position["key_sealed"])
        try:
            return json.loads(AESGCM(self.context.edge_key).decrypt(blob[:12], blob[12:], self._aad()))
        except InvalidTag:
            raise LookupError(f"{self.config.name}: the committed position was sealed with another edge key "
                              "(HUB_EDGE_KEY changed?); restore the key, or reset this connector's offsets") from None


def _dump(v: Any) -> Any:
    """Cursor values as JSON: times as ISO text (with offset when the column has one)."""
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, int | float | str) or v is None:
        return v
    return str(v)


def _load(v: Any, sqltype: Any) -> Any:
    try:
        py = sqltype.python_type
    except NotImplementedError:
        return v
    if py is datetime and isinstance(v, str):
        return datetime.fromisoformat(v)
    if py is date and isinstance(v, str):
        return date.fromisoformat(v)
    if py is int and isinstance(v, str):
        return int(v)
    return v
