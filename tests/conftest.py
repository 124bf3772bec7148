"""Shared fixtures: one embedded broker per test session, with every catalogue topic created.

Why session-scoped: starting noida-db takes well under a second, but creating topics and warming
clients for every test adds up; tests that need a broker of their own (restarts, kills, a fresh
data dir) start an ``EmbeddedBroker`` themselves. Topics are created before any test runs because a
topic auto-created by a metadata request gets one partition and faust then refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub.broker import EmbeddedBroker, ensure_topics


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A started noida-db on a fresh temporary data dir (deleted after); ``.bootstrap`` is host:port."""
    with EmbeddedBroker() as b:
        ensure_topics(b.bootstrap)
        yield b


@pytest.fixture(scope="session")
def kafka_bootstrap(broker: EmbeddedBroker) -> str:
    """``127.0.0.1:PORT`` of the session broker, for clients that take a bootstrap string."""
    return broker.bootstrap
