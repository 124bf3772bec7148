"""The pydantic models in hub.events and the .avsc files in schemas/ cannot drift apart.

Compared programmatically for every event: field names and order, Avro type ↔ Python type (int vs
long by the model's bounds), optionality and defaults, enum names and symbols. Also: every topic of
the catalogue has a schema and a model, and every field and type of the contract is documented.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import AwareDatetime
from pydantic.fields import FieldInfo

from hub import events
from hub.codec import SchemaStore, default_schemas_dir
from hub.topics import CATALOGUE

STORE = SchemaStore()
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def _unwrap(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any], bool]:
    """(bare type, all constraint metadata, optional?) of a field annotation."""
    optional = False
    meta = list(metadata)
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for m in extra:
                meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            assert len(args) == 1, f"only X | None unions are mapped to Avro, found {annotation}"
            optional = True
            annotation = args[0]
            continue
        return annotation, meta, optional


def _bounds(meta: list[Any]) -> tuple[int | None, int | None]:
    lows = [m.ge for m in meta if isinstance(m, annotated_types.Ge)]
    highs = [m.le for m in meta if isinstance(m, annotated_types.Le)]
    return (max(lows) if lows else None, min(highs) if highs else None)


def _assert_type_matches(where: str, avro: Any, py: Any, meta: list[Any], named: dict[str, Any]) -> None:
    if isinstance(avro, str) and avro in named:
        avro = named[avro]
    if isinstance(avro, dict) and avro.get("type") == "enum":
        named[avro["name"]] = avro
        assert isinstance(py, type) and issubclass(py, StrEnum), f"{where}: Avro enum, model has {py}"
        assert py.__name__ == avro["name"].rsplit(".", 1)[-1], f"{where}: enum name {py.__name__} vs {avro['name']}"
        assert [m.value for m in py] == avro["symbols"], f"{where}: enum symbols differ"
        return
    if isinstance(avro, dict) and avro.get("type") == "array":
        assert typing.get_origin(py) is list, f"{where}: Avro array, model has {py}"
        (item,) = typing.get_args(py)
        item_type, item_meta, item_opt = _unwrap(item, [])
        assert not item_opt
        _assert_type_matches(where + "[]", avro["items"], item_type, item_meta, named)
        return
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical == "timestamp-micros":
            aware = py is AwareDatetime or (isinstance(py, type) and issubclass(py, datetime))
            assert aware, f"{where}: timestamp, model has {py}"
            return
        if logical == "date":
            assert py is date, f"{where}: date, model has {py}"
            return
        assert logical is None, f"{where}: unmapped logical type {logical}"
        avro = avro["type"]
    simple = {"string": str, "boolean": bool, "bytes": bytes, "int": int, "long": int}
    assert avro in simple, f"{where}: unmapped Avro type {avro}"
    assert py is simple[avro], f"{where}: Avro {avro}, model has {py}"
    if avro in ("int", "long"):
        low, high = _bounds(meta)
        lo_lim, hi_lim = INT32 if avro == "int" else INT64
        assert low is not None and high is not None, f"{where}: an integer field needs bounds (Int or Long)"
        assert low >= lo_lim and high <= hi_lim, f"{where}: bounds {low}..{high} exceed Avro {avro}"
        if avro == "long":
            assert high > INT32[1], f"{where}: Avro long but the model bounds it like an int"


@pytest.mark.parametrize("schema_name", sorted(events.MODELS))
def test_model_and_schema_agree(schema_name: str) -> None:
    model = events.MODELS[schema_name]
    avsc = STORE.entry(schema_name).standalone
    assert avsc["name"] == model.SCHEMA
    avro_fields = avsc["fields"]
    assert list(model.model_fields) == [f["name"] for f in avro_fields], "field names or order differ"
    named: dict[str, Any] = {}
    for f in avro_fields:
        where = f"{schema_name}.{f['name']}"
        info = model.model_fields[f["name"]]
        py, meta, optional = _unwrap(info.annotation, info.metadata)
        avro_type = f["type"]
        avro_optional = isinstance(avro_type, list)
        assert optional == avro_optional, f"{where}: optional in one, required in the other"
        if avro_optional:
            assert avro_type[0] == "null" and len(avro_type) == 2, f"{where}: optional must be [null, T]"
            assert f.get("default", "missing") is None and info.default is None, f"{where}: default null"
            avro_type = avro_type[1]
        elif "default" in f:
            assert info.get_default(call_default_factory=True) == f["default"], f"{where}: defaults differ"
        else:
            assert info.is_required(), f"{where}: required in Avro, has a default in the model"
        _assert_type_matches(where, avro_type, py, meta, named)


def test_every_topic_has_a_schema_and_a_model() -> None:
    for topic in CATALOGUE:
        assert topic.schema in STORE.names(), f"{topic.name}: no .avsc for {topic.schema}"
        assert topic.name == events.MODELS[topic.schema].TOPIC
        assert topic.schema == events.model_for_topic(topic.name).SCHEMA
    records = {n for n in STORE.names() if STORE.entry(n).standalone["type"] == "record"}
    assert records == set(events.MODELS), "a record schema without a model, or a model without a schema"


def test_every_event_has_id_time_and_key() -> None:
    for name, model in events.MODELS.items():
        fields = list(model.model_fields)
        assert fields[:2] == ["event_id", "occurred_at"], name
        assert {"person_token", "facility_code", "subject", "source"} & set(fields), f"{name}: no key field"


def _walk_docs(node: Any, where: str, missing: list[str]) -> None:
    if isinstance(node, list):
        for b in node:
            _walk_docs(b, where, missing)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed") and not node.get("doc"):
            missing.append(f"{where}: type {node.get('name')}")
        for f in node.get("fields", []):
            if not f.get("doc"):
                missing.append(f"{where}: field {f['name']}")
            _walk_docs(f["type"], where, missing)
        for key in ("items", "values"):
            _walk_docs(node.get(key), where, missing)


def test_every_field_and_type_is_documented() -> None:
    missing: list[str] = []
    for path in sorted(Path(default_schemas_dir()).rglob("*.avsc")):
        _walk_docs(json.loads(path.read_text(encoding="utf-8")), path.name, missing)
    assert not missing


def test_files_are_grouped_by_namespace() -> None:
    for entry in STORE.entries():
        folder = entry.path.split("/")[0]
        assert entry.name.split(".")[1] == folder, f"{entry.path} holds {entry.name}"
        assert entry.path.endswith(entry.name.rsplit(".", 1)[1] + ".avsc")


def test_money_fields_are_long_and_named_fen() -> None:
    for name in events.MODELS:
        for f in STORE.entry(name).standalone["fields"]:
            t = f["type"][1] if isinstance(f["type"], list) else f["type"]
            if f["name"].endswith("_fen"):
                assert t == "long", f"{name}.{f['name']} must be long fen"


@pytest.mark.parametrize(
    ("avro", "py", "meta"),
    [
        ("long", int, [annotated_types.Ge(-(2**31)), annotated_types.Le(2**31 - 1)]),  # int bounds on a long
        ("int", int, []),  # unbounded int
        ("string", bytes, []),
        ({"type": "enum", "name": "hub.common.HospitalLevel", "symbols": ["L1", "L2"]}, events.HospitalLevel, []),
        ({"type": "long", "logicalType": "timestamp-micros"}, date, []),
    ],
)
def test_the_comparison_catches_drift(avro: Any, py: Any, meta: list[Any]) -> None:
    with pytest.raises(AssertionError):
        _assert_type_matches("x", avro, py, meta, {})
