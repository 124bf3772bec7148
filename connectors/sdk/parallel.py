"""Mapping a large file's rows in worker processes (``file_drop``): a monthly roster in a minute, not two.

Why: measured on a 1 M-row roster (benchmarks/roster_load.py), mapping a row (ID-number check, keyed
pseudonym, dates, categories, the keyed event id) and checking and encoding its event (the event model's rules,
Avro) cost ≈60 µs of a core; reading, producing and committing ≈25 µs more. In one Python process that is
≥ 90 s per million rows, whatever the broker does. Here the reading process only reads, sends, commits and
writes the rejects report, while worker processes map and encode on the other cores (measured, 1 M rows from a
GBK CSV on 2 shared cores: 96 s at a load of 1–2.3, against 111–118 s in one process at a load of 2–3;
BENCHMARKS.md).

What a worker does to a row is exactly what the connector's own process would: the same functions
(:func:`connectors.sdk.base.map_department_row`, then :func:`connectors.sdk.runner.checked_value`), only run
elsewhere. A row comes back either encoded (``SourceRecord.encoded``, sent as is) or ``Rejected`` with its
original, which the runner dead-letters (encrypted with the edge key) like any reject; results come back in row
order, so offsets and the rejects report are those of a serial run. The pseudonym key reaches the workers
through their start-up arguments (a pipe between processes of the same connector), never a file or a topic.
Workers are started with ``spawn`` (no copy of the runner's producer thread), once per large file.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from connectors.sdk.errors import RecordRejected
from connectors.sdk.records import Rejected, SourceRecord

__all__ = ["RowMapper", "default_workers"]

CHUNK = 2000
"""Rows per task sent to a worker (large enough that pickling and the pipe are a small part)."""

_worker: dict[str, Any] = {}


def default_workers() -> int:
    """One fewer than the cores this process may use (the reader needs one), at most 4; 0 on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cores - 1))


def _init(mapping: dict[str, Any], source: str | None, pseudonym_key: str, schema: str, where: str,
          header: list[str]) -> None:
    from connectors.sdk.mapping import MappingConfig

    _worker.update(mapping=MappingConfig.model_validate(mapping), source=source, key=pseudonym_key, schema=schema,
                   where=where, header=header)


def _map_chunk(rows: list[tuple[int, list[Any]]]) -> list[tuple[Any, ...]]:
    """In a worker: each line made a row, mapped and encoded, or rejected; plain tuples (cheap to send back)."""
    from connectors.sdk.base import map_department_row
    from connectors.sdk.runner import checked_value
    from connectors.sources.tabular import row_cells

    out: list[tuple[Any, ...]] = []
    w = _worker
    header = w["header"]
    for number, line in rows:
        item = map_department_row(w["mapping"], row_cells(header, line), source=w["source"], pseudonym_key=w["key"],
                                  where=f"{w['where']}:{number}")
        if isinstance(item, SourceRecord):
            try:
                out.append(("r", item.key, checked_value(w["schema"], item)))
                continue
            except RecordRejected as exc:
                item = Rejected(original=item.original_bytes(), reason=exc.reason, detail=exc.detail, key=item.key,
                                field=exc.field)
        out.append(("x", item.original, item.reason, item.detail, item.key, item.field))
    return out


class RowMapper:
    """``with RowMapper(config, key, workers, where, header) as m: for number, item in m.map(lines): …``

    ``lines`` are ``(row number, cells)`` of a sheet whose ``header`` names the cells (``tabular.Sheet``): lists
    travel to the workers, which build the row dicts (cheaper to send, and the reading process does less).
    """

    def __init__(self, config: Any, pseudonym_key: str, workers: int, where: str, header: list[str]) -> None:
        mapping = config.mapping
        self.workers = workers
        self._args = (mapping.model_dump() if mapping is not None else {}, config.source_id, pseudonym_key,
                      config.schema_name, where, list(header))
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __enter__(self) -> RowMapper:
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
            initargs=self._args)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, rows: Iterable[tuple[int, list[Any]]]) -> Iterator[tuple[int, SourceRecord | Rejected]]:
        """Each ``(row number, cells)`` as ``(row number, record or reject)``, in the order given.

        At most two chunks per worker are in flight, so memory stays bounded whatever the file's size.
        """
        assert self._pool is not None, "use RowMapper as a context manager"
        window: deque[tuple[list[int], concurrent.futures.Future[list[tuple[Any, ...]]]]] = deque()
        chunk: list[tuple[int, list[Any]]] = []

        def submit() -> None:
            assert self._pool is not None
            window.append(([n for n, _ in chunk], self._pool.submit(_map_chunk, list(chunk))))
            chunk.clear()

        for number, cells in rows:
            chunk.append((number, cells))
            if len(chunk) >= CHUNK:
                submit()
                while len(window) > 2 * self.workers:
                    yield from self._collect(*window.popleft())
        if chunk:
            submit()
        while window:
            yield from self._collect(*window.popleft())

    @staticmethod
    def _collect(numbers: list[int], future: concurrent.futures.Future[list[tuple[Any, ...]]]
                 ) -> Iterator[tuple[int, SourceRecord | Rejected]]:
        for number, result in zip(numbers, future.result(), strict=True):
            if result[0] == "r":
                yield number, SourceRecord(value={}, key=result[1], encoded=result[2])
            else:
                _, original, reason, detail, key, field = result
                yield number, Rejected(original=original, reason=reason, detail=detail, key=key, field=field)
