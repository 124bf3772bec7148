"""Field mapping: department columns (often Chinese headers) → event fields, at the edge.

Departments export what their systems print: ``身份证号``, ``人员类别`` = ``脱贫人口、监测对象``,
``家庭年人均纯收入(元)`` = ``8,650.50``, dates as ``2024/3/5`` or ``2024年3月5日``. A mapping
declares, per event field, the column it comes from and how to read it; the ID number is
validated and replaced by ``person_token`` here, so a raw number never reaches a hub topic.

The ``event_id`` is deterministic — a keyed HMAC of the source, the natural key and the row
content — so re-sending a row (after a crash, or the same file dropped twice) yields the same id
and the processors ignore it as a redelivery; a corrected row gets a new id because its content
changed. *Keyed*, because the natural key and the content hold the ID number: an unkeyed hash of
them was reversed by enumerating birth dates and sequence numbers (3.65 M guesses, 27 s). The key is
derived from the pseudonym key the edge already holds (``hub.identity.derive_key``).

Error texts never repeat a cell: a shifted row puts an ID number or a name in any column, and the
text goes to dead letters and rejects reports. They say what was expected and what *kind* of value
was found (``text of 18 characters``, ``a number``), and name the column and row.

ID numbers are text. A cell that arrived as a number (Excel keeps 15 significant digits, so
``530102199001011234`` became ``530102199001011000`` or ``5.30102E+17``) is rejected as an invalid ID
number, never converted: the last digits are gone, and a guess could be another person's number.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.sdk.errors import RecordRejected
from hub import identity
from hub.errors import ValidationError as HubValidationError
from hub.timeutil import SHANGHAI, format_time

FieldType = Literal[
    "str", "int", "year", "fen", "yuan", "bool", "date", "datetime", "id_number", "enum", "categories", "const",
]

_TRUE = {"是", "有", "y", "yes", "true", "1", "已参保", "参保", "有效", "在保", "正常", "签约", "已签约"}
_FALSE = {"否", "无", "n", "no", "false", "0", "未参保", "无效", "停保", "终止", "解约", "未签约"}


class FieldSpec(BaseModel):
    """How one event field is read from a department row."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = Field(None, description="header of the column; `a|b` accepts either name")
    type: FieldType = Field("str", description="how the cell is read (see connectors/README.md)")
    values: dict[str, Any] | None = Field(None, description="department wording → event value (enum, categories, bool)")
    separator: str = Field("、,，;；|/ ", description="any of these characters splits a categories cell")
    value: Any = Field(None, description="the constant (type: const)")
    required: bool = Field(True, description="a missing or empty cell rejects the row")
    default: Any = Field(None, description="value when the cell is empty and the field is not required")

    @model_validator(mode="after")
    def _coherent(self) -> FieldSpec:
        if self.type == "const":
            if self.value is None:
                raise ValueError("type const needs `value`")
        elif not self.column:
            raise ValueError(f"type {self.type} needs `column`")
        if self.type in ("enum",) and not self.values:
            raise ValueError(f"type {self.type} needs `values` (department wording → event value)")
        return self

    def headers(self) -> list[str]:
        """The normalised header names this field accepts (``column`` split at ``|``); computed once per column."""
        return _split_headers(self.column or "")


class MappingConfig(BaseModel):
    """Per event field, its ``FieldSpec``; plus what identifies a row (for deterministic event ids)."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, FieldSpec] = Field(min_length=1, description="event field → how it is read (FieldSpec)")
    natural_key: list[str] = Field(min_length=1, description="columns that identify the department record")
    key: str = Field("person_token", description="event field used as the Kafka record key")
    event_id: bool = Field(True, description="fill `event_id` from source + natural key + row content")

    @model_validator(mode="after")
    def _key_is_a_field(self) -> MappingConfig:
        if self.key not in self.fields:
            raise ValueError(f"key field {self.key!r} is not among the mapped fields")
        return self

    def required_headers(self) -> set[str]:
        """Headers that must all appear in a header row (used to find it under title rows)."""
        return {spec.headers()[0] for spec in self.fields.values() if spec.column and spec.required}


@dataclass(frozen=True)
class MappedRow:
    value: dict[str, Any]
    key: str


_SPACES = re.compile(r"\s+")
_HEADERS: dict[str, str] = {}
"""Normalised form of header names seen (a file's header is normalised once, not once per row). Bounded: only
short names are kept, and at most ``_HEADERS_MAX`` of them (http_ingest's keys come from the network)."""
_HEADERS_MAX = 4096


def _norm_header(h: object) -> str:
    """Headers compared without whitespace (exports wrap ``身份证\\n号码``) and with ASCII brackets."""
    if isinstance(h, str):
        known = _HEADERS.get(h)
        if known is not None:
            return known
    s = _SPACES.sub("", str(h if h is not None else ""))
    s = s.replace("（", "(").replace("）", ")").replace("\ufeff", "")
    if isinstance(h, str) and len(h) <= 64 and len(_HEADERS) < _HEADERS_MAX:
        _HEADERS[h] = s
    return s


@functools.lru_cache(maxsize=1024)
def _split_headers_cached(column: str) -> tuple[str, ...]:
    return tuple(_norm_header(h) for h in column.split("|") if h.strip())


def _split_headers(column: str) -> list[str]:
    """``a|b`` → the normalised names ``[a, b]`` (columns come from configurations: few, cached)."""
    return list(_split_headers_cached(column))


def normalise_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """Row keyed by normalised header, cells stripped; empty strings become ``None``."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, str):
            v = v.strip().replace("\u3000", "") or None
        out[_norm_header(k)] = v
    return out


@dataclass(frozen=True)
class _Plan:
    """A mapping prepared once for the rows of a feed: headers split and normalised, converters looked up."""

    fields: tuple[tuple[str, FieldSpec, tuple[str, ...], Callable[[Any, FieldSpec, str], Any] | None], ...]
    needed: frozenset[str]
    """Every header a field or the natural key reads: the only cells worth normalising."""
    natural: tuple[tuple[str, ...], ...]
    content: tuple[tuple[str, tuple[str, ...]], ...]


_PLANS: dict[int, tuple[MappingConfig, _Plan]] = {}


def _plan(mapping: MappingConfig) -> _Plan:
    """The prepared form of ``mapping`` (kept per mapping object; a changed mapping object is prepared again)."""
    known = _PLANS.get(id(mapping))
    if known is not None and known[0] is mapping:
        return known[1]
    fields = tuple((f, s, _split_headers_cached(s.column or ""), None if s.type == "const" else _CONVERT[s.type])
                   for f, s in mapping.fields.items())
    natural = tuple(_split_headers_cached(col) for col in mapping.natural_key)
    content = tuple((f, _split_headers_cached(s.column or "")) for f, s in sorted(mapping.fields.items()) if s.column)
    needed = frozenset(h for _f, _s, hs, _c in fields for h in hs) | frozenset(h for hs in natural for h in hs)
    plan = _Plan(fields, needed, natural, content)
    if len(_PLANS) > 256:
        _PLANS.clear()
    _PLANS[id(mapping)] = (mapping, plan)
    return plan


def _cells(row: Mapping[Any, Any], needed: frozenset[str]) -> dict[str, Any]:
    """:func:`normalise_row`, for the cells a mapping reads only (the others cannot change the event)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        h = _norm_header(k)
        if h in needed:
            if isinstance(v, str):
                v = v.strip().replace("\u3000", "") or None
            out[h] = v
    return out


def map_row(mapping: MappingConfig | None, row: Mapping[Any, Any], *, source: str | None,
            pseudonym_key: str) -> MappedRow:
    """Map one department row to event fields; raises ``RecordRejected`` naming the column."""
    if mapping is None:
        raise RecordRejected("no_mapping", "the connector has no `mapping` to read this row")
    plan = _plan(mapping)
    cells = _cells(row, plan.needed)
    value: dict[str, Any] = {}
    for field, spec, headers, convert in plan.fields:
        value[field] = _read(field, spec, cells, pseudonym_key, headers, convert)
    if mapping.event_id and "event_id" not in mapping.fields:
        natural = [_cell_text(_lookup(cells, hs)) for hs in plan.natural]
        content = {f: _cell_text(_lookup(cells, hs)) for f, hs in plan.content}
        value["event_id"] = event_id(source or "", natural, content, key=pseudonym_key)
    key = value.get(mapping.key)
    if not key:
        raise RecordRejected("missing_field", f"key field {mapping.key} is empty", mapping.key)
    return MappedRow(value=value, key=str(key))


EVENT_ID_PURPOSE = "event-id.v2"
_EVENT_ID_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)
"""What ``json.dumps(…, ensure_ascii=False, sort_keys=True, default=str)`` builds on every call, built once."""


def event_id(source: str, natural_key: list[Any], content: dict[str, Any], *, key: str | bytes) -> str:
    """Deterministic UUID from source, natural key and content, keyed: re-sent rows are recognisable.

    ``key`` is the pseudonym key (``HUB_PSEUDONYM_KEY``); without it the id cannot be recomputed from a
    guessed ID number, though the row holds one.
    """
    blob = _EVENT_ID_JSON.encode([source, natural_key, content])
    return uuid5_text(hmac.digest(_event_id_key(key), blob.encode(), "sha256"))


def uuid5_text(digest: bytes) -> str:
    """``str(uuid.UUID(bytes=digest[:16], version=5))`` without building the UUID (millions per roster)."""
    b = bytearray(digest[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=8)
def _event_id_key(key: str | bytes) -> bytes:
    """The event-id sub-key of a pseudonym key, derived once per key rather than once per row."""
    return identity.derive_key(key, EVENT_ID_PURPOSE)


def _cell_text(v: Any) -> str | None:
    return None if v is None else str(v)


def _lookup(cells: dict[str, Any], headers: Sequence[str]) -> Any:
    for h in headers:
        if h in cells:
            return cells[h]
    return None


def _read(field: str, spec: FieldSpec, cells: dict[str, Any], pseudonym_key: str,
          headers: Sequence[str] | None = None, convert: Callable[[Any, FieldSpec, str], Any] | None = None) -> Any:
    if spec.type == "const":
        return spec.value
    raw = _lookup(cells, spec.headers() if headers is None else headers)
    if raw is None or raw == "":
        if spec.required:
            raise RecordRejected("missing_field", f"column {spec.column!r} ({field}) is empty or absent", spec.column)
        return spec.default
    try:
        return (convert or _CONVERT[spec.type])(raw, spec, pseudonym_key)
    except RecordRejected:
        raise
    except (ValueError, TypeError, InvalidOperation, ArithmeticError) as exc:
        raise RecordRejected("invalid_input", f"column {spec.column!r} ({field}): {exc}", spec.column) from None


def describe(raw: Any) -> str:
    """What kind of value a cell held, without its content (errors must never repeat a cell)."""
    if isinstance(raw, bool):
        return "a true/false value"
    if isinstance(raw, int | float | Decimal):
        return "a number"
    if isinstance(raw, datetime | date):
        return "a date"
    text = str(raw)
    return f"text of {len(text)} character{'s' if len(text) != 1 else ''}"


def _str(raw: Any, spec: FieldSpec, _k: str) -> str:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # Excel stores codes like 530102 as numbers
    return str(raw).strip()


def _int(raw: Any, spec: FieldSpec, _k: str) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected a whole number, found {describe(raw)}")
    d = Decimal(str(raw).replace(",", "").strip())
    if d != d.to_integral_value():
        raise ValueError(f"expected a whole number, found {describe(raw)}")
    return int(d)


def _year(raw: Any, spec: FieldSpec, k: str) -> int:
    y = _int(str(raw).strip().removesuffix("年度").removesuffix("年"), spec, k)
    if not 1900 <= y <= 2200:
        raise ValueError(f"expected a year, found {describe(raw)}")
    return y


def _yuan(raw: Any, spec: FieldSpec, _k: str) -> int:
    """Yuan with at most two decimals → integer fen, exactly (no float rounding)."""
    text = str(raw).replace(",", "").replace("，", "").replace("元", "").replace("¥", "").strip()
    fen = Decimal(text) * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"expected yuan with at most 2 decimals, found {describe(raw)}")
    if fen < 0:
        raise ValueError(f"expected an amount ≥ 0, found {describe(raw)}")
    return int(fen)


def _fen(raw: Any, spec: FieldSpec, k: str) -> int:
    v = _int(raw, spec, k)
    if v < 0:
        raise ValueError(f"expected an amount ≥ 0, found {describe(raw)}")
    return v


def _bool(raw: Any, spec: FieldSpec, _k: str) -> bool | None:
    if isinstance(raw, bool):
        return raw
    text = _str(raw, spec, _k)
    if spec.values:
        if text in spec.values:  # a wording mapped to null means "absent" (a follow-up has no `active`)
            mapped = spec.values[text]
            return None if mapped is None else bool(mapped)
        raise ValueError(f"expected one of {', '.join(spec.values)}, found {describe(text)}")
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"expected 是/否 (or Y/N, 1/0), found {describe(text)}")


_DATE_PATTERNS = (
    re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
               r"(?:[ T](\d{1,2})[:：时](\d{1,2})(?:[:：分](\d{1,2})(?:\.(\d+))?)?秒?)?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?$"),
)


def _parse_local(raw: Any) -> tuple[datetime, bool]:
    """A department date or timestamp as Shanghai time; the flag says whether it had a time of day."""
    if isinstance(raw, datetime):
        dt = raw if raw.tzinfo else raw.replace(tzinfo=SHANGHAI)
        return dt.astimezone(SHANGHAI), True
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day, tzinfo=SHANGHAI), False
    serial = _excel_serial(raw)
    if serial is not None:
        return serial
    text = str(raw).strip()
    if "T" in text and ("+" in text or text.endswith("Z")):
        from hub.timeutil import parse_event_time

        return parse_event_time(text), True
    for pat in _DATE_PATTERNS:
        m = pat.match(text)
        if m:
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            hh, mi, ss = (int(g) if g else 0 for g in m.groups()[3:6])
            frac = (m.groups()[6] if len(m.groups()) > 6 else None) or ""
            micro = int((frac + "000000")[:6]) if frac else 0
            return datetime(y, mo, d, hh, mi, ss, micro, tzinfo=SHANGHAI), m.group(4) is not None
    raise ValueError(f"expected a date like 2024-03-05, 2024/3/5 or 2024年3月5日, found {describe(text)}")


_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=SHANGHAI)
_SERIAL = re.compile(r"^[0-9]{5}(?:\.[0-9]+)?$")


def _excel_serial(raw: Any) -> tuple[datetime, bool] | None:
    """An Excel date serial (days since 1899-12-30; a date column saved without its date format), exactly.

    Only 20000–80000 (1954–2119) counts: outside that a bare number is not a plausible date of this domain.
    """
    if isinstance(raw, bool) or not (isinstance(raw, int | float | Decimal) or (isinstance(raw, str)
                                                                                and _SERIAL.match(raw.strip()))):
        return None
    days = Decimal(str(raw).strip())
    if not 20000 <= days < 80000:
        return None
    micros = int((days * 86_400_000_000).to_integral_value())
    from datetime import timedelta

    at = _EXCEL_EPOCH + timedelta(microseconds=micros)
    return at, days != days.to_integral_value()


def _date(raw: Any, spec: FieldSpec, _k: str) -> str:
    return _parse_local(raw)[0].date().isoformat()


def _datetime(raw: Any, spec: FieldSpec, _k: str) -> str:
    return format_time(_parse_local(raw)[0])


_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_SCIENTIFIC = re.compile(r"^[0-9]+(?:\.[0-9]*)?[eE][+]?[0-9]+$")
_EXCEL_TEXT = re.compile(r'^=\s*"(.*)"$')
_DECIMAL_FORM = re.compile(r"^[0-9]{15,18}\.0+$")
_GROUPED = re.compile(r"[0-9０-９]+(?:[ \-][0-9０-９]+)*[ \-]?[0-9０-９Xxｘ]?")
_GROUP_SEPARATORS = re.compile(r"[ \-]")


def id_text(raw: Any) -> str:
    """The text of an ID-number cell as the department typed it, or ``ValueError`` saying why not.

    Accepted as typed: surrounding spaces, full-width digits, a lower-case ``x`` (``normalise``), the
    marks exports use to keep a number as text (a leading ``'`` or tab, ``="…"``), zero-width
    characters, and single spaces or hyphens between digit groups. Refused: any cell that is not
    text (an Excel number), scientific notation, a trailing ``.0`` — the digits are already lost.
    """
    if not isinstance(raw, str):
        raise ValueError(f"the cell is {describe(raw)}, not text: a spreadsheet keeps only 15 significant "
                         "digits of a number, so the ID number cannot be trusted; format the column as text "
                         "(文本) and export again")
    text = raw.translate(_ZERO_WIDTH).strip().lstrip("'\t").strip()
    m = _EXCEL_TEXT.match(text)
    if m:
        text = m.group(1).strip()
    if _SCIENTIFIC.match(text) or _DECIMAL_FORM.match(text):
        raise ValueError("the cell holds a number in scientific or decimal form (Excel rounded it to 15 "
                         "significant digits); format the column as text (文本) and export again")
    if _GROUPED.fullmatch(text):
        text = _GROUP_SEPARATORS.sub("", text)
    return text


def _id_number(raw: Any, spec: FieldSpec, key: str) -> str:
    """Validate (GB 11643 check digit) and pseudonymise: only the token leaves this function."""
    try:
        text = id_text(raw)
    except ValueError as exc:
        raise RecordRejected("invalid_id_number", f"column {spec.column!r}: {exc}", spec.column) from None
    try:
        normalised = identity.validate_id_number(text)
    except HubValidationError as exc:
        raise RecordRejected("invalid_id_number", f"column {spec.column!r}: {exc.problem}", spec.column) from None
    return identity.person_token(normalised, key, validate=False)  # validated just above: not twice


def _enum(raw: Any, spec: FieldSpec, _k: str) -> Any:
    text = _str(raw, spec, _k)
    if spec.values is None:
        return text
    if text not in spec.values:
        raise ValueError(f"expected one of {', '.join(spec.values)}, found {describe(text)}")
    return spec.values[text]


def _categories(raw: Any, spec: FieldSpec, _k: str) -> list[str]:
    parts = [p for p in re.split("[" + re.escape(spec.separator) + "]", _str(raw, spec, _k)) if p.strip()]
    out: set[str] = set()
    for p in parts:
        p = p.strip()
        if spec.values is None:
            out.add(p)
        elif p in spec.values:
            mapped = spec.values[p]
            if mapped:  # a wording mapped to null/"" means "not a hub category" (e.g. 一般户)
                out.add(mapped)
        else:
            raise ValueError(f"unknown category ({describe(p)}); expected one of {', '.join(spec.values)}")
    return sorted(out)


_CONVERT = {
    "str": _str, "int": _int, "year": _year, "fen": _fen, "yuan": _yuan, "bool": _bool, "date": _date,
    "datetime": _datetime, "id_number": _id_number, "enum": _enum, "categories": _categories,
}
