"""Where a task keeps its subjects: serialized in memory or RocksDB, a bounded cache of decoded ones.

What must hold whatever the backend: a written subject is never lost before it is flushed, however small
the cache; a flush returns exactly the written subjects as stored bytes; a key is listed and counted as soon
as it is written; a restored backend (bytes in, nothing decoded) answers as the one that wrote them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.processors.store import MemoryBackend, RocksBackend, SubjectStore


def codec() -> tuple:
    return (lambda raw: json.loads(raw), lambda obj: json.dumps(obj, sort_keys=True).encode())


@pytest.fixture(params=["memory", "rocksdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    b = MemoryBackend() if request.param == "memory" else RocksBackend(tmp_path / "task-0")
    yield b
    b.close()


def test_written_subjects_survive_any_cache_and_flush_once(backend) -> None:
    decode, encode = codec()
    store = SubjectStore(backend, "p", decode, encode, cache_size=3)
    for i in range(50):
        store[f"s{i}"] = {"n": i}
    assert len(store) == 50 and "s7" in store and "nope" not in store
    assert store["s42"] == {"n": 42}  # written, not flushed: still there although the cache holds 3
    flushed = store.flush()
    assert set(flushed) == {f"s{i}" for i in range(50)} and flushed["s3"] == encode({"n": 3})
    assert store.flush() == {}
    assert len(store.cache) <= 3
    assert store["s10"] == {"n": 10}  # decoded again from the backend
    assert sorted(store) == sorted(f"s{i}" for i in range(50))


def test_a_subject_changed_in_place_is_written_only_when_set_again(backend) -> None:
    decode, encode = codec()
    store = SubjectStore(backend, "p", decode, encode, cache_size=100)
    store["a"] = {"n": 1}
    store.flush()
    obj = store["a"]
    obj["n"] = 2
    store["a"] = obj
    assert store.flush() == {"a": encode({"n": 2})}


def test_restored_bytes_answer_as_the_store_that_wrote_them(backend, tmp_path: Path) -> None:
    decode, encode = codec()
    store = SubjectStore(backend, "p", decode, encode)
    for i in range(20):
        store[f"k{i}"] = [i]
    flushed = store.flush()
    other = MemoryBackend()
    for key, raw in flushed.items():
        other.put("p", key, raw)
    copy = SubjectStore(other, "p", decode, encode)
    assert {k: copy[k] for k in copy} == {k: store[k] for k in store}
    assert len(copy) == 20
