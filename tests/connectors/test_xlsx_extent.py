"""The XLSX extent check reads a sheet's bytes fast, and is never fooled into letting a far cell through.

``tabular.check_xlsx`` refuses a sheet whose extent would make calamine allocate gigabytes (one cell at
``XFD1048576`` aborts the process). Since issue 18 it first scans the sheet's bytes with regular expressions
(``_fast_extent``), falling back to the XML parse (``_parsed_extent``) whenever a tag is not in the plain form
the patterns cover. What is asserted: (1) on sheets as spreadsheet programs write them, both give the same
extent (differential, on generated workbooks); (2) every way of writing the far cell that XML allows — a namespace
prefix, another attribute first, single quotes, a character reference, another encoding, a row tag that lies, a
fake cell in a comment — is refused, by one path or the other.
"""

from __future__ import annotations

import io
import random
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from connectors.sources.tabular import UnreadableFile, _fast_extent, _parsed_extent, check_xlsx

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _sheet_of(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read("xl/worksheets/sheet1.xml")


def _xlsx(sheet_xml: bytes) -> bytes:
    """A minimal XLSX holding one sheet (what check_xlsx reads: the zip and its worksheets)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/worksheets/sheet1.xml", sheet_xml)
    return buf.getvalue()


def _both(sheet: bytes) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    return _fast_extent(io.BytesIO(sheet), chunk=97), _parsed_extent(io.BytesIO(sheet), "sheet1.xml")


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.booleans())
def test_the_byte_scan_gives_the_parsed_extent_on_workbooks_as_written(seed: int, write_only: bool) -> None:
    rng = random.Random(seed)
    wb = Workbook(write_only=write_only)
    ws = wb.create_sheet("s") if write_only else wb.active
    for _ in range(rng.randrange(1, 60)):
        cells = [None, "身份证号码", 530102, 3.5, "=SUM(A1)", "a\nb", ""]
        ws.append([rng.choice(cells) for _ in range(rng.randrange(0, 30))])
    if not write_only and rng.random() < 0.5:
        ws.cell(row=rng.randrange(1, 5000), column=rng.randrange(1, 200), value="far")
    buf = io.BytesIO()
    wb.save(buf)
    fast, parsed = _both(_sheet_of(buf.getvalue()))
    assert fast is not None  # what openpyxl writes is the plain form
    assert fast == parsed


def _far(cell: str, *, decl: str = '<?xml version="1.0" encoding="UTF-8"?>', row: str = '<row r="1">',
         encoding: str = "utf-8") -> bytes:
    xml = (f'{decl}<worksheet xmlns="{NS}" xmlns:x="{NS}"><sheetData>{row}<c r="A1" t="inlineStr"><is><t>身份证号码'
           f"</t></is></c>{cell}</row></sheetData></worksheet>")
    return xml.encode(encoding)


FAR_CELLS = {
    "plain": _far('<c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c>'),
    "namespace prefix": _far('<x:c r="XFD1048576" t="inlineStr"><x:is><x:t>x</x:t></x:is></x:c>'),
    "attribute order": _far('<c t="inlineStr" r="XFD1048576"><is><t>x</t></is></c>'),
    "single quotes": _far("<c r='XFD1048576' t='inlineStr'><is><t>x</t></is></c>"),
    "character reference": _far('<c r="&#88;FD1048576" t="inlineStr"><is><t>x</t></is></c>'),
    "spaces around =": _far('<c r = "XFD1048576" t="inlineStr"><is><t>x</t></is></c>'),
    "newline after the name": _far('<c\nr="XFD1048576" t="inlineStr"><is><t>x</t></is></c>'),
    "self-closing": _far('<c r="XFD1048576"/>'),
    "row tag that lies": _far('<c r="A1048576" t="inlineStr"><is><t>x</t></is></c><c r="ZZ1"/>'),
    "far row, wide": _far('<c r="AZ1"/>', row='<row r="1048576">'),
    "UTF-16": _far('<c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c>',
                   decl='<?xml version="1.0" encoding="UTF-16"?>', encoding="utf-16"),
    "in a comment only": _far('<!-- <c r="XFD1048576"/> -->'),
}


@pytest.mark.parametrize("name", sorted(FAR_CELLS))
def test_a_far_cell_is_refused_however_it_is_written(name: str) -> None:
    if name == "in a comment only":
        # not a cell at all, but the byte scan cannot tell: it may only refuse more, never less
        assert _fast_extent(io.BytesIO(FAR_CELLS[name])) in (None, (1048576, 16384))
        return
    with pytest.raises(UnreadableFile, match="rows ×"):
        check_xlsx(_xlsx(FAR_CELLS[name]))


def test_a_tag_split_between_chunks_is_still_read() -> None:
    sheet = _far('<c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c>')
    for chunk in (1, 2, 3, 7, 64):
        assert _fast_extent(io.BytesIO(sheet), chunk=chunk) == (1048576, 16384)


def test_an_ordinary_roster_passes() -> None:
    wb = Workbook()
    wb.active.append(["身份证号码", "审批日期", "救助类别"])
    for i in range(200):
        wb.active.append([f"53010219700101{i:03d}1", "2024-03-04", "农村低保"])
    buf = io.BytesIO()
    wb.save(buf)
    check_xlsx(buf.getvalue())
    assert _both(_sheet_of(buf.getvalue())) == ((201, 3), (201, 3))
