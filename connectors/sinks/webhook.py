"""webhook — signed, idempotent HTTP deliveries of hub events to a department system.

Overview
    The civil-affairs referral inbox (救助转介收件箱), a hospital cashier system: anything that
    accepts an HTTPS POST. Each event is one request, signed per Standard Webhooks.

How it works
    Body (JSON, deterministic for one event, so a retry sends identical bytes)::

        {"type": "hub.outputs.ReferralChanged", "topic": "hub.referrals.v1",
         "timestamp": "<occurred_at>", "data": {<event fields, ISO times, enum symbols>}}

    Headers: ``webhook-id`` = the event id (also ``Idempotency-Key``: the receiver drops a
    repeat), ``webhook-timestamp`` (Unix seconds of the attempt), ``webhook-signature`` =
    ``v1,<base64 HMAC-SHA256 over "id.timestamp.body" with the shared secret>`` (standardwebhooks).
    Events of one person (one record key) are delivered one after another in topic order;
    different persons in parallel (``concurrency``).

    Redirects are never followed: a 3xx would re-post the signed body and its headers (``X-Api-Key`` …)
    to another origin, or turn the POST into a GET whose 200 would count as delivered. A 3xx is a refusal
    (dead letter, ``delivery_refused``): point ``url`` at the final address. ``url`` must be ``https://``
    (plain ``http://`` only to a loopback address, e.g. a local TLS proxy). At most
    ``max_response_bytes`` of an answer are read. Dead letters name the target without its
    credentials or query (``scheme://host:port/path``).

Behaviour when things go wrong
    5xx, 408, 429, timeouts and refused connections are retried with exponential back-off and
    full jitter (tenacity) up to ``max_attempts``; then the event goes to the dead-letter topic,
    and so do the later events of the same person in that batch (reason ``blocked_by_earlier_failure``)
    — a receiver never sees a person's event N+1 without N. Statuses in ``permanent_statuses``
    (400, 401, 403, 404, 410, 422 …) are dead-lettered at once: retrying cannot help.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections import OrderedDict
from datetime import UTC, datetime
from math import floor
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, field_validator
from standardwebhooks.webhooks import Webhook
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from connectors.sdk.base import SinkConnector
from connectors.sdk.config import SinkConfig
from connectors.sdk.records import SinkRecord
from hub import events


class WebhookConfig(SinkConfig):
    """Settings of webhook."""

    url: str = Field(pattern=r"^https?://", description="endpoint receiving POSTs (https; http only to loopback)")
    secret: str = Field(min_length=1, description="Standard Webhooks secret `whsec_<base64>`; use ${ENV}")
    timeout_seconds: float = Field(10.0, gt=0, description="per attempt")
    max_attempts: int = Field(6, ge=1, description="attempts before the event is dead-lettered")
    backoff_initial_seconds: float = Field(0.5, ge=0, description="first back-off (doubles, with jitter)")
    backoff_max_seconds: float = Field(30.0, ge=0, description="longest back-off")
    concurrency: int = Field(8, ge=1, description="persons delivered in parallel")
    permanent_statuses: list[int] = Field([400, 401, 403, 404, 405, 410, 413, 422],
                                          description="HTTP statuses dead-lettered without retry")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    max_response_bytes: int = Field(65_536, ge=0, description="most bytes of an answer read (the rest is dropped)")

    @field_validator("url")
    @classmethod
    def _tls_unless_loopback(cls, v: str) -> str:
        parts = urlsplit(v)
        if not parts.hostname:
            raise ValueError("the url has no host")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("plain http:// is allowed only to a loopback address; use https:// (the body "
                             "carries personal data and the signature headers)")
        return v


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` — no user, password or query: what error texts may show."""
    p = urlsplit(url)
    port = f":{p.port}" if p.port else ""
    return f"{p.scheme}://{p.hostname}{port}{p.path}"


class Retryable(Exception):
    """An attempt failed in a way a later attempt may not (5xx, 429, network)."""


class Permanent(Exception):
    """The receiver refused the event itself; retrying cannot help."""


def payload(record: SinkRecord) -> bytes:
    """The request body: the same bytes for every attempt of one event."""
    data = events.model_for(record.schema).model_validate(record.value).model_dump(mode="json")
    body = {"type": record.schema, "topic": record.topic, "timestamp": data.get("occurred_at"), "data": data}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class WebhookSink(SinkConnector):
    """Delivers events as signed webhooks (see module docstring)."""

    config_model = WebhookConfig
    config: WebhookConfig

    def start(self) -> None:
        self.signer = Webhook(self.config.secret)
        self.attempts = 0  # counted for tests and metrics

    def put(self, records: list[SinkRecord]) -> None:
        by_person: OrderedDict[str | None, list[SinkRecord]] = OrderedDict()
        for r in records:
            by_person.setdefault(r.key, []).append(r)
        asyncio.run(self._deliver_all(list(by_person.values())))

    async def _deliver_all(self, chains: list[list[SinkRecord]]) -> None:
        sem = asyncio.Semaphore(self.config.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async def chain(recs: list[SinkRecord]) -> None:
                async with sem:
                    await self._deliver_chain(session, recs)
            await asyncio.gather(*(chain(c) for c in chains))

    async def _deliver_chain(self, session: aiohttp.ClientSession, recs: list[SinkRecord]) -> None:
        for i, rec in enumerate(recs):
            try:
                await self._deliver(session, rec)
            except (Retryable, Permanent) as exc:
                reason = "delivery_refused" if isinstance(exc, Permanent) else "delivery_failed"
                self.context.reject(rec, reason, f"{safe_url(self.config.url)}: {exc}")
                for later in recs[i + 1:]:
                    self.context.reject(later, "blocked_by_earlier_failure",
                                        f"event {rec.event_id} of the same key was not delivered")
                return

    async def _deliver(self, session: aiohttp.ClientSession, rec: SinkRecord) -> None:
        body = payload(rec)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=wait_exponential_jitter(initial=self.config.backoff_initial_seconds,
                                         max=self.config.backoff_max_seconds),
            retry=retry_if_exception_type(Retryable), reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._attempt(session, rec.event_id, body)

    async def _attempt(self, session: aiohttp.ClientSession, msg_id: str, body: bytes) -> None:
        self.attempts += 1
        now = datetime.now(UTC)
        text = body.decode()
        headers: dict[str, Any] = {
            **self.config.headers,
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(floor(now.timestamp())),
            "webhook-signature": self.signer.sign(msg_id, now, text),
            "Idempotency-Key": msg_id,
        }
        try:
            async with session.post(self.config.url, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                await resp.content.read(self.config.max_response_bytes)  # bounded; the rest is dropped
                resp.close()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Retryable(type(exc).__name__) from None
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise Permanent(f"HTTP {status}: redirects are not followed (the signed body and headers would go "
                            "elsewhere); set `url` to the final address")
        if status in self.config.permanent_statuses:
            raise Permanent(f"HTTP {status}")
        raise Retryable(f"HTTP {status}")
