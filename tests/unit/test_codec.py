"""hub.codec: the wire format (Confluent framing + Avro binary, ids derived from schemas/)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import fastavro
import pytest

from hub import codec
from hub.codec import SchemaStore, decode, decode_as, encode, from_json_dict, to_json_dict
from hub.errors import SchemaError, ValidationError
from hub.events import (
    AdmissionRegistered,
    DeadLetter,
    DischargeSettlementRequested,
    EnrollmentChanged,
    Settlement,
)
from hub.timeutil import SHANGHAI

TOKEN = "p_0123456789abcdef0123456789abcdef"
T0 = datetime(2024, 3, 5, 10, 30, 0, 123456, tzinfo=SHANGHAI)


def discharge(**over: object) -> DischargeSettlementRequested:
    base: dict[str, object] = dict(
        event_id="d1@H1", occurred_at=T0, person_token=TOKEN, discharge_id="d1", discharged_at=T0,
        level="L2", in_county=True, referred=False, total_fen=1_234_500, out_of_policy_fen=100_000,
        hospital_code="H530102001",
    )
    base.update(over)
    return DischargeSettlementRequested.model_validate(base)


def test_frame_is_magic_zero_then_big_endian_id_then_avro() -> None:
    event = discharge()
    data = encode(event.SCHEMA, event)
    entry = codec.default_store().entry(event.SCHEMA)
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == entry.schema_id
    body = fastavro.schemaless_reader(io.BytesIO(data[5:]), entry.parsed)
    assert body["discharge_id"] == "d1"


def test_schema_id_is_derived_from_the_folder_alone() -> None:
    """An independent consumer: inline referenced types, canonical form, SHA-256, first 4 bytes."""
    root = codec.default_schemas_dir()
    texts = {p: json.loads(p.read_text(encoding="utf-8")) for p in root.rglob("*.avsc")}
    named = {f"{d['namespace']}.{d['name']}": d for d in texts.values()}

    def inline(node: object, seen: set[str]) -> object:
        if isinstance(node, str) and node in named:
            if node in seen:
                return node
            seen.add(node)
            d = dict(named[node])
            d["name"] = node
            d.pop("namespace")
            if d["type"] == "record":
                d["fields"] = [{**f, "type": inline(f["type"], seen)} for f in d["fields"]]
            return d
        if isinstance(node, list):
            return [inline(b, seen) for b in node]
        if isinstance(node, dict) and node.get("type") == "array":
            return {**node, "items": inline(node["items"], seen)}
        return node

    schema = inline("hub.health.AdmissionRegistered", set())
    canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema))
    expected = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:4], "big") & 0x7FFFFFFF
    data = encode("hub.health.AdmissionRegistered", AdmissionRegistered(
        event_id="a1", occurred_at=T0, person_token=TOKEN, admission_id="A1", hospital_code="H1",
        hospital_level="L1", in_county=True, declared_categories=["monitored", "monitored"], admitted_at=T0))
    assert struct.unpack(">I", data[1:5])[0] == expected
    # the repeated enum reference stays a name in the canonical form (Avro defines a name once)
    assert canonical.count('"name":"hub.common.Category"') == 1


def test_ids_are_stable_across_loads_and_unique() -> None:
    a, b = SchemaStore(), SchemaStore()
    ids = {e.name: e.schema_id for e in a.entries()}
    assert ids == {e.name: e.schema_id for e in b.entries()}
    assert len(set(ids.values())) == len(ids)
    assert all(0 < i < 2**31 for i in ids.values())


def test_round_trip_model_and_dict() -> None:
    event = discharge(reverses=None)
    data = encode(event.SCHEMA, event)
    name, record = decode(data)
    assert name == "hub.health.DischargeSettlementRequested"
    assert record["total_fen"] == 1_234_500 and record["reverses"] is None
    assert record["discharged_at"] == T0 and record["discharged_at"].utcoffset() == timedelta(hours=8)
    assert decode_as(DischargeSettlementRequested, data) == event
    assert encode(event.SCHEMA, record) == data


def test_aware_times_in_any_zone_come_back_equal_in_shanghai() -> None:
    utc_time = datetime(2024, 12, 31, 17, 0, tzinfo=UTC)
    event = discharge(discharged_at=utc_time)
    back = decode_as(DischargeSettlementRequested, encode(event.SCHEMA, event))
    assert back.discharged_at == utc_time
    assert back.discharged_at.tzinfo == SHANGHAI and back.discharged_at.year == 2025


def test_naive_datetime_is_refused_naming_the_field() -> None:
    record = discharge().model_dump()
    record["discharged_at"] = datetime(2024, 3, 5, 10, 0)
    with pytest.raises(ValidationError, match="discharged_at.*naive"):
        encode(DischargeSettlementRequested.SCHEMA, record)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"in_county": "yes"}, "in_county"),
        ({"level": "L9"}, "level"),
        ({"total_fen": 1.5}, "total_fen"),
        ({"unexpected": 1}, "unexpected"),
        ({"hospital_code": None}, "hospital_code"),
    ],
)
def test_record_that_does_not_fit_names_the_field(change: dict[str, object], field: str) -> None:
    record = {**discharge().model_dump(), **change}
    with pytest.raises(ValidationError) as info:
        encode(DischargeSettlementRequested.SCHEMA, record)
    assert info.value.field == f"hub.health.DischargeSettlementRequested.{field}"


def test_missing_field_is_named_and_defaults_fill_in() -> None:
    record = discharge().model_dump()
    del record["total_fen"]
    with pytest.raises(ValidationError, match="total_fen.*missing"):
        encode(DischargeSettlementRequested.SCHEMA, record)
    record = discharge().model_dump()
    del record["reverses"]  # optional: default null
    assert decode(encode(DischargeSettlementRequested.SCHEMA, record))[1]["reverses"] is None


def test_unknown_schema_name() -> None:
    with pytest.raises(SchemaError, match="unknown schema 'hub.health.Nope'"):
        encode("hub.health.Nope", {})


def test_model_of_another_schema_is_refused() -> None:
    with pytest.raises(SchemaError, match="cannot encode"):
        encode("hub.outputs.Settlement", discharge())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:3], "too short"),
        (lambda b: b"\x01" + b[1:], "magic byte is 1"),
        (lambda b: b[:-3], "does not decode"),
        (lambda b: b + b"\x00", "trailing bytes"),
        (lambda b: b"", "too short"),
        (lambda b: None, "tombstone"),
    ],
)
def test_malformed_bytes(mutate: object, message: str) -> None:
    data = encode(DischargeSettlementRequested.SCHEMA, discharge())
    with pytest.raises(ValidationError, match=message) as info:
        decode(mutate(data))  # type: ignore[operator]
    assert info.value.reason == "malformed"


def test_unknown_schema_id() -> None:
    data = encode(DischargeSettlementRequested.SCHEMA, discharge())
    bogus = b"\x00" + struct.pack(">I", 7) + data[5:]
    with pytest.raises(SchemaError, match="unknown schema id 7"):
        decode(bogus)


def test_decode_as_wrong_model() -> None:
    data = encode(DischargeSettlementRequested.SCHEMA, discharge())
    with pytest.raises(SchemaError, match="expected hub.outputs.Settlement"):
        decode_as(Settlement, data)


def test_decode_as_reports_rule_violations_by_field() -> None:
    """Avro cannot say out_of_policy ≤ total; the model does, and decode_as reports it."""
    record = {**discharge().model_dump(), "out_of_policy_fen": 2_000_000}
    data = encode(DischargeSettlementRequested.SCHEMA, record)
    with pytest.raises(ValidationError, match="out_of_policy_fen"):
        decode_as(DischargeSettlementRequested, data)


def _copy_schemas(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    for p in codec.default_schemas_dir().rglob("*.avsc"):
        target = root / p.relative_to(codec.default_schemas_dir())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    return root


def test_older_writer_is_resolved_to_the_current_reader(tmp_path: Path) -> None:
    """Data written with an older EnrollmentChanged (no subsidy_category) reads with today's model."""
    old_root = _copy_schemas(tmp_path)
    path = old_root / "insurance" / "EnrollmentChanged.avsc"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["fields"] = [f for f in doc["fields"] if f["name"] != "subsidy_category"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    old = SchemaStore(old_root)
    record = {"event_id": "e1", "occurred_at": T0, "person_token": TOKEN, "year": 2024, "enrolled": True,
              "insured_region": "530102"}
    data = encode(EnrollmentChanged.SCHEMA, record, store=old)
    current = SchemaStore()
    with pytest.raises(SchemaError, match="unknown schema id"):
        decode(data, store=current)
    current.register(old.entry(EnrollmentChanged.SCHEMA).standalone)
    event = decode_as(EnrollmentChanged, data, store=current)
    assert event.subsidy_category is None and event.year == 2024


def test_hub_schemas_dir_overrides_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy_schemas(tmp_path)
    monkeypatch.setenv("HUB_SCHEMAS_DIR", str(root))
    assert codec.default_schemas_dir() == root
    assert codec.default_store().root == root


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a/X.avsc": "{not json"}, "a/X.avsc: not JSON"),
        ({"a/X.avsc": json.dumps({"type": "record", "name": "X", "namespace": "hub.a", "doc": "d",
                                  "fields": [{"name": "c", "type": "hub.common.Nope", "doc": "d"}]})},
         "unknown type 'hub.common.Nope'"),
        ({"a/X.avsc": json.dumps({"type": "enum", "name": "X", "namespace": "hub.a", "symbols": ["a"]}),
          "b/X.avsc": json.dumps({"type": "enum", "name": "X", "namespace": "hub.a", "symbols": ["b"]})},
         "already defined"),
        ({"a/X.avsc": json.dumps(["null", "string"])}, "one named type"),
    ],
)
def test_bad_schema_folders_are_refused_naming_the_file(files: dict[str, str], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        SchemaStore.from_texts(files)


def test_json_form_round_trip_including_bytes_and_dates() -> None:
    dl = DeadLetter(event_id="dl_1", occurred_at=T0, source="file_drop:x", reason="invalid_input",
                    detail="row 3", original=b"\x00\xff raw", original_encrypted=False, failed_at=T0)
    obj = to_json_dict(dl)
    assert obj["occurred_at"] == "2024-03-05T10:30:00.123456+08:00"
    assert json.loads(json.dumps(obj)) == obj
    assert obj["original"] == base64.b64encode(b"\x00\xff raw").decode()
    assert from_json_dict(DeadLetter.SCHEMA, obj) == dl
    s = Settlement(event_id="s1", occurred_at=T0, person_token=TOKEN, discharge_id="d1", hospital_code="H1",
                   discharge_date=date(2024, 3, 5), year=2024, basic_fen=1, critical_fen=2, assistance_fen=3,
                   top_up_fen=4, patient_fen=5, total_fen=15, actual_ratio_bp=6667, policy_region="530000",
                   policy_name="Yunnan", reverses=None)
    assert to_json_dict(s)["discharge_date"] == "2024-03-05"
    assert from_json_dict(Settlement.SCHEMA, to_json_dict(s)) == s


def test_json_form_errors() -> None:
    obj = to_json_dict(discharge())
    with pytest.raises(ValidationError, match="total_fen"):
        from_json_dict(DischargeSettlementRequested.SCHEMA, {**obj, "total_fen": 5.0})
    with pytest.raises(ValidationError, match="occurred_at"):
        from_json_dict(DischargeSettlementRequested.SCHEMA, {**obj, "occurred_at": "2024-03-05T10:00:00"})
    with pytest.raises(SchemaError):
        from_json_dict("hub.nope.Nope", obj)


def test_person_token_that_is_a_raw_id_number_is_refused_without_echoing_it() -> None:
    obj = to_json_dict(discharge())
    with pytest.raises(ValidationError) as info:
        from_json_dict(DischargeSettlementRequested.SCHEMA, {**obj, "person_token": "11010519491231002X"})
    assert "11010519491231002X" not in str(info.value) and info.value.value is None


def test_other_offsets_are_accepted() -> None:
    t = datetime(2024, 3, 5, 2, 30, tzinfo=timezone(timedelta(hours=-5)))
    data = encode(DischargeSettlementRequested.SCHEMA, discharge(discharged_at=t))
    back = decode_as(DischargeSettlementRequested, data)
    assert back.discharged_at == t
