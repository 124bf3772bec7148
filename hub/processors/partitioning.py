"""Which partition a key belongs to: the default Kafka partitioner (murmur2), as every producer uses it.

Why the hub computes it itself: co-partitioning (policy-spec §8.1) holds only if every producer puts a
subject's records on ``murmur2(key) mod partitions`` — the Java client's, kafka-python's and aiokafka's
default for keyed records. The processor checks each input against it (a record on another partition
would split its subject's state across tasks), produces its outputs to it, and ``hub replay`` places
its lines with it.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

__all__ = ["partition_for"]


@lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (Kafka's default partitioner for keyed records).

    Memoised: the pure-Python murmur2 costs ≈10 µs, and the worker asks for every input and output, whose
    keys repeat (a person's records)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
