"""http_ingest — departments POST events as JSON; the hub answers once the event is safely stored.

Overview
    For systems that can call out but cannot be read (a hospital HIS sending discharges at the
    cashier, a department's case system answering referrals). One instance serves one topic.

How it works
    ``POST /v1/events`` with ``Authorization: Bearer <token>`` and a JSON object (or a list of
    them) holding the event fields of the topic's schema. ``id_number`` may be sent instead of
    ``person_token``: it is validated and pseudonymised here, and never stored. ``event_id`` may be
    omitted: it is then derived from the sender and the body, so a retried POST is the same event.
    The body is validated against the event model; the answer waits until the runner has written
    the event to the hub (``202`` with the event ids) or the rejection to the dead-letter topic
    (``422`` with ``{"errors": [{"field", "problem"}]}``). ``GET /healthz`` answers 200.

    Each token belongs to one sender, and the sender is taken from the token, never from the body:
    with ``sender_field`` set (``department`` for referral updates, ``hospital_code`` for discharges)
    the field is filled from the token, and a body naming another sender is refused (403). A referral
    update must answer a referral addressed to the token's department (``FLAG_ID/DEPARTMENT/TYPE``,
    403 otherwise), so the charity cannot move a civil-affairs referral.

    Bounds: a body is at most ``max_body_bytes`` (413), nested at most 32 levels and a list of at most
    ``max_items`` events (413, one dead letter for the whole body); items of a list are awaited together.
    Answers never repeat what was sent: 4xx bodies name known fields and problems only.

Behaviour when things go wrong
    Wrong or missing token → 401 (nothing stored). Invalid body → 422 and a dead letter (original
    encrypted). Broker slow → the sender waits up to ``answer_timeout_seconds`` then gets 503 and
    retries; the retry has the same event id, so a duplicate is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic
from aiohttp import web
from pydantic import Field

from connectors.sdk.base import SourceConnector
from connectors.sdk.config import SourceConfig
from connectors.sdk.mapping import event_id
from connectors.sdk.records import Rejected, SourceOffset, SourceRecord
from hub import events, identity
from hub.errors import ValidationError as HubValidationError
from hub.safejson import JsonRefused, loads_bounded
from hub.topics import BY_NAME

log = logging.getLogger(__name__)
REFERRAL_UPDATES = "department.referral-updates.v1"


class HttpIngestConfig(SourceConfig):
    """Settings of http_ingest."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 behind a TLS proxy)")
    port: int = Field(8090, ge=0, le=65535, description="port to listen on (0 = any free port)")
    tokens: dict[str, str] = Field(min_length=1, description="sender name → bearer token (use ${ENV})")
    sender_field: str | None = Field(None, description="body field that must equal the token's sender")
    answer_timeout_seconds: float = Field(30.0, gt=0, description="longest wait for the hub before 503")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger requests are refused (413)")
    max_items: int = Field(100, ge=1, le=10_000, description="most events in one request (a JSON list); more: 413")
    poll_interval_seconds: float = Field(0.05, gt=0, description="runner wait between empty polls")


class HttpIngestSource(SourceConnector):
    """An aiohttp server feeding the runner through a queue (see module docstring)."""

    config_model = HttpIngestConfig
    config: HttpIngestConfig

    def start(self, offsets: Mapping[str, Mapping[str, Any]]) -> None:
        super().start(offsets)
        self.queue: queue.Queue[SourceRecord | Rejected] = queue.Queue()
        self.model = events.model_for(self.config.schema_name)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name=self.config.name)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"http_ingest {self.config.name}: server did not start")

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post("/v1/events", self._post)
        app.router.add_get("/healthz", lambda _r: _healthz())
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is None or loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()

    def poll(self) -> Iterator[tuple[SourceRecord | Rejected, SourceOffset | None]]:
        """Hand over what senders posted; the HTTP answers go out after the runner commits."""
        while True:
            try:
                yield self.queue.get(timeout=0.05), None
            except queue.Empty:
                return

    # -- HTTP ----------------------------------------------------------------------------
    def _sender(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        for sender, expected in self.config.tokens.items():
            if token and hmac.compare_digest(token.encode(), expected.encode()):
                return sender
        return None

    async def _post(self, request: web.Request) -> web.Response:
        sender = self._sender(request)
        if sender is None:
            return web.json_response({"error": "missing or unknown bearer token"}, status=401)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": f"body larger than {self.config.max_body_bytes} bytes"}, status=413)
        try:
            body = loads_bounded(raw, max_bytes=self.config.max_body_bytes)
        except JsonRefused as exc:
            status = 413 if exc.limit in ("depth", "size") else 422
            reason = "invalid_input" if status == 422 else "request_too_large"
            _, answer = await self._reject(raw, reason, [{"field": "<body>", "problem": exc.problem}])
            return web.json_response(answer, status=status)
        items = body if isinstance(body, list) else [body]
        if len(items) > self.config.max_items:
            problem = f"{len(items)} events in one request; at most {self.config.max_items}"
            _, answer = await self._reject(raw, "request_too_large", [{"field": "<body>", "problem": problem}])
            return web.json_response(answer, status=413)
        results = await asyncio.gather(*(self._one(item, sender) for item in items))
        status = max(r[0] for r in results) if results else 422
        if len(results) == 1:
            return web.json_response(results[0][1], status=status)
        return web.json_response({"results": [r[1] for r in results]}, status=207 if len({r[0] for r in results}) > 1
                                 else status)

    async def _one(self, item: Any, sender: str) -> tuple[int, dict[str, Any]]:
        original = json.dumps(item, ensure_ascii=False, sort_keys=True).encode()
        if not isinstance(item, dict):
            return await self._reject(original, "invalid_input", [{"field": "<body>", "problem": "expected an object"}])
        refused = self._not_yours(item, sender)
        if refused is not None:  # recorded (encrypted) like any reject: an attempt to act for another
            log.warning("%s: sender %s refused: %s", self.config.name, sender, refused["problem"])
            _, answer = await self._reject(original, "forbidden_sender", [refused])
            return 403, answer
        try:
            value = self._validate(dict(item), sender)
        except _Invalid as exc:
            return await self._reject(original, exc.reason, exc.errors)
        key_field = "person_token" if "person_token" in value else BY_NAME[self.config.topic].key
        record = SourceRecord(value=value, key=str(value.get(key_field)), original=original)
        return await self._wait(record, {"event_id": value["event_id"]})

    def _not_yours(self, item: dict[str, Any], sender: str) -> dict[str, str] | None:
        """Who may send this: the sender is the token's; the body may only repeat it (403 otherwise)."""
        sf = self.config.sender_field
        if sf:
            if item.get(sf) is None:
                item[sf] = sender
            elif item[sf] != sender:
                return {"field": sf, "problem": "names another sender than the token's; send only your own records"}
        if self.config.topic == REFERRAL_UPDATES and sf == "department":
            rid = item.get("referral_id")
            if isinstance(rid, str) and rid and sender not in events.referral_addressees(rid):
                return {"field": "referral_id", "problem": "the referral is not addressed to your department"}
        return None

    def _validate(self, item: dict[str, Any], sender: str) -> dict[str, Any]:
        """Pseudonymise, fill a deterministic event id, and check the event model (422 details)."""
        if "id_number" in item:
            try:
                number = identity.validate_id_number(str(item.pop("id_number")))
            except HubValidationError as exc:
                raise _Invalid("invalid_id_number", [{"field": "id_number", "problem": exc.problem}]) from None
            item["person_token"] = identity.person_token(number, self.context.pseudonym_key)
        item.setdefault("event_id", event_id(f"{self.config.source_id}:{sender}", [], item,
                                             key=self.context.pseudonym_key))
        try:
            return self.model.model_validate(item).model_dump(mode="json")
        except pydantic.ValidationError as exc:  # field errors, never echoing the input value
            raise _Invalid("invalid_input", field_errors(self.model, exc)) from None

    async def _wait(self, record: SourceRecord, ok: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Queue the event for the runner; answer 202 once it is on the hub."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, dict[str, Any]]] = loop.create_future()

        def settle(result: tuple[int, dict[str, Any]]) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(result))

        record.on_delivered = lambda: settle((202, ok))
        record.on_failed = lambda detail: settle((422, {"errors": [{"field": "<event>", "problem": detail}]}))
        self.queue.put(record)
        try:
            return await asyncio.wait_for(done, self.config.answer_timeout_seconds)
        except TimeoutError:
            return 503, {"error": "the hub did not confirm in time; retry (the event id makes a retry safe)"}

    async def _reject(self, original: bytes, reason: str, errors: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
        """Dead-letter the body (encrypted by the runner), then answer 422 with the field errors."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)[:2000]
        self.queue.put(Rejected(original=original, reason=reason, detail=detail, field=errors[0]["field"],
                                on_rejected=lambda: loop.call_soon_threadsafe(
                                    lambda: done.done() or done.set_result(None))))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, self.config.answer_timeout_seconds)
        return 422, {"errors": errors}


def field_errors(model: type[events.Event], exc: pydantic.ValidationError) -> list[dict[str, str]]:
    """pydantic errors as ``{"field", "problem"}`` that never repeat what was sent.

    A field name is shown only when it is one of the model's (an unknown key may itself be an ID number
    or a name); the problem is pydantic's message, masked (``hub.identity.redact``).
    """
    out = []
    for e in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(p) for p in e["loc"]]
        known = bool(loc) and loc[0] in model.model_fields
        out.append({"field": ".".join(loc) if known else ("<unknown field>" if loc else "<body>"),
                    "problem": identity.redact(e["msg"]) if known or not loc else "not a field of this event"})
    return out


class _Invalid(Exception):
    def __init__(self, reason: str, errors: list[dict[str, str]]) -> None:
        self.reason = reason
        self.errors = errors
        super().__init__(reason)


async def _healthz() -> web.Response:
    return web.json_response({"status": "ok"})
