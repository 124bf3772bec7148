"""The hub's one wire format: Confluent framing around Avro binary, schema ids derived from schemas/.

Wire format of every record value on every hub topic::

    byte 0      magic byte 0x00                      (Confluent wire format)
    bytes 1-4   schema id, unsigned 32-bit big-endian
    bytes 5-    Avro binary encoding of the record   (no container header, no sync markers)

Schema ids (embedded default, no registry server): the id of a schema is the first 4 bytes, read
as a big-endian unsigned integer with the top bit cleared, of the SHA-256 fingerprint of the
schema's Avro *Parsing Canonical Form* (Avro spec, "Schema Fingerprints"). The schema fingerprinted
is the ``.avsc`` file made standalone: each named type it references by full name (for instance
``hub.common.Category`` from ``schemas/common/Category.avsc``) is written out in full at its first
occurrence in document order, and later occurrences stay references, as Avro requires. So any
consumer that has only ``schemas/`` and the bytes can rebuild the id → schema table without this
code, and a Confluent-compatible registry can be loaded with the same ids (they fit the positive
int32 range registries use). Two schemas whose ids collide are refused when the store loads.

Why a fingerprint, not a counter: the id is a pure function of the contract, so producers and
consumers that never talk to each other agree on it, and an edited schema gets a new id at once.
The price is that a consumer decoding data written with an *older* version of a schema needs that
version: ``SchemaStore.register`` adds extra writer schemas (``hub.schemacheck`` reads old versions
from git), and ``decode_as`` resolves writer → reader with Avro schema resolution.

Times: ``timestamp-micros`` fields take timezone-aware ``datetime`` (naive ones are refused, they
are ambiguous) and come back aware, in Asia/Shanghai; ``date`` fields are ``datetime.date``.

JSON form (``hub replay`` and fixtures): ``to_json_dict`` / ``from_json_dict`` use the event
models' JSON form — ISO-8601 times with offset, enums as their symbols, bytes as base64.

Errors: an unknown schema name or id, or a schema folder that does not load → ``SchemaError``;
bytes that are not this format (bad magic byte, truncated or trailing bytes, an Avro body that does
not decode) → ``ValidationError`` with reason ``malformed``; a record that does not fit its schema →
``ValidationError`` naming the field.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema, to_parsing_canonical_form
from fastavro.validation import validate as avro_validate

from hub.errors import SchemaError, ValidationError
from hub.events import MODELS
from hub.timeutil import SHANGHAI

__all__ = [
    "MAGIC", "HEADER_SIZE", "SchemaEntry", "SchemaStore", "default_store", "default_schemas_dir",
    "schema_id_for", "encode", "decode", "decode_as", "peek_schema_id", "to_json_dict", "from_json_dict",
]

MAGIC = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_TIMESTAMPS = frozenset({"timestamp-micros", "timestamp-millis"})

M = TypeVar("M", bound=pydantic.BaseModel)


_CHECKOUT_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
_INSTALLED_SCHEMAS = Path(__file__).resolve().parent / "schemas"
"""Where the wheel puts the contract (setup.py copies schemas/ there): an installed hub has no checkout."""


def default_schemas_dir() -> Path:
    """``HUB_SCHEMAS_DIR`` when set, else the checkout's ``schemas/`` next to the ``hub`` package, else the
    copy inside the installed package (``hub/schemas``, put there by the wheel build)."""
    env = os.environ.get("HUB_SCHEMAS_DIR")
    if env:
        return Path(env)
    return _CHECKOUT_SCHEMAS if _CHECKOUT_SCHEMAS.is_dir() else _INSTALLED_SCHEMAS


def schema_id_for(canonical_form: str) -> int:
    """The schema id of a Parsing Canonical Form: SHA-256, first 4 bytes big-endian, top bit cleared."""
    digest = hashlib.sha256(canonical_form.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class SchemaEntry:
    """One loaded schema: its standalone JSON, fastavro's parsed form, canonical form and id."""

    name: str
    path: str
    standalone: dict[str, Any]
    parsed: Any
    canonical: str
    fingerprint: str
    schema_id: int
    header: bytes
    timestamp_fields: tuple[str, ...]
    field_names: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    field_set: frozenset[str] = frozenset()
    """``field_names`` as a set: every encode checks a record's keys against it."""


# ---------------------------------------------------------------- schema folder → standalone schemas


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _namespace_of(fullname: str) -> str | None:
    return fullname.rpartition(".")[0] or None


def _collect_named(node: Any, namespace: str | None, where: str,
                   out: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Record every named type defined anywhere in ``node`` (top level or nested) by full name."""
    if isinstance(node, list):
        for branch in node:
            _collect_named(branch, namespace, where, out)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in _NAMED:
        if not isinstance(node.get("name"), str):
            raise SchemaError(f"{where}: a {kind} needs a string 'name'")
        full = _fullname(node["name"], node.get("namespace") or namespace)
        if full in out and out[full][0] != where:
            raise SchemaError(f"{where}: {full} is already defined in {out[full][0]}; define a name once")
        out[full] = (where, node)
        namespace = _namespace_of(full)
        for fld in node.get("fields", []) if kind in ("record", "error") else []:
            _collect_named(fld.get("type"), namespace, where, out)
    elif kind == "array":
        _collect_named(node.get("items"), namespace, where, out)
    elif kind == "map":
        _collect_named(node.get("values"), namespace, where, out)
    elif isinstance(kind, (dict, list)):
        _collect_named(kind, namespace, where, out)


def _standalone(node: Any, namespace: str | None, defs: Mapping[str, tuple[str, dict[str, Any]]],
                seen: set[str], where: str) -> Any:
    """``node`` with each referenced named type inlined at its first occurrence (names made full)."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = _fullname(node, namespace)
        if full in seen:
            return full
        if full not in defs:
            raise SchemaError(f"{where}: unknown type {node!r} (no .avsc in the folder defines {full})")
        return _standalone(defs[full][1], _namespace_of(full), defs, seen, where)
    if isinstance(node, list):
        return [_standalone(b, namespace, defs, seen, where) for b in node]
    if not isinstance(node, dict):
        raise SchemaError(f"{where}: not an Avro schema element: {node!r}")
    kind = node.get("type")
    out = {k: v for k, v in node.items() if k != "namespace"}
    if kind in _NAMED:
        full = _fullname(node["name"], node.get("namespace") or namespace)
        seen.add(full)
        out["name"] = full
        inner = _namespace_of(full)
        if kind in ("record", "error"):
            out["fields"] = [
                {**fld, "type": _standalone(fld.get("type"), inner, defs, seen, where)}
                for fld in node.get("fields", [])
            ]
    elif kind == "array":
        out["items"] = _standalone(node.get("items"), namespace, defs, seen, where)
    elif kind == "map":
        out["values"] = _standalone(node.get("values"), namespace, defs, seen, where)
    elif isinstance(kind, (str, list, dict)) and kind not in _PRIMITIVES:
        return _standalone(kind, namespace, defs, seen, where)
    return out


def _timestamp_fields(standalone: dict[str, Any]) -> tuple[str, ...]:
    """Top-level fields holding a timestamp (alone or in a union): converted to Shanghai on decode."""

    def is_ts(t: Any) -> bool:
        if isinstance(t, list):
            return any(is_ts(b) for b in t)
        return isinstance(t, dict) and t.get("logicalType") in _TIMESTAMPS

    return tuple(f["name"] for f in standalone.get("fields", []) if is_ts(f.get("type")))


def _make_entry(name: str, path: str, standalone: dict[str, Any]) -> SchemaEntry:
    try:
        parsed = parse_schema(copy.deepcopy(standalone))
        canonical = to_parsing_canonical_form(parsed)
    except Exception as exc:  # fastavro raises several kinds; all mean "this schema is invalid"
        raise SchemaError(f"{path}: invalid Avro schema {name}: {exc}") from exc
    schema_id = schema_id_for(canonical)
    return SchemaEntry(
        name=name, path=path, standalone=standalone, parsed=parsed, canonical=canonical,
        fingerprint=hashlib.sha256(canonical.encode("utf-8")).hexdigest(), schema_id=schema_id,
        header=_HEADER.pack(MAGIC, schema_id), timestamp_fields=_timestamp_fields(standalone),
        field_names=tuple(f["name"] for f in standalone.get("fields", [])),
        defaults={f["name"]: f["default"] for f in standalone.get("fields", []) if "default" in f},
        field_set=frozenset(f["name"] for f in standalone.get("fields", [])),
    )


class SchemaStore:
    """All schemas of a ``schemas/`` folder, parsed once, addressable by full name and by schema id.

    Each ``.avsc`` file holds one named type (a record, or a shared enum in ``schemas/common/``);
    references between files are by full name. Loading is strict: an unparsable file, a name defined
    twice, an unknown reference or an id collision is a ``SchemaError`` naming the file.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_schemas_dir()
        if not self.root.is_dir():
            raise SchemaError(
                f"schema folder {self.root} does not exist (set HUB_SCHEMAS_DIR to the schemas/ folder)"
            )
        texts = {
            p.relative_to(self.root).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(self.root.rglob("*.avsc"))
        }
        self._load(texts)

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], root: Path | str = "<memory>") -> SchemaStore:
        """A store from ``{relative path: .avsc text}`` — how ``hub.schemacheck`` loads a git revision."""
        store = cls.__new__(cls)
        store.root = Path(root)
        store._load(dict(texts))
        return store

    def _load(self, texts: Mapping[str, str]) -> None:
        raw: dict[str, dict[str, Any]] = {}
        for path, text in sorted(texts.items()):
            try:
                doc = json.loads(text)
            except ValueError as exc:
                raise SchemaError(f"{path}: not JSON: {exc}") from exc
            if not isinstance(doc, dict) or doc.get("type") not in _NAMED:
                raise SchemaError(f"{path}: a schema file must hold one named type (record, enum or fixed)")
            raw[path] = doc
        defs: dict[str, tuple[str, dict[str, Any]]] = {}
        for path, doc in raw.items():
            _collect_named(doc, None, path, defs)
        self._by_name: dict[str, SchemaEntry] = {}
        self._by_id: dict[int, SchemaEntry] = {}
        for path, doc in raw.items():
            name = _fullname(doc["name"], doc.get("namespace"))
            entry = _make_entry(name, path, _standalone(doc, None, defs, set(), path))
            self._by_name[name] = entry
            self._add_id(entry)

    def _add_id(self, entry: SchemaEntry) -> None:
        other = self._by_id.get(entry.schema_id)
        if other is not None and other.canonical != entry.canonical:
            raise SchemaError(
                f"{entry.path}: schema id {entry.schema_id} of {entry.name} collides with {other.name} "
                f"({other.path}); change either schema's doc-free content (e.g. a namespace) to separate them"
            )
        self._by_id.setdefault(entry.schema_id, entry)

    def names(self) -> list[str]:
        """Full names of every schema in the folder, sorted."""
        return sorted(self._by_name)

    def entries(self) -> Iterable[SchemaEntry]:
        return (self._by_name[n] for n in self.names())

    def entry(self, name: str) -> SchemaEntry:
        """The current schema of ``name``; ``SchemaError`` listing the known names otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(
                f"unknown schema {name!r} in {self.root}; known: {', '.join(self.names())}"
            ) from None

    def by_id(self, schema_id: int) -> SchemaEntry:
        """The writer schema of an id (current or registered), ``SchemaError`` when unknown."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise SchemaError(
                f"unknown schema id {schema_id} (0x{schema_id:08x}): not a schema in {self.root} nor a "
                f"registered older version; was it written with a newer or older schemas/?"
            ) from None

    def register(self, standalone: Mapping[str, Any], path: str = "<registered>") -> int:
        """Add an extra *writer* schema (an older version, already standalone); returns its id.

        It becomes decodable by id; ``entry(name)`` keeps returning the current version.
        """
        doc = dict(standalone)
        name = _fullname(str(doc.get("name")), doc.get("namespace"))
        entry = _make_entry(name, path, doc)
        self._add_id(entry)
        return entry.schema_id


@lru_cache(maxsize=8)
def _store_for(env_dir: str | None) -> SchemaStore:
    return SchemaStore(Path(env_dir) if env_dir else default_schemas_dir())


def default_store() -> SchemaStore:
    """The store of ``default_schemas_dir()``, loaded once per folder and shared (hot path: cheap)."""
    return _store_for(os.environ.get("HUB_SCHEMAS_DIR") or None)


# ---------------------------------------------------------------- encode / decode


def _describe(schema: Any) -> str:
    """A short human description of an Avro type, for error messages (no docs, no whole schemas)."""
    if isinstance(schema, list):
        return " or ".join(_describe(b) for b in schema)
    if not isinstance(schema, dict):
        return str(schema)
    kind = schema.get("type")
    if kind == "enum":
        return f"one of {schema.get('symbols')}"
    if kind == "array":
        return f"an array of {_describe(schema.get('items'))}"
    if kind == "map":
        return f"a map of {_describe(schema.get('values'))}"
    if kind in _NAMED:
        return f"a {schema.get('name')} {kind}"
    if "logicalType" in schema:
        return f"{kind} ({schema['logicalType']})"
    return _describe(kind)


def _check_fit(entry: SchemaEntry, record: Any) -> Mapping[str, Any]:
    """``record`` with absent defaulted fields filled in, or a ValidationError naming the misfit field.

    Why before writing: fastavro's writer is lax (any truthy value is written as ``true``, a float as
    a truncated long), so an unvalidated dict could be encoded as something its producer never meant.
    """
    if not isinstance(record, Mapping):
        raise ValidationError(entry.name, f"expected a record (mapping), found {type(record).__name__}")
    names = entry.field_set
    if not names.issuperset(record):
        extra = [k for k in record if k not in names]
        raise ValidationError(f"{entry.name}.{extra[0]}", f"not a field of {entry.name}; known: "
                              f"{', '.join(entry.field_names)}")
    for name in entry.timestamp_fields:
        ts = record.get(name)
        if isinstance(ts, datetime) and ts.tzinfo is None:
            raise ValidationError(f"{entry.name}.{name}",
                                  "naive datetime: give a timezone-aware time (e.g. +08:00)")
    if len(record) != len(names):  # keys ⊆ fields, so equal sizes mean every field is there
        missing = [f for f in entry.field_names if f not in record and f not in entry.defaults]
        if missing:
            raise ValidationError(f"{entry.name}.{missing[0]}", "required field is missing")
        absent = [f for f in entry.defaults if f not in record]
        if absent:
            record = {**{f: copy.deepcopy(entry.defaults[f]) for f in absent}, **record}
    try:
        avro_validate(record, entry.parsed, raise_errors=True, strict=False)
    except Exception as verr:  # fastavro.validation.ValidationError: .errors carry each problem's path
        for err in getattr(verr, "errors", ()):
            path = str(getattr(err, "field", "") or "")
            datum = err.datum
            if isinstance(datum, Mapping) and not path.removeprefix(entry.name):
                continue  # a record-level complaint; the field-level one follows
            field = path.removeprefix(entry.name + ".") or "<record>"
            shown = datum if isinstance(datum, (int, float, bool, type(None))) or len(str(datum)) <= 40 \
                else f"{str(datum)[:40]}…"
            raise ValidationError(f"{entry.name}.{field}",
                                  f"expected {_describe(err.schema)}, found {type(datum).__name__} {shown!r}",
                                  datum if field != "person_token" else None) from None
        raise ValidationError(entry.name, f"record does not fit schema {entry.name}: {verr}") from None
    return record


def encode(schema_name: str, value: Mapping[str, Any] | pydantic.BaseModel, *,
           store: SchemaStore | None = None, validate: bool = True) -> bytes:
    """Frame and Avro-encode ``value`` (a dict or an event model) with the current ``schema_name``.

    A model was validated when it was built, so it is written directly; a dict is checked first, unless the
    caller built it itself from typed values (``validate=False``: the person processor's outputs, ≈10 µs
    each saved; the reference tests decode and compare every one of them).
    """
    entry = (store or default_store()).entry(schema_name)
    if isinstance(value, pydantic.BaseModel):
        model_schema = getattr(value, "SCHEMA", schema_name)
        if model_schema != schema_name:
            raise SchemaError(f"cannot encode a {type(value).__name__} ({model_schema}) as {schema_name}")
        record: Any = value.model_dump()
    elif validate:
        record = _check_fit(entry, value)
    else:
        record = value
    buf = io.BytesIO()
    buf.write(entry.header)
    try:
        schemaless_writer(buf, entry.parsed, record, strict=True, strict_allow_default=True)
    except Exception as exc:  # fastavro raises TypeError/ValueError/KeyError here
        raise ValidationError(entry.name, f"record does not fit schema {entry.name}: {exc}") from exc
    return buf.getvalue()


def peek_schema_id(data: bytes) -> int:
    """The schema id of framed bytes, checking the magic byte and length."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        what = "None (a tombstone?)" if data is None else type(data).__name__
        raise ValidationError("wire", f"expected bytes, found {what}", reason="malformed")
    if len(data) < HEADER_SIZE:
        raise ValidationError(
            "wire", f"{len(data)} bytes: too short for the 5-byte header (magic + schema id)",
            reason="malformed",
        )
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValidationError("wire", f"magic byte is {magic}, expected 0 (Confluent framing + Avro binary)",
                              reason="malformed")
    return schema_id


def _read(data: bytes, writer: SchemaEntry, reader: SchemaEntry | None) -> dict[str, Any]:
    bio = io.BytesIO(data)
    bio.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(bio, writer.parsed, reader.parsed if reader is not None else None)
    except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, SchemaResolutionError …
        raise ValidationError(
            "wire", f"Avro body of {writer.name} (id {writer.schema_id}) does not decode: "
            f"{type(exc).__name__}: {exc}", reason="malformed",
        ) from exc
    if bio.tell() != len(data):
        raise ValidationError(
            "wire", f"{len(data) - bio.tell()} trailing bytes after the {writer.name} record",
            reason="malformed",
        )
    if not isinstance(record, dict):
        raise ValidationError("wire", f"{writer.name} is not a record schema", reason="malformed")
    for name in (reader or writer).timestamp_fields:
        ts = record.get(name)
        if isinstance(ts, datetime):
            record[name] = ts.astimezone(SHANGHAI)
    return record


def decode(data: bytes, *, store: SchemaStore | None = None) -> tuple[str, dict[str, Any]]:
    """Decode framed bytes with their writer schema: ``(schema full name, record dict)``."""
    writer = (store or default_store()).by_id(peek_schema_id(data))
    return writer.name, _read(data, writer, None)


def _pydantic_to_hub(model_cls: type[pydantic.BaseModel], exc: pydantic.ValidationError) -> ValidationError:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "<record>"
    value = err.get("input")
    if field == "person_token" or not isinstance(value, (str, int, float, bool, type(None))):
        value = None  # never echo a possible raw ID number, nor whole records
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ValidationError(f"{getattr(model_cls, 'SCHEMA', model_cls.__name__)}.{field}",
                           f"{err.get('msg')}{more}", value)


def decode_as(model_cls: type[M], data: bytes, *, store: SchemaStore | None = None) -> M:
    """Decode into ``model_cls``, resolving an older writer schema to the model's current schema."""
    st = store or default_store()
    target = getattr(model_cls, "SCHEMA", "")
    writer = st.by_id(peek_schema_id(data))
    if writer.name != target:
        raise SchemaError(f"bytes hold a {writer.name} (id {writer.schema_id}), expected {target}")
    reader = st.entry(target)
    record = _read(data, writer, None if reader.schema_id == writer.schema_id else reader)
    try:
        return model_cls.model_validate(record)
    except pydantic.ValidationError as exc:
        raise _pydantic_to_hub(model_cls, exc) from exc


# ---------------------------------------------------------------- JSON form


def to_json_dict(model: pydantic.BaseModel) -> dict[str, Any]:
    """An event in its JSON form (ISO times with offset, enum symbols, base64 bytes)."""
    return model.model_dump(mode="json")


def from_json_dict(schema_name: str, obj: Mapping[str, Any]) -> pydantic.BaseModel:
    """Build the event model of ``schema_name`` from its JSON form, validated (``hub replay``)."""
    try:
        model_cls = MODELS[schema_name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise SchemaError(f"no event model for schema {schema_name!r}; known: {known}") from None
    try:
        return model_cls.model_validate_json(json.dumps(obj))
    except pydantic.ValidationError as exc:
        raise _pydantic_to_hub(model_cls, exc) from exc
    except (TypeError, ValueError) as exc:
        raise ValidationError(schema_name, f"not a JSON value: {exc}") from exc
