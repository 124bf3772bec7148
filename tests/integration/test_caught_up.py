"""§8.1's caught-up test on the real client: an empty partition is caught up only at the broker's end *now*.

The case (benchmarks/probes/stale_end_offset.py, found by benchmarks/live_latency.py): partition A's first
record waits unconsumed in aiokafka's buffer, so A is left out of the fetches that follow; meanwhile an older
record lands on A and a newer one on B. One ``getmany`` then returns A's first record and B's newer one. The
end of A the consumer knows is from A's last fetch, i.e. stale: judged by it, A would look caught up and the
merge would apply B's record before A's older one (applied late, at the clock: not what ``hub replay`` gives).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hub.processors.stream import PersonStream, StreamOptions

A = TopicPartition("health.admissions.v1", 0)
B = TopicPartition("health.family-doctor.v1", 0)


class _Queues:
    """The task's merge queues, as far as the caught-up test looks at them: which topics hold records."""

    def __init__(self) -> None:
        self.held: set[str] = set()

    def buffered(self, topic: str) -> int:
        return 1 if topic in self.held else 0


async def _scenario(bootstrap: str) -> tuple[bool, bool, bool]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([A, B])
        for tp, end in (await consumer.end_offsets([A, B])).items():
            consumer.seek(tp, end)
        task = SimpleNamespace(partition=0, tps=[A, B], group=_Queues())
        stream: Any = SimpleNamespace(consumer=consumer, options=StreamOptions(app_id="t"))
        await asyncio.sleep(0.3)
        await producer.send_and_wait(A.topic, b"a1", key=b"k", partition=0)
        await asyncio.sleep(0.3)  # a1 fetched into the consumer's buffer, waiting there
        await producer.send_and_wait(A.topic, b"a2 (older than b1)", key=b"k", partition=0)
        await producer.send_and_wait(B.topic, b"b1", key=b"k", partition=0)
        await asyncio.sleep(0.3)  # the fetcher goes on with B and leaves A out
        data = await consumer.getmany(timeout_ms=0)
        got_b1 = any(m.value == b"b1" for m in data.get(B, ()))
        task.group.held = {B.topic}  # b1 waits in the merge; A's queue is empty
        stale = (consumer.last_stable_offset(A) or consumer.highwater(A)) <= await consumer.position(A)
        flags = await PersonStream._caught_up(stream, [task])
        a_caught_up_early = flags[0][A.topic]
        await consumer.getmany(A, timeout_ms=1000)  # a2 read: now A is at its end
        flags = await PersonStream._caught_up(stream, [task])
        return got_b1 and stale, a_caught_up_early, flags[0][A.topic]
    finally:
        await producer.stop()
        await consumer.stop()


def test_an_empty_partition_with_an_older_record_on_the_broker_holds_the_merge(kafka_bootstrap: str) -> None:
    reproduced, early, later = asyncio.run(_scenario(kafka_bootstrap))
    assert reproduced, "the scenario did not arise (the client's known end was not stale): the test proves nothing"
    assert not early, "A counted as caught up while its older record was on the broker, unread"
    assert later, "A not caught up after its last record was read"
