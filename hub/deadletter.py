"""The one dead-letter helper (死信): every connector and processor builds dead letters here.

Why one helper: a dead letter is only useful if it is complete and safe — the original bytes, why
they failed, and where they came from (source, topic, partition, offset) — and a row rejected at the
edge may hold raw identifiers (an ID number, a name), which must never travel in clear (§1). So the
edge passes its AES-256 key (``HUB_EDGE_KEY``) as ``encrypt_with`` and the original is stored as
``nonce (12 bytes) + AES-GCM ciphertext`` with ``original_encrypted = true`` and ``key_id`` naming
the key (a fingerprint, not the key). The associated data binds the ciphertext to the fields that say
what it is — ``source``, ``reason``, ``topic``, ``partition``, ``offset`` and ``key_id`` — so an original
cannot be pasted into another dead letter, or its reason or location changed, unnoticed. (Records
written before this binding, whose associated data is the source alone, still decrypt.)

The ``event_id`` is deterministic: the same failure redelivered gives the same id, so a consumer of
``hub.dead-letters.v1`` can de-duplicate. When encrypting, it is an HMAC under the edge key rather
than a plain hash, so the id of a short row (say, one ID number) cannot be brute-forced.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.codec import SchemaStore, encode
from hub.errors import ValidationError
from hub.events import DeadLetter
from hub.identity import redact
from hub.timeutil import SHANGHAI

__all__ = ["NONCE_SIZE", "dead_letter", "build_dead_letter", "decrypt_original", "edge_key_bytes", "key_id"]

NONCE_SIZE = 12
_AAD_PREFIX = b"hub.dead-letters.v1|source="
_AAD_V2 = b"hub.dead-letters.v1|aad=2"


def edge_key_bytes(key: str | bytes) -> bytes:
    """The 32-byte AES-256 key from ``Settings.edge_key`` (base64) or raw bytes; a clear error otherwise."""
    if isinstance(key, str):
        try:
            key = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            problem = "is not valid base64 (HUB_EDGE_KEY holds base64 of 32 bytes)"
            raise ValidationError("edge_key", problem) from None
    if len(key) != 32:
        raise ValidationError("edge_key", f"must be 32 bytes (AES-256), found {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """A public fingerprint of an edge key (``k_`` + 16 hex): says which key to decrypt with."""
    return "k_" + hashlib.sha256(b"hub-edge-key-id:" + key).hexdigest()[:16]


def _aad(source: str) -> bytes:
    """Associated data of the first format (source only): kept so older records still decrypt."""
    return _AAD_PREFIX + source.encode("utf-8")


def _aad_v2(source: str, reason: str, topic: str | None, partition: int | None, offset: int | None,
            kid: str) -> bytes:
    """Associated data binding the ciphertext to every field that says what and where it is."""
    fields = [source, reason, topic, partition, offset, kid]
    return _AAD_V2 + b"|" + json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _event_id(original: bytes, source: str, reason: str, topic: str | None, partition: int | None,
              offset: int | None, key: bytes | None) -> str:
    parts = [source, reason, topic or "", "" if partition is None else str(partition),
             "" if offset is None else str(offset)]
    material = "\x1f".join(parts).encode("utf-8") + b"\x1e" + original
    digest = hmac.new(key, material, hashlib.sha256) if key else hashlib.sha256(material)
    return "dl_" + digest.hexdigest()[:32]


def build_dead_letter(original: bytes, source: str, reason: str, detail: str, *, topic: str | None = None,
                      partition: int | None = None, offset: int | None = None, at: datetime | None = None,
                      failed_at: datetime | None = None, encrypt_with: bytes | str | None = None) -> DeadLetter:
    """The ``DeadLetter`` event for a failed record (see ``dead_letter`` for the arguments)."""
    if not isinstance(original, (bytes, bytearray, memoryview)):
        raise TypeError(f"original must be bytes, found {type(original).__name__}")
    original = bytes(original)
    when = (at or datetime.now(SHANGHAI))
    failed = failed_at or when
    if when.tzinfo is None or failed.tzinfo is None:
        raise ValidationError("at", "naive datetime: give a timezone-aware time")
    ekey = edge_key_bytes(encrypt_with) if encrypt_with is not None else None
    stored, kid = original, None
    if ekey is not None:
        nonce = os.urandom(NONCE_SIZE)
        kid = key_id(ekey)
        stored = nonce + AESGCM(ekey).encrypt(nonce, original, _aad_v2(source, reason, topic, partition, offset, kid))
    return DeadLetter(
        event_id=_event_id(original, source, reason, topic, partition, offset, ekey),
        occurred_at=when, source=source, topic=topic, partition=partition, offset=offset, reason=reason,
        detail=redact(detail), original=stored, original_encrypted=ekey is not None, key_id=kid, failed_at=failed,
    )


def dead_letter(original: bytes, source: str, reason: str, detail: str, *, topic: str | None = None,
                partition: int | None = None, offset: int | None = None, key: bytes | str | None = None,
                at: datetime | None = None, failed_at: datetime | None = None,
                encrypt_with: bytes | str | None = None, store: SchemaStore | None = None) -> tuple[bytes, bytes]:
    """``(record key, encoded DeadLetter value)`` for ``hub.dead-letters.v1``.

    ``source`` names who failed (connector or processor); ``reason`` is machine-readable
    (``invalid_input``, ``no_policy``, ``malformed`` …), ``detail`` says what was expected and found
    (never a raw ID number: it is masked here in any case, ``hub.identity.redact``).
    ``topic``/``partition``/``offset`` locate an original read from a topic. ``key`` is the record key
    to use (default: the source, UTF-8, as the topic catalogue says). ``at`` is the event time (default:
    now) and ``failed_at`` when it failed (default: ``at``); the stream processor gives event times for
    both, so a redelivered input gives the same dead letter (policy-spec §8.5), and leaves ``offset`` out
    when the input has an id of its own (a re-sent copy sits at another offset). ``encrypt_with`` is the
    edge key (32 bytes, or the base64 text of ``HUB_EDGE_KEY``): give it whenever the original may hold
    raw identifiers, i.e. always at the edge.
    """
    event = build_dead_letter(original, source, reason, detail, topic=topic, partition=partition,
                              offset=offset, at=at, failed_at=failed_at, encrypt_with=encrypt_with)
    record_key = (key.encode("utf-8") if isinstance(key, str) else key) if key is not None \
        else source.encode("utf-8")
    return record_key, encode(DeadLetter.SCHEMA, event, store=store)


def decrypt_original(record: DeadLetter | Mapping[str, Any], key: bytes | str) -> bytes:
    """The original bytes of a dead letter (decoded record or model), decrypting when encrypted.

    Raises ``ValidationError`` when the key is not the one that encrypted it (``key_id`` differs) or
    the ciphertext was tampered with.
    """
    data = record.model_dump() if isinstance(record, DeadLetter) else dict(record)
    original: bytes = data["original"]
    if not data.get("original_encrypted"):
        return original
    ekey = edge_key_bytes(key)
    if data.get("key_id") and data["key_id"] != key_id(ekey):
        raise ValidationError("key_id", f"encrypted with key {data['key_id']}, not with {key_id(ekey)}")
    if len(original) < NONCE_SIZE + 16:
        raise ValidationError("original", "too short to be nonce + AES-GCM ciphertext")
    aes, nonce, sealed = AESGCM(ekey), original[:NONCE_SIZE], original[NONCE_SIZE:]
    bound = _aad_v2(data["source"], data["reason"], data.get("topic"), data.get("partition"), data.get("offset"),
                    key_id(ekey))
    for aad in (bound, _aad(data["source"])):
        try:
            return aes.decrypt(nonce, sealed, aad)
        except InvalidTag:
            continue
    problem = "AES-GCM authentication failed: wrong key or tampered record"
    raise ValidationError("original", problem)
