"""Reading department spreadsheets as they really arrive: CSV in GBK or UTF-8, XLSX with title rows.

Kept apart from ``file_drop`` because it is pure (bytes in, numbered rows out) and so testable
without a broker, and because a new file-based connector can reuse it.

What real exports do, and what this module does about it:
- CSV saved by Excel on a Chinese Windows is GBK (often without saying so); saved elsewhere it is
  UTF-8, maybe with a BOM. ``encoding: auto`` tries UTF-8 (BOM allowed) strictly, then GB18030
  (a superset of GBK), so a file is never half-decoded.
- One or more merged title rows (``XX县2024年脱贫人口名单``, ``填报单位：…``) sit above the header.
  The header is the first row holding every required column of the mapping.
- Blank lines anywhere are skipped; row numbers stay those a person sees in Excel.

What hostile files do, and what this module does about it (``check_xlsx`` runs before calamine):
- One cell at ``XFD1048576`` in a 5 KB XLSX makes calamine allocate the whole 1,048,576 × 16,384 range
  (512 GiB) and abort the process. The sheet XML is streamed first and its extent measured; a sheet
  wider than ``MAX_COLUMNS`` or with more than ``MAX_CELLS`` in its extent is refused.
  Measuring it must not cost more than reading the sheet: a 1 M-row roster has 12 M cells, and an XML parser
  handing each element to Python took 76 µs per row (76 s per million). So the sheet's bytes are scanned with two
  regular expressions first (:func:`_fast_extent`): when every cell and row start tag carries a plain reference
  (``<c r="G12"``, what Excel, openpyxl and Apache POI write) the largest reference *is* the extent; when any tag
  does not (no ``r``, another attribute first, a namespace prefix, another encoding), the exact XML parse decides,
  as before. Fake tags inside comments or CDATA can only make the extent larger (refused), never smaller.
- A zip bomb (a few KB that inflate to GBs): members larger than ``MAX_UNCOMPRESSED`` in total, or
  compressed more than ``MAX_RATIO`` to 1, are refused before anything is inflated. ``MAX_UNCOMPRESSED`` is 1 GiB:
  a full sheet (1,048,576 rows) of a 12-column roster written with inline strings (openpyxl's write-only mode,
  POI's streaming writer) inflates to ≈0.7 GB; what calamine keeps in memory is bounded by ``MAX_CELLS`` and the
  text of the cells (a 1 M-row roster: ≈2.3 GB resident while it is read, measured by benchmarks/roster_load.py).
- Only ``.xlsx``/``.xlsm`` and ``.csv``/``.txt``/``.tsv`` are read (``.xls``/``.ods`` cannot be checked
  this way: save them as ``.xlsx``).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.sdk.mapping import _norm_header

HEADER_SEARCH_ROWS = 30
MAX_COLUMNS = 1024
MAX_CELLS = 20_000_000
MAX_UNCOMPRESSED = 1024 * 1024 * 1024
MAX_RATIO = 200


class UnreadableFile(Exception):
    """The file cannot be read as a table (encoding, format, or no header row)."""


@dataclass(frozen=True)
class Row:
    number: int  # 1-based row (CSV line) number, as Excel shows it
    cells: dict[str, Any]


def decode_text(data: bytes, encoding: str = "auto") -> str:
    """Decode CSV bytes; ``auto`` = strict UTF-8 (BOM allowed), else GB18030."""
    if encoding != "auto":
        try:
            return data.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise UnreadableFile(f"not {encoding}: {exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"neither UTF-8 nor GBK/GB18030: {exc}") from None


def csv_rows(data: bytes, encoding: str = "auto") -> list[tuple[int, list[Any]]]:
    # A cell may be as long as the file (a 10 MB row is a reject of that row, not of the whole file).
    csv.field_size_limit(max(csv.field_size_limit(), len(data) + 1))
    text = decode_text(data, encoding)
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    out = []
    try:
        start = 1
        for cells in reader:
            out.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UnreadableFile(f"line {reader.line_num}: {exc}") from None
    return out


_COLUMN = re.compile(rb"^([A-Z]{1,3})([0-9]{1,7})$")


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


_PREFIXED = re.compile(rb"<[^\s<>/!?]*:")
_CELL_REF = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"[\s/>]')
_ROW_REF = re.compile(rb'<row r="([0-9]{1,7})"[\s/>]')
_CELL_TAG = re.compile(rb"<c[\s/>]")
_ROW_TAG = re.compile(rb"<row[\s/>]")
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""")


def _fast_extent(fh: Any, chunk: int = 1 << 20) -> tuple[int, int] | None:
    """(rows, columns) of a sheet read as bytes, or None when a tag has no plain reference (then parse it).

    No tag may have a namespace prefix, and every start tag of a cell (``<c`` then whitespace, ``/`` or ``>``) must
    be ``<c r="LETTERS DIGITS"``, every row tag ``<row r="DIGITS"``; then the largest of those references is the
    extent. The bytes are cut at the last ``<`` of each chunk (an attribute value cannot hold ``<``), so no tag
    is split between two chunks.
    """
    rows = cols = 0
    carry = b""
    first = True
    while True:
        data = fh.read(chunk)
        buf = carry + data
        if first:
            first = False
            declared = _DECLARED.match(buf)
            if b"\x00" in buf[:256] or (declared and declared.group(1).lower() not in (b"utf-8", b"utf8")):
                return None  # UTF-16 or another encoding: the byte patterns do not apply
        if data:
            cut = buf.rfind(b"<")
            if cut < 0:
                carry = buf
                continue
            body, carry = buf[:cut], buf[cut:]
        else:
            body, carry = buf, b""
        if _PREFIXED.search(body):
            return None  # a namespace prefix (<x:c …>): not what the patterns below count
        refs = _CELL_REF.findall(body)
        row_refs = _ROW_REF.findall(body)
        if len(refs) != len(_CELL_TAG.findall(body)) or len(row_refs) != len(_ROW_TAG.findall(body)):
            return None
        if refs:
            letters = max({c for c, _ in refs}, key=lambda c: (len(c), c))
            cols = max(cols, _col_number(letters))
            rows = max(rows, max(int(r) for r in {r for _, r in refs}))
        if row_refs:
            rows = max(rows, max(int(r) for r in set(row_refs)))
        if not data:
            return rows, cols


def _refuse_extent(name: str, rows: int, cols: int) -> None:
    if cols > MAX_COLUMNS or rows * max(cols, 1) > MAX_CELLS:
        raise UnreadableFile(
            f"sheet {name.rsplit('/', 1)[-1]} spans at least {rows} rows × {cols} columns (a cell "
            f"far away, e.g. XFD1048576): more than {MAX_COLUMNS} columns or {MAX_CELLS} cells; "
            "delete the stray cells and save again")


def _parsed_extent(fh: Any, name: str) -> tuple[int, int]:
    """(rows, columns) of a sheet from its parsed XML (any encoding, prefix, attribute order); refuses as soon
    as the extent passes the limits. A cell without ``r`` takes the next column, a row without ``r`` the next row."""
    from xml.etree.ElementTree import iterparse

    rows = cols = 0
    row_no = 0
    for _event, el in iterparse(fh, events=("end",)):
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "c":
            m = _COLUMN.match((el.get("r") or "").encode())
            col = _col_number(m.group(1)) if m else cols + 1
            cols = max(cols, col)
            rows = max(rows, int(m.group(2)) if m else row_no)
        elif tag == "row":
            row_no = int(el.get("r") or row_no + 1)
            rows = max(rows, row_no)
            el.clear()
        _refuse_extent(name, rows, cols)
    return rows, cols


def check_xlsx(data: bytes) -> None:
    """Refuse an XLSX that would exhaust memory when read (see the module docstring); cheap and streaming."""
    from xml.etree.ElementTree import ParseError

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnreadableFile(f"not an XLSX (zip) file: {exc}") from None
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_UNCOMPRESSED:
            raise UnreadableFile(f"inflates to {total} bytes (more than {MAX_UNCOMPRESSED}): refused as a zip bomb")
        for i in infos:
            if i.file_size > 1_000_000 and i.file_size > MAX_RATIO * max(i.compress_size, 1):
                raise UnreadableFile(f"member {i.filename} is compressed {i.file_size // max(i.compress_size, 1)} "
                                     f"to 1 (more than {MAX_RATIO}): refused as a zip bomb")
        for name in (i.filename for i in infos):
            if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                continue
            try:
                with zf.open(name) as fh:
                    extent = _fast_extent(fh)
                if extent is None:  # a tag the byte patterns do not cover: parse the XML
                    with zf.open(name) as fh:
                        extent = _parsed_extent(fh, name)
            except (ParseError, zipfile.BadZipFile, ValueError, RuntimeError, EOFError, OSError) as exc:
                raise UnreadableFile(f"sheet {name.rsplit('/', 1)[-1]} is not valid XML: {exc}") from None
            _refuse_extent(name, *extent)


def xlsx_rows(path: Path, sheet: str | int = 0, data: bytes | None = None) -> list[tuple[int, list[Any]]]:
    from python_calamine import CalamineError, CalamineWorkbook

    if data is None:
        data = path.read_bytes()
    check_xlsx(data)
    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        ws = wb.get_sheet_by_name(sheet) if isinstance(sheet, str) else wb.get_sheet_by_index(sheet)
        values = ws.to_python(skip_empty_area=False)
    except (CalamineError, IndexError, KeyError, ValueError, OSError, TypeError, OverflowError) as exc:
        raise UnreadableFile(f"cannot read sheet {sheet!r}: {type(exc).__name__}: {exc}") from None
    return [(i + 1, list(r)) for i, r in enumerate(values)]


def _blank(cells: Sequence[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def find_header(rows: list[tuple[int, list[Any]]], required: list[list[str]],
                header_row: int | None = None) -> int:
    """Index in ``rows`` of the header: the given row number, or the first holding every required column."""
    if header_row is not None:
        for i, (n, _cells) in enumerate(rows):
            if n == header_row:
                return i
        raise UnreadableFile(f"header_row {header_row} is beyond the end of the file")
    for i, (_n, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        names = {_norm_header(c) for c in cells}
        if all(any(h in names for h in alternatives) for alternatives in required):
            return i
    wanted = ", ".join("|".join(a) for a in required)
    raise UnreadableFile(f"no header row with all of [{wanted}] in the first {HEADER_SEARCH_ROWS} rows")


def row_cells(header: Sequence[str], cells: Sequence[Any]) -> dict[str, Any]:
    """``{header: cell}`` of one data row (unnamed columns left out, missing trailing cells None)."""
    return {name: (cells[j] if j < len(cells) else None) for j, name in enumerate(header) if name}


@dataclass(frozen=True)
class Sheet:
    """A parsed department file: found header, data lines kept as lists, each row's dict built when it is read.

    Why not a list of row dicts: a 1 M-row roster's dicts alone take ≈0.7 GB; the lists are needed anyway.
    """

    lines: list[tuple[int, list[Any]]]
    start: int
    """Index in ``lines`` of the first line below the header."""
    header: list[str]

    def data(self, after: int = 0) -> Iterator[tuple[int, list[Any]]]:
        """(row number, cells) of every non-blank line below the header numbered above ``after``."""
        for n, cells in itertools.islice(self.lines, self.start, None):
            if n > after and not _blank(cells):
                yield n, cells

    def rows(self, after: int = 0) -> Iterator[Row]:
        for n, cells in self.data(after):
            yield Row(n, row_cells(self.header, cells))

    @property
    def last(self) -> int | None:
        """Number of the last non-blank row below the header (None: no data)."""
        for n, cells in reversed(self.lines[self.start:]):
            if not _blank(cells):
                return n
        return None

    def count(self, after: int = 0) -> int:
        """Lines below the header numbered above ``after`` (blank ones included: an upper bound of the rows)."""
        return sum(1 for n, _ in itertools.islice(self.lines, self.start, None) if n > after)


def table(rows: list[tuple[int, list[Any]]], required: list[list[str]],
          header_row: int | None = None) -> Iterator[Row]:
    """Rows under the header as ``{header: cell}``, blank rows skipped."""
    yield from sheet_of(rows, required, header_row).rows()


def sheet_of(rows: list[tuple[int, list[Any]]], required: list[list[str]], header_row: int | None = None) -> Sheet:
    """The :class:`Sheet` of parsed lines: its header found (or ``UnreadableFile``) now, its rows on demand."""
    h = find_header(rows, required, header_row)
    return Sheet(rows, h + 1, [_norm_header(c) for c in rows[h][1]])


def open_table(path: Path, required: list[list[str]], *, encoding: str = "auto", sheet: str | int = 0,
               header_row: int | None = None, data: bytes | None = None) -> Sheet:
    """A department file parsed whatever its format (by suffix); ``data``: its bytes, if read. Everything that
    can make the file unreadable (encoding, format, no header) is found here, before any row is handed out."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        rows = xlsx_rows(path, sheet, data)
    elif suffix in (".csv", ".txt", ".tsv"):
        rows = csv_rows(path.read_bytes() if data is None else data, encoding)
    else:
        raise UnreadableFile(f"unsupported file type {suffix!r} (expected .csv or .xlsx; save .xls/.ods as .xlsx)")
    return sheet_of(rows, required, header_row)


def read_table(path: Path, required: list[list[str]], *, encoding: str = "auto", sheet: str | int = 0,
               header_row: int | None = None, data: bytes | None = None) -> list[Row]:
    """A department file as numbered rows, whatever its format (by suffix); ``data``: its bytes, if read."""
    return list(open_table(path, required, encoding=encoding, sheet=sheet, header_row=header_row, data=data).rows())
