"""``hub privacy scan`` — look for identities where none may be: topics, logs, metrics, exported files.

Why a scanner as well as the rules: the rules (tokens are keyed HMACs, edge details are masked, originals are
encrypted) are each tested where they are made; the scanner checks the *result*, everything a running hub
has written, so a leak from a path nobody thought of is found too. It reports

* ``id_number``: a valid 18-character resident ID number (GB 11643 check character verified), in any form
  a person would read as one (separators, full-width digits: ``hub.identity.find_id_numbers``);
* ``name``: a name from the input rosters (the ``--roster`` files: the department exports the connectors
  read; their name columns — 姓名, 户主姓名, 患者姓名 … — are the names to look for);
* ``unkeyed_id``: a token or id that is a function of an ID number *without a key* — a plain hash (MD5,
  SHA-1, SHA-256, SHA-512, whole or truncated, hex, with a ``p_`` prefix or as a UUID), or an HMAC under
  the development pseudonym key, which is published and so no key at all. The ID numbers tried are those
  of the rosters and those found anywhere in the scan.

The roster files themselves and the connectors' ``processed/`` folders are the departments' own data at
the edge and are not scanned; point ``--files`` at what the hub *exports* (file_export's folder, webhook
receivers' stores) and at its logs. Findings show where (topic/partition/offset, file and line, URL) and
a masked value, never the value itself. Exit status 1 when anything is found.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
import sys
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hub.config import DEV_PSEUDONYM_KEY
from hub.identity import find_id_numbers, mask, normalise, validate_id_number

__all__ = ["Finding", "Scanner", "scan_command", "NAME_COLUMNS"]

NAME_COLUMNS = ("姓名", "户主姓名", "患者姓名", "居民姓名", "人员姓名", "参保人姓名", "name", "xm", "psn_name")
"""Header names (normalised: no spaces) of name columns in department exports."""
_ID_COLUMNS = ("身份证号码", "身份证号", "证件号码", "居民身份证号", "公民身份号码", "certno", "id_number")
_HEXISH = re.compile(r"[0-9a-fA-F]{16,128}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TEXT_SUFFIXES = {".log", ".txt", ".json", ".jsonl", ".csv", ".tsv", ".xml", ".yaml", ".yml", ".md", ".prom", ".out"}


@dataclass(frozen=True)
class Finding:
    """One leak: what kind, where, and the masked value."""

    kind: str  # id_number | name | unkeyed_id
    where: str
    shown: str

    def line(self) -> str:
        return f"{self.kind:11} {self.where}: {self.shown}"


def unkeyed_forms(number: str) -> set[str]:
    """What an ID number becomes under functions that need no secret (lower-case strings)."""
    n = normalise(number)
    out: set[str] = set()
    for data in (n.encode(), n.lower().encode()):
        digests = [hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256", "sha512")]
        digests.append(hmac.new(DEV_PSEUDONYM_KEY.encode(), data, hashlib.sha256).hexdigest())
        for d in digests:
            out.update({d, d[:32], d[:16]})
            if len(d) >= 32:
                out.add(str(uuid.UUID(d[:32])))
                out.add(str(uuid.UUID(bytes=bytes.fromhex(d[:32]), version=5)))
    return out


@dataclass
class Scanner:
    """Collects findings over any number of sources; ``names`` and ``numbers`` come from the rosters."""

    names: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)
    _forms: dict[str, str] = field(default_factory=dict)
    _seen: set[tuple[str, str, str]] = field(default_factory=set)

    # -- what to look for ------------------------------------------------------------------
    def learn_number(self, number: str) -> None:
        number = normalise(number)
        if number in self.numbers:
            return
        self.numbers.add(number)
        for form in unkeyed_forms(number):
            self._forms[form] = number

    def learn_roster(self, path: Path) -> None:
        """Names and ID numbers of one department export (CSV or XLSX), from its name and ID columns."""
        for row in _table_rows(path):
            for header, cell in row.items():
                if cell is None or not str(cell).strip():
                    continue
                text = str(cell).strip()
                if header in NAME_COLUMNS and len(text) >= 2:
                    self.names.add(text)
                elif header in _ID_COLUMNS:
                    try:
                        self.learn_number(validate_id_number(text))
                    except Exception:  # noqa: BLE001 - a roster's bad rows are not ours to judge here
                        continue

    # -- looking -----------------------------------------------------------------------------
    def text(self, text: str, where: str, source: str = "texts") -> None:
        """Scan one piece of text found at ``where`` (``source`` counts what was scanned, for the summary)."""
        self.scanned[source] = self.scanned.get(source, 0) + 1
        for number in find_id_numbers(text):
            self._add("id_number", where, mask(number))
            self.learn_number(number)
        for name in self.names:
            if name in text:
                self._add("name", where, name[0] + "*" * (len(name) - 1))
        if self._forms:
            for m in _HEXISH.finditer(text):
                number = self._forms.get(m.group(0).lower())
                if number is not None:
                    self._add("unkeyed_id", where, f"{m.group(0)[:8]}… = f({mask(number)}) without a key")

    def _add(self, kind: str, where: str, shown: str) -> None:
        if (kind, where, shown) not in self._seen:
            self._seen.add((kind, where, shown))
            self.findings.append(Finding(kind, where, shown))

    def file(self, path: Path) -> None:
        """A file or a folder (recursively): spreadsheets cell by cell, text line by line."""
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and not p.is_symlink() and "processed" not in p.parts:
                    self.file(p)
            return
        suffix = path.suffix.lower()
        if suffix in (".xlsx", ".xlsm"):
            for n, row in enumerate(_sheet_rows(path), start=1):
                self.text(" | ".join("" if c is None else str(c) for c in row), f"{path}:row {n}", "spreadsheet rows")
        elif suffix in _TEXT_SUFFIXES or not suffix:
            data = path.read_bytes()
            for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
                self.text(line, f"{path}:{n}", "file lines")

    def url(self, url: str) -> None:
        """An HTTP text endpoint (the Prometheus /metrics of the worker, a connector, the API)."""
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - an operator-given URL
            for n, line in enumerate(resp.read().decode("utf-8", "replace").splitlines(), start=1):
                self.text(line, f"{url}:{n}", "metric lines")

    def topics(self, bootstrap: str, topics: Iterable[str] | None = None, timeout_s: float = 60.0) -> None:
        """Every record of every topic (or of ``topics``), key and value; Avro values decoded, else raw."""
        for where, text in _topic_texts(bootstrap, topics, timeout_s):
            self.text(text, where, "topic keys and values")


def _table_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a roster under its header (the first of 30 rows naming a name or an ID column)."""
    suffix = path.suffix.lower()
    raw = [list(r) for r in _sheet_rows(path)] if suffix in (".xlsx", ".xlsm") else _csv_rows(path)
    header_at = next((i for i, r in enumerate(raw[:30])
                      if any(_norm(c) in NAME_COLUMNS + _ID_COLUMNS for c in r)), None)
    if header_at is None:
        return
    header = [_norm(c) for c in raw[header_at]]
    for r in raw[header_at + 1:]:
        yield {h: (r[i] if i < len(r) else None) for i, h in enumerate(header)}


def _norm(cell: Any) -> str:
    return re.sub(r"\s+", "", str(cell or "")).replace("\ufeff", "")


def _csv_rows(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return list(csv.reader(io.StringIO(data.decode(enc))))
        except UnicodeDecodeError:
            continue
    return []


def _sheet_rows(path: Path) -> Iterator[list[Any]]:
    from connectors.sources.tabular import UnreadableFile, check_xlsx

    data = path.read_bytes()
    try:
        check_xlsx(data)
    except UnreadableFile:
        return
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
    for name in wb.sheet_names:
        yield from wb.get_sheet_by_name(name).to_python()


def _topic_texts(bootstrap: str, topics: Iterable[str] | None, timeout_s: float) -> Iterator[tuple[str, str]]:
    import time

    from kafka import KafkaConsumer, TopicPartition

    from hub import codec

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                             client_id="hub-privacy-scan")
    try:
        names = sorted(topics) if topics is not None else sorted(t for t in consumer.topics()
                                                                  if not t.startswith("__"))
        for topic in names:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                continue
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
                for tp, recs in consumer.poll(timeout_ms=500, max_records=5000).items():
                    for r in recs:
                        where = f"topic {tp.topic}[{tp.partition}]@{r.offset}"
                        yield where, (r.key or b"").decode("utf-8", "replace")
                        try:
                            _schema, value = codec.decode(r.value)
                            text = json.dumps(value, ensure_ascii=False, default=_plain)
                        except Exception:  # noqa: BLE001 - not Avro (offsets, raw bytes): scan it as text
                            text = (r.value or b"").decode("utf-8", "replace")
                        yield where, text
    finally:
        consumer.close()


def _plain(v: Any) -> Any:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def scan_command(*, bootstrap: str | None, files: list[Path], urls: list[str], rosters: list[Path],
                 out: TextIO = sys.stdout) -> int:
    """``hub privacy scan``: report every finding, one line each, and a summary; exit 1 when any."""
    scanner = Scanner()
    for r in rosters:
        for p in (sorted(x for x in r.rglob("*") if x.suffix.lower() in (".csv", ".xlsx")) if r.is_dir() else [r]):
            scanner.learn_roster(p)
    out.write(f"looking for {len(scanner.numbers)} roster ID numbers (and their unkeyed forms), "
              f"{len(scanner.names)} roster names, and any valid ID number\n")
    if bootstrap:
        scanner.topics(bootstrap)
    for f in files:
        scanner.file(f)
    for u in urls:
        scanner.url(u)
    for finding in scanner.findings:
        out.write(finding.line() + "\n")
    kinds = {k: sum(1 for f in scanner.findings if f.kind == k) for k in ("id_number", "name", "unkeyed_id")}
    scanned = ", ".join(f"{n} from {src}" for src, n in sorted(scanner.scanned.items()))
    out.write(f"scanned {scanned or 'nothing'}\n")
    out.write("findings: " + ", ".join(f"{k} {v}" for k, v in kinds.items()) + "\n")
    return 1 if scanner.findings else 0
