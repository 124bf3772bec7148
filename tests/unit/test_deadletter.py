"""hub.deadletter: complete, decodable, and never holding edge originals in clear."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from hub.codec import decode, decode_as
from hub.config import DEV_EDGE_KEY
from hub.deadletter import build_dead_letter, dead_letter, decrypt_original, edge_key_bytes, key_id
from hub.errors import ValidationError
from hub.events import DeadLetter
from hub.timeutil import SHANGHAI

AT = datetime(2024, 3, 5, 10, 0, tzinfo=SHANGHAI)
EDGE_KEY = bytes(range(32))
ROW = "身份证号,姓名\n53010219800715123X,张三\n".encode()


def test_plain_dead_letter_from_a_processor() -> None:
    key, value = dead_letter(b"\x00\x01avro", "settlement", "no_policy", "no policy for region 990000",
                             topic="health.discharges.v1", partition=2, offset=41, at=AT)
    assert key == b"settlement"
    name, record = decode(value)
    assert name == "hub.outputs.DeadLetter"
    assert record["original"] == b"\x00\x01avro" and record["original_encrypted"] is False
    assert record["key_id"] is None
    assert (record["topic"], record["partition"], record["offset"]) == ("health.discharges.v1", 2, 41)
    assert record["reason"] == "no_policy" and record["failed_at"] == AT == record["occurred_at"]
    assert decrypt_original(record, EDGE_KEY) == b"\x00\x01avro"


def test_edge_original_is_encrypted_and_decrypts_with_the_edge_key() -> None:
    key, value = dead_letter(ROW, "file_drop:civil-affairs", "invalid_input", "row 2: check character",
                             key=b"row-2", at=AT, encrypt_with=EDGE_KEY)
    assert key == b"row-2"
    event = decode_as(DeadLetter, value)
    assert event.original_encrypted and event.key_id == key_id(EDGE_KEY)
    assert b"53010219800715123X" not in value and "张三".encode() not in value
    assert len(event.original) == 12 + len(ROW) + 16  # nonce + ciphertext + tag
    assert decrypt_original(event, EDGE_KEY) == ROW
    assert decrypt_original(event.model_dump(), base64.b64encode(EDGE_KEY).decode()) == ROW


def test_settings_edge_key_text_is_accepted() -> None:
    _, value = dead_letter(ROW, "http_ingest", "invalid_input", "x", at=AT, encrypt_with=DEV_EDGE_KEY)
    assert decrypt_original(decode_as(DeadLetter, value), DEV_EDGE_KEY) == ROW


def test_wrong_key_and_tampering_are_detected() -> None:
    event = build_dead_letter(ROW, "file_drop:x", "invalid_input", "x", at=AT, encrypt_with=EDGE_KEY)
    with pytest.raises(ValidationError, match="encrypted with key"):
        decrypt_original(event, bytes(32))
    tampered = event.model_copy(update={"original": event.original[:-1] + bytes([event.original[-1] ^ 1])})
    with pytest.raises(ValidationError, match="authentication failed"):
        decrypt_original(tampered, EDGE_KEY)
    moved = event.model_copy(update={"source": "file_drop:other"})  # bound to its source (AAD)
    with pytest.raises(ValidationError, match="authentication failed"):
        decrypt_original(moved, EDGE_KEY)


def test_event_id_is_deterministic_and_nonce_is_not() -> None:
    a = build_dead_letter(ROW, "s", "invalid_input", "d", offset=3, at=AT, encrypt_with=EDGE_KEY)
    b = build_dead_letter(ROW, "s", "invalid_input", "d", offset=3, at=AT, encrypt_with=EDGE_KEY)
    c = build_dead_letter(ROW, "s", "invalid_input", "d", offset=4, at=AT, encrypt_with=EDGE_KEY)
    assert a.event_id == b.event_id != c.event_id
    assert a.original != b.original  # fresh nonce each time
    plain = build_dead_letter(ROW, "s", "invalid_input", "d", offset=3, at=AT)
    assert plain.event_id != a.event_id  # keyed when encrypting: not a guessable hash of the row


def test_string_record_key_and_default_time() -> None:
    key, value = dead_letter(b"x", "runner", "malformed", "d", key="p_abc")
    assert key == b"p_abc"
    assert decode_as(DeadLetter, value).failed_at.tzinfo is not None


@pytest.mark.parametrize(("bad", "message"), [(b"short", "32 bytes"), ("not base64!", "base64")])
def test_bad_edge_keys(bad: bytes | str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        edge_key_bytes(bad)
    with pytest.raises(ValidationError, match=message):
        dead_letter(ROW, "s", "r", "d", encrypt_with=bad)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValidationError, match="naive"):
        dead_letter(b"x", "s", "r", "d", at=datetime(2024, 1, 1))
