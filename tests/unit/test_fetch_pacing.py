"""A tailing consumer (the counter API's, the worker's) does not spin on a broker answering empty fetches at once.

What is asserted: an empty fetch response reaches the fetcher only after the pacing wait, a response with
records at once, anything else (not a fetch, an unknown response shape) at once — so pacing can delay an
answer by at most one wait and never loses or holds data. How much CPU and latency that trades is measured
by benchmarks/counter_api_latency.py, not here.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from aiokafka.protocol.fetch import FetchRequest

from hub.clients import fetch_was_empty, pace_empty_fetches

WAIT = 0.2


def _response(*records: bytes | None) -> SimpleNamespace:
    """A FetchResponse-shaped value: one topic, a partition tuple per record payload (last field = records)."""
    return SimpleNamespace(topics=[("hub.settlements.v1", [(p, 0, 10, 10, 0, [], r) for p, r in enumerate(records)])])


def _fetch() -> FetchRequest:
    return FetchRequest(50, 1, 1024, 1, [("hub.settlements.v1", [(0, 0, 1024)])])


class _Consumer:
    def __init__(self, response: Any) -> None:
        async def send(node_id: int, request: Any) -> Any:
            return response

        self._client = SimpleNamespace(send=send)


def _timed(consumer: _Consumer, request: Any) -> float:
    async def go() -> float:
        started = time.monotonic()
        await consumer._client.send(0, request)
        return time.monotonic() - started

    return asyncio.run(go())


def test_an_empty_fetch_is_held_for_the_wait() -> None:
    consumer = _Consumer(_response(b"", None))
    assert pace_empty_fetches(consumer, WAIT)
    assert _timed(consumer, _fetch()) >= WAIT * 0.9


def test_a_fetch_with_records_is_not_held() -> None:
    consumer = _Consumer(_response(b"", b"\x00record-batch"))
    assert pace_empty_fetches(consumer, WAIT)
    assert _timed(consumer, _fetch()) < WAIT / 2


def test_other_requests_and_unknown_shapes_are_not_held() -> None:
    consumer = _Consumer(_response(b""))
    pace_empty_fetches(consumer, WAIT)
    assert _timed(consumer, object()) < WAIT / 2  # not a fetch (produce, metadata …)
    assert not fetch_was_empty(SimpleNamespace())  # a response without topics: treated as data
    assert not fetch_was_empty(SimpleNamespace(topics=[("t", [()])]))


def test_without_a_client_nothing_is_wrapped() -> None:
    assert pace_empty_fetches(SimpleNamespace(), WAIT) is False
