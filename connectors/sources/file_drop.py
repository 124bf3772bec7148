"""file_drop — CSV and XLSX exports dropped in a folder by a department.

Overview
    The department (or a scheduled task on its side) saves an export — ``脱贫人口名单.xlsx``,
    ``低保特困人员.csv`` — into an inbox folder. Each row becomes one event on the configured
    topic; the file is then moved to ``processed/`` with a rejects report beside it.

How it works
    Files matching ``patterns`` and unchanged for ``settle_seconds`` are read in name order.
    Each file is its own source partition ``file:<name>:<sha256 prefix>``; the position is the
    last row handed to the hub. The header is found under any title rows (``tabular``). Each row is
    mapped (``mapping``) — the ID number becomes ``person_token`` here — and yielded with its row
    number. When the runner has committed the last row, the file moves aside. A file with at least
    ``parallel_rows`` rows to send is mapped by ``workers`` processes (``connectors.sdk.parallel``: same
    code, same order, a roster in a fraction of the time).

Behaviour when things go wrong
    A bad row → dead letter (original row encrypted) + a line in ``<file>.rejects.csv``; the
    rest of the file goes on. A file that cannot be read at all (encoding, no header) → one dead
    letter, a rejects report saying why, and the file moved aside. Killed mid-file → the restart
    resumes after the last committed row; rows after it are re-sent with the same event ids. The
    same file dropped again (same bytes) → recognised by its hash, moved aside, nothing re-sent.
    A symbolic link, a file larger than ``max_file_bytes``, or an XLSX that would exhaust memory when
    read (a stray cell at ``XFD1048576``, a zip bomb: ``tabular.check_xlsx``) → ``unreadable_file``, moved
    aside (never followed, never left in the inbox to crash the next poll). Each file is read once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from connectors.sdk.base import SourceConnector
from connectors.sdk.cells import csv_safe
from connectors.sdk.config import SourceConfig
from connectors.sdk.parallel import RowMapper, default_workers
from connectors.sdk.records import Rejected, SourceOffset, SourceRecord
from connectors.sources.tabular import UnreadableFile, open_table
from hub.identity import redact


class FileDropConfig(SourceConfig):
    """Settings of file_drop (every key is documented in connectors/README.md)."""

    inbox: Path = Field(description="folder the department drops files into (relative to the YAML file)")
    patterns: list[str] = Field(["*.csv", "*.xlsx"], description="glob patterns of files to read")
    processed_dir: Path | None = Field(None, description="where read files go; default <inbox>/processed")
    encoding: Literal["auto", "utf-8", "gbk", "gb18030"] = Field("auto", description="CSV text encoding")
    sheet: str | int = Field(0, description="XLSX sheet name or 0-based index")
    header_row: int | None = Field(None, ge=1, description="row number of the header; default: found")
    settle_seconds: float = Field(2.0, ge=0, description="skip files modified more recently (still being written)")
    max_file_bytes: int = Field(200 * 1024 * 1024, ge=1, description="larger files are refused (unreadable_file)")
    workers: int | None = Field(None, ge=0, description="processes mapping the rows of a large file; default: one "
                                "fewer than the cores, at most 4; 0: map in the connector's process")
    parallel_rows: int = Field(20_000, ge=1, description="files with at least this many rows to send are mapped by "
                               "the worker processes")

    @model_validator(mode="after")
    def _needs_mapping(self) -> FileDropConfig:
        if self.mapping is None:
            raise ValueError("file_drop needs a `mapping` (department columns → event fields)")
        return self


REPORT_HEADER = ["行号 row", "原因 reason", "说明 detail", "列 column"]


class FileDropSource(SourceConnector):
    """Reads department exports from an inbox folder (see module docstring)."""

    config_model = FileDropConfig
    config: FileDropConfig

    def start(self, offsets: Mapping[str, Mapping[str, Any]]) -> None:
        super().start(offsets)
        self.inbox = self.config.resolve(self.config.inbox)
        self.processed = self.config.resolve(self.config.processed_dir or (self.config.inbox / "processed"))
        self.processed.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, Path] = {}

    def _candidates(self) -> list[Path]:
        if not self.inbox.is_dir():
            raise FileNotFoundError(f"inbox {self.inbox} does not exist")
        found = {p for pat in self.config.patterns for p in self.inbox.glob(pat)
                 if p.is_symlink() or p.is_file()}
        now = time.time()
        return sorted(p for p in found if not p.name.startswith((".", "~$"))
                      and (p.is_symlink() or now - p.stat().st_mtime >= self.config.settle_seconds))

    def _read(self, path: Path) -> bytes:
        """The file's bytes, read once: never through a symbolic link, never more than ``max_file_bytes``."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            if path.is_symlink():
                raise UnreadableFile("is a symbolic link: the connector reads only files saved into the inbox, "
                                     "never what a link points to") from None
            raise UnreadableFile(f"cannot be opened: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise UnreadableFile("is not a regular file")
            if st.st_size > self.config.max_file_bytes:
                raise UnreadableFile(f"has {st.st_size} bytes, more than max_file_bytes ({self.config.max_file_bytes})")
            data = fh.read(self.config.max_file_bytes + 1)
        if len(data) > self.config.max_file_bytes:
            raise UnreadableFile(f"grew past max_file_bytes ({self.config.max_file_bytes}) while being read")
        return data

    def poll(self) -> Iterator[tuple[SourceRecord | Rejected, SourceOffset | None]]:
        for path in self._candidates():
            try:
                data = self._read(path)
            except UnreadableFile as exc:
                part = f"file:{path.name}:refused"
                self._files[part] = path
                yield from self._unreadable(path, part, exc)
                continue
            digest = hashlib.sha256(data).hexdigest()
            part = f"file:{path.name}:{digest[:16]}"
            self._files[part] = path
            pos = self.offsets.get(part, {})
            if pos.get("done"):  # committed before a crash, or the same file dropped twice
                self._finish(part, path)
                continue
            yield from self._rows(path, part, int(pos.get("row", 0)), data)

    def _unreadable(self, path: Path, part: str, exc: Exception) -> Iterator[tuple[Rejected, SourceOffset]]:
        self._note(part, path, 0, "unreadable_file", str(exc), None)
        original = json.dumps({"file": path.name, "error": str(exc)}, ensure_ascii=False).encode()
        yield (Rejected(original=original, reason="unreadable_file", detail=f"{path.name}: {exc}"),
               SourceOffset(part, {"row": 0, "done": True}))

    def _rows(self, path: Path, part: str, after: int,
              data: bytes) -> Iterator[tuple[SourceRecord | Rejected, SourceOffset]]:
        mapping = self.config.mapping
        assert mapping is not None
        required = [s.headers() for s in mapping.fields.values() if s.column and s.required]
        try:
            sheet = open_table(path, required, encoding=self.config.encoding, sheet=self.config.sheet,
                               header_row=self.config.header_row, data=data)
        except UnreadableFile as exc:
            yield from self._unreadable(path, part, exc)
            return
        last = sheet.last
        if last is None:
            self._finish(part, path)
            return
        workers = self.config.workers if self.config.workers is not None else default_workers()
        if workers and sheet.count(after) >= self.config.parallel_rows:  # a roster: mapped by worker processes
            with RowMapper(self.config, self.context.pseudonym_key, workers, path.name, sheet.header) as mapper:
                yield from self._offsets(part, path, last, mapper.map(sheet.data(after)))
        else:
            yield from self._offsets(part, path, last, ((row.number, self.map_row(row.cells, where=f"{path.name}:"
                                                                                 f"{row.number}"))
                                                        for row in sheet.rows(after)))

    def _offsets(self, part: str, path: Path, last: int, items: Iterator[tuple[int, SourceRecord | Rejected]]
                 ) -> Iterator[tuple[SourceRecord | Rejected, SourceOffset]]:
        """Each mapped row with its position (``done`` on the file's last row); rejects go to the report."""
        for number, item in items:
            if isinstance(item, Rejected):
                self._note(part, path, number, item.reason, item.detail, item.field)
            yield item, SourceOffset(part, {"row": number, "done": number == last})

    def committed(self, offsets: Mapping[str, Mapping[str, Any]]) -> None:
        for part, pos in offsets.items():
            if pos.get("done") and part in self._files:
                self._finish(part, self._files[part])
            self.offsets[part] = pos

    # -- rejects report and moving aside ---------------------------------------------------
    def _partial(self, part: str, path: Path) -> Path:
        return self.processed / f".{path.name}.{part.rsplit(':', 1)[-1]}.rejects.partial"

    def _note(self, part: str, path: Path, row: int, reason: str, detail: str, column: str | None) -> None:
        """Append a reject at once, so a crash mid-file loses no line of the report."""
        with self._partial(part, path).open("a", encoding="utf-8", newline="") as f:
            csv.writer(f).writerow([row, reason, csv_safe(redact(detail)), csv_safe(column or "")])

    def _finish(self, part: str, path: Path) -> None:
        if not (path.exists() or path.is_symlink()):
            return
        target = self.processed / path.name
        if target.exists():
            target = self.processed / f"{path.stem}.{part.rsplit(':', 1)[-1][:8]}{path.suffix}"
        partial = self._partial(part, path)
        if partial.exists():
            with partial.open(encoding="utf-8", newline="") as f:
                lines = {int(r[0]): r for r in csv.reader(f) if r}
            report = target.with_name(target.name + ".rejects.csv")
            with report.open("w", encoding="utf-8-sig", newline="") as f:  # BOM: Excel shows Chinese right
                w = csv.writer(f)
                w.writerow(REPORT_HEADER)
                w.writerows(lines[n] for n in sorted(lines))
            partial.unlink()
        shutil.move(str(path), str(target))
        self.context.logger.info("%s: %s moved to %s", self.config.name, path.name, target)
