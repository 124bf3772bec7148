"""The hospital counter API (医院窗口): a cashier posts an admission or a discharge and gets the deposit
decision (先诊疗后付费) or the one-stop settlement (一站式结算) back in the same request.

Overview
    ``POST /v1/admissions`` → the ``DepositDecision``; ``POST /v1/discharges`` → the ``Settlement``
    (a body with ``reverses`` is a reversal, 冲正, answered by the negated settlement).
    ``GET /v1/status/{kind}/{id}`` answers a request that outlived its wait; ``GET /healthz``.

Who may call, and with what (an edge, like the connectors)
    Every request but ``/healthz`` carries ``Authorization: Bearer <token>``; each hospital has its own
    token (``HUB_API_TOKENS``: hospital code → token), and the hospital is the token's, never the body's:
    ``hospital_code`` is filled from it (a body naming another hospital: 403), and a status URL answers
    only the hospital that posted. The cashier sends the patient's raw ``id_number`` (over TLS); the API
    validates it and pseudonymises it itself, so no hospital holds ``HUB_PSEUDONYM_KEY`` (with which it
    could turn any token back into an ID number by enumeration). A ``person_token`` in the body is
    refused, and answers leave it out (data minimisation: the hospital knows its patient).
    Development credentials (the built-in default) and tokens shorter than 32 characters are refused
    outside the embedded broker and warned about on it (``hub.keys``).

Why request/reply *through the pipeline* and not a side computation
    The person processor is the one holder of the state a decision needs (categories, enrolment,
    year-to-date sums, blacklist), and it settles a discharge id exactly once. Computing the answer
    here would need a copy of that state and could disagree with the record the processor emits to
    the insurance fund and civil affairs. So the API produces the event to the input topic, exactly
    as the hospital connector would, and waits for the processor's own output record.

How it works
    One shared aiokafka producer, and one consumer that *tails* ``hub.deposit-decisions.v1``,
    ``hub.settlements.v1`` and ``hub.dead-letters.v1``: all partitions assigned (no consumer group,
    so every API replica sees every record and nothing is committed), positioned at the end before
    the first request is accepted. A request registers a future under what identifies its answer —
    (kind, hospital, person, admission or discharge id), read from the output record's own fields, so
    the match does not depend on how the processor spells its event ids — *before* producing, so its
    answer cannot be missed. A dead letter names the
    input's topic/partition/offset, which the producer's acknowledgement told us; one arriving before
    that acknowledgement is kept briefly and matched afterwards. Only records keyed by a person with
    a request in flight are decoded, so a busy pipeline costs the API little.

    noida-db answers a fetch that finds nothing at once instead of holding it for ``fetch.max.wait.ms``, so
    an aiokafka consumer tailing it spins: measured, ≈2,900 fetches/s and 65 % of a core while a request
    was in flight, which is most of the time from 20 requests/s on. Two things bound that:

    * while requests are in flight, an empty fetch response is held for ``empty_fetch_wait_seconds``
      (5 ms) before the consumer may send the next fetch (:func:`hub.clients.pace_empty_fetches`) — what a Kafka
      broker does with ``fetch.max.wait.ms``, done on the client's side; a fetch that returns records is
      never held. Measured on the benchmark's tail: ≈180 fetches/s and ≈9 % of a core, for ≈3 ms more
      median wait on an answer (benchmarks/counter_api_latency.py, BENCHMARKS.md);
    * with nothing in flight for ``idle_pause_seconds`` the tail pauses altogether. The next request
      seeks to the end and resolves the position (≈1 ms) *before* producing, so its answer, written after
      the input, cannot be skipped.

    Request body = the event's JSON form with ``id_number`` in place of ``person_token``, without
    ``event_id`` (filled as ``api:admission:{hospital_code}:{admission_id}:{request}``, ``api:discharge:…``,
    ``api:reversal:…``, one per request: the processor drops an event id it has already applied
    (policy-spec §8.2), while a retried POST is a new request that §3 and §4 answer idempotently, with the
    original settlement or no second decision),
    optionally without ``hospital_code`` (the token's) and ``occurred_at`` (then: now, Asia/Shanghai).
    Bodies are parsed with bounds (64 KiB, nesting depth 32: ``hub.safejson``); a malformed body is a 4xx,
    never a 500.

Answers
    ==========  ===============================================================================
    200         ``{"kind", "id", "status": "done", "status_url", "result": <output event JSON without
                person_token>}``
    202         the bounded wait (``wait_seconds``) ran out: ``{"status": "pending", "status_url"}``
                and a ``Location`` header; the status URL answers 200 once the result is in
    422         invalid body: ``{"error": "invalid_input", "errors": [{"field", "problem"}]}`` (from the
                pydantic event models; input values are never echoed), or the processor dead-lettered
                the input (``no_policy``, ``invalid_input`` …): ``{"status": "rejected", "error", "detail"}``
    401 / 403   missing or unknown token / a body or status URL of another hospital
    409         the reversal conflicts with the ledger (``unknown_discharge``, ``already_reversed``), or
                the discharge id was settled before with another payload (``conflicting_redelivery``)
    413         body too large or nested too deep
    503         the broker did not take the event, too many requests in flight, or shutting down
    ==========  ===============================================================================

Behaviour when things go wrong
    A retry is safe: the event id and the processor's idempotence (§3 redelivery returns the original
    settlement) make a second POST return the same result. An admission id decided before gets no
    second decision (§4); this API answers it from its memory of recent results, else 202 and the
    status stays pending. Pending requests are forgotten after ``pending_ttl`` seconds and the status
    then answers 404, as for an id this instance never saw (results live in a bounded LRU in memory,
    not on disk: the topics stay the record). Serve it behind the hospital network's TLS proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO
from urllib.parse import quote

import pydantic
from aiohttp import web

from hub import codec, identity
from hub.config import Settings
from hub.errors import ValidationError as HubValidationError
from hub.events import AdmissionRegistered, DischargeSettlementRequested, Event, model_for
from hub.metrics import METRICS
from hub.safejson import JsonRefused, loads_bounded
from hub.timeutil import SHANGHAI
from hub.topics import DEAD_LETTERS

__all__ = ["CounterBridge", "ApiThread", "create_api", "run_api", "serve_api_command", "parse_request"]

log = logging.getLogger(__name__)

ADMISSIONS = "health.admissions.v1"
DISCHARGES = "health.discharges.v1"
DECISIONS = "hub.deposit-decisions.v1"
SETTLEMENTS = "hub.settlements.v1"
TAILED = (DECISIONS, SETTLEMENTS, DEAD_LETTERS)
KINDS = ("admission", "discharge", "reversal")
CONFLICT_REASONS = frozenset({"unknown_discharge", "already_reversed", "conflicting_redelivery"})
WARNING_REASONS: frozenset[str] = frozenset()
"""Dead-letter reasons that accompany a result rather than replace it (none: a conflicting redelivery is a
409 — answering it with the original settlement would show one hospital another's figures)."""
MAX_BODY_BYTES = 64 * 1024

_CONNECTOR = "counter-api"
_EARLY_DEAD_MAX = 2000


def _scrub(text: str) -> str:
    """Mask anything shaped like a resident ID number: an answer must never carry one (§1)."""
    return identity.redact(text)


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class CounterRequest:
    """A validated cashier request: the event to produce and the output that answers it."""

    kind: str  # admission | discharge | reversal
    status_id: str  # the admission id, discharge id, or reversed id: the {id} of the status URL
    output_id: str  # what identifies the processor's answer: match_key(kind, hospital, person, id)
    input_topic: str
    key: bytes
    value: bytes
    hospital: str = ""

    @property
    def status_url(self) -> str:
        return status_url(self.kind, self.status_id)


class InvalidRequest(Exception):
    """A body the event model refuses; ``errors`` are ``{"field", "problem"}`` without input values."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['problem']}" for e in errors))


def status_url(kind: str, status_id: str) -> str:
    return f"/v1/status/{kind}/{quote(status_id, safe=':@')}"


def match_key(kind: str, hospital: str, person: str, ref: str) -> str:
    """What identifies the answer to a request, computable from the output record's own fields."""
    return json.dumps([kind, hospital, person, ref], ensure_ascii=False)


def answer_key(schema: str, record: dict[str, Any]) -> str | None:
    """The :func:`match_key` of an output record (a deposit decision or a settlement), else None."""
    person, hospital = str(record.get("person_token")), str(record.get("hospital_code") or "")
    if schema == "hub.outputs.DepositDecision":
        return match_key("admission", hospital, person, str(record.get("admission_id")))
    if schema == "hub.outputs.Settlement":
        if record.get("reverses"):
            return match_key("reversal", hospital, person, str(record["reverses"]))
        return match_key("discharge", hospital, person, str(record.get("discharge_id")))
    return None


def _input_event_id(route: str, body: dict[str, Any]) -> str:
    """One event per request: a cashier's retry must reach the rules, which answer it idempotently (§3/§4).

    (A deterministic id would make a retry a re-sent event, which the processor drops without a word
    (policy-spec §8.2): the retry would wait for an answer that never comes.)
    """
    hospital = body.get("hospital_code")
    request = uuid.uuid4().hex
    if route == "admission":
        return f"api:admission:{hospital}:{body.get('admission_id')}:{request}"
    if body.get("reverses") is not None:
        return f"api:reversal:{hospital}:{body.get('reverses')}:{request}"
    return f"api:discharge:{hospital}:{body.get('discharge_id')}:{request}"


class Forbidden(Exception):
    """A body acting for another hospital (403); ``errors`` as in :class:`InvalidRequest`."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(e["problem"] for e in errors))


class TooLarge(InvalidRequest):
    """A body over the size or nesting bounds (413)."""


def _field_errors(model: type[Event], exc: pydantic.ValidationError) -> list[dict[str, str]]:
    """pydantic errors that never repeat the input: unknown field names are not shown either."""
    out = []
    for e in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(p) for p in e["loc"]]
        known = bool(loc) and (loc[0] in model.model_fields or loc[0] == "id_number")
        out.append({"field": ".".join(loc) if known else ("<unknown field>" if loc else "<body>"),
                    "problem": _scrub(e["msg"]) if known or not loc else "not a field of this request"})
    return out


def parse_request(route: str, raw: bytes, now: datetime, *, hospital: str, pseudonym_key: str) -> CounterRequest:
    """Body of ``POST /v1/admissions`` (route ``admission``) or ``/v1/discharges`` from ``hospital`` → a request.

    ``hospital`` is the authenticated caller (its token's); ``pseudonym_key`` turns ``id_number`` into the
    person token. Raises :class:`InvalidRequest` with one entry per field problem (all of them, not the
    first), :class:`TooLarge` or :class:`Forbidden`.
    """
    try:
        body = loads_bounded(raw, max_bytes=MAX_BODY_BYTES)
    except JsonRefused as exc:
        cls = TooLarge if exc.limit in ("depth", "size") else InvalidRequest
        raise cls([{"field": "<body>", "problem": exc.problem}]) from None
    if not isinstance(body, dict):
        raise InvalidRequest([{"field": "<body>", "problem": f"expected a JSON object, found {type(body).__name__}"}])
    if "event_id" in body:
        raise InvalidRequest([{"field": "event_id", "problem": "set by the counter API from the body; leave it out"}])
    if "person_token" in body:
        problem = "send the patient's id_number: the counter API pseudonymises it (hospitals hold no pseudonym key)"
        raise InvalidRequest([{"field": "person_token", "problem": problem}])
    if body.setdefault("hospital_code", hospital) != hospital:
        raise Forbidden([{"field": "hospital_code", "problem": "names another hospital than the token's"}])
    errors: list[dict[str, str]] = []
    number = body.pop("id_number", None)
    try:
        body["person_token"] = identity.person_token(identity.validate_id_number(number), pseudonym_key)
    except HubValidationError as exc:
        errors.append({"field": "id_number", "problem": _scrub(exc.problem) if number is not None else "is required"})
        body["person_token"] = "p_" + "0" * 32  # placeholder, so every other field is still judged
    model: type[Event] = AdmissionRegistered if route == "admission" else DischargeSettlementRequested
    value = {**body, "event_id": _input_event_id(route, body)}
    value.setdefault("occurred_at", now.astimezone(SHANGHAI).isoformat())
    try:
        event = model.model_validate_json(json.dumps(value))
    except pydantic.ValidationError as exc:  # field errors; never the input (it may hold an ID number)
        raise InvalidRequest(errors + _field_errors(model, exc)) from None
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(errors + [{"field": "<body>", "problem": type(exc).__name__}]) from None
    if errors:
        raise InvalidRequest(errors)
    person = event.person_token  # type: ignore[attr-defined]
    if isinstance(event, AdmissionRegistered):
        kind, sid, topic = "admission", event.admission_id, ADMISSIONS
    elif isinstance(event, DischargeSettlementRequested) and event.reverses is not None:
        kind, sid, topic = "reversal", event.reverses, DISCHARGES
    else:
        kind, sid, topic = "discharge", event.discharge_id, DISCHARGES  # type: ignore[attr-defined]
    return CounterRequest(kind, sid, match_key(kind, hospital, person, sid), topic, person.encode(),
                          codec.encode(model.SCHEMA, event), hospital)


# ---------------------------------------------------------------- the bridge


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status code and JSON body."""

    status: int
    body: dict[str, Any]


@dataclass
class _Pending:
    request: CounterRequest
    future: asyncio.Future[Answer]
    created: float
    coords: tuple[str, int, int] | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)


class CounterBridge:
    """Request/reply over Kafka topics: produce an input, resolve a future when its output shows up."""

    def __init__(self, bootstrap: str, *, wait_seconds: float = 5.0, remember: int = 10_000,
                 max_pending: int = 10_000, pending_ttl: float = 600.0, fetch_max_wait_ms: int = 50,
                 idle_pause_seconds: float = 2.0, empty_fetch_wait_seconds: float = 0.005) -> None:
        self.bootstrap = bootstrap
        self.idle_pause_seconds = idle_pause_seconds
        self.empty_fetch_wait_seconds = empty_fetch_wait_seconds
        self.wait_seconds = wait_seconds
        self.remember = remember
        self.max_pending = max_pending
        self.pending_ttl = max(pending_ttl, wait_seconds)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._pending: dict[str, _Pending] = {}  # output event_id → request (insertion = creation order)
        self._by_coords: dict[tuple[str, int, int], str] = {}
        self._persons: dict[bytes, int] = {}  # keys with a request in flight → count
        self._early_dead: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()
        self._results: OrderedDict[tuple[str, str], Answer] = OrderedDict()
        self._producer: Any = None
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._tail_error: str | None = None
        self._tps: list[Any] = []
        self._paused = False
        self._idle_since: float | None = None
        self._resume_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, and stand at the end of every tailed partition before any request is accepted."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        from hub.clients import ACKS, aiokafka_options, pace_empty_fetches
        from hub.errors import BrokerError

        servers = self.bootstrap.split(",")
        try:
            self._producer = AIOKafkaProducer(bootstrap_servers=servers, client_id="hub-counter-api",
                                              acks=ACKS, enable_idempotence=True, **aiokafka_options())
            await self._producer.start()
            # read_committed: the worker writes its outputs in transactions; an aborted one is no answer
            self._consumer = AIOKafkaConsumer(bootstrap_servers=servers, client_id="hub-counter-api",
                                              group_id=None, enable_auto_commit=False, isolation_level="read_committed",
                                              auto_offset_reset="latest", fetch_max_wait_ms=self.fetch_max_wait_ms,
                                              **aiokafka_options())
            await self._consumer.start()
            if self.empty_fetch_wait_seconds > 0:
                pace_empty_fetches(self._consumer, self.empty_fetch_wait_seconds)
            known = await self._consumer.topics()
            missing = [t for t in TAILED if t not in known]
            if missing:
                raise BrokerError(f"topics {missing} do not exist on {self.bootstrap}; create the catalogue "
                                  "first (`hub up` does, or hub.broker.ensure_topics)")
            self._tps = [TopicPartition(t, p) for t in TAILED for p in sorted(self._consumer.partitions_for_topic(t))]
            self._consumer.assign(self._tps)
            await self._seek_to_end()
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._tail(), name="counter-api-tail")

    async def stop(self) -> None:
        """Stop tailing, answer whoever still waits with 503, close the clients."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for p in list(self._pending.values()):
            if not p.future.done():
                p.future.set_result(Answer(503, {"error": "shutting_down", "status_url": p.request.status_url}))
        self._pending.clear()
        self._by_coords.clear()
        self._persons.clear()
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._consumer = self._producer = None

    async def _seek_to_end(self) -> None:
        """Stand at the end of every tailed partition, positions resolved: later records will be seen."""
        await self._consumer.seek_to_end(*self._tps)
        for tp in self._tps:
            await self._consumer.position(tp)

    async def _ensure_tailing(self) -> None:
        """Resume a paused tail at the end, before the request's input is produced."""
        async with self._resume_lock:
            if self._paused:
                await self._seek_to_end()
                self._consumer.resume(*self._tps)
                self._paused = False

    def _maybe_pause(self) -> None:
        """Pause the tail after ``idle_pause_seconds`` with no request in flight (see the module doc)."""
        if self._pending or self._paused:
            self._idle_since = None
            return
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= self.idle_pause_seconds:
            self._consumer.pause(*self._tps)
            self._paused, self._idle_since = True, None

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done() and self._tail_error is None

    def health(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unhealthy", "pending": len(self._pending),
                "remembered": len(self._results), "tail": "paused" if self._paused else "reading",
                **({"error": self._tail_error} if self._tail_error else {})}

    # -- requests ----------------------------------------------------------------------------

    async def submit(self, req: CounterRequest) -> Answer:
        """Produce ``req`` and wait (bounded) for its answer; 202 when the wait runs out."""
        deadline = time.monotonic() + self.wait_seconds
        if req.kind == "admission":  # §4: a decided admission id gets no second decision; answer ours
            known = self._results.get((req.hospital, req.kind, req.status_id))
            if known is not None and known.status == 200:
                return known
        pending = self._pending.get(req.output_id)
        if pending is None:
            if len(self._pending) >= self.max_pending:
                return Answer(503, {"error": "too_many_pending", "detail": f"{len(self._pending)} requests "
                                    "are waiting for the pipeline; retry later (the event id makes it safe)"})
            pending = self._register(req)
            try:
                await self._ensure_tailing()
                meta = await self._producer.send_and_wait(req.input_topic, req.value, key=req.key)
            except Exception as exc:  # KafkaError, timeouts, a stopped producer
                self._forget(req.output_id)
                METRICS.connector_records.labels(connector=_CONNECTOR, outcome="source_error").inc()
                return Answer(503, {"error": "broker_unavailable",
                                    "detail": f"{type(exc).__name__}: {exc}; retry (the event id makes it safe)"})
            METRICS.connector_records.labels(connector=_CONNECTOR, outcome="produced").inc()
            self._located(pending, (meta.topic, meta.partition, meta.offset))
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            return Answer(202, {"kind": req.kind, "id": req.status_id, "status": "pending",
                                "status_url": req.status_url})

    def status(self, kind: str, status_id: str, hospital: str = "") -> Answer:
        """200/4xx with the remembered answer, 202 while pending, 404 when unknown to this instance.

        Only the hospital that posted sees an answer: another hospital gets the same 404 as for an id
        never posted (the status URL is no oracle for other hospitals' patients).
        """
        known = self._results.get((hospital, kind, status_id))
        if known is not None:
            self._results.move_to_end((hospital, kind, status_id))
            return known
        if any(p.request.hospital == hospital and (p.request.kind, p.request.status_id) == (kind, status_id)
               for p in self._pending.values()):
            return Answer(202, {"kind": kind, "id": status_id, "status": "pending",
                                "status_url": status_url(kind, status_id)})
        return Answer(404, {"error": "unknown", "detail": f"no {kind} with this id was posted by your hospital to "
                            "this API recently (results are remembered in memory, bounded)"})

    def _register(self, req: CounterRequest) -> _Pending:
        p = _Pending(req, asyncio.get_running_loop().create_future(), time.monotonic())
        self._pending[req.output_id] = p
        self._persons[req.key] = self._persons.get(req.key, 0) + 1
        return p

    def _located(self, p: _Pending, coords: tuple[str, int, int]) -> None:
        """The broker acknowledged the input at ``coords``: dead letters for it can now be matched."""
        if p.future.done() or self._pending.get(p.request.output_id) is not p:
            return
        p.coords = coords
        self._by_coords[coords] = p.request.output_id
        early = self._early_dead.pop(coords, None)
        if early is not None:
            self._on_dead_letter(early)

    def _forget(self, oid: str) -> _Pending | None:
        p = self._pending.pop(oid, None)
        if p is None:
            return None
        n = self._persons.get(p.request.key, 0) - 1
        if n > 0:
            self._persons[p.request.key] = n
        else:
            self._persons.pop(p.request.key, None)
        if p.coords is not None:
            self._by_coords.pop(p.coords, None)
        return p

    def _finish(self, oid: str, answer: Answer) -> None:
        p = self._forget(oid)
        if p is None:
            return
        if p.warnings and answer.status == 200:
            answer = Answer(200, {**answer.body, "warnings": p.warnings})
        self._remember(p.request, answer)
        if not p.future.done():
            p.future.set_result(answer)

    def _remember(self, req: CounterRequest, answer: Answer) -> None:
        key = (req.hospital, req.kind, req.status_id)
        self._results[key] = answer
        self._results.move_to_end(key)
        while len(self._results) > self.remember:
            self._results.popitem(last=False)

    # -- tailing the outputs -----------------------------------------------------------------

    async def _tail(self) -> None:
        """Read the tailed topics forever; a broker hiccup is logged and retried, never fatal."""
        backoff = 0.1
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
                self._tail_error, backoff = None, 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._tail_error = f"{type(exc).__name__}: {exc}"
                log.warning("counter API: reading outputs failed (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for tp, records in batches.items():
                for m in records:
                    if m.key is not None and m.key in self._persons:
                        self._on_record(tp.topic, m.value, m.headers)
            self._expire()
            self._maybe_pause()

    def _on_record(self, topic: str, data: bytes, headers: Any = ()) -> None:
        try:
            schema, record = codec.decode(data)
        except Exception as exc:  # not ours to repair; the processor's own dead letters cover inputs
            log.warning("counter API: undecodable record on %s: %s", topic, exc)
            return
        if topic == DEAD_LETTERS:
            if record.get("offset") is None:  # the processor puts the input's offset in a header (§8.5)
                for name, value in headers or ():
                    if name == "hub-source-offset":
                        record = {**record, "offset": int(value)}
            self._on_dead_letter(record)
            return
        oid = answer_key(schema, record)
        p = self._pending.get(oid) if oid is not None else None
        if p is None:
            return
        try:
            result = codec.to_json_dict(model_for(schema).model_validate(record))
        except Exception as exc:  # a record that breaks its own model: report it rather than hang
            log.warning("counter API: %s %s does not fit its model: %s", schema, record.get("event_id"), exc)
            result = {k: v for k, v in record.items() if isinstance(v, (str, int, bool, type(None)))}
        result.pop("person_token", None)  # the hospital knows its patient; the token is not for it
        req = p.request
        self._finish(req.output_id, Answer(200, {"kind": req.kind, "id": req.status_id, "status": "done",
                                                 "status_url": req.status_url, "result": result}))

    def _on_dead_letter(self, record: dict[str, Any]) -> None:
        topic, partition, offset = record.get("topic"), record.get("partition"), record.get("offset")
        if topic not in (ADMISSIONS, DISCHARGES) or partition is None or offset is None:
            return
        coords = (topic, partition, offset)
        oid = self._by_coords.get(coords)
        p = self._pending.get(oid) if oid is not None else None
        if p is None:  # before the producer's acknowledgement reached us: match it then
            self._early_dead[coords] = record
            while len(self._early_dead) > _EARLY_DEAD_MAX:
                self._early_dead.popitem(last=False)
            return
        reason, detail = str(record.get("reason")), _scrub(str(record.get("detail") or ""))
        if reason in WARNING_REASONS:
            p.warnings.append({"reason": reason, "detail": detail})
            return
        status = 409 if reason in CONFLICT_REASONS else 422
        self._finish(p.request.output_id, Answer(status, {
            "kind": p.request.kind, "id": p.request.status_id, "status": "rejected", "error": reason,
            "detail": detail, "dead_letter_id": record.get("event_id"), "status_url": p.request.status_url}))

    def _expire(self) -> None:
        """Forget requests pending longer than ``pending_ttl`` (their status becomes 404)."""
        horizon = time.monotonic() - self.pending_ttl
        while self._pending:
            oid, p = next(iter(self._pending.items()))
            if p.created > horizon:
                break
            self._forget(oid)
            if not p.future.done():
                p.future.set_result(Answer(202, {"kind": p.request.kind, "id": p.request.status_id,
                                                 "status": "pending", "status_url": p.request.status_url}))


# ---------------------------------------------------------------- HTTP


BRIDGE = web.AppKey("counter_bridge", CounterBridge)


def _json(answer: Answer) -> web.Response:
    headers = {"Location": answer.body["status_url"]} if answer.status == 202 and "status_url" in answer.body else None
    return web.json_response(answer.body, status=answer.status, headers=headers,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


TOKENS = web.AppKey("counter_tokens", dict)
PSEUDONYM_KEY = web.AppKey("counter_pseudonym_key", str)


def _caller(request: web.Request) -> str | None:
    """The hospital whose bearer token the request carries (compared in constant time), else None."""
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.startswith("Bearer ") else ""
    found = None
    for hospital, expected in request.app[TOKENS].items():
        if token and hmac.compare_digest(token.encode(), expected.encode()):
            found = hospital
    return found


_UNAUTHORISED = Answer(401, {"error": "unauthorised", "detail": "missing or unknown bearer token; each hospital "
                             "has its own (HUB_API_TOKENS)"})


def _post(route: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        bridge = request.app[BRIDGE]
        hospital = _caller(request)
        if hospital is None:
            return _json(_UNAUTHORISED)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json(Answer(413, {"error": "too_large", "detail": f"body larger than {MAX_BODY_BYTES} bytes"}))
        try:
            req = parse_request(route, raw, datetime.now(SHANGHAI), hospital=hospital,
                                pseudonym_key=request.app[PSEUDONYM_KEY])
        except Forbidden as exc:
            METRICS.connector_records.labels(connector=_CONNECTOR, outcome="rejected").inc()
            return _json(Answer(403, {"error": "forbidden", "errors": exc.errors}))
        except InvalidRequest as exc:
            METRICS.connector_records.labels(connector=_CONNECTOR, outcome="rejected").inc()
            status = 413 if isinstance(exc, TooLarge) else 422
            return _json(Answer(status, {"error": "invalid_input", "errors": exc.errors}))
        return _json(await bridge.submit(req))

    return handler


async def _status(request: web.Request) -> web.Response:
    hospital = _caller(request)
    if hospital is None:
        return _json(_UNAUTHORISED)
    kind, status_id = request.match_info["kind"], request.match_info["id"]
    if kind not in KINDS:
        return _json(Answer(404, {"error": "unknown_kind", "detail": f"kind must be one of {', '.join(KINDS)}"}))
    return _json(request.app[BRIDGE].status(kind, status_id, hospital))


async def _healthz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    return web.json_response(bridge.health(), status=200 if bridge.healthy else 503)


def credentials(settings: Settings | None = None, *, where: str = "counter API") -> tuple[dict[str, str], str]:
    """(hospital → token, pseudonym key) from settings, judged by ``hub.keys``.

    Development or weak credentials raise :class:`hub.keys.WeakSecret` unless the hub runs on its
    embedded broker, where they are warned about loudly.
    """
    from hub.config import get_settings
    from hub.keys import judge, secret_problems, settings_findings

    s = settings or get_settings()
    dev = Settings.model_fields["api_tokens"].default_factory()  # type: ignore[misc]
    findings = settings_findings(s, edge=False)
    for hospital, token in s.api_tokens.items():
        findings += [(f"HUB_API_TOKENS[{hospital}]", p)
                     for p in secret_problems(token, dev=dev.get(hospital) == token)]
    judge(findings, embedded=s.broker == "embedded", where=where, logger=log)
    return dict(s.api_tokens), s.pseudonym_key


def create_api(bootstrap: str, *, wait_seconds: float = 5.0, remember: int = 10_000,
               pending_ttl: float = 600.0, idle_pause_seconds: float = 2.0, tokens: dict[str, str] | None = None,
               pseudonym_key: str | None = None) -> web.Application:
    """The counter API as an aiohttp application; its bridge connects at startup, before serving.

    ``tokens`` (hospital → bearer token) and ``pseudonym_key`` default to hub settings (:func:`credentials`).
    """
    if tokens is None or pseudonym_key is None:
        default_tokens, default_key = credentials()
        tokens = default_tokens if tokens is None else tokens
        pseudonym_key = default_key if pseudonym_key is None else pseudonym_key
    if not tokens:
        raise ValueError("the counter API needs at least one hospital credential (HUB_API_TOKENS)")
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[TOKENS] = dict(tokens)
    app[PSEUDONYM_KEY] = pseudonym_key
    app[BRIDGE] = CounterBridge(bootstrap, wait_seconds=wait_seconds, remember=remember, pending_ttl=pending_ttl,
                                idle_pause_seconds=idle_pause_seconds)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[BRIDGE].start()
        yield
        await app[BRIDGE].stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/v1/admissions", _post("admission"))
    app.router.add_post("/v1/discharges", _post("discharge"))
    app.router.add_get("/v1/status/{kind}/{id}", _status)
    app.router.add_get("/healthz", _healthz)
    return app


# ---------------------------------------------------------------- serving


async def _start_site(bootstrap: str, host: str, port: int, wait_seconds: float, tokens: dict[str, str] | None = None,
                      pseudonym_key: str | None = None) -> tuple[web.AppRunner, str]:
    app = create_api(bootstrap, wait_seconds=wait_seconds, tokens=tokens, pseudonym_key=pseudonym_key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()  # runs the bridge's start: connected and at the end of the outputs
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return runner, f"http://{host}:{bound[1]}"


def run_api(bootstrap: str, host: str = "127.0.0.1", port: int = 8080, *, wait_seconds: float = 5.0,
            out: TextIO = sys.stdout) -> None:
    """Serve the counter API until SIGINT/SIGTERM (``hub api``); prints ``api: http://HOST:PORT``."""

    async def serve() -> None:
        runner, url = await _start_site(bootstrap, host, port, wait_seconds)
        out.write(f"api: {url}\n")
        out.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())


class ApiThread:
    """The counter API on its own event loop in a daemon thread, for synchronous hosts (``hub up``).

    ``start()`` returns once the API accepts requests (or raises what prevented it); ``url`` is then
    ``http://HOST:PORT`` with the bound port (``port=0`` picks a free one). ``stop()`` is idempotent.
    """

    def __init__(self, bootstrap: str, host: str = "127.0.0.1", port: int = 0, *, wait_seconds: float = 5.0,
                 tokens: dict[str, str] | None = None, pseudonym_key: str | None = None) -> None:
        self.bootstrap, self.host, self.port, self.wait_seconds = bootstrap, host, port, wait_seconds
        self.tokens, self.pseudonym_key = tokens, pseudonym_key
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._runner, self.url = loop.run_until_complete(
                    _start_site(self.bootstrap, self.host, self.port, self.wait_seconds, self.tokens,
                                self.pseudonym_key))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="counter-api", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the counter API did not start within {timeout} s")
        if failure:
            self._thread.join(5)
            raise failure[0]
        return self.url

    def stop(self, timeout: float = 15.0) -> None:
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        if runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._runner = None

    def __enter__(self) -> ApiThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_api_command(host: str = "127.0.0.1", port: int | None = None, *, out: TextIO = sys.stdout,
                      err: TextIO = sys.stderr) -> int:
    """``hub api``: serve the counter API against HUB_BROKER (``hub up`` starts it with the embedded broker)."""
    from hub.config import get_settings
    from hub.errors import BrokerError
    from hub.keys import WeakSecret

    settings = get_settings()
    try:
        credentials(settings, where="hub api")
    except WeakSecret as exc:
        err.write(f"hub api: {exc}\n")
        return 2
    if settings.broker == "embedded":
        err.write("hub api: HUB_BROKER is 'embedded'; the API joins a running broker. `hub up` starts the API "
                  "with its embedded broker, or set HUB_BROKER=kafka://host:port.\n")
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        run_api(",".join(settings.bootstrap_servers()), host, settings.api_port if port is None else port, out=out)
    except (BrokerError, OSError) as exc:
        err.write(f"hub api: {exc}\n")
        return 1
    except Exception as exc:  # KafkaConnectionError and friends: say what failed, not a traceback
        err.write(f"hub api: cannot start: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":  # python -m hub.api (benchmarks start it as its own process)
    raise SystemExit(serve_api_command(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"))
