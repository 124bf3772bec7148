"""Kafka client options shared by every client of the hub (aiokafka and kafka-python).

Why one place: the worker's consumer and producers, ``hub doctor``, ``hub replay``, the counter API and
every connector talk to the same cluster with the same security settings (TLS, SASL/SCRAM in
production). A client built without these options works against the embedded broker and fails only in
production, so every client is built with them::

    KafkaProducer(bootstrap_servers=servers, acks=ACKS, **kafka_python_options(settings))
    AIOKafkaConsumer(*topics, bootstrap_servers=servers, **aiokafka_options(settings))

Only *security* lives here (protocol, SASL, TLS), and :func:`pace_empty_fetches`, which every consumer that
tails a topic needs against the embedded broker: what a client does (acks, idempotence, groups) stays
with the code that knows why. The settings are ``HUB_KAFKA_*`` (hub/config.py); an embedded broker is
always PLAINTEXT, which Settings enforces.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from hub.config import Settings, get_settings

log = logging.getLogger(__name__)

ACKS = "all"
"""acks of every hub producer: idempotent and transactional producers need it, and with
``min.insync.replicas`` (hub.config.Settings.replication) it is what makes a settlement durable."""


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else get_settings()


def _uses_tls(s: Settings) -> bool:
    return s.kafka_security_protocol in ("SSL", "SASL_SSL")


def _sasl(s: Settings) -> dict[str, Any]:
    if not s.kafka_security_protocol.startswith("SASL_"):
        return {}
    password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password is not None else None
    return {"sasl_mechanism": s.kafka_sasl_mechanism, "sasl_plain_username": s.kafka_sasl_username,
            "sasl_plain_password": password}


def ssl_context(settings: Settings | None = None) -> ssl.SSLContext:
    """A client TLS context from ``HUB_KAFKA_SSL_*``: the cluster CA (or the system's), optional client cert.

    Built here, not by each library, so aiokafka and kafka-python verify the broker the same way:
    certificate chain always, host name unless ``HUB_KAFKA_SSL_CHECK_HOSTNAME=false``.
    """
    s = _settings(settings)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cafile=str(s.kafka_ssl_cafile) if s.kafka_ssl_cafile else None)
    ctx.check_hostname = s.kafka_ssl_check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if s.kafka_ssl_certfile is not None:
        password = s.kafka_ssl_password.get_secret_value() if s.kafka_ssl_password is not None else None
        ctx.load_cert_chain(str(s.kafka_ssl_certfile), str(s.kafka_ssl_keyfile), password=password)
    return ctx


def aiokafka_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaConsumer``/``AIOKafkaProducer``/admin (security only)."""
    s = _settings(settings)
    options: dict[str, Any] = {"security_protocol": s.kafka_security_protocol, **_sasl(s)}
    if _uses_tls(s):
        options["ssl_context"] = ssl_context(s)
    return options


def kafka_python_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for kafka-python's ``KafkaConsumer``/``KafkaProducer``/``KafkaAdminClient``."""
    s = _settings(settings)
    options: dict[str, Any] = {"security_protocol": s.kafka_security_protocol, **_sasl(s)}
    if _uses_tls(s):
        options["ssl_context"] = ssl_context(s)
        options["ssl_check_hostname"] = s.kafka_ssl_check_hostname
    return options


__all__ = ["ACKS", "aiokafka_options", "kafka_python_options", "ssl_context"]


PACED_AIOKAFKA = "0.14.0"
"""The aiokafka version :func:`pace_empty_fetches` was written and tested against (pinned in pyproject.toml).

It wraps ``AIOKafkaConsumer._client.send``, a private attribute; tests/integration/test_fetch_pacing.py checks
on the real client and the embedded broker that the wrap is in the fetch path. Re-check both on an upgrade."""


def fetch_was_empty(response: Any) -> bool:
    """Whether a FetchResponse carried no record bytes for any partition (False when its shape is unknown)."""
    try:
        return all(not part[-1] for _topic, parts in response.topics for part in parts)
    except (AttributeError, TypeError, IndexError, ValueError):
        return False


def pace_empty_fetches(consumer: Any, wait_seconds: float) -> bool:
    """Hold each *empty* fetch response of ``consumer`` for ``wait_seconds`` before its fetcher goes on.

    Why: a broker that answers an empty fetch at once (noida-db) makes aiokafka's fetcher send the next
    fetch at once, thousands a second (a tailing consumer then burns most of a core doing nothing); Kafka
    would hold the fetch for ``fetch.max.wait.ms`` on its side. This does it on ours, for one consumer: its
    client's ``send`` is wrapped, and a fetch response without records returns to the fetcher only after
    the wait (the fetcher keeps one fetch in flight per broker, so it sends nothing meanwhile). A response
    with records is never held, so a backlog is read at full speed and a new record waits at most one
    ``wait_seconds``. aiokafka has no public hook for this (``fetch_max_wait_ms`` is the broker's to honour);
    if its client ever lacks ``send``, nothing is wrapped (False, logged) and the consumer merely spins.
    Against Apache Kafka the wait only follows a long-poll that already waited, so it costs nothing.
    """
    from aiokafka.protocol.fetch import FetchRequest

    client = getattr(consumer, "_client", None)
    send = getattr(client, "send", None)
    if send is None:
        log.warning("cannot pace empty fetches with this aiokafka (tested: %s); the consumer will spin on "
                    "a broker that answers empty fetches at once", PACED_AIOKAFKA)
        return False

    async def paced(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = await send(node_id, request, *args, **kwargs)
        if isinstance(request, FetchRequest) and fetch_was_empty(response):
            await asyncio.sleep(wait_seconds)
        return response

    client.send = paced
    return True
