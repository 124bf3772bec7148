"""Fetch pacing on the real client and the embedded broker (hub.clients.pace_empty_fetches).

Why this test exists: the pacing wraps a private attribute of aiokafka (``AIOKafkaConsumer._client.send``),
pinned in pyproject.toml. A unit test with a fake client shows what the wrapper does; this one shows that on the
pinned aiokafka the wrapper really sits in the fetch path — a tailing consumer of an empty partition sends few
fetches with it and a great many without (noida-db answers an empty fetch at once) — and that a record
produced meanwhile still arrives.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

from hub.broker import EmbeddedBroker
from hub.clients import pace_empty_fetches

TOPIC = "test.fetch-pacing.v1"


async def _tail(bootstrap: str, pace: float, seconds: float) -> tuple[int, float | None]:
    """Tail an empty partition for ``seconds``, then produce one record: (fetches sent, seconds to receive it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    fetches = 0
    try:
        send = consumer._client.send

        async def counting(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal fetches
            if isinstance(request, FetchRequest):
                fetches += 1
            return await send(node_id, request, *args, **kwargs)

        consumer._client.send = counting
        if pace:
            assert pace_empty_fetches(consumer, pace)
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert not await consumer.getmany(timeout_ms=100)
        counted = fetches
        sent = time.monotonic()
        await producer.send_and_wait(TOPIC, b"hello", partition=0)
        while time.monotonic() - sent < 5:
            got = await consumer.getmany(timeout_ms=100)
            if got:
                return counted, time.monotonic() - sent
        return counted, None
    finally:
        await consumer.stop()
        await producer.stop()


def test_paced_consumer_sends_few_fetches_and_still_receives(tmp_path: Any) -> None:
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic(TOPIC, 1, 1)])
        admin.close()
        unpaced, got_unpaced = asyncio.run(_tail(broker.bootstrap, 0.0, 1.0))
        paced, got_paced = asyncio.run(_tail(broker.bootstrap, 0.02, 1.0))
    # 1 s at ≤ one fetch per 20 ms, plus the fetches in flight when the loop started
    assert paced <= 60, f"{paced} fetches in 1 s with 20 ms pacing: the wrapper is not in aiokafka's fetch path"
    assert unpaced > 4 * paced, f"unpaced {unpaced} vs paced {paced}: the broker now holds empty fetches itself?"
    assert got_unpaced is not None and got_paced is not None, "a record produced while tailing never arrived"
    assert got_paced < 1.0
