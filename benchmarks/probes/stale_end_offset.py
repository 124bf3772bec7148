"""Probe: the end offset a consumer knows for a partition goes stale while its fetched records wait.

Why: the worker's §8.1 merge treats an empty topic-partition as caught up when the consumer's position has
reached the end offset it knows (``last_stable_offset``/``highwater``, from the partition's last fetch
response). aiokafka leaves a partition whose fetched records have waited unconsumed longer than
``prefetch_backoff`` (0.1 s) out of the fetches that follow, while the other partitions go on being fetched. So
after one ``getmany`` that returns an *old* record of partition A and a *newer* record of partition B, A looks
caught up although the broker holds a record of A older than B's: the merge applies B first and A's record
late, at the task's clock — outputs ``hub replay`` does not give (found by benchmarks/live_latency.py: 1–12
deposit decisions 14–150 ms late in about one quick run in five, whenever the worker's loop stalled > 0.1 s).

Run: ``.venv/bin/python benchmarks/probes/stale_end_offset.py`` (its own embedded broker, a few seconds). It
prints what the caught-up test would say; "True" with a real end beyond the position is the stale case.
"""

from __future__ import annotations

import asyncio


async def probe(bootstrap: str) -> bool:
    """True when the consumer's end offset for A is stale after a getmany returned A's old and B's newer record."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    a, b = TopicPartition("health.admissions.v1", 0), TopicPartition("health.family-doctor.v1", 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([a, b])
        for tp, end in (await consumer.end_offsets([a, b])).items():
            consumer.seek(tp, end)
        await asyncio.sleep(0.3)
        await producer.send_and_wait(a.topic, b"a1", key=b"k", partition=0)
        await asyncio.sleep(0.3)  # a1 is fetched into the consumer's buffer and waits there, unconsumed
        await producer.send_and_wait(a.topic, b"a2, older than b1", key=b"k", partition=0)
        await producer.send_and_wait(b.topic, b"b1", key=b"k", partition=0)
        await asyncio.sleep(0.3)  # the fetcher goes on with B; A, with data waiting, is left out
        data = await consumer.getmany(timeout_ms=0)
        position = await consumer.position(a)
        known = consumer.last_stable_offset(a) or consumer.highwater(a)
        real = (await consumer.end_offsets([a]))[a]
        got = {tp.topic: [m.value.decode() for m in msgs] for tp, msgs in data.items()}
        print(f"getmany returned {got}")
        print(f"A: position {position}, end offset the consumer knows {known}, real end {real}: "
              f"caught-up test says {position >= known}")
        return position >= known and real > position
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> int:
    from hub.broker import EmbeddedBroker, ensure_topics

    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        stale = asyncio.run(probe(broker.bootstrap))
    print("STALE: A looks caught up while it holds an older record than B's" if stale else "not stale")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
