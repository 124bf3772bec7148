"""Kafka client options shared by every client of the hub (aiokafka and kafka-python).

Why one place: the worker's consumer and producers, ``hub doctor``, ``hub replay``, the counter API and
every connector talk to the same cluster with the same security settings (TLS, SASL/SCRAM in
production). A client built without these options works against the embedded broker and fails only in
production, so every client is built with them.

Today this returns the plaintext defaults; TLS and SASL settings (``HUB_KAFKA_*``) are added here.
"""

from __future__ import annotations

from typing import Any

from hub.config import Settings, get_settings


def aiokafka_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaConsumer``/``AIOKafkaProducer``/admin (security only)."""
    _ = settings or get_settings()
    return {}


def kafka_python_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for kafka-python's ``KafkaConsumer``/``KafkaProducer``/``KafkaAdminClient``."""
    _ = settings or get_settings()
    return {}
