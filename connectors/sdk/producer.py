"""The source runner's producer: records batched per partition, built in C, sent from a background event loop.

Why not kafka-python's ``KafkaProducer.send`` for every record, as before: measured on the roster benchmark
(benchmarks/roster_load.py), its per-record path — partitioner, accumulator, a future per record, the sender
thread, CRC-32C in pure Python unless the ``crc32c`` package is installed — cost 40–50 µs of a core per record,
more than reading and mapping the row, so a 1 M-row roster could not reach its topic in the 90 s a province
needs. aiokafka (already the worker's client) builds record batches in its C extension and sends one batch per
partition: ≈5 µs per record, partitioning included. The runner keeps the same contract either way:

* :meth:`BatchProducer.send` never blocks on the network and keeps the order of the records of a partition
  (one task hands every batch to the producer, in the order they were sent);
* :meth:`BatchProducer.flush` returns only when every record sent before it is acknowledged (``acks=all``,
  idempotent producer) and raises otherwise — so an offset written after it never points past a record the
  broker does not have (connectors/sdk/offsets.py). After a failed flush the producer is replaced (at the next
  send), so a wedged idempotent sequence (broker-notes.md: ``OutOfOrderSequenceNumber`` after one refused batch)
  cannot fail every later batch; the runner re-sends from the committed offsets.

Records are partitioned as every Kafka client does (murmur2 of the key, the Java client's default), so a
record lands where the worker, kafka-python and the Java client would put it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import struct
import threading
from collections.abc import Iterable
from typing import Any

from hub.clients import ACKS, aiokafka_options

__all__ = ["BatchProducer", "murmur2", "partition_for"]

HAND_OVER = 2000
"""Records collected before they are handed to the event loop (also at every flush)."""
MAX_BATCH_BYTES = 512 * 1024
"""A record batch is cut at this size: Kafka's (and noida-db's) ``max.message.bytes`` is ≈1 MB."""
_WORDS = struct.Struct("<I")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), over 4-byte words unpacked in C."""
    m, length = 0x5BD1E995, len(data)
    h = 0x9747B28C ^ length
    body = length & ~3
    for (k,) in _WORDS.iter_unpack(data[:body]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra = length & 3
    if extra >= 3:
        h ^= data[body + 2] << 16
    if extra >= 2:
        h ^= data[body + 1] << 8
    if extra >= 1:
        h ^= data[body]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The default partitioner of the Java client, kafka-python and aiokafka."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class BatchProducer:
    """Idempotent, ``acks=all`` producer for a synchronous source runner (see the module docstring)."""

    def __init__(self, bootstrap: str, client_id: str, *, hand_over: int = HAND_OVER) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.hand_over = hand_over
        self._pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        self._count = 0
        self._round_robin = 0
        self._partitions: dict[str, int] = {}
        self._inflight: list[concurrent.futures.Future[int]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{client_id}-producer", daemon=True)
        self._producer: Any = None
        self._queue: asyncio.Queue[Any] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._broken = False

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> BatchProducer:
        """Connect (raises what the broker said; nothing is left running then)."""
        self._thread.start()
        try:
            self._call(self._start(), timeout)
        except BaseException:
            self.close()
            raise
        return self

    async def _start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap.split(","), client_id=self.client_id,
                                          acks=ACKS, enable_idempotence=True, max_batch_size=MAX_BATCH_BYTES,
                                          max_request_size=1024 * 1024, **aiokafka_options())
        await self._producer.start()
        self._queue = asyncio.Queue()
        self._sender = asyncio.ensure_future(self._send_loop())

    def close(self, timeout: float = 10.0) -> None:
        """Stop the producer (records not flushed may or may not have been sent) and the loop thread."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):  # closing must finish whatever the broker does
                self._call(self._stop(), timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._loop.is_running():
            self._loop.close()

    async def _stop(self) -> None:
        self._queue = None
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._producer is not None:
            with contextlib.suppress(Exception):  # a producer whose broker is gone would wait for its batches
                await asyncio.wait_for(self._producer.stop(), timeout=5.0)

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- sending -------------------------------------------------------------------------------

    def partitions(self, topic: str) -> int:
        """Partition count of ``topic`` (asked once per topic)."""
        n = self._partitions.get(topic)
        if n is None:
            found = self._call(self._producer.partitions_for(topic), 60.0)
            n = self._partitions[topic] = len(found)
        return n

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Queue one record (keyed records go to ``murmur2(key) mod partitions``).

        After a failed flush the first send replaces the producer, and raises if it cannot connect.
        """
        if self._broken:
            self._call(self._restart(), 60.0)
            self._broken = False
        n = self.partitions(topic)
        if key is not None:
            partition = partition_for(key, n)
        else:
            partition, self._round_robin = self._round_robin % n, self._round_robin + 1
        self._pending.setdefault((topic, partition), []).append((key, value))
        self._count += 1
        if self._count >= self.hand_over:
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._pending:
            return
        batches, self._pending, self._count = self._pending, {}, 0
        done: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._enqueue, batches, done)
        self._inflight.append(done)

    def _enqueue(self, batches: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]],
                 done: concurrent.futures.Future[int]) -> None:
        if self._queue is None:  # a restart after a failure did not succeed (the broker is down)
            done.set_exception(ConnectionError(f"the producer of {self.client_id} is not connected"))
        else:
            self._queue.put_nowait((batches, done))

    async def _send_loop(self) -> None:
        """One task hands every batch to aiokafka, in order; acknowledgements are awaited beside it."""
        queue = self._queue
        assert queue is not None
        while True:
            batches, done = await queue.get()
            try:
                acks = [ack for (topic, partition), records in batches.items()
                        for ack in await self._send_partition(topic, partition, records)]
            except Exception as exc:
                done.set_exception(exc)
                continue
            asyncio.ensure_future(self._settle(acks, sum(len(r) for r in batches.values()), done))

    async def _send_partition(self, topic: str, partition: int,
                              records: Iterable[tuple[bytes | None, bytes | None]]) -> list[asyncio.Future[Any]]:
        producer = self._producer
        acks = []
        builder = producer.create_batch()
        for key, value in records:
            if builder.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                acks.append(await producer.send_batch(builder, topic, partition=partition))
                builder = producer.create_batch()
                builder.append(key=key, value=value, timestamp=None)
        builder.close()
        acks.append(await producer.send_batch(builder, topic, partition=partition))
        return acks

    @staticmethod
    async def _settle(acks: list[asyncio.Future[Any]], n: int, done: concurrent.futures.Future[int]) -> None:
        try:
            await asyncio.gather(*acks)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(n)

    def flush(self, timeout: float = 60.0) -> int:
        """Hand over what is queued and wait for every acknowledgement; raises the first failure."""
        self._hand_over()
        inflight, self._inflight = self._inflight, []
        sent = 0
        try:
            for done in inflight:
                sent += done.result(timeout)
        except BaseException:
            for done in inflight:
                done.cancel()
            self.discard()
            self._broken = True  # replaced at the next send: an idempotent producer's sequence may be wedged
            raise
        return sent

    def discard(self) -> None:
        """Forget records not yet handed over (the runner restarts from its committed offsets)."""
        self._pending, self._count = {}, 0

    async def _restart(self) -> None:
        await self._stop()
        await self._start()
